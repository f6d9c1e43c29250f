"""The CUDA driver: devices, the primary context, module loading and the raw launch entry.

Everything but the launch itself goes through cuda-python (`cuda.bindings.driver`, or
`cuda.cuda` in cuda-python before 12.6); the launch goes through ctypes on libcuda directly,
because cuda-python's wrapper costs more per call than the whole of the rest of a launch (see
`tilec/runtime/launcher.py`). Both end up in the same libcuda.so.1 and the same contexts.

Nothing here touches the driver at import: the first call that needs it loads it, and on a
machine without CUDA that call raises a LaunchError starting "no CUDA driver found".
Every driver call is checked; a failure raises a LaunchError naming the kernel and the call.
"""
from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable

from tilec.errors import LaunchError

__all__ = ["Driver", "DeviceProperties", "LoadedKernel", "driver", "device_properties",
           "current_device", "load_kernel", "error_name", "arch_of", "DEFAULT_SHARED_LIMIT"]

# A kernel gets more than this much dynamic shared memory only after
# cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) raises its limit
# (CUDA C++ Programming Guide, "Shared Memory", compute capability 7.x and later).
DEFAULT_SHARED_LIMIT = 48 * 1024

# cuda.h: CUDA_SUCCESS = 0, CUDA_ERROR_INVALID_CONTEXT = 201.
CUDA_SUCCESS = 0
CUDA_ERROR_INVALID_CONTEXT = 201

# Tried in order; tests point this at a name that does not exist to simulate a machine
# without CUDA.
LIBCUDA_NAMES = ("libcuda.so.1", "libcuda.so")

_JIT_LOG_BYTES = 16 * 1024


def arch_of(major: int, minor: int) -> str:
    """The target name for a compute capability: sm_90a for 9.0 (the arch-specific variant,
    which wgmma and setmaxnreg need), sm_80 for 8.0."""
    return f"sm_{major}{minor}" + ("a" if major >= 9 else "")


