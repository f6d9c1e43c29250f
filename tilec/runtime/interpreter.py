"""Execute tile IR on numpy, one program instance at a time: the semantic oracle for tests
and a debugger for users (DESIGN.md section 7).

    run(module, "add", [x, y, out], grid=(4,))

Programs run one after another, row-major over the grid (the last axis fastest), each one
executing the kernel's body from top to bottom on whole tiles. Pure ops get their meaning
from `tilec.ir.semantics`; memory, pointers, control flow and program state are handled
here, one handler per op (`@handles("load_view")`).

Values held in the environment:
- tiles and scalars: numpy arrays (0-d for scalars) in their dtype's compute_dtype;
- pointers and tiles of pointers: `Pointer` (a buffer and int64 element offsets);
- tensor arguments: `TensorArg` (a buffer, the offset of element 0, shape and strides);
- shared-memory tiles: `SharedTile` (a numpy view into the block's shared buffer).

Memory rules: tensor views read 0 out of bounds and drop out-of-bounds writes; pointer
accesses must stay inside their tensor unless masked off (a GPU would fault: here it is a
TilecError at the op's location). Atomics run sequentially in row-major lane order, so
duplicate addresses within one tile see each other's updates; masked-off lanes return 0.
`atomic_cas` compares values (not bit patterns). Shared memory starts zeroed;
`copy_async` and `gather_async` complete at once, `async_wait` and `barrier` do nothing.

Arguments: numpy arrays (numpy or ml_dtypes dtypes, any element strides) and PackedTensors
for tensor parameters, numbers for scalar parameters. An array whose dtype is its tilec
dtype's compute_dtype (f16, f32, f64, bool, i64, u64) is used in place; otherwise the
kernel works on a copy in compute_dtype and the elements it wrote are encoded back into
the caller's array (or PackedTensor bytes) when the launch ends, also when it ends in an
error, as a GPU's partial writes would stay.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from tilec.errors import LaunchError, TilecError
from tilec.ir import packing
from tilec.ir import semantics
from tilec.ir.core import Block, Function, Module, Operation, Region, Trait, Value
from tilec.ir.dtypes import DType, uint
from tilec.ir.types import PointerType, ScalarType, TensorType, dtype_of
from tilec.runtime.tensor import PackedTensor, tensor_info

__all__ = ["run", "Pointer", "TensorArg", "SharedTile", "Buffer"]


# ---- runtime values ------------------------------------------------------------------------


@dataclass(eq=False)
class Buffer:
    """Global memory of one tensor argument: a flat array in the dtype's compute_dtype."""

    flat: np.ndarray
    dtype: DType
    name: str
    track_writes: bool = False  # copies of the caller's data note what to write back
    written: np.ndarray | None = None  # which elements a kernel stored to

    def mark(self, index: np.ndarray) -> None:
        if not self.track_writes:
            return
        if self.written is None:
            self.written = np.zeros(self.flat.shape, bool)
        self.written[index] = True


@dataclass(eq=False)
class Pointer:
    """A pointer (0-d `offsets`) or a tile of pointers into `buffer`, in elements."""

    buffer: Buffer
    offsets: np.ndarray

    def __repr__(self) -> str:
        return f"ptr<{self.buffer.dtype}>({self.buffer.name} + {self.offsets.tolist()})"


@dataclass(eq=False)
class TensorArg:
    """A tensor parameter: its buffer, the flat offset of element 0, shape and strides."""

    buffer: Buffer
    base: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


@dataclass(eq=False)
class SharedTile:
    """A shared-memory tile: a view into the program's shared buffer, written in place."""

    array: np.ndarray


class _Return(Exception):
    def __init__(self, values: list):
        self.values = values


# ---- argument binding -----------------------------------------------------------------------


@dataclass
class _Binding:
    """The kernel's view of the caller's arguments, and how to write results back."""

    values: list
    write_backs: list[Callable[[], None]] = field(default_factory=list)

    def write_back(self) -> None:
        for fn in self.write_backs:
            fn()


