"""Launching a compiled kernel: arguments packed by a plan made once per specialisation.

`Launcher(compiled)` reads `compiled.params` (the launch ABI, `tilec/backends/abi.py`) once
and generates a `launch(grid, args, stream=None)` function specialised to it. A warm launch
then does only what cannot be done ahead:

1. read each tensor's address, sizes and strides (for a torch CUDA tensor three calls:
   `data_ptr()`, `.shape`, `stride()`; other kinds of tensors take a slower general path),
   and check the range of each scalar int;
2. pick the stream: `stream=`, else torch's current stream when a torch tensor was passed
   (read with `torch._C._cuda_getCurrentRawStream`, 0.1 us, where
   `torch.cuda.current_stream()` costs 6-8 us), else the default stream 0;
3. under the launcher's lock (the buffer is shared, and ctypes drops the GIL in the call):
   write every parameter with one `struct.Struct.pack_into` into a preallocated buffer of
   8-byte slots, one per parameter, whose addresses the preallocated `void*[]` array
   `kernelParams` already holds (struct checks the rest: a size over i32, a wrong number
   of sizes for the rank, a float for an int), and call `cuLaunchKernel` through ctypes on
   libcuda (`tilec/runtime/cuda.py`), declared without argtypes so that ctypes converts
   nothing (pointers go as c_void_p).

Where the install built the C extension (`_native.c`), `launch` is its `FastLaunch`, which
does steps 1-3 in C for plain torch CUDA tensors and Python scalars and hands every other
call to the generated Python function (`python_launch`) described here.

Any exception in reading or packing sends the call to a slow path that finds the offending
argument and raises a LaunchError naming it. Checks that need more than the values
themselves (dtype against the specialisation) are `Launcher.validate`, for the caller to
run when it builds its specialisation key; the frontend already does.
"""
from __future__ import annotations

import ctypes
import math
import operator
import re
import struct
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from tilec.backends import abi
from tilec.config import native_launch
from tilec.errors import LaunchError
from tilec.ir.dtypes import DType, dtype as to_dtype, dtype_from_numpy
from tilec.ir.types import PointerType, ScalarType, TensorType
from tilec.runtime import cuda
from tilec.runtime.tensor import PackedTensor, packed_abi_strides, rows_aligned

__all__ = ["Launcher", "ArgPlan"]

_SLOT = 8  # bytes per parameter slot: the widest machine type

# struct format of each machine type in its 8-byte slot, little-endian (x86-64 and the GPU).
# Sizes are signed i32 and strides signed i64 (the ABI); scalar ints are passed masked to
# their width after a range check that admits both signed and unsigned values.
_SIZE_FORMAT = "i4x"
_STRIDE_FORMAT = "q"
_VALUE_FORMAT = {abi.POINTER: "Q", abi.I32: "I4x", abi.I64: "Q", abi.F32: "f4x", abi.F64: "d"}

_I32_RANGE = (-(1 << 31), (1 << 32) - 1)
_I64_RANGE = (-(1 << 63), (1 << 64) - 1)
# Maximum grid dimensions x, y, z for compute capability 3.0 and later (CUDA C++ Programming
# Guide, "Features and Technical Specifications").
_MAX_GRID = ((1 << 31) - 1, 65535, 65535)


@dataclass(frozen=True)
class ArgPlan:
    """How one IR argument is passed: `kind` is "tensor" (rank sizes and strides follow the
    pointer), "pointer" or "scalar" (of `machine` type); `first` is its first parameter."""

    index: int
    name: str
    kind: str
    rank: int
    machine: str
    first: int


class GuardMiss(Exception):
    """A launch's arguments do not have the facts its kernel was specialised for."""


@dataclass(frozen=True)
class TensorGuard:
    """What a tensor argument must be for the specialisation: its dtype and rank, whether its
    last dimension is contiguous and whether its rows start 16-byte aligned (`rows_aligned`)."""

    dtype: DType
    rank: int
    contiguous: bool
    aligned: bool


@dataclass(frozen=True)
class IntGuard:
    """What an int argument must be: equal to 1 or not, divisible by 16 or not (and in the
    range of its machine type, which the plan checks)."""

    equal_to_1: bool
    divisible_16: bool


