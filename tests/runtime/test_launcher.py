"""The launcher's packing plan against the ABI, with a fake cuLaunchKernel that captures what
the driver would get: grid, block, shared bytes, stream and the raw bytes of each parameter.
Device tensors are numpy arrays behind `__cuda_array_interface__`."""
from __future__ import annotations

import ctypes
import struct
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass, field

import numpy as np
import pytest

from tilec.backends import abi
from tilec.errors import LaunchError
from tilec.ir.parser import parse_module
from tilec.runtime import cuda
from tilec.runtime.launcher import Launcher, plan_args
from tilec.runtime.tensor import PackedTensor, pack

RNG = np.random.default_rng(11)

ECHO = parse_module("""func @echo(%x: tensor<?x?xf32>, %n: i32, %m: u64, %f: f16, %d: f64,
    %b: bool, %p: ptr<f32>, %out: tensor<?xi64>) {
  return
}""").functions[0]

_SIZES = {abi.POINTER: 8, abi.I32: 4, abi.I64: 8, abi.F32: 4, abi.F64: 8}
_DECODE = {abi.POINTER: "<Q", abi.I32: "<i", abi.I64: "<q", abi.F32: "<f", abi.F64: "<d"}


@dataclass
class FakeCompiled:
    """The fields of a CompiledKernel the launcher reads."""

    name: str
    params: list
    num_warps: int = 4
    shared_bytes: int = 0
    arch: str = "sm_90a"
    ptx: str = ""
    cubin: bytes | None = None
    resources: dict = field(default_factory=dict)


class DeviceArray:
    """A numpy array posing as GPU memory through __cuda_array_interface__ (v3)."""

    def __init__(self, a: np.ndarray):
        self.a = a

    @property
    def __cuda_array_interface__(self) -> dict:
        a = self.a
        return {"shape": a.shape, "typestr": a.dtype.str, "version": 3,
                "data": (a.__array_interface__["data"][0], False),
                "strides": None if a.flags.c_contiguous else a.strides}


class FakeDriver:
    """Stands in for the ctypes cuLaunchKernel; records every call."""

    def __init__(self, params: list[abi.Param], result: int = 0):
        self.params = params
        self.result = result
        self.calls: list[dict] = []

    def __call__(self, function, gx, gy, gz, bx, by, bz, smem, stream, kernel_params, extra):
        slots = ctypes.cast(kernel_params, ctypes.POINTER(ctypes.c_void_p))
        raw = [ctypes.string_at(slots[k], _SIZES[p.machine]) for k, p in enumerate(self.params)]
        # Without argtypes, the launcher passes pointers as c_void_p or None (NULL).
        assert stream is None or isinstance(stream, ctypes.c_void_p)
        self.calls.append({"grid": (gx, gy, gz), "block": (bx, by, bz), "smem": smem,
                           "stream": stream.value if stream is not None else 0, "raw": raw,
                           "extra": extra})
        return self.result

    def values(self, call: int = -1) -> dict[str, object]:
        """Each parameter decoded per its machine type, by name."""
        raw = self.calls[call]["raw"]
        return {p.name: struct.unpack(_DECODE[p.machine], r)[0] for p, r in zip(self.params, raw)}


def make(fn=ECHO, **kw) -> tuple[Launcher, FakeDriver]:
    params = abi.kernel_params(fn)
    fake = FakeDriver(params)
    compiled = FakeCompiled(fn.name, params, **kw)
    return Launcher(compiled, launch_fn=fake, arg_types=[a.type for a in fn.args]), fake


def echo_args(**over):
    x = RNG.standard_normal((6, 10)).astype(np.float32)
    out = np.full(16, -1, np.int64)
    args = {"x": DeviceArray(x), "n": -5, "m": 2**63 + 5, "f": 1.5, "d": -2.25, "b": True,
            "p": 0xDEAD0000, "out": DeviceArray(out)}
    args.update(over)
    return list(args.values()), x, out


# ---- the plan ----------------------------------------------------------------------------