def _bind_array(arr: np.ndarray, d: DType, name: str, binding: _Binding) -> TensorArg:
    info = tensor_info(arr)
    if info.dtype != d:
        raise LaunchError(f"argument {name} is {info.dtype}, the kernel expects {d}")
    size = arr.dtype.itemsize
    shape, strides = info.shape, info.strides
    if 0 in shape:
        span, lo = 0, 0
    else:
        lo = sum(min(0, (n - 1) * s) for n, s in zip(shape, strides))
        span = sum(max(0, (n - 1) * s) for n, s in zip(shape, strides)) - lo + 1
    # A flat view of the memory the tensor spans, from its lowest address.
    lowest = arr[tuple(slice(None, None, -1) if s < 0 else slice(None) for s in strides)] \
        if arr.ndim else arr.reshape(1)
    # numpy cannot stride ml_dtypes arrays (bfloat16, float8, ...); it can stride their bytes.
    raw = lowest.view(f"u{size}")
    memory = np.lib.stride_tricks.as_strided(raw, shape=(span,), strides=(size,),
                                             writeable=arr.flags.writeable).view(arr.dtype)
    if arr.dtype == d.compute_dtype and arr.flags.writeable:
        buf = Buffer(memory, d, name)
    else:
        buf = Buffer(memory.astype(d.compute_dtype), d, name, track_writes=True)

        def write_back() -> None:
            if buf.written is None:
                return
            if not arr.flags.writeable:
                raise LaunchError(f"the kernel wrote to argument {name}, a read-only array")
            w = buf.written
            memory[w] = buf.flat[w].astype(arr.dtype)
        binding.write_backs.append(write_back)
    return TensorArg(buf, -lo, shape, strides)


def _bind_packed(p: PackedTensor, d: DType, name: str, binding: _Binding) -> TensorArg:
    if p.dtype != d:
        raise LaunchError(f"argument {name} is {p.dtype}, the kernel expects {d}")
    buf = Buffer(p.unpack().reshape(-1).copy(), d, name, track_writes=True)
    raw = uint(d.itemsize_bits)  # bit patterns read as unsigned integers

    def write_back() -> None:
        if buf.written is None:
            return
        old = packing.unpack(p.data, raw, p.shape).reshape(-1)
        new = np.where(buf.written, d.encode(buf.flat), old)
        # The bits after the last element of each row are not the kernel's: keep them, as
        # the GPU (which writes element bits only) does.
        ones = np.full(p.shape, (1 << d.itemsize_bits) - 1, dtype=np.uint64)
        mine = packing.pack(ones, raw)
        p.data[...] = (packing.pack(new.reshape(p.shape), raw) & mine) | (p.data & ~mine)
    binding.write_backs.append(write_back)
    return TensorArg(buf, 0, p.shape, p.strides)


def _bind_scalar(value, d: DType, name: str) -> np.ndarray:
    if isinstance(value, np.ndarray) and value.ndim != 0:
        raise LaunchError(f"argument {name} must be a scalar {d}, got an array")
    v = np.asarray(value)
    if d.is_int:
        if v.dtype.kind not in "iub" or not d.min <= int(v) <= d.max:
            raise LaunchError(f"argument {name} = {value!r} is not a {d}")
    elif d.is_bool and v.dtype.kind != "b":
        raise LaunchError(f"argument {name} = {value!r} is not a bool")
    return semantics.coerce(v, d)


def _bind(fn: Function, args: Sequence) -> _Binding:
    if len(args) != len(fn.args):
        raise LaunchError(f"@{fn.name} takes {len(fn.args)} arguments, got {len(args)}")
    binding = _Binding([])
    for param, value in zip(fn.args, args):
        t, name = param.type, f"%{param.name or param.index}"
        if isinstance(t, TensorType):
            if isinstance(value, PackedTensor):
                bound = _bind_packed(value, t.dtype, name, binding)
            elif isinstance(value, np.ndarray):
                bound = _bind_array(value, t.dtype, name, binding)
            else:
                raise LaunchError(f"argument {name} must be a numpy array or PackedTensor, "
                                  f"got {type(value).__name__}")
            if len(bound.shape) != t.rank:
                raise LaunchError(f"argument {name} has rank {len(bound.shape)}, "
                                  f"the kernel expects {t.rank}")
        elif isinstance(t, ScalarType):
            bound = _bind_scalar(value, t.dtype, name)
        elif isinstance(t, PointerType) or isinstance(value, (Pointer, SharedTile)):
            bound = value
        else:  # tiles, for device functions run directly
            bound = semantics.coerce(value, dtype_of(t))
        binding.values.append(bound)
    return binding


