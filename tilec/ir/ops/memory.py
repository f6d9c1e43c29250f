"""Global memory (tensor views and pointer tiles), atomics, and the explicit level's shared
memory, asynchronous copies and barriers.

Tensor views are addressed by element offsets: `load_view %A, [%r, %c]` reads the tile whose
first element is A[r, c]; elements outside the tensor read as 0 and are not written.
"""
from __future__ import annotations

from tilec.ir import dtypes as dt
from tilec.ir.core import Attr, Operation, Trait
from tilec.ir.ops.base import check_result, int_scalar, numeric_kinds
from tilec.ir.types import (REGISTER, SHARED, PointerType, ScalarType, TensorType, TileType,
                            Type, dtype_of, element_of, like, shape_of)

READS = Trait.READS_MEMORY
WRITES = Trait.WRITES_MEMORY
ATOMIC_KINDS = ("add", "max", "min", "and", "or", "xor", "xchg")
# Memory semantics and scope of atomics (PTX ISA "Memory Consistency Model"; Triton's names).
ATOMIC_SEMS = ("relaxed", "acquire", "release", "acq_rel")
ATOMIC_SCOPES = ("cta", "gpu", "sys")
_ORDERING = {"sem": Attr(str, default="acq_rel", choices=ATOMIC_SEMS),
             "scope": Attr(str, default="gpu", choices=ATOMIC_SCOPES)}
# Cache hints of plain loads and stores (PTX ISA "Cache Operators" and "ld"/"st"; Triton's
# `cache_modifier` and `eviction_policy`), "" for the default. They change no result, only
# where the data is cached; `volatile` loads are never merged, removed or moved.
LOAD_CACHES = ("", "ca", "cg", "cs", "lu", "cv")
STORE_CACHES = ("", "wb", "cg", "cs", "wt")
EVICTIONS = ("", "evict_first", "evict_last")
_LOAD_HINTS = {"cache": Attr(str, default="", choices=LOAD_CACHES),
               "evict": Attr(str, default="", choices=EVICTIONS),
               "volatile": Attr(bool, default=False)}
_STORE_HINTS = {"cache": Attr(str, default="", choices=STORE_CACHES),
                "evict": Attr(str, default="", choices=EVICTIONS)}


def has_hints(op: Operation) -> bool:
    """Whether a load or store asks for anything but the default instruction."""
    return any(op.attrs.get(k) for k in ("cache", "evict", "volatile"))


def _pointee(op: Operation, t: Type) -> dt.DType:
    e = t if isinstance(t, PointerType) else (element_of(t) if isinstance(t, TileType) else None)
    if not isinstance(e, PointerType):
        raise op.error(f"expected a pointer or a tile of pointers, got {t}")
    return e.pointee


def _check_mask(op: Operation, mask, shape) -> None:
    if mask is not None and (dtype_of(mask.type) != dt.bool_ or shape_of(mask.type) != shape):
        raise op.error(f"mask must be bool of shape {list(shape)}, got {mask.type}")


def _check_view(op: Operation, tensor, offsets, tile_type: Type) -> None:
    t = tensor.type
    if not isinstance(t, TensorType):
        raise op.error(f"first operand must be a tensor, got {t}")
    if len(offsets) != t.rank:
        raise op.error(f"{t} needs {t.rank} offsets, got {len(offsets)}")
    for v in offsets:
        int_scalar(op, v.type, "offset")
    if not isinstance(tile_type, TileType) or tile_type.rank != t.rank or tile_type.element != t.dtype:
        raise op.error(f"tile {tile_type} does not match {t}: rank and dtype must agree")


class AddPtr(Operation):
    """Pointer + integer offset, in elements (scalars, or tiles of one shape)."""
    name = "addptr"
    operand_specs = ("ptr", "offset")
    num_results = 1
    traits = frozenset({Trait.PURE, Trait.ELEMENTWISE, Trait.SAME_OPERAND_LAYOUT})

    def verify(self) -> None:
        _pointee(self, self.ptr.type)
        numeric_kinds(self, self.offset.type, "i", "offset")
        if shape_of(self.ptr.type) != shape_of(self.offset.type):
            raise self.error(f"shape mismatch: {self.ptr.type} + {self.offset.type}")
        check_result(self, self.ptr.type)

    @classmethod
    def infer_types(cls, operand_types, attrs):
        return [operand_types[0]]


class LoadView(Operation):
    """Read a tile of a tensor starting at element `offsets`; out of bounds reads 0."""
    name = "load_view"
    operand_specs = ("tensor", "offsets*")
    attr_specs = _LOAD_HINTS
    num_results = 1
    traits = frozenset({READS})

    def verify(self) -> None:
        _check_view(self, self.tensor, self.offsets, self.results[0].type)