def test_plan_groups_params_by_argument():
    plans = plan_args(abi.kernel_params(ECHO))
    assert [(p.name, p.kind, p.rank, p.machine, p.first) for p in plans] == [
        ("x", "tensor", 2, abi.POINTER, 0), ("n", "scalar", 0, abi.I32, 5),
        ("m", "scalar", 0, abi.I64, 6), ("f", "scalar", 0, abi.F32, 7),
        ("d", "scalar", 0, abi.F64, 8), ("b", "scalar", 0, abi.I32, 9),
        ("p", "pointer", 0, abi.POINTER, 10), ("out", "tensor", 1, abi.POINTER, 11)]


def test_plan_rejects_params_out_of_abi_order():
    params = abi.kernel_params(ECHO)
    swapped = [params[0], params[3], params[2], params[1], params[4]] + params[5:]
    with pytest.raises(ValueError, match="ABI order"):
        plan_args(swapped)


def test_launcher_does_not_touch_the_driver_before_launch(monkeypatch):
    monkeypatch.setattr(cuda, "driver", lambda: pytest.fail("driver loaded at construction"))
    launcher = Launcher(FakeCompiled("echo", abi.kernel_params(ECHO)))
    assert "def launch" in launcher.source


# ---- packed bytes ----------------------------------------------------------------------

def test_packs_every_machine_type_in_abi_order():
    launcher, fake = make(num_warps=8, shared_bytes=1234)
    args, x, out = echo_args()
    launcher.launch((5,), args)
    v = fake.values()
    assert v["x.ptr"] == x.ctypes.data and v["out.ptr"] == out.ctypes.data
    assert (v["x.size0"], v["x.size1"], v["x.stride0"], v["x.stride1"]) == (6, 10, 10, 1)
    assert (v["out.size0"], v["out.stride0"]) == (16, 1)
    assert v["n"] == -5
    assert v["m"] == 2**63 + 5 - 2**64  # the u64 bit pattern, read back as i64
    assert v["f"] == 1.5 and v["d"] == -2.25 and v["b"] == 1 and v["p"] == 0xDEAD0000
    call = fake.calls[-1]
    assert call["grid"] == (5, 1, 1) and call["block"] == (256, 1, 1)
    assert call["smem"] == 1234 and call["stream"] == 0 and call["extra"] is None


def test_strided_views_pass_element_strides():
    launcher, fake = make()
    base = RNG.standard_normal((12, 20)).astype(np.float32)
    view = base[::3, 1::2].T  # shape (10, 4), byte strides (8, 240)
    args, _, _ = echo_args(x=DeviceArray(view))
    launcher.launch(1, args)
    v = fake.values()
    assert (v["x.size0"], v["x.size1"]) == (10, 4)
    assert (v["x.stride0"], v["x.stride1"]) == (2, 60)
    assert v["x.ptr"] == view.__array_interface__["data"][0]


def test_unsigned_and_numpy_scalars():
    launcher, fake = make()
    args, _, _ = echo_args(n=np.uint32(3_000_000_000), m=np.int64(-7), f=np.float32(0.1),
                           d=np.float64(1e300), b=np.bool_(False))
    launcher.launch(1, args)
    v = fake.values()
    assert v["n"] == 3_000_000_000 - 2**32  # the u32 bit pattern
    assert v["m"] == -7 and v["f"] == np.float32(0.1) and v["d"] == 1e300 and v["b"] == 0


def test_values_are_rewritten_in_place_each_launch():
    launcher, fake = make()
    for n in (1, 2, 3):
        args, _, _ = echo_args(n=n)
        launcher.launch(n, args)
    assert [struct.unpack("<i", c["raw"][5])[0] for c in fake.calls] == [1, 2, 3]
    assert [c["grid"] for c in fake.calls] == [(1, 1, 1), (2, 1, 1), (3, 1, 1)]


@pytest.mark.parametrize("grid,dims", [(7, (7, 1, 1)), ((3,), (3, 1, 1)), ((3, 4), (3, 4, 1)),
                                       ((3, 4, 5), (3, 4, 5)), ([2, 3], (2, 3, 1)),
                                       ((np.int64(4),), (4, 1, 1))])
def test_grid_forms(grid, dims):
    launcher, fake = make()
    launcher.launch(grid, echo_args()[0])
    assert fake.calls[-1]["grid"] == dims


def test_streams():
    class TorchLikeStream:
        cuda_stream = 0x5000

    launcher, fake = make()
    args = echo_args()[0]
    launcher.launch(1, args, stream=0x1234)
    launcher.launch(1, args, stream=TorchLikeStream())
    launcher.launch(1, args)
    assert [c["stream"] for c in fake.calls] == [0x1234, 0x5000, 0]