# ---- the machine -------------------------------------------------------------------------

Handler = Callable[["_Program", Operation, list], list]
_HANDLERS: dict[str, Handler] = {}


def handles(*names: str):
    """Register the interpreter's handler for ops `names`: (program, op, operand values)."""
    def register(fn: Handler) -> Handler:
        for n in names:
            _HANDLERS[n] = fn
        return fn
    return register


class _Program:
    """One program instance: its grid position, and the module for calls."""

    def __init__(self, module: Module, pid: tuple[int, ...], grid: tuple[int, ...],
                 cluster: _Cluster | None = None):
        self.module = module
        self.pid = pid
        self.grid = grid
        self.cluster = cluster
        # Value -> runtime value for the function running now. SSA values are unique
        # objects, so one mapping serves every region nested in the function.
        self.env: dict[Value, object] = {}

    def error(self, op: Operation, message: str, hint: str | None = None) -> TilecError:
        return TilecError(f"{message} (program id {self.pid})", op.loc, hint)

    def call(self, fn: Function, args: list) -> list:
        caller, self.env = self.env, dict(zip(fn.args, args))
        try:
            return self.run_block(fn.body.block)[1]
        except _Return as r:
            return r.values
        finally:
            self.env = caller

    def run_region(self, region: Region, args: list) -> tuple[Operation | None, list]:
        """Bind the region's block arguments to `args` and run it."""
        env = self.env
        for a, v in zip(region.block.args, args):
            env[a] = v
        return self.run_block(region.block)

    def run_block(self, block: Block) -> tuple[Operation | None, list]:
        """Run the ops of `block`; the terminator (or None) and its operand values."""
        env = self.env
        for op in block.ops:
            args = [env[v] for v in op.operands]
            if op.has_trait(Trait.TERMINATOR):
                if op.name == "return":
                    raise _Return(args)
                return op, args
            handler = _HANDLERS.get(op.name)
            if handler is not None:
                results = handler(self, op, args)
            elif semantics.covers(op):
                results = self.pure(op, args)
            else:
                raise self.error(op, f"the interpreter cannot run '{op.name}'")
            for r, v in zip(op.results, results):
                env[r] = v
        return None, []

    def pure(self, op: Operation, args: list) -> list:
        if any(isinstance(a, Pointer) for a in args):
            return [_pointer_op(self, op, args)]

        def run_combiner(region: Region, values: list) -> list:
            return self.run_region(region, values)[1]
        try:
            return semantics.evaluate(op, args, run_combiner)
        except semantics.NotFoldable as e:
            raise self.error(op, f"cannot evaluate '{op.name}': {e}") from None


def _pointer_op(prog: _Program, op: Operation, args: list) -> Pointer:
    """Shape ops and select on pointer tiles: the same meaning, applied to the offsets."""
    if op.name in semantics.STRUCTURAL_OPS:
        p = args[0]
        return Pointer(p.buffer, semantics.structural(op, p.offsets))
    if op.name == "select":
        cond, a, b = args
        if a.buffer is not b.buffer:
            raise prog.error(op, "the interpreter cannot select between pointers into "
                                 "different tensors")
        return Pointer(a.buffer, np.where(cond, a.offsets, b.offsets))
    raise prog.error(op, f"'{op.name}' does not take pointers")


# ---- program state ----------------------------------------------------------------------

_I64 = np.int64


@handles("program_id")
def _program_id(prog, op, args):
    axis = op.axis
    return [np.asarray(prog.pid[axis] if axis < len(prog.pid) else 0, _I64)]


@handles("num_programs")
def _num_programs(prog, op, args):
    axis = op.axis
    return [np.asarray(prog.grid[axis] if axis < len(prog.grid) else 1, _I64)]


@handles("tensor_dim")
def _tensor_dim(prog, op, args):
    return [np.asarray(args[0].shape[op.axis], _I64)]


@handles("tensor_stride")
def _tensor_stride(prog, op, args):
    return [np.asarray(args[0].strides[op.axis], _I64)]


@handles("tensor_ptr")
def _tensor_ptr(prog, op, args):
    t = args[0]
    return [Pointer(t.buffer, np.asarray(t.base, _I64))]