class StoreView(Operation):
    """Write a tile into a tensor at element `offsets`; out-of-bounds elements are dropped."""
    name = "store_view"
    operand_specs = ("tensor", "offsets*", "value")
    attr_specs = _STORE_HINTS
    traits = frozenset({WRITES})

    def verify(self) -> None:
        _check_view(self, self.tensor, self.offsets, self.value.type)


class Load(Operation):
    """Gather through a tile of pointers; masked-off lanes give `other` (0 if absent)."""
    name = "load"
    operand_specs = ("ptr", "mask?", "other?")
    attr_specs = _LOAD_HINTS
    num_results = 1
    traits = frozenset({READS})

    def verify(self) -> None:
        pointee = _pointee(self, self.ptr.type)
        shape = shape_of(self.ptr.type)
        _check_mask(self, self.mask, shape)
        expected = like(self.ptr.type, pointee)
        if self.other is not None and self.other.type != expected:
            raise self.error(f"other must be {expected}, got {self.other.type}")
        check_result(self, expected)

    @classmethod
    def infer_types(cls, operand_types, attrs):
        t = operand_types[0]
        return [like(t, t.pointee if isinstance(t, PointerType) else t.element.pointee)]


class Store(Operation):
    """Scatter through a tile of pointers; masked-off lanes write nothing."""
    name = "store"
    operand_specs = ("ptr", "value", "mask?")
    attr_specs = _STORE_HINTS
    traits = frozenset({WRITES})

    def verify(self) -> None:
        pointee = _pointee(self, self.ptr.type)
        if self.value.type != like(self.ptr.type, pointee):
            raise self.error(f"value {self.value.type} does not match pointers {self.ptr.type}")
        _check_mask(self, self.mask, shape_of(self.ptr.type))


class AtomicRMW(Operation):
    """Atomic read-modify-write at each pointer; returns the old values. `sem` and `scope`
    order it as in the PTX memory model; on a replicated tile (a scalar: one thread acts for
    the program) a release also orders the program's earlier accesses before it and an
    acquire its later ones after it."""
    name = "atomic_rmw"
    operand_specs = ("ptr", "value", "mask?")
    attr_specs = {"kind": Attr(str, choices=ATOMIC_KINDS), **_ORDERING}
    num_results = 1
    traits = frozenset({READS, WRITES})

    def verify(self) -> None:
        pointee = _pointee(self, self.ptr.type)
        if self.value.type != like(self.ptr.type, pointee):
            raise self.error(f"value {self.value.type} does not match pointers {self.ptr.type}")
        _check_mask(self, self.mask, shape_of(self.ptr.type))
        if self.kind in ("and", "or", "xor") and not (pointee.is_int or pointee.is_bool):
            raise self.error(f"atomic '{self.kind}' needs integers, got {pointee}")
        check_result(self, self.value.type)

    @classmethod
    def infer_types(cls, operand_types, attrs):
        return [operand_types[1]]


class AtomicCAS(Operation):
    """Atomic compare-and-swap at each pointer; returns the old values (ordered as
    atomic_rmw)."""
    name = "atomic_cas"
    operand_specs = ("ptr", "cmp", "value")
    attr_specs = dict(_ORDERING)
    num_results = 1
    traits = frozenset({READS, WRITES})

    def verify(self) -> None:
        expected = like(self.ptr.type, _pointee(self, self.ptr.type))
        if self.cmp.type != expected or self.value.type != expected:
            raise self.error(f"cmp and value must be {expected}")
        check_result(self, expected)

    @classmethod
    def infer_types(cls, operand_types, attrs):
        return [operand_types[1]]


def _shared(op: Operation, t: Type, what: str) -> TileType:
    if not isinstance(t, TileType) or t.space != SHARED:
        raise op.error(f"{what} must be a shared-memory tile, got {t}")
    return t


class SharedAlloc(Operation):
    """A shared-memory buffer for the result's tile type (layout may be left to the compiler)."""
    name = "shared_alloc"
    num_results = 1
    traits = frozenset({WRITES})  # fresh storage: two allocs are never the same buffer

    def verify(self) -> None:
        _shared(self, self.results[0].type, "result")


class SharedIndex(Operation):
    """The `index`-th sub-tile along dimension 0 of a shared buffer (a pipeline stage)."""
    name = "shared_index"
    operand_specs = ("buffer", "index")
    num_results = 1
    traits = frozenset({Trait.PURE})

    def verify(self) -> None:
        buf = _shared(self, self.buffer.type, "buffer")
        int_scalar(self, self.index.type, "index")
        if buf.rank < 2:
            raise self.error(f"buffer must have rank >= 2, got {buf}")
        check_result(self, TileType(buf.shape[1:], buf.element, None, SHARED))