class Driver:
    """The loaded driver: `api` is cuda-python's driver module, `lib` is libcuda via ctypes
    with `cuLaunchKernel` declared."""

    def __init__(self, api: Any, lib: ctypes.CDLL):
        self.api = api
        self.lib = lib
        # CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
        #     unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
        #     unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,
        #     void** kernelParams, void** extra);   (CUDA Driver API, "Execution Control")
        launch = lib["cuLaunchKernel"]
        launch.restype = ctypes.c_int
        launch.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p] * 3
        self.cuLaunchKernel = launch
        # The same function without argtypes, for the launcher's hot path: ctypes then
        # converts nothing itself (half the cost of the call above on a slow host). Callers
        # must pass the unsigned ints as Python ints below 2**31 and every pointer as a
        # ctypes.c_void_p or None, else it would go as a 32-bit C int.
        self.cuLaunchKernel_unchecked = lib["cuLaunchKernel"]
        self.cuLaunchKernel_unchecked.restype = ctypes.c_int
        # CUresult cuLaunchKernelEx(const CUlaunchConfig* config, CUfunction f,
        #     void** kernelParams, void** extra): for programmatic dependent launches.
        self.cuLaunchKernelEx = lib["cuLaunchKernelEx"]
        self.cuLaunchKernelEx.restype = ctypes.c_int
        self.cuLaunchKernelEx.argtypes = [ctypes.c_void_p] * 4
        self._lock = threading.Lock()
        self._contexts: dict[int, Any] = {}
        self._properties: dict[int, DeviceProperties] = {}

    # -- checked calls ---------------------------------------------------------------------
    def call(self, name: str, *args, kernel: str | None = None) -> Any:
        """Call cuda-python's `name(*args)`; its outputs (None, one value or a tuple), or a
        LaunchError naming the call and the kernel."""
        result = getattr(self.api, name)(*args)
        err, values = result[0], result[1:]
        if int(err) != CUDA_SUCCESS:
            raise self.error(name, int(err), kernel)
        if not values:
            return None
        return values[0] if len(values) == 1 else values

    def error(self, call: str, code: int, kernel: str | None, detail: str = "") -> LaunchError:
        """The LaunchError for driver call `call` returning `code`."""
        what = f"{call} failed" + (f" for kernel '{kernel}'" if kernel else "")
        message = f"{what}: {error_name(code, self.api)}"
        if detail:
            message += "\n" + detail
        return LaunchError(message)

    # -- devices and contexts -----------------------------------------------------------------
    def device_count(self) -> int:
        return int(self.call("cuDeviceGetCount"))

    def context(self, device: int) -> Any:
        """The primary context of `device`, retained once per process, made current on this
        thread (torch uses the same context, so pointers and streams are shared)."""
        ctx = self._contexts.get(device)
        if ctx is None:
            with self._lock:
                ctx = self._contexts.get(device)
                if ctx is None:
                    count = self.device_count()
                    if not 0 <= device < count:
                        raise LaunchError(f"no CUDA device {device}: this machine has {count}")
                    handle = self.call("cuDeviceGet", device)
                    ctx = self.call("cuDevicePrimaryCtxRetain", handle)
                    self._contexts[device] = ctx
        self.call("cuCtxSetCurrent", ctx)
        return ctx

    def ensure_current(self, device: int) -> bool:
        """Make `device`'s primary context current if no context is current on this thread
        (a fresh thread); False when another context is current (left alone)."""
        current = self.call("cuCtxGetCurrent")
        if int(current) == 0:
            self.context(device)
            return True
        ctx = self._contexts.get(device)
        return ctx is not None and int(current) == int(ctx)

    @contextlib.contextmanager
    def in_context(self, device: int) -> Iterator[Any]:
        """`device`'s primary context current for the block; whatever was current before
        (torch's current device, say) current again after it."""
        previous = self.call("cuCtxGetCurrent")
        ctx = self.context(device)
        try:
            yield ctx
        finally:
            if int(previous) != 0 and int(previous) != int(ctx):
                self.call("cuCtxSetCurrent", previous)

    def current_device(self) -> int:
        """The device of this thread's current context, or 0 when none is current."""
        current = self.call("cuCtxGetCurrent")
        if int(current) == 0:
            return 0
        return int(self.call("cuCtxGetDevice"))

    def properties(self, device: int) -> DeviceProperties:
        props = self._properties.get(device)
        if props is None:
            api = self.api
            handle = self.call("cuDeviceGet", device)
            raw_name = self.call("cuDeviceGetName", 256, handle)
            attr = api.CUdevice_attribute

            def get(a: Any) -> int:
                return int(self.call("cuDeviceGetAttribute", a, handle))

            major = get(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
            minor = get(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
            props = DeviceProperties(
                index=device,
                name=bytes(raw_name).split(b"\0", 1)[0].decode(errors="replace"),
                capability=(major, minor),
                arch=arch_of(major, minor),
                sm_count=get(attr.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
                max_shared_per_block_optin=get(
                    attr.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN),
                max_threads_per_block=get(attr.CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK),
                warp_size=get(attr.CU_DEVICE_ATTRIBUTE_WARP_SIZE),
                l2_bytes=get(attr.CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE),
            )
            self._properties[device] = props
        return props

    # -- modules ----------------------------------------------------------------------------
    def load_module(self, compiled: Any) -> Any:
        """Load `compiled`'s cubin, or its PTX through the driver's JIT (whose error log goes
        into the message on failure); the CUmodule, in the current context."""
        name = compiled.name
        cubin = getattr(compiled, "cubin", None)
        ptx = getattr(compiled, "ptx", None)
        if cubin:
            try:
                return self.call("cuModuleLoadData", bytes(cubin), kernel=name)
            except LaunchError:
                if not ptx:  # a cubin for another GPU: the PTX, if any, still runs here
                    raise
        if not ptx:
            raise LaunchError(f"kernel '{name}' has neither a cubin nor PTX to load")
        return self._load_ptx(ptx, name)

    def _load_ptx(self, ptx: str | bytes, kernel: str) -> Any:
        """JIT-compile PTX. Through ctypes: the error-log option is a char* buffer that the
        driver fills, which ctypes passes exactly as declared where cuda-python's option
        marshalling has changed between its versions.

        CUresult cuModuleLoadDataEx(CUmodule* module, const void* image,
            unsigned int numOptions, CUjit_option* options, void** optionValues);
        (CUDA Driver API, "Module Management"); CU_JIT_ERROR_LOG_BUFFER = 5 and
        CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6 (cuda.h, enum CUjit_option)."""
        image = (ptx.encode() if isinstance(ptx, str) else bytes(ptx)) + b"\0"
        log = ctypes.create_string_buffer(_JIT_LOG_BYTES)
        options = (ctypes.c_int * 2)(5, 6)
        values = (ctypes.c_void_p * 2)(ctypes.addressof(log), _JIT_LOG_BYTES)
        module = ctypes.c_void_p()
        load = self.lib.cuModuleLoadDataEx
        load.restype = ctypes.c_int
        load.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_uint,
                         ctypes.c_void_p, ctypes.c_void_p]
        err = load(ctypes.byref(module), image, 2, options, values)
        if err != CUDA_SUCCESS:
            text = log.value.decode(errors="replace").strip()
            raise self.error("cuModuleLoadDataEx", err, kernel,
                             f"JIT log:\n{text}" if text else "")
        return self.api.CUmodule(module.value)


class _LaunchAttribute(ctypes.Structure):
    """CUlaunchAttribute (cuda.h): the id, padding to 8 bytes, a 64-byte value union."""
    _fields_ = [("id", ctypes.c_int), ("pad", ctypes.c_char * 4), ("value", ctypes.c_int * 16)]


class _LaunchConfig(ctypes.Structure):
    """CUlaunchConfig (cuda.h)."""
    _fields_ = [("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3),
                ("shared_bytes", ctypes.c_uint), ("stream", ctypes.c_void_p),
                ("attrs", ctypes.POINTER(_LaunchAttribute)), ("num_attrs", ctypes.c_uint)]


# CUlaunchAttributeID: the launch may start once the previous kernel on the stream has
# triggered (griddepcontrol.launch_dependents) instead of when it has finished.
CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6


def programmatic_launch(launch_ex: Any) -> Callable[..., int]:
    """A function with cuLaunchKernel's arguments that launches through `launch_ex`
    (cuLaunchKernelEx) with programmatic stream serialization allowed: the launch of a
    kernel that uses `tc.gdc_wait` / `tc.gdc_launch_dependents`."""
    attr = _LaunchAttribute(id=CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION)
    attr.value[0] = 1
    attrs = ctypes.pointer(attr)

    def launch(function: Any, gx: int, gy: int, gz: int, bx: int, by: int, bz: int,
               smem: int, stream: Any, params: Any, extra: Any) -> int:
        stream = stream.value if isinstance(stream, ctypes.c_void_p) else stream
        config = _LaunchConfig((gx, gy, gz), (bx, by, bz), smem, stream, attrs, 1)
        return launch_ex(ctypes.byref(config), function, params, extra)
    return launch


@dataclass(frozen=True)
class DeviceProperties:
    """What tilec needs to know of a GPU."""

    index: int
    name: str
    capability: tuple[int, int]
    arch: str                          # "sm_90a" for compute capability 9.0
    sm_count: int
    max_shared_per_block_optin: int    # bytes, after raising a kernel's dynamic limit
    max_threads_per_block: int
    warp_size: int
    l2_bytes: int


@dataclass(frozen=True)
class LoadedKernel:
    """A kernel's function, loaded in `device`'s primary context."""

    name: str
    device: int
    module: Any            # CUmodule
    function: Any          # CUfunction
    handle: int            # the CUfunction as an address, for the ctypes launch


_driver: Driver | None = None
_driver_lock = threading.Lock()


def _load_bindings() -> Any:
    try:
        from cuda.bindings import driver as api  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cuda as api  # older cuda-python
        except ImportError:
            raise LaunchError("no CUDA driver found: cuda-python is not installed",
                              hint="pip install cuda-python, or run on the CPU interpreter "
                                   "with TILEC_INTERPRET=1") from None
    return api


def _load_libcuda() -> ctypes.CDLL:
    errors = []
    for name in LIBCUDA_NAMES:
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            errors.append(str(e))
    raise LaunchError(f"no CUDA driver found: could not load {' or '.join(LIBCUDA_NAMES)} "
                      f"({'; '.join(errors)})",
                      hint="is the NVIDIA driver installed? On a machine without a GPU, set "
                           "TILEC_INTERPRET=1 to run kernels on the CPU interpreter")


def driver() -> Driver:
    """The CUDA driver, loaded and initialised on first use; LaunchError without one."""
    global _driver
    if _driver is not None:
        return _driver
    with _driver_lock:
        if _driver is None:
            lib = _load_libcuda()  # first: its error is the clearest on a machine without CUDA
            api = _load_bindings()
            try:
                result = api.cuInit(0)
            except Exception as e:  # cuda-python raises when it cannot find libcuda itself
                raise LaunchError(f"no CUDA driver found: cuInit raised {e}") from None
            if int(result[0]) != CUDA_SUCCESS:
                raise LaunchError(f"no CUDA driver found: cuInit failed: "
                                  f"{error_name(int(result[0]), api)}")
            _driver = Driver(api, lib)
    return _driver


def reset() -> None:
    """Forget the loaded driver (tests only: the next call loads it again)."""
    global _driver
    with _driver_lock:
        _driver = None


def error_name(code: int, api: Any = None) -> str:
    """'CUDA_ERROR_INVALID_PTX (a PTX JIT compilation failed)' for a CUresult code."""
    if api is None:
        try:
            api = _load_bindings()
        except LaunchError:
            return f"CUresult {code}"
    try:
        err = api.CUresult(code)
    except ValueError:
        return f"CUresult {code}"
    name = err.name
    try:
        res, text = api.cuGetErrorString(err)
        if int(res) == CUDA_SUCCESS and text:
            return f"{name} ({text.decode(errors='replace')})"
    except Exception:  # a driver that failed to load cannot describe its errors
        pass
    return name


def device_properties(device: int = 0) -> DeviceProperties:
    """Name, compute capability, arch, SM count and shared-memory limit of `device`."""
    return driver().properties(device)


def current_device() -> int:
    """The device of this thread's current CUDA context (torch's current device once torch
    has used the GPU), or 0."""
    return driver().current_device()


def load_kernel(compiled: Any, device: int = 0) -> LoadedKernel:
    """Load `compiled` (a CompiledKernel: name, ptx, cubin, shared_bytes) on `device`, look up
    its function and raise its dynamic shared-memory limit when it needs more than 48 KB."""
    drv = driver()
    name = compiled.name
    shared = int(compiled.shared_bytes)
    props = drv.properties(device)
    if shared > props.max_shared_per_block_optin:
        raise LaunchError(
            f"kernel '{name}' needs {shared} bytes of shared memory; {props.name} allows "
            f"{props.max_shared_per_block_optin} per block",
            hint="use smaller tiles or fewer pipeline stages")
    with drv.in_context(device):
        module = drv.load_module(compiled)
        function = drv.call("cuModuleGetFunction", module, name.encode(), kernel=name)
        if shared > DEFAULT_SHARED_LIMIT:
            attr = drv.api.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            drv.call("cuFuncSetAttribute", function, attr, shared, kernel=name)
    return LoadedKernel(name, device, module, function, int(function))