def plan_args(params: Sequence[abi.Param]) -> list[ArgPlan]:
    """Group the ABI parameters by IR argument; ValueError unless they are in ABI order."""
    plans: list[ArgPlan] = []
    i = 0
    while i < len(params):
        p = params[i]
        if p.arg != len(plans):
            raise ValueError(f"parameter {p.name} is for argument {p.arg}, expected {len(plans)}")
        if p.part == "ptr":
            end = i + 1
            while end < len(params) and params[end].arg == p.arg:
                end += 1
            rank = (end - i - 1) // 2
            want = [("size", d, abi.I32) for d in range(rank)]
            want += [("stride", d, abi.I64) for d in range(rank)]
            got = [(q.part, q.dim, q.machine) for q in params[i + 1: end]]
            if got != want or p.machine != abi.POINTER:
                raise ValueError(f"parameters of tensor {p.name} are not in ABI order: {got}")
            plans.append(ArgPlan(p.arg, p.name.rsplit(".", 1)[0], "tensor", rank, abi.POINTER, i))
            i += 1 + 2 * rank
        elif p.part == "value":
            kind = "pointer" if p.machine == abi.POINTER else "scalar"
            if p.machine not in _VALUE_FORMAT:
                raise ValueError(f"parameter {p.name} has unknown machine type {p.machine}")
            plans.append(ArgPlan(p.arg, p.name, kind, 0, p.machine, i))
            i += 1
        else:
            raise ValueError(f"parameter {p.name} ({p.part}) does not start an argument")
    return plans


def _struct_format(params: Sequence[abi.Param]) -> str:
    parts = []
    for p in params:
        if p.part == "size":
            parts.append(_SIZE_FORMAT)
        elif p.part == "stride":
            parts.append(_STRIDE_FORMAT)
        else:
            parts.append(_VALUE_FORMAT[p.machine])
    return "<" + "".join(parts)


