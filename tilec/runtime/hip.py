"""The HIP runtime (AMD GPUs): devices, module loading from a HSACO, kernel argument packing
and the launch; the counterpart of `tilec/runtime/cuda.py`.

Everything but the launch goes through hip-python (`hip.hip`, the `amd` extra); the launch
goes through ctypes on libamdhip64 directly, as the CUDA launch does on libcuda, with the
arguments packed into one buffer at the offsets of the code object's kernarg metadata
(`tilec.backends.amd.hsaco`) and passed as HIP_LAUNCH_PARAM_BUFFER_POINTER.

Nothing here touches ROCm at import: the first call that needs it loads it, and on a
machine without ROCm that call raises a LaunchError starting "no HIP runtime found".

This module has not run on an AMD GPU: CI checks the packing against the metadata of real
code objects and the call sequence against a stand-in runtime (tests/runtime/test_hip.py).
"""
from __future__ import annotations

import ctypes
import struct
import threading
from dataclasses import dataclass
from typing import Any, Sequence

from tilec.backends.abi import Param
from tilec.backends.amd.compiler import kernarg_layout
from tilec.backends.amd.hsaco import kernel_metadata
from tilec.errors import LaunchError

__all__ = ["Runtime", "DeviceProperties", "LoadedKernel", "runtime", "device_count",
           "device_properties", "load_kernel", "pack_arguments", "launch"]

HIP_SUCCESS = 0
# hip_runtime_api.h: the `extra` argument of hipModuleLaunchKernel.
HIP_LAUNCH_PARAM_BUFFER_POINTER = 0x01
HIP_LAUNCH_PARAM_BUFFER_SIZE = 0x02
HIP_LAUNCH_PARAM_END = 0x03
WAVE = 64

# Tried in order; tests point this at a name that does not exist to simulate no ROCm.
LIBHIP_NAMES = ("libamdhip64.so", "libamdhip64.so.6", "libamdhip64.so.7", "libamdhip64.so.5")
# struct formats of the machine parameter types (tilec.backends.abi), little-endian.
_FORMAT = {"ptr": "<Q", "i32": "<i", "i64": "<q", "float": "<f", "double": "<d"}
_NO_HIP_HINT = ("install ROCm and `pip install tilec[amd]` (hip-python) on a machine with an "
                "AMD GPU; compiling for AMD (`tilec compile --target gfx942`) needs neither")


@dataclass(frozen=True)
class DeviceProperties:
    """What tilec needs to know of an AMD GPU."""

    index: int
    name: str
    arch: str                 # "gfx942", from gcnArchName "gfx942:sramecc+:xnack-"
    max_shared_per_block: int
    warp_size: int


@dataclass(frozen=True)
class LoadedKernel:
    """A kernel's function, loaded on `device`, with the layout of its kernarg segment."""

    name: str
    device: int
    module: Any               # hipModule_t
    function: Any             # hipFunction_t
    handle: int               # the function as an address, for the ctypes launch
    params: tuple[Param, ...]
    offsets: tuple[int, ...]  # where each parameter goes in the kernarg buffer
    kernarg_bytes: int        # where the explicit arguments end (HIP adds hidden ones)
    num_threads: int
    shared_bytes: int


class Runtime:
    """hip-python's `hip` module as `api`, libamdhip64 via ctypes as `lib`."""

    def __init__(self, api: Any, lib: Any):
        self.api = api
        self.lib = lib
        # hipError_t hipModuleLaunchKernel(hipFunction_t f, unsigned gridDimX, gridDimY,
        #     gridDimZ, unsigned blockDimX, blockDimY, blockDimZ, unsigned sharedMemBytes,
        #     hipStream_t stream, void** kernelParams, void** extra);   (HIP Module API)
        launch = lib.hipModuleLaunchKernel
        launch.restype = ctypes.c_int
        launch.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p] * 3
        self.hipModuleLaunchKernel = launch
        self._properties: dict[int, DeviceProperties] = {}

    def call(self, name: str, *args, kernel: str | None = None) -> Any:
        """hip-python's `name(*args)`: its outputs, or a LaunchError naming the call."""
        result = getattr(self.api, name)(*args)
        result = result if isinstance(result, tuple) else (result,)
        err, values = result[0], result[1:]
        if int(err) != HIP_SUCCESS:
            raise self.error(name, int(err), kernel)
        if not values:
            return None
        return values[0] if len(values) == 1 else values

    def error(self, call: str, code: int, kernel: str | None) -> LaunchError:
        what = f"{call} failed" + (f" for kernel '{kernel}'" if kernel else "")
        try:
            text = self.api.hipGetErrorString(code)
            text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        except Exception:  # a runtime that failed to load cannot describe its errors
            text = f"hipError_t {code}"
        return LaunchError(f"{what}: {text}")

    def device_count(self) -> int:
        return int(self.call("hipGetDeviceCount"))

    def properties(self, device: int) -> DeviceProperties:
        props = self._properties.get(device)
        if props is None:
            count = self.device_count()
            if not 0 <= device < count:
                raise LaunchError(f"no HIP device {device}: this machine has {count}")
            raw = self.call("hipGetDeviceProperties", device)
            arch = _text(raw.gcnArchName).split(":")[0]
            props = DeviceProperties(device, _text(raw.name), arch,
                                     int(raw.sharedMemPerBlock), int(raw.warpSize))
            self._properties[device] = props
        return props


def _text(raw: Any) -> str:
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw).split(b"\0", 1)[0].decode(errors="replace")
    return str(raw)


_runtime: Runtime | None = None
_lock = threading.Lock()