def test_packed_sub_byte_device_tensor_passes_bit_strides():
    fn = parse_module("""func @q(%w: tensor<?x?x?xi4>) {
  return
}""").functions[0]
    launcher, fake = make(fn)
    host = pack(RNG.integers(-8, 8, (2, 3, 5)), "i4")  # rows of 5 nibbles: 3 bytes
    device = PackedTensor(DeviceArray(host.data), host.dtype, host.shape)
    launcher.launch(1, [device])
    v = fake.values()
    assert v["w.ptr"] == host.data.ctypes.data
    assert (v["w.size0"], v["w.size1"], v["w.size2"]) == (2, 3, 5)
    assert (v["w.stride0"], v["w.stride1"], v["w.stride2"]) == (3 * 24, 24, 4)


def test_packed_byte_dtype_passes_element_strides():
    fn = parse_module("""func @q(%w: tensor<?x?xi8>) {
  return
}""").functions[0]
    launcher, fake = make(fn)
    host = pack(RNG.integers(-8, 8, (3, 5)), "i8")
    launcher.launch(1, [PackedTensor(DeviceArray(host.data), host.dtype, host.shape)])
    v = fake.values()
    assert (v["w.stride0"], v["w.stride1"]) == (5, 1)


def test_no_params():
    fn = parse_module("""func @nothing() {
  return
}""").functions[0]
    launcher, fake = make(fn)
    launcher.launch(2, [])
    assert fake.calls[-1]["grid"] == (2, 1, 1) and fake.calls[-1]["raw"] == []


# ---- errors name the argument ---------------------------------------------------------

@pytest.mark.parametrize("over,match", [
    ({"x": DeviceArray(np.zeros(4, np.float32))}, "'x' has rank 1, the kernel expects 2"),
    ({"x": np.ones((2, 2), np.float32)}, "'x' is a numpy array in host memory"),
    ({"x": "nope"}, "'x' must be a GPU tensor"),
    ({"n": 2**32}, "'n' = 4294967296 does not fit the i32"),
    ({"n": -(2**31) - 1}, "'n' = -2147483649 does not fit"),
    ({"m": 2**64}, "'m' = 18446744073709551616 does not fit the i64"),
    ({"n": 1.5}, "'n' must be an integer, got float"),
    ({"f": 1e39}, "'f' = 1e\\+39 is out of the range of the f32"),
    ({"d": "x"}, "'d' must be a number"),
    ({"p": 1.0}, "'p' must be a GPU tensor"),
])
def test_bad_argument_is_named(over, match):
    launcher, fake = make()
    with pytest.raises(LaunchError, match=match):
        launcher.launch(1, echo_args(**over)[0])
    assert not fake.calls


def test_size_over_i32_is_named():
    class Huge(DeviceArray):
        @property
        def __cuda_array_interface__(self) -> dict:
            return {"shape": (2**31, 1), "typestr": "<f4", "data": (4096, False),
                    "strides": None, "version": 3}

    launcher, _ = make()
    with pytest.raises(LaunchError, match=r"x.size0\) does not fit the i32"):
        launcher.launch(1, echo_args(x=Huge(None))[0])


def test_wrong_argument_count():
    launcher, _ = make()
    with pytest.raises(LaunchError, match="takes 8 arguments, got 7"):
        launcher.launch(1, echo_args()[0][:7])


def test_host_packed_tensor_is_refused():
    fn = parse_module("""func @q(%w: tensor<?xi4>) {
  return
}""").functions[0]
    launcher, _ = make(fn)
    with pytest.raises(LaunchError, match="'w' is a PackedTensor of host"):
        launcher.launch(1, [pack(np.arange(6) - 3, "i4")])


def test_validate_checks_dtypes():
    launcher, _ = make()
    args, _, _ = echo_args(x=DeviceArray(np.zeros((2, 2), np.float16)))
    with pytest.raises(LaunchError, match="'x' is f16, the kernel was compiled for f32"):
        launcher.validate(args)
    launcher.validate(echo_args()[0])