@handles("addptr")
def _addptr(prog, op, args):
    p, offset = args
    return [Pointer(p.buffer, p.offsets + np.asarray(offset).astype(_I64))]


@handles("print")
def _print(prog, op, args):
    shown = " ".join(str(a.offsets if isinstance(a, Pointer) else a) for a in args)
    prefix = f"{op.prefix} " if op.prefix else ""
    print(f"{prefix}pid {prog.pid}: {shown}", flush=True)
    return []


@handles("assert")
def _assert(prog, op, args):
    if not np.all(args[0]):
        raise prog.error(op, f"device assertion failed: {op.message}")
    return []


# ---- tensor views ------------------------------------------------------------------------


def _view(t: TensorArg, offsets: list, shape: tuple[int, ...]):
    """Flat indices of the tile at element `offsets` of `t`, and the in-bounds mask (None
    when all of it is in bounds)."""
    rank = len(shape)
    # Index of dimension d, shaped to broadcast against the tile: (1, .., n, .., 1).
    idx = [(int(o) + np.arange(n, dtype=_I64)).reshape([n if i == d else 1 for i in range(rank)])
           for d, (o, n) in enumerate(zip(offsets, shape))]
    flat = np.broadcast_to(t.base + sum(i * s for i, s in zip(idx, t.strides)), shape)
    inside = [(i >= 0) & (i < n) for i, n in zip(idx, t.shape)]
    if all(m.all() for m in inside):
        return flat, None
    mask = np.ones(shape, bool)
    for m in inside:
        mask = mask & m
    return flat, mask


def _load_view(t: TensorArg, offsets: list, shape: tuple[int, ...]) -> np.ndarray:
    flat, mask = _view(t, offsets, shape)
    if mask is None:
        return t.buffer.flat[flat]
    out = np.zeros(shape, t.buffer.flat.dtype)
    out[mask] = t.buffer.flat[flat[mask]]
    return out


@handles("load_view")
def _load_view_op(prog, op, args):
    t, *offsets = args
    return [_load_view(t, offsets, op.results[0].type.shape)]


@handles("store_view")
def _store_view(prog, op, args):
    t, *offsets, value = args
    flat, mask = _view(t, offsets, value.shape)
    if mask is not None:
        flat, value = flat[mask], value[mask]
    t.buffer.flat[flat] = value
    t.buffer.mark(flat)
    return []


# ---- pointers ----------------------------------------------------------------------------


def _active_offsets(prog, op, p: Pointer, mask) -> tuple[np.ndarray, np.ndarray]:
    """The mask (all true when absent) and the offsets, checked to lie in the tensor."""
    offs = p.offsets
    active = np.ones(offs.shape, bool) if mask is None else np.asarray(mask, bool)
    n = p.buffer.flat.shape[0]
    bad = active & ((offs < 0) | (offs >= n))
    if bad.any():
        first = np.argwhere(bad)[0] if bad.ndim else ()
        lane = tuple(int(i) for i in first)
        raise prog.error(
            op, f"'{op.name}' out of bounds: lane {lane} addresses element "
                f"{int(offs[lane])} of {p.buffer.name}, which has {n} elements",
            hint="mask the access (mask %m) or clamp the offsets")
    return active, offs


def _named(op: Operation, args: list) -> dict[str, object]:
    """Operand values by group name; an absent optional operand is None."""
    out, start = {}, 0
    for spec, group in op.operand_groups():
        values = args[start:start + len(group)]
        start += len(group)
        out[spec.name] = values if spec.kind == "variadic" else (values[0] if values else None)
    return out


@handles("load")
def _load(prog, op, args):
    a = _named(op, args)
    return [_gather(prog, op, a["ptr"], a["mask"], a["other"])]


def _gather(prog, op, ptr: Pointer, mask, other) -> np.ndarray:
    """The values `ptr` points at where `mask` is set, `other` (or 0) elsewhere."""
    active, offs = _active_offsets(prog, op, ptr, mask)
    d = ptr.buffer.dtype
    fill = other if other is not None else np.zeros(offs.shape, d.compute_dtype)
    flat = ptr.buffer.flat
    if flat.shape[0] == 0:
        return np.asarray(fill, d.compute_dtype).copy()
    return np.where(active, flat[np.where(active, offs, 0)], fill).astype(d.compute_dtype)