class SharedLoad(Operation):
    """Read a shared tile into registers."""
    name = "shared_load"
    operand_specs = ("src",)
    num_results = 1
    traits = frozenset({READS})

    def verify(self) -> None:
        src = _shared(self, self.src.type, "source")
        out = self.results[0].type
        if not isinstance(out, TileType) or out.space != REGISTER or (out.shape, out.element) != (
                src.shape, src.element):
            raise self.error(f"result must be a register tile like {src}, got {out}")


class SharedStore(Operation):
    """Write a register tile into a shared tile."""
    name = "shared_store"
    operand_specs = ("dst", "value")
    traits = frozenset({WRITES})

    def verify(self) -> None:
        dst = _shared(self, self.dst.type, "destination")
        v = self.value.type
        if not isinstance(v, TileType) or (v.shape, v.element) != (dst.shape, dst.element):
            raise self.error(f"value {v} does not fit {dst}")


class CopyAsync(Operation):
    """Start copying a tensor view into a shared tile (out of bounds fills 0); complete
    after a later `async_wait`. With `mask` (a bool scalar) false, it reads nothing and fills
    0 (a pipeline's copies past its loop's end)."""
    name = "copy_async"
    operand_specs = ("tensor", "offsets*", "dst", "mask?")
    traits = frozenset({READS, WRITES})

    def verify(self) -> None:
        dst = _shared(self, self.dst.type, "destination")
        _check_view(self, self.tensor, self.offsets, TileType(dst.shape, dst.element))
        if self.mask is not None and self.mask.type != ScalarType(dt.bool_):
            raise self.error(f"mask must be a bool scalar, got {self.mask.type}")


class GatherAsync(Operation):
    """Start gathering through a tile of pointers into a shared tile (masked-off lanes fill
    0): the asynchronous form of `load`, complete after a later `async_wait`."""
    name = "gather_async"
    operand_specs = ("ptr", "mask?", "dst")
    traits = frozenset({READS, WRITES})

    def verify(self) -> None:
        dst = _shared(self, self.dst.type, "destination")
        pointee = _pointee(self, self.ptr.type)
        if shape_of(self.ptr.type) != dst.shape or pointee != dst.element:
            raise self.error(f"pointers {self.ptr.type} do not fit {dst}")
        _check_mask(self, self.mask, dst.shape)


class AsyncWait(Operation):
    """Wait until at most `pending` of this thread's most recent copy_async / gather_async ops
    are in flight; with `fence_async`, then make the landed bytes visible to the asynchronous
    proxy (the operand reads of wgmma)."""
    name = "async_wait"
    attr_specs = {"pending": Attr(int, 0), "fence_async": Attr(bool, False)}
    traits = frozenset({READS, WRITES, Trait.BARRIER})


class Barrier(Operation):
    """Block-wide barrier that also orders shared-memory accesses."""
    name = "barrier"
    traits = frozenset({Trait.BARRIER, READS, WRITES})


GRID_DEPENDENCY_ACTIONS = ("wait", "launch_dependents")


class GridDependency(Operation):
    """Programmatic dependent launch (PTX `griddepcontrol`, NVIDIA sm_90 and later). `wait`:
    block until the launches this one depends on (the previous kernel on the stream) have
    completed and their memory is visible; `launch_dependents`: let the next launch on the
    stream start before this grid ends (its programs still wait at their own `wait`). A kernel
    with either is launched with programmatic stream serialization. Elsewhere (older GPUs, AMD,
    the interpreter) launches are ordered anyway and both do nothing."""
    name = "grid_dependency"
    attr_specs = {"action": Attr(str, choices=GRID_DEPENDENCY_ACTIONS)}
    traits = frozenset({Trait.BARRIER, READS, WRITES})


CLUSTER_REDUCE_KINDS = ("sum", "max", "min")


class ClusterReduce(Operation):
    """x combined (`kind`) over the programs of this thread-block cluster (the launch's
    `num_ctas` consecutive programs along grid axis 0), in program order, so that every
    program of the cluster gets the same value. Every program of the cluster must reach it,
    as a barrier; the values travel through distributed shared memory (PTX ISA "Cluster of
    Cooperative Thread Arrays"). With clusters of one program, x itself."""
    name = "cluster_reduce"
    operand_specs = ("x",)
    attr_specs = {"kind": Attr(str, default="sum", choices=CLUSTER_REDUCE_KINDS)}
    num_results = 1
    traits = frozenset({Trait.BARRIER, READS, WRITES})

    def verify(self) -> None:
        t = self.x.type
        if not isinstance(t, (TileType, ScalarType)) or isinstance(t, TileType) \
                and t.space != REGISTER:
            raise self.error(f"operand must be a register tile or a scalar, got {t}")
        d = dtype_of(t)
        if d is None or d.is_bool or d.bits not in (16, 32) or not (d.is_float or d.is_int):
            raise self.error(f"cluster_reduce takes 16- or 32-bit numbers, got {t}")
        check_result(self, t)

    @classmethod
    def infer_types(cls, operand_types, attrs):
        return [operand_types[0]]