def _load_libhip() -> ctypes.CDLL:
    errors = []
    for name in LIBHIP_NAMES:
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            errors.append(str(e))
    raise LaunchError(f"no HIP runtime found: could not load {' or '.join(LIBHIP_NAMES)} "
                      f"({'; '.join(errors)})", hint=_NO_HIP_HINT)


def _load_bindings() -> Any:
    try:
        from hip import hip as api
    except ImportError:
        raise LaunchError("no HIP runtime found: hip-python is not installed",
                          hint=_NO_HIP_HINT) from None
    return api


def runtime() -> Runtime:
    """The HIP runtime, loaded on first use; a LaunchError without ROCm."""
    global _runtime
    if _runtime is not None:
        return _runtime
    with _lock:
        if _runtime is None:
            lib = _load_libhip()  # first: its error is the clearest on a machine without ROCm
            _runtime = Runtime(_load_bindings(), lib)
    return _runtime


def reset() -> None:
    """Forget the loaded runtime (tests only)."""
    global _runtime
    with _lock:
        _runtime = None


def device_count() -> int:
    return runtime().device_count()


def device_properties(device: int = 0) -> DeviceProperties:
    """Name, arch (gfx942, ...), LDS limit and wavefront size of `device`."""
    return runtime().properties(device)


def load_kernel(compiled: Any, device: int = 0) -> LoadedKernel:
    """Load `compiled` (an AMD CompiledKernel with its HSACO) on `device`: the module from the
    code object, its function, and the kernarg layout, checked against the metadata."""
    rt = runtime()
    name = compiled.name
    if not compiled.hsaco:
        raise LaunchError(f"kernel '{name}' has no code object to load (no ld.lld when it "
                          "was compiled)", hint="apt-get install lld, then compile again")
    props = rt.properties(device)
    if props.arch != compiled.arch:
        raise LaunchError(f"kernel '{name}' was compiled for {compiled.arch}; device {device} "
                          f"({props.name}) is {props.arch}")
    shared = int(compiled.shared_bytes)
    if shared > props.max_shared_per_block:
        raise LaunchError(f"kernel '{name}' needs {shared} bytes of LDS; {props.name} allows "
                          f"{props.max_shared_per_block} per block",
                          hint="use smaller tiles or fewer pipeline stages")
    params, offsets, size = checked_layout(compiled)
    rt.call("hipSetDevice", device)
    module = rt.call("hipModuleLoadData", bytes(compiled.hsaco), kernel=name)
    function = rt.call("hipModuleGetFunction", module, name.encode(), kernel=name)
    return LoadedKernel(name, device, module, function, int(function), tuple(params),
                        tuple(offsets), size, WAVE * int(compiled.num_warps), shared)


def checked_layout(compiled: Any) -> tuple[list[Param], list[int], int]:
    """The parameters, their kernarg offsets and the buffer size, after checking that the
    code object's metadata puts every explicit argument where tilec packs it."""
    params = list(compiled.params)
    slots, end = kernarg_layout(params)
    md = kernel_metadata(compiled.hsaco, compiled.name)
    explicit = [(a.offset, a.size) for a in md.args if not a.hidden]
    if explicit != [(s.offset, s.size) for s in slots]:
        raise LaunchError(f"kernel '{compiled.name}': the code object's kernarg metadata "
                          f"{explicit} differs from tilec's packing "
                          f"{[(s.offset, s.size) for s in slots]} (an internal error)")
    return params, [s.offset for s in slots], end


def pack_arguments(loaded: LoadedKernel, values: Sequence[Any]) -> bytearray:
    """The kernarg buffer: each machine value (one per parameter, pointers as ints) at its
    offset, as `struct` packs the parameter's machine type."""
    if len(values) != len(loaded.params):
        raise LaunchError(f"kernel '{loaded.name}' takes {len(loaded.params)} machine "
                          f"arguments, got {len(values)}")
    buf = bytearray(loaded.kernarg_bytes)
    for p, offset, v in zip(loaded.params, loaded.offsets, values):
        try:
            struct.pack_into(_FORMAT[p.machine], buf, offset, v)
        except struct.error as e:
            raise LaunchError(f"kernel '{loaded.name}': argument {p.name} ({p.machine}) "
                              f"cannot take {v!r}: {e}") from None
    return buf


def launch(loaded: LoadedKernel, grid: Sequence[int], values: Sequence[Any],
           stream: int = 0) -> None:
    """Launch on `stream` (a hipStream_t as an int; 0: the null stream) over `grid` blocks of
    `loaded.num_threads` threads, with dynamic LDS of the kernel's size."""
    rt = runtime()
    buf = pack_arguments(loaded, values)
    extra = None
    if buf:   # the explicit arguments, exactly as many bytes as they span
        data = (ctypes.c_char * len(buf)).from_buffer(buf)
        size = ctypes.c_size_t(len(buf))
        extra = (ctypes.c_void_p * 5)(HIP_LAUNCH_PARAM_BUFFER_POINTER, ctypes.addressof(data),
                                      HIP_LAUNCH_PARAM_BUFFER_SIZE, ctypes.addressof(size),
                                      HIP_LAUNCH_PARAM_END)
    gx, gy, gz = (list(grid) + [1, 1, 1])[:3]
    code = rt.hipModuleLaunchKernel(ctypes.c_void_p(loaded.handle), gx, gy, gz,
                                    loaded.num_threads, 1, 1, loaded.shared_bytes,
                                    ctypes.c_void_p(stream or None), None, extra)
    if code != HIP_SUCCESS:
        raise rt.error("hipModuleLaunchKernel", code, loaded.name)