@handles("store")
def _store(prog, op, args):
    a = _named(op, args)
    ptr, value = a["ptr"], a["value"]
    active, offs = _active_offsets(prog, op, ptr, a["mask"])
    where = offs[active]
    ptr.buffer.flat[where] = np.asarray(value)[active]
    ptr.buffer.mark(where)
    return []


def _occurrence(offs: np.ndarray) -> np.ndarray:
    """For each lane, how many earlier lanes (row-major) address the same element."""
    order = np.argsort(offs, kind="stable")
    s = offs[order]
    idx = np.arange(s.size)
    starts = np.maximum.accumulate(np.where(np.r_[True, s[1:] != s[:-1]], idx, 0))
    rank = np.empty(s.size, _I64)
    rank[order] = idx - starts
    return rank


def _atomic(prog, op, ptr: Pointer, active, update: Callable) -> np.ndarray:
    """Apply `update(old, lanes) -> new` lane by lane in row-major order (vectorised over
    lanes with distinct addresses); the old values, 0 in masked-off lanes."""
    flat = ptr.buffer.flat
    offs = ptr.offsets.reshape(-1)
    lanes = np.flatnonzero(active.reshape(-1))
    old = np.zeros(offs.shape, flat.dtype)
    rank = _occurrence(offs[lanes])
    for r in range(int(rank.max()) + 1 if lanes.size else 0):
        sel = lanes[rank == r]
        where = offs[sel]
        old[sel] = flat[where]
        flat[where] = update(old[sel], sel)
    ptr.buffer.mark(offs[lanes])
    return old.reshape(ptr.offsets.shape)


@handles("atomic_rmw")
def _atomic_rmw(prog, op, args):
    a = _named(op, args)
    ptr = a["ptr"]
    value = np.asarray(a["value"]).reshape(-1)
    active, _ = _active_offsets(prog, op, ptr, a["mask"])
    d, kind = ptr.buffer.dtype, op.kind

    def update(old, lanes):
        if kind == "xchg":
            return value[lanes]
        return semantics.binary(kind, d, old, value[lanes])
    return [_atomic(prog, op, ptr, active, update)]


@handles("atomic_cas")
def _atomic_cas(prog, op, args):
    ptr, cmp, value = (args[0], np.asarray(args[1]).reshape(-1), np.asarray(args[2]).reshape(-1))
    active, _ = _active_offsets(prog, op, ptr, None)
    return [_atomic(prog, op, ptr, active,
                    lambda old, lanes: np.where(old == cmp[lanes], value[lanes], old))]


# ---- shared memory -------------------------------------------------------------------------


@handles("shared_alloc")
def _shared_alloc(prog, op, args):
    t = op.results[0].type
    return [SharedTile(np.zeros(t.shape, dtype_of(t).compute_dtype))]


@handles("shared_index")
def _shared_index(prog, op, args):
    buf, index = args
    i = int(index)
    if not 0 <= i < buf.array.shape[0]:
        raise prog.error(op, f"shared_index {i} is outside the buffer's {buf.array.shape[0]} "
                             f"stages")
    return [SharedTile(buf.array[i])]


@handles("shared_load")
def _shared_load(prog, op, args):
    return [args[0].array.copy()]


@handles("shared_store")
def _shared_store(prog, op, args):
    dst, value = args
    dst.array[...] = value
    return []


@handles("copy_async")
def _copy_async(prog, op, args):
    a = _named(op, args)
    dst = a["dst"]
    if a["mask"] is not None and not a["mask"]:
        dst.array[...] = 0
    else:
        dst.array[...] = _load_view(a["tensor"], a["offsets"], dst.array.shape)
    return []


@handles("gather_async")
def _gather_async(prog, op, args):
    a = _named(op, args)
    a["dst"].array[...] = _gather(prog, op, a["ptr"], a["mask"], None)
    return []


@handles("async_wait", "barrier", "grid_dependency")  # one program at a time: ordered
def _no_op(prog, op, args):
    return []


# ---- control flow ----------------------------------------------------------------------------


@handles("for")
def _for(prog, op, args):
    lb, ub, step, *carried = args
    lb, ub, step = int(lb), int(ub), int(step)
    if step == 0:
        raise prog.error(op, "'for' with step 0 never ends")
    region = op.regions[0]
    iv_type = region.block.args[0].type.dtype.compute_dtype
    for i in range(lb, ub, step):
        _, carried = prog.run_region(region, [np.asarray(i, iv_type), *carried])
    return carried


