"""The HIP runtime without a GPU: importing it needs nothing, launching without ROCm says so;
and against a stand-in for hip-python and libamdhip64, a real code object loads, its
arguments are packed where its kernarg metadata says, and the launch gets that buffer."""
from __future__ import annotations

import ctypes
import struct
import sys

import pytest

from tilec.backends.amd import compile_kernel
from tilec.errors import LaunchError
from tilec.ir.parser import parse_module
from tilec.runtime import hip

KERNEL = """
func @scale(%x: tensor<?x?xf32>, %s: f32, %n: i64, %flag: bool, %p: ptr<f64>, %d: f64) {
  %c0 = constant {value = 0} : i32
  %t = load_view %x, [%c0, %c0] : tile<16x64xf32>
  %st = splat %s : tile<16x64xf32>
  %y = mul %t, %st : tile<16x64xf32>
  store_view %x, [%c0, %c0], %y
  store %p, %d
  return
}
"""


@pytest.fixture(scope="module")
def compiled():
    return compile_kernel(parse_module(KERNEL), "scale", "gfx942")


@pytest.fixture(autouse=True)
def fresh_runtime():
    hip.reset()
    yield
    hip.reset()


def test_without_rocm_the_launch_says_so(monkeypatch, compiled):
    monkeypatch.setattr(hip, "LIBHIP_NAMES", ("libamdhip64-does-not-exist.so",))
    with pytest.raises(LaunchError, match="no HIP runtime found: could not load "
                                          "libamdhip64-does-not-exist.so") as e:
        hip.load_kernel(compiled)
    assert "hip-python" in e.value.hint and "--target gfx942" in e.value.hint
    with pytest.raises(LaunchError, match="no HIP runtime found"):
        hip.device_count()


def test_without_hip_python_the_launch_says_so(monkeypatch):
    monkeypatch.setattr(hip, "_load_libhip", lambda: FakeLib())
    monkeypatch.setitem(sys.modules, "hip", None)   # import hip -> ImportError
    with pytest.raises(LaunchError, match="no HIP runtime found: hip-python is not installed"):
        hip.device_properties(0)


class FakeProps:
    name = b"AMD Instinct MI300X\0"
    gcnArchName = b"gfx942:sramecc+:xnack-\0"
    sharedMemPerBlock = 64 * 1024
    warpSize = 64


class FakeApi:
    """hip-python's calls as `hip.hip` answers them: (hipError_t, outputs...)."""

    def __init__(self):
        self.calls = []

    def hipGetDeviceCount(self):
        return (0, 1)

    def hipGetDeviceProperties(self, device):
        return (0, FakeProps())

    def hipSetDevice(self, device):
        self.calls.append(("hipSetDevice", device))
        return (0,)

    def hipModuleLoadData(self, image):
        self.calls.append(("hipModuleLoadData", image[:4]))
        return (0, 0x1000)

    def hipModuleGetFunction(self, module, name):
        self.calls.append(("hipModuleGetFunction", module, name))
        return (0, 0x2000)

    def hipGetErrorString(self, code):
        return b"hipErrorInvalidValue"


class FakeLib:
    """libamdhip64's hipModuleLaunchKernel, recording the kernarg buffer it is given."""

    def __init__(self, result=0):
        self.launches = []
        self.result = result

        def launch(f, gx, gy, gz, bx, by, bz, shared, stream, params, extra):
            words = ctypes.cast(extra, ctypes.POINTER(ctypes.c_void_p))
            size = ctypes.cast(words[3], ctypes.POINTER(ctypes.c_size_t)).contents.value
            data = ctypes.string_at(words[1], size)
            self.launches.append(dict(f=f.value, grid=(gx, gy, gz), block=(bx, by, bz),
                                      shared=shared, params=params,
                                      keys=(words[0], words[2], words[4]), data=data))
            return self.result
        self.hipModuleLaunchKernel = launch


def fake(monkeypatch, result=0) -> tuple[FakeApi, FakeLib]:
    api, lib = FakeApi(), FakeLib(result)
    monkeypatch.setattr(hip, "_runtime", hip.Runtime(api, lib))
    return api, lib


def test_launch_packs_arguments_where_the_metadata_says(monkeypatch, compiled):
    api, lib = fake(monkeypatch)
    loaded = hip.load_kernel(compiled, 0)
    assert ("hipModuleLoadData", b"\x7fELF") in api.calls
    assert ("hipModuleGetFunction", 0x1000, b"scale") in api.calls
    values = {"x.ptr": 0x7F0000001000, "x.size0": 16, "x.size1": 64, "x.stride0": 64,
              "x.stride1": 1, "s": 2.5, "n": -(1 << 40), "flag": 1, "p": 0x7F0000002000,
              "d": 0.125}
    hip.launch(loaded, (3, 2), [values[p.name] for p in compiled.params], stream=0x77)
    (call,) = lib.launches
    assert call["f"] == 0x2000 and call["grid"] == (3, 2, 1) and call["block"] == (256, 1, 1)
    assert call["shared"] == compiled.shared_bytes and call["params"] is None
    assert call["keys"] == (hip.HIP_LAUNCH_PARAM_BUFFER_POINTER,
                            hip.HIP_LAUNCH_PARAM_BUFFER_SIZE, hip.HIP_LAUNCH_PARAM_END)
    # Read every explicit argument back at the offset and size the code object names.
    md = compiled.metadata()
    fmt = {("global_buffer", 8): "<Q", ("by_value", 4): None, ("by_value", 8): None}
    by_name = {p.name: p for p in compiled.params}
    for arg in (a for a in md.args if not a.hidden):
        machine = by_name[arg.name].machine
        code = fmt.get((arg.value_kind, arg.size)) or hip._FORMAT[machine]
        assert struct.calcsize(code) == arg.size
        got, = struct.unpack_from(code, call["data"], arg.offset)
        assert got == values[arg.name], arg


def test_a_failed_launch_names_the_kernel(monkeypatch, compiled):
    fake(monkeypatch, result=1)
    loaded = hip.load_kernel(compiled, 0)
    with pytest.raises(LaunchError, match="hipModuleLaunchKernel failed for kernel 'scale': "
                                          "hipErrorInvalidValue"):
        hip.launch(loaded, (1,), [0] * len(compiled.params))


def test_wrong_arch_and_bad_values_are_launch_errors(monkeypatch, compiled):
    fake(monkeypatch)
    other = compile_kernel(parse_module(KERNEL), "scale", "gfx90a")
    with pytest.raises(LaunchError, match="compiled for gfx90a; device 0 .* is gfx942"):
        hip.load_kernel(other, 0)
    loaded = hip.load_kernel(compiled, 0)
    with pytest.raises(LaunchError, match="argument x.ptr \\(ptr\\) cannot take 'a'"):
        hip.pack_arguments(loaded, ["a"] * len(compiled.params))
    with pytest.raises(LaunchError, match="takes 10 machine arguments, got 1"):
        hip.pack_arguments(loaded, [0])


def test_packing_that_disagrees_with_the_metadata_is_caught(compiled):
    from dataclasses import replace
    swapped = list(compiled.params)
    swapped[1], swapped[3] = swapped[3], swapped[1]     # an i32 where an i64 is
    with pytest.raises(LaunchError, match="kernarg metadata"):
        hip.checked_layout(replace(compiled, params=swapped))