class Launcher:
    """Launches one compiled kernel: `launcher.launch(grid, args, stream=None)`.

    `compiled` needs `name`, `num_warps`, `shared_bytes`, `params` (the ABI) and `ptx` and/or
    `cubin`. `device` is the GPU whose primary context the kernel is loaded into (default:
    the device of the current context at the first launch, which is torch's current device
    once torch has used the GPU, else 0). `arg_types` (the IR argument types) lets
    `validate` check dtypes and ranks. `launch_fn` replaces the ctypes `cuLaunchKernel` (tests:
    it is called with the same eleven arguments, and no module is loaded), or
    `cuLaunchKernelEx` for a kernel that uses programmatic dependent launch (`programmatic`).
    """

    def __init__(self, compiled: Any, device: int | None = None, *,
                 arg_types: Sequence[Any] | None = None,
                 launch_fn: Callable[..., int] | None = None,
                 guards: Sequence[TensorGuard | IntGuard | None] | None = None):
        self.compiled = compiled
        self.name: str = compiled.name
        self.params: list[abi.Param] = list(compiled.params)
        self.plans = plan_args(self.params)
        self.block = 32 * int(compiled.num_warps)
        self.shared_bytes = int(compiled.shared_bytes)
        # Programs a thread-block cluster (launch option num_ctas): the PTX's
        # .reqnctapercluster, which a plain cuLaunchKernel honours.
        found = _CLUSTER.search(getattr(compiled, "ptx", "") or "")
        self.cluster = int(found.group(1)) if found else 1
        # A kernel that uses programmatic dependent launch (tc.gdc_wait and friends) is
        # launched with it: cuLaunchKernelEx and programmatic stream serialization.
        self.programmatic = _PROGRAMMATIC.search(getattr(compiled, "ptx", "") or "") is not None
        self.arg_types = list(arg_types) if arg_types is not None else None
        self.device = device
        self.loaded: cuda.LoadedKernel | None = None
        self._launch_fn = launch_fn
        n = len(self.params)
        self._struct = struct.Struct(_struct_format(self.params))
        self._buffer = (ctypes.c_uint64 * max(n, 1))()
        base = ctypes.addressof(self._buffer)
        self._slots = (ctypes.c_void_p * max(n, 1))(*(base + _SLOT * k for k in range(n)))
        self.guards = list(guards) if guards is not None else None
        if self.guards is not None and len(self.guards) != len(self.plans):
            raise ValueError(f"{len(self.guards)} guards for {len(self.plans)} arguments")
        self.source = _generate_source(self.plans, self.guards)
        self._lock = threading.RLock()
        # Until the first launch loads the module, `launch` is the method that does so.
        self._ready = False
        self.launch: Callable[..., None] = self._first_launch

    def __repr__(self) -> str:
        return f"Launcher({self.name}, {len(self.params)} params, block={self.block})"

    # -- loading ------------------------------------------------------------------------
    def load(self) -> None:
        """Load the module and build the warm launch function (the first launch does this)."""
        if self._ready:
            return
        if self._launch_fn is not None:
            driver_fn, function = self._launch_fn, ctypes.c_void_p(0)
            device = 0 if self.device is None else self.device
        else:
            drv = cuda.driver()
            device = drv.current_device() if self.device is None else self.device
            self.loaded = cuda.load_kernel(self.compiled, device)
            driver_fn = (drv.cuLaunchKernelEx if self.programmatic
                         else drv.cuLaunchKernel_unchecked)
            function = ctypes.c_void_p(self.loaded.handle)
        # The Python launch calls cu_launch with cuLaunchKernel's arguments.
        launch_fn = cuda.programmatic_launch(driver_fn) if self.programmatic else driver_fn
        self.device = device
        torch = sys.modules.get("torch")
        guard_dtypes = {f"gd{k}": _torch_dtype(torch, g.dtype)  # what each guard expects
                        for k, g in enumerate(self.guards or []) if isinstance(g, TensorGuard)}
        namespace = {**guard_dtypes,
            "Tensor": torch.Tensor if torch is not None else _NoTensor,
            "raw_stream": _raw_stream_reader(torch),
            "tensor_parts": _tensor_parts,
            "GuardMiss": GuardMiss,
            "guard_fails": _guard_fails,
            "guards": self.guards,
            "pointer_value": _pointer_value,
            "stream_handle": _stream_handle,
            "c_void_p": ctypes.c_void_p,
            "grid_dims": _grid_dims,
            "index": operator.index,
            "ArgumentError": ctypes.ArgumentError,
            "pack_into": self._struct.pack_into,
            "buf": self._buffer,
            "cu_launch": launch_fn,
            "function": function,
            "block": self.block,
            "smem": self.shared_bytes,
            "params": ctypes.c_void_p(ctypes.addressof(self._slots)),
            "device": device,
            "nargs": len(self.plans),
            "bad_args": self._bad_args,
            "failed": self._failed,
            "acquire": self._lock.acquire,
            "release": self._lock.release,
        }
        exec(compile(self.source, f"<tilec launcher {self.name}>", "exec"), namespace)
        self.python_launch = namespace["launch"]
        self.launch = self._native(driver_fn, function, namespace["Tensor"],
                                   namespace["raw_stream"]) or self.python_launch
        self._ready = True

    def _native(self, launch_fn: Any, function: ctypes.c_void_p, tensor_type: type,
                raw_stream: Callable[[int], int]) -> Callable[..., None] | None:
        """The C extension's launch for this plan (`_native.c`), which hands every case it
        does not take to the Python launch; None where the extension was not built, is
        switched off (TILEC_NATIVE_LAUNCH=0) or `launch_fn` is no C function. For a
        programmatic kernel `launch_fn` is cuLaunchKernelEx, whose config the C side fills."""
        native = native_module()
        if native is None or not isinstance(launch_fn, ctypes._CFuncPtr):
            return None
        plans = []
        for k, plan in enumerate(self.plans):
            g = self.guards[k] if self.guards is not None else None
            if plan.kind == "tensor":
                if not isinstance(g, TensorGuard):
                    plans.append((_NATIVE_TENSOR, plan.rank, None, -1, -1, -1, -1, 0))
                    continue
                dtype = _torch_dtype(sys.modules.get("torch"), g.dtype)
                if dtype is None:
                    return None  # no torch dtype to compare with: the Python path decides
                # (the C side checks rows_aligned with strides in elements of this many bytes)
                plans.append((_NATIVE_TENSOR, plan.rank, dtype, int(g.contiguous),
                              int(g.aligned), -1, -1, g.dtype.itemsize_bits // 8))
            elif plan.kind == "pointer":
                plans.append((_NATIVE_POINTER, 0, None, -1, -1, -1, -1, 0))
            elif isinstance(g, IntGuard):
                plans.append((_NATIVE_SCALAR[plan.machine], 0, None, -1, -1,
                              int(g.equal_to_1), int(g.divisible_16), 0))
            else:
                plans.append((_NATIVE_SCALAR[plan.machine], 0, None, -1, -1, -1, -1, 0))
        address = ctypes.cast(launch_fn, ctypes.c_void_p).value
        return native.FastLaunch(address, function.value or 0, self.block, self.shared_bytes,
                                 self.device, tuple(plans), tensor_type, raw_stream,
                                 self.python_launch, self.programmatic)

    def _first_launch(self, grid: Any, args: Sequence[Any], stream: Any = None) -> None:
        self.load()
        self.launch(grid, args, stream)

    # -- errors (off the hot path) ---------------------------------------------------------
    def _bad_args(self, args: Sequence[Any], exc: BaseException) -> Sequence[Any]:
        """Raise a LaunchError naming the argument that made packing fail with `exc`; if
        every argument is fine (numpy bools, say), the arguments as plain Python values for
        the launch to pack again."""
        if isinstance(args, (str, bytes)) or not hasattr(args, "__len__"):
            raise LaunchError(f"kernel '{self.name}': args must be a sequence, got "
                              f"{type(args).__name__}")
        if len(args) != len(self.plans):
            raise LaunchError(f"kernel '{self.name}' takes {len(self.plans)} arguments, got "
                              f"{len(args)}")
        for plan, value in zip(self.plans, args):
            _check_arg(self.name, plan, value)
        if isinstance(args, _Plain):
            raise LaunchError(f"kernel '{self.name}': cannot pack the arguments: {exc}") from exc
        return _Plain(_plain(plan, value) for plan, value in zip(self.plans, args))

    def _failed(self, code: int, grid: Any, stream: int) -> None:
        """Handle a nonzero CUresult from cuLaunchKernel (retry once on a fresh thread)."""
        gx, gy, gz = _grid_dims(grid)
        if gx == 0 or gy == 0 or gz == 0:
            return  # an empty grid launches nothing (the driver calls it invalid)
        for axis, (n, most) in enumerate(zip((gx, gy, gz), _MAX_GRID)):
            if not 0 < n <= most:
                raise LaunchError(f"kernel '{self.name}': grid dimension {axis} is {n}; it "
                                  f"must be 1..{most}")
        if gx % self.cluster:
            raise LaunchError(f"kernel '{self.name}': grid dimension 0 is {gx}: clusters of "
                              f"num_ctas = {self.cluster} programs need a multiple of it")
        if code == cuda.CUDA_ERROR_INVALID_CONTEXT and self._launch_fn is None:
            # A thread with no current context (torch sets it on the threads it uses).
            drv = cuda.driver()
            if drv.ensure_current(self.device):
                code = drv.cuLaunchKernel(ctypes.c_void_p(self.loaded.handle), gx, gy, gz,
                                          self.block, 1, 1, self.shared_bytes, stream,
                                          ctypes.addressof(self._slots), None)
                if code == cuda.CUDA_SUCCESS:
                    return
        api = cuda.driver().api if self._launch_fn is None else None
        raise LaunchError(
            f"cuLaunchKernel failed for kernel '{self.name}': {cuda.error_name(code, api)} "
            f"(grid ({gx}, {gy}, {gz}), block {self.block}, {self.shared_bytes} bytes of "
            f"shared memory, stream {stream:#x})")

    # -- checks a caller may run ------------------------------------------------------------
    def validate(self, args: Sequence[Any]) -> None:
        """Check `args` against the kernel fully (count, kinds, device, rank, ranges and,
        with `arg_types`, dtypes); LaunchError naming the first bad argument."""
        if len(args) != len(self.plans):
            raise LaunchError(f"kernel '{self.name}' takes {len(self.plans)} arguments, got "
                              f"{len(args)}")
        for k, (plan, value) in enumerate(zip(self.plans, args)):
            _check_arg(self.name, plan, value)
            if self.arg_types is not None:
                _check_type(self.name, plan, value, self.arg_types[k])


def _generate_source(plans: Sequence[ArgPlan],
                     guards: Sequence[TensorGuard | IntGuard | None] | None = None) -> str:
    """The warm launch function, specialised to the arguments' kinds and ranks.

    The parameter buffer is shared by every call, so packing it and launching from it hold
    the launcher's lock (an RLock: the slow path for bad arguments launches again inside):
    ctypes releases the GIL during the driver call, when another thread could repack."""
    names = [f"a{p.index}" for p in plans]
    body = ["def launch(grid, args, stream=None):", "    ts = False", "    try:"]
    if len(plans) == 1:
        body.append(f"        {names[0]}, = args")
    elif plans:
        body.append(f"        {', '.join(names)} = args")
    else:
        body.append("        if len(args): raise TypeError('no arguments expected')")
    values: list[str] = []
    for plan, a in zip(plans, names):
        i = plan.index
        g = guards[i] if guards is not None else None
        if plan.kind == "tensor":
            body += [
                f"        if {a}.__class__ is Tensor and {a}.is_cuda:",
                f"            p{i} = {a}.data_ptr(); sh{i} = {a}.shape; st{i} = {a}.stride()",
                "            ts = True",
            ]
            if isinstance(g, TensorGuard):
                # The specialisation's facts, read from what was just fetched anyway.
                last = f"(st{i}[-1] == 1 or sh{i}[-1] <= 1)"
                # rows_aligned, spelled out: torch strides count elements of the guard's dtype
                per16 = max(1, 128 // g.dtype.itemsize_bits)
                rows = "".join(f" and st{i}[{d}] % {per16} == 0" for d in range(g.rank - 1)
                               if per16 > 1)
                body.append(f"            if {a}.dtype is not gd{i} or len(sh{i}) != {g.rank} or "
                            f"{last} is not {g.contiguous} or (p{i} & 15 == 0{rows}) is not "
                            f"{g.aligned}: raise GuardMiss")
            body += [
                "        else:",
                f"            p{i}, sh{i}, st{i}, t = tensor_parts({a})",
                "            ts = ts or t",
            ]
            if isinstance(g, TensorGuard):
                body.append(f"            if guard_fails(guards[{i}], {a}, p{i}, sh{i}, st{i}): "
                            "raise GuardMiss")
            values += [f"p{i}", f"*sh{i}", f"*st{i}"]
        elif plan.kind == "pointer":
            body.append(f"        p{i} = {a} if {a}.__class__ is int else pointer_value({a})")
            values.append(f"p{i}")
        elif plan.machine in (abi.I32, abi.I64):
            lo, hi = _I32_RANGE if plan.machine == abi.I32 else _I64_RANGE
            # Out of range: another specialisation (i64) if guarded, else an error.
            miss = "GuardMiss" if isinstance(g, IntGuard) else f"OverflowError({a})"
            body.append(f"        if not {lo} <= {a} <= {hi}: raise {miss}")
            if isinstance(g, IntGuard):
                body.append(f"        if ({a} == 1) is not {g.equal_to_1} or "
                            f"({a} % 16 == 0) is not {g.divisible_16}: raise GuardMiss")
            values.append(f"index({a}) & {hi}")
        else:
            values.append(a)
    # A guarded launcher belongs to a caller with a slow path that checks and reports
    # everything (the frontend): anything unexpected is a miss for it to handle.
    on_error = ("        raise GuardMiss from e" if guards is not None
                else "        return launch(grid, bad_args(args, e), stream)")
    body += [
        "    except GuardMiss:",
        "        raise",
        "    except Exception as e:",
        on_error,
        "    if grid.__class__ is tuple:",
        "        n = len(grid)",
        "        if n == 1: gx = grid[0]; gy = gz = 1",
        "        elif n == 2: gx, gy = grid; gz = 1",
        "        else: gx, gy, gz = grid_dims(grid)",
        "    elif grid.__class__ is int:",
        "        gx = grid; gy = gz = 1",
        "    else:",
        "        gx, gy, gz = grid_dims(grid)",
        "    if stream is None:",
        "        s = raw_stream(device) if ts else 0",
        "    else:",
        "        s = stream_handle(stream)",
        "    acquire()",
        "    try:",
        "        try:",
        f"            pack_into(buf, 0{''.join(', ' + v for v in values)})",
        "        except Exception as e:  # a size over i32, a rank that does not match ...",
        "    " + on_error,
        "        # cu_launch has no argtypes: pointers go as c_void_p or None, ints as C ints",
        "        try:",
        "            err = cu_launch(function, gx, gy, gz, block, 1, 1, smem,",
        "                            c_void_p(s) if s else None, params, None)",
        "        except ArgumentError:  # grid entries that are not ints (numpy ints, say)",
        "            gx, gy, gz = grid_dims(grid)",
        "            err = cu_launch(function, gx, gy, gz, block, 1, 1, smem,",
        "                            c_void_p(s) if s else None, params, None)",
        "        if err:",
        "            failed(err, grid, s)",
        "    finally:",
        "        release()",
    ]
    return "\n".join(body) + "\n"


# Argument kinds of `_native.c`'s plans.
_NATIVE_TENSOR, _NATIVE_POINTER = 0, 5
_NATIVE_SCALAR = {abi.I32: 1, abi.I64: 2, abi.F32: 3, abi.F64: 4}


def native_module() -> Any:
    """tilec.runtime._native (the C launch path) where it was built and is switched on."""
    if not native_launch():
        return None
    try:
        from tilec.runtime import _native
    except ImportError:
        return None
    return _native


class _Plain(tuple):
    """Arguments already checked and made plain Python values by `Launcher._bad_args`."""


def _plain(plan: ArgPlan, value: Any) -> Any:
    if plan.kind == "tensor":
        return value
    if plan.kind == "pointer":
        return _pointer_value(value)
    if plan.machine in (abi.I32, abi.I64):
        return int(value)
    return float(value)


class _NoTensor:
    """Stands in for torch.Tensor when torch is not imported: nothing is one."""


def _raw_stream_reader(torch: Any) -> Callable[[int], int]:
    """torch's current-stream reader (a C function, 0.1 us), or one that looks torch up."""
    if torch is not None:
        return torch._C._cuda_getCurrentRawStream
    return _late_torch_stream


def _late_torch_stream(device: int) -> int:
    torch = _torch()  # imported after the launcher was loaded
    return torch._C._cuda_getCurrentRawStream(device) if torch is not None else 0


def _torch() -> Any:
    return sys.modules.get("torch")


def _is_torch_tensor(value: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(value, torch.Tensor)


_CLUSTER = re.compile(r"\.reqnctapercluster\s+(\d+)")
_PROGRAMMATIC = re.compile(r"^\s*griddepcontrol\.", re.MULTILINE)


def _grid_dims(grid: Any) -> tuple[int, int, int]:
    if isinstance(grid, (int, np.integer)):
        return int(grid), 1, 1
    try:
        dims = tuple(int(n) for n in grid)
    except TypeError:
        raise LaunchError(f"grid must be an int or 1 to 3 ints, got {grid!r}") from None
    if not 1 <= len(dims) <= 3:
        raise LaunchError(f"grid must have 1 to 3 dimensions, got {grid!r}")
    for axis, (n, most) in enumerate(zip(dims, _MAX_GRID)):
        if not 0 <= n <= most:
            raise LaunchError(f"grid dimension {axis} is {n}; it must be 0..{most}")
    return (dims + (1, 1))[:3]


def _stream_handle(stream: Any) -> int:
    """The CUstream of `stream`: an int handle, a torch stream or a cuda-python CUstream."""
    if isinstance(stream, int):
        return stream
    handle = getattr(stream, "cuda_stream", None)  # torch.cuda.Stream, cupy streams
    if handle is None:
        handle = getattr(stream, "ptr", None)
    if handle is None:
        try:
            handle = int(stream)  # cuda-python CUstream
        except TypeError:
            raise LaunchError(f"stream must be an int handle, a torch stream or a CUstream, "
                              f"got {type(stream).__name__}") from None
    return int(handle)


def _cai_parts(cai: dict) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    shape = tuple(int(n) for n in cai["shape"])
    itemsize = np.dtype(cai["typestr"]).itemsize
    byte_strides = cai.get("strides")
    if byte_strides is None:
        strides = _contiguous(shape)
    else:
        if any(s % itemsize for s in byte_strides):
            raise LaunchError(f"array strides {tuple(byte_strides)} (bytes) are not multiples "
                              f"of its item size {itemsize}")
        strides = tuple(int(s) // itemsize for s in byte_strides)
    return int(cai["data"][0]), shape, strides


def _contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    out, step = [], 1
    for n in reversed(shape):
        out.append(step)
        step *= max(n, 1)
    return tuple(reversed(out))


def _tensor_parts(value: Any) -> tuple[int, tuple[int, ...], tuple[int, ...], bool]:
    """Address, sizes, ABI strides of a GPU tensor argument, and whether it is torch's."""
    if isinstance(value, PackedTensor):
        if not value.on_device:
            raise LaunchError("is a PackedTensor of host (numpy) bytes; a GPU launch needs "
                              "them on the GPU")
        ptr, _, _, is_torch = _tensor_parts(value.data)
        return ptr, value.shape, packed_abi_strides(value), is_torch
    if _is_torch_tensor(value):
        if not value.is_cuda:
            raise LaunchError(f"is a torch tensor on {value.device}; a GPU launch needs it on "
                              "the GPU", hint="move it with .cuda()")
        return value.data_ptr(), tuple(value.shape), tuple(value.stride()), True
    cai = getattr(value, "__cuda_array_interface__", None)
    if cai is not None:
        ptr, shape, strides = _cai_parts(cai)
        return ptr, shape, strides, False
    if isinstance(value, np.ndarray):
        raise LaunchError("is a numpy array in host memory; a GPU launch needs GPU memory",
                          hint="pass a torch CUDA tensor (or run on the interpreter)")
    if hasattr(value, "__dlpack__"):
        torch = _torch()
        if torch is None:
            try:
                import torch  # noqa: F811 -- only to read DLPack tensors
            except ImportError:
                raise LaunchError("is a DLPack tensor; tilec reads those through torch, "
                                  "which is not installed") from None
        return _tensor_parts(torch.from_dlpack(value))
    raise LaunchError(f"must be a GPU tensor (torch, __cuda_array_interface__ or DLPack), got "
                      f"{type(value).__name__}")


def _pointer_value(value: Any) -> int:
    """A `ptr<T>` argument: an int address or a GPU tensor's address."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    return _tensor_parts(value)[0]


def _check_arg(kernel: str, plan: ArgPlan, value: Any) -> None:
    """LaunchError naming `plan`'s argument if `value` cannot be passed as it."""
    where = f"kernel '{kernel}': argument '{plan.name}'"
    if plan.kind == "tensor":
        try:
            ptr, shape, strides, _ = _tensor_parts(value)
        except LaunchError as e:
            raise LaunchError(f"{where} {e.message}", hint=e.hint) from None
        if len(shape) != plan.rank:
            raise LaunchError(f"{where} has rank {len(shape)}, the kernel expects {plan.rank}")
        for d, n in enumerate(shape):
            if n >= 1 << 31:
                raise LaunchError(f"{where}: size {n} of dimension {d} ({plan.name}.size{d}) "
                                  "does not fit the i32 the kernel takes")
        for d, s in enumerate(strides):
            if not -(1 << 63) <= s < 1 << 63:
                raise LaunchError(f"{where}: stride {s} of dimension {d} does not fit i64")
        if not 0 <= ptr < 1 << 64:
            raise LaunchError(f"{where}: address {ptr} is not a pointer")
    elif plan.kind == "pointer":
        try:
            ptr = _pointer_value(value)
        except LaunchError as e:
            raise LaunchError(f"{where} {e.message}", hint=e.hint) from None
        if not 0 <= ptr < 1 << 64:
            raise LaunchError(f"{where}: address {ptr} is not a pointer")
    elif plan.machine in (abi.I32, abi.I64):
        if not isinstance(value, (int, np.integer, np.bool_)):
            raise LaunchError(f"{where} must be an integer, got {type(value).__name__} "
                              f"{value!r}")
        lo, hi = _I32_RANGE if plan.machine == abi.I32 else _I64_RANGE
        if not lo <= int(value) <= hi:
            raise LaunchError(f"{where} = {int(value)} does not fit the {plan.machine} the "
                              f"kernel takes ({lo}..{hi})")
    else:
        if not isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
            raise LaunchError(f"{where} must be a number, got {type(value).__name__}")
        v = float(value)
        if plan.machine == abi.F32 and math.isfinite(v) and abs(v) > 3.4028234663852886e38:
            raise LaunchError(f"{where} = {v!r} is out of the range of the f32 the kernel "
                              "takes")


_TORCH_DTYPE_NAMES = {"float8_e4m3fn": "float8_e4m3", "bool": "bool"}


def _dtype_of(value: Any) -> DType | None:
    """The tilec dtype of a tensor argument, when it can be told."""
    if isinstance(value, PackedTensor):
        return value.dtype
    if _is_torch_tensor(value):
        name = str(value.dtype).removeprefix("torch.")
        try:
            return to_dtype(_TORCH_DTYPE_NAMES.get(name, name))
        except Exception:
            return None
    cai = getattr(value, "__cuda_array_interface__", None)
    if cai is not None:
        try:
            return dtype_from_numpy(np.dtype(cai["typestr"]))
        except Exception:
            return None
    return None


def _check_type(kernel: str, plan: ArgPlan, value: Any, t: Any) -> None:
    where = f"kernel '{kernel}': argument '{plan.name}'"
    if isinstance(t, TensorType):
        d = _dtype_of(value)
        if d is not None and d != t.dtype:
            raise LaunchError(f"{where} is {d}, the kernel was compiled for {t.dtype}",
                              hint="the launch must use the dtypes of its specialisation")
    elif isinstance(t, ScalarType) and t.dtype.is_int and plan.machine in (abi.I32, abi.I64):
        if not t.dtype.min <= int(value) <= t.dtype.max:
            raise LaunchError(f"{where} = {int(value)} is not a {t.dtype}")
    elif isinstance(t, PointerType):
        pass


def device_tensor_info(value: Any) -> tuple[DType, tuple[int, ...], tuple[int, ...], int]:
    """(dtype, sizes, ABI strides, address) of a GPU tensor argument, for specialisation.
    LaunchError (without the argument's name: the caller adds it) when it is not one."""
    try:
        ptr, shape, strides, _ = _tensor_parts(value)
    except (KeyError, TypeError, ValueError) as e:
        raise LaunchError(f"is not a well-formed GPU tensor ({type(e).__name__}: {e})") from None
    d = _dtype_of(value)
    if d is None:
        raise LaunchError(f"has a dtype tilec does not know: "
                          f"{getattr(value, 'dtype', type(value).__name__)}")
    return d, shape, strides, ptr


_TORCH_DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
                 "uint8", "uint16", "uint32", "uint64", "bool", "float8_e4m3fn", "float8_e5m2")


def _torch_dtype(torch: Any, d: DType) -> Any:
    """The torch dtype whose tensors hold `d`; None when torch has none (or is absent)."""
    if torch is None:
        return None
    for name in _TORCH_DTYPES:
        if to_dtype(_TORCH_DTYPE_NAMES.get(name, name)) == d:
            return getattr(torch, name, None)
    return None


def _guard_fails(g: TensorGuard, value: Any, ptr: int, shape: tuple, strides: tuple) -> bool:
    """The guard of a tensor that is not a plain torch CUDA tensor (the slow branch)."""
    d = _dtype_of(value)
    if d != g.dtype or len(shape) != g.rank:
        return True
    unit = d.itemsize_bits if abi.is_packed(d) else 1
    contiguous = shape[-1] <= 1 or strides[-1] == unit
    aligned = rows_aligned(ptr, strides, abi.stride_bits(d))
    return contiguous is not g.contiguous or aligned is not g.aligned