@handles("if")
def _if(prog, op, args):
    region = op.regions[0] if bool(args[0]) else op.regions[1]
    return prog.run_region(region, [])[1]


@handles("while")
def _while(prog, op, args):
    before, after = op.regions
    carried = args
    while True:
        _, (cond, *values) = prog.run_region(before, carried)
        if not bool(cond):
            return values
        _, carried = prog.run_region(after, values)


@handles("call")
def _call(prog, op, args):
    try:
        fn = prog.module.get(op.callee.name)
    except KeyError:
        raise prog.error(op, f"call to undefined function @{op.callee.name}") from None
    return prog.call(fn, list(args))


# ---- thread-block clusters ------------------------------------------------------------


class _Cluster:
    """The programs of one cluster (launch option `num_ctas`), run side by side on threads:
    the values `cluster_reduce` exchanges, and the barrier they meet at."""

    def __init__(self, size: int):
        self.size = size
        self.barrier = threading.Barrier(size)
        self.slots: list[np.ndarray | None] = [None] * size


@handles("cluster_reduce")
def _cluster_reduce(prog, op, args):
    c = prog.cluster
    if c is None:
        return [args[0]]
    c.slots[prog.pid[0] % c.size] = np.array(args[0])
    c.barrier.wait()
    values = np.stack(c.slots)
    c.barrier.wait()   # every program has its copy before any slot is written again
    d = dtype_of(op.x.type)
    fold = {"sum": np.sum, "max": np.max, "min": np.min}[op.kind]
    if d.is_float:
        return [semantics.round_float(fold(values.astype(np.float64), axis=0), d)]
    return [d.wrap(np.asarray(fold(values, axis=0)))]


def _run_cluster(module: Module, fn: Function, pids: list[tuple[int, ...]],
                 grid: tuple[int, ...], values: list) -> None:
    """Run one cluster's programs, each on a thread of its own; the first error raised."""
    cluster = _Cluster(len(pids))
    errors: list[BaseException] = []

    def run(pid: tuple[int, ...]) -> None:
        try:
            with np.errstate(all="ignore"):
                _Program(module, pid, grid, cluster).call(fn, values)
        except threading.BrokenBarrierError:
            pass   # another program failed first
        except BaseException as e:   # noqa: BLE001 - re-raised below, on the caller's thread
            errors.append(e)
            cluster.barrier.abort()
    threads = [threading.Thread(target=run, args=(pid,)) for pid in pids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


# ---- entry point ---------------------------------------------------------------------------


def _normalise_grid(grid) -> tuple[int, ...]:
    g = (grid,) if isinstance(grid, (int, np.integer)) else tuple(grid)
    if not 1 <= len(g) <= 3 or any(int(n) < 0 for n in g):
        raise LaunchError(f"grid must be 1 to 3 non-negative sizes, got {grid!r}")
    return tuple(int(n) for n in g)


def run(module: Module, kernel: str, args: list, grid) -> None:
    """Run `kernel` of `module` once per program id of `grid` (1-3 sizes), row-major; with
    clusters (`num_ctas` > 1), each cluster's programs side by side."""
    try:
        fn = module.get(kernel)
    except KeyError:
        names = ", ".join(f"@{f.name}" for f in module.functions)
        raise LaunchError(f"no kernel @{kernel} in the module", hint=f"it has {names}") from None
    grid = _normalise_grid(grid)
    size = int(fn.attrs.get("num_ctas", 1))
    if size > 1 and grid[0] % size:
        raise LaunchError(f"grid dimension 0 is {grid[0]}: clusters of num_ctas = {size} "
                          "programs need a multiple of it")
    binding = _bind(fn, args)
    try:
        with np.errstate(all="ignore"):
            for pid in itertools.product(*(range(0, grid[0], size), *map(range, grid[1:]))):
                if size == 1:
                    _Program(module, pid, grid).call(fn, binding.values)
                else:
                    _run_cluster(module, fn, [(pid[0] + r, *pid[1:]) for r in range(size)],
                                 grid, binding.values)
    finally:
        binding.write_back()