def test_driver_error_names_kernel_and_launch():
    launcher, fake = make()
    fake.result = 719  # CUDA_ERROR_LAUNCH_FAILED
    with pytest.raises(LaunchError, match="cuLaunchKernel failed for kernel 'echo'"):
        launcher.launch((2, 3), echo_args()[0])


@pytest.mark.parametrize("grid", [(2**31,), (1, 65536), (-1,)])
def test_grid_out_of_range(grid):
    launcher, fake = make()
    fake.result = 1  # CUDA_ERROR_INVALID_VALUE
    with pytest.raises(LaunchError, match="grid dimension"):
        launcher.launch(grid, echo_args()[0])


def test_empty_grid_is_no_error():
    launcher, fake = make()
    fake.result = 1  # what the driver says to a zero-sized grid: CUDA_ERROR_INVALID_VALUE
    launcher.launch((0,), echo_args()[0])


# ---- no CUDA: the error comes at launch, not at import ------------------------------------

def test_no_cuda_error_at_launch(monkeypatch):
    monkeypatch.setattr(cuda, "LIBCUDA_NAMES", ("libtilec-no-such-cuda.so.1",))
    cuda.reset()
    try:
        launcher = Launcher(FakeCompiled("echo", abi.kernel_params(ECHO)))
        with pytest.raises(LaunchError, match="no CUDA driver found"):
            launcher.launch(1, echo_args()[0])
    finally:
        cuda.reset()


def test_import_loads_no_driver():
    code = textwrap.dedent("""
        import tilec, tilec.runtime.launcher, tilec.runtime.cuda, tilec.runtime.cache
        maps = open('/proc/self/maps').read()
        assert 'libcuda' not in maps, 'libcuda loaded at import'
        print('ok')
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_threads_never_launch_with_each_others_parameters():
    """The parameter buffer is shared: packing and launching must not interleave."""
    launcher, fake = make()
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        def work(t: int) -> None:
            for i in range(100):
                n = t * 1000 + i
                launcher.launch((n + 1,), echo_args(n=n)[0])

        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(old)
    assert len(fake.calls) == 600
    for call in fake.calls:
        n = struct.unpack("<i", call["raw"][5])[0]
        assert call["grid"] == (n + 1, 1, 1)


# ---- guards: the specialisation's facts, checked while the arguments are read ----------

def _guarded(contiguous=True, aligned=False, equal_to_1=False, divisible_16=False):
    # aligned: x's rows (10 f32) are 40 bytes apart, so they do not all start 16-byte aligned
    from tilec.ir import dtypes as dt
    from tilec.runtime.launcher import IntGuard, TensorGuard
    params = abi.kernel_params(ECHO)
    fake = FakeDriver(params)
    guards = [TensorGuard(dt.float32, 2, contiguous, aligned),
              IntGuard(equal_to_1, divisible_16), None, None, None, None, None,
              TensorGuard(dt.int64, 1, True, True)]
    return Launcher(FakeCompiled("echo", params), launch_fn=fake, guards=guards), fake


def test_guards_pass_when_the_facts_hold():
    launcher, fake = _guarded()
    args, _, _ = echo_args()
    launcher.launch((1,), args)
    assert len(fake.calls) == 1


@pytest.mark.parametrize("change", ["dtype", "rank", "strided", "rows_aligned", "int_is_1",
                                    "int_div16", "int_over_i32"])
def test_guard_miss_launches_nothing(change):
    from tilec.runtime.launcher import GuardMiss
    launcher, fake = _guarded()
    x = RNG.standard_normal((6, 10)).astype(np.float32)
    over = {"dtype": {"x": DeviceArray(x.astype(np.float64))},
            "rank": {"x": DeviceArray(x.reshape(-1))},
            "strided": {"x": DeviceArray(x[:, ::2])},
            "rows_aligned": {"x": DeviceArray(np.zeros((6, 12), np.float32))},
            "int_is_1": {"n": 1},
            "int_div16": {"n": 32},
            "int_over_i32": {"n": 2**40}}[change]
    args, _, _ = echo_args(**over)
    with pytest.raises(GuardMiss):
        launcher.launch((1,), args)
    assert fake.calls == []


def test_unguarded_launcher_still_reports_bad_ints():
    launcher, _ = make()
    args, _, _ = echo_args(n=2**40)
    with pytest.raises(LaunchError, match="'n'"):
        launcher.launch((1,), args)
