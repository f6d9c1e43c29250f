"""The `tc.*` operations usable inside `@tc.kernel` and `@tc.func` bodies.

Each public name here is a stub: called from ordinary Python it raises a TilecError saying
it only works inside a kernel. The frontend finds the implementation through the stub's
`__tilec_builtin__` attribute and calls it with the `Emitter` first and the arguments
already evaluated (numbers and dtypes as Python values, tiles as `TVal`s).
"""
from __future__ import annotations

import builtins as _py
from typing import Any, Callable

from tilec.errors import CompileError, TilecError
from tilec.frontend import promotion
from tilec.frontend.values import (Emitter, TensorArg, TVal, as_dtype, broadcast_shapes,
                                   describe, fold_constant, is_number)
from tilec.ir import dtypes as dt
from tilec.ir.core import Block, Region
from tilec.ir.types import SHARED, ScalarType, TileType

BUILTINS: dict[str, Callable] = {}


def builtin(impl: Callable, host: Callable | None = None) -> Callable:
    """Make `impl(em, ...)` a tc.* operation: returns the stub users call. Called outside a
    kernel, the stub runs `host` if given (e.g. cdiv for grids) and raises otherwise."""
    name = impl.__name__.lstrip("_")

    def stub(*args: Any, **kwargs: Any) -> Any:
        if host is not None:
            return host(*args, **kwargs)
        raise TilecError(f"tc.{name}() can only be called inside a @tc.kernel or @tc.func",
                         hint="kernels run through a launch: kernel[grid](...)")

    stub.__name__ = stub.__qualname__ = name
    stub.__doc__ = impl.__doc__
    stub.__tilec_builtin__ = impl  # type: ignore[attr-defined]
    BUILTINS[name] = stub
    return stub


# ---------------------------------------------------------------------------------------
# argument helpers


def const_int(x: Any, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise CompileError(f"{what} must be a compile-time integer (a tc.constexpr or a "
                           f"literal), got {describe(x)}")
    return x


def tile_shape(x: Any, what: str = "tile shape") -> tuple[int, ...]:
    """A compile-time shape: an int or a tuple of ints."""
    dims = x if isinstance(x, (tuple, list)) else (x,)
    out = []
    for i, d in enumerate(dims):
        if isinstance(d, bool) or not isinstance(d, int):
            raise CompileError(
                f"{what} must be compile-time constants; dimension {i} is {describe(d)}",
                hint="declare the parameter as `NAME: tc.constexpr` and pass it by keyword")
        if d < 0:
            raise CompileError(f"{what} has a negative dimension {d}")
        out.append(d)
    return tuple(out)


def tile(x: Any, what: str = "operand") -> TVal:
    if not isinstance(x, TVal) or not x.is_tile:
        raise CompileError(f"{what} must be a tile, got {describe(x)}")
    return x


def norm_axis(axis: Any, rank: int, what: str = "axis") -> int:
    a = const_int(axis, what)
    if not -rank <= a < _py.max(rank, 1):
        raise CompileError(f"{what} {a} is out of range for a tile of rank {rank}")
    return a % rank if rank else 0


def _layout(x: Any):
    if isinstance(x, str):
        from tilec.ir.layout import parse_layout
        return parse_layout(x)
    return x


# ---------------------------------------------------------------------------------------
# program, ranges, constants


@builtin
def program_id(em: Emitter, axis: int = 0) -> TVal:
    """This program instance's index along grid axis 0, 1 or 2 (i32)."""
    a = const_int(axis, "axis")
    if a not in (0, 1, 2):
        raise CompileError(f"grid axis must be 0, 1 or 2, got {a}")
    return em.op("program_id", attrs={"axis": a})


@builtin
def num_programs(em: Emitter, axis: int = 0) -> TVal:
    """The grid's size along axis 0, 1 or 2 (i32)."""
    a = const_int(axis, "axis")
    if a not in (0, 1, 2):
        raise CompileError(f"grid axis must be 0, 1 or 2, got {a}")
    return em.op("num_programs", attrs={"axis": a})


@builtin
def arange(em: Emitter, start: int, end: int | None = None) -> TVal:
    """`[start, ..., end-1]` as a 1-D i32 tile (bounds are compile-time)."""
    if end is None:
        start, end = 0, start
    s, e = const_int(start, "arange start"), const_int(end, "arange end")
    if e <= s:
        raise CompileError(f"arange({s}, {e}) is empty")
    return em.op("arange", attrs={"start": s, "end": e})


@builtin
def full(em: Emitter, shape: Any, value: Any, dtype: Any = None) -> TVal:
    """A tile of `shape` with every element `value` (a number or a scalar)."""
    shp = tile_shape(shape)
    if dtype is not None:
        d = as_dtype(dtype)
    elif isinstance(value, TVal):
        d = value.dtype
    else:
        d = promotion.default_literal_dtype(value)
    if isinstance(value, TVal) and value.is_tile:
        raise CompileError(f"tc.full takes a scalar value, got {value.type}")
    if is_number(value):
        return em.constant(value, d, shp)
    return em.broadcast(em.cast(em.materialize(value), d), shp)


@builtin
def zeros(em: Emitter, shape: Any, dtype: Any = dt.float32) -> TVal:
    """A tile of zeros (f32 unless `dtype` says otherwise)."""
    return em.constant(0, as_dtype(dtype), tile_shape(shape))


@builtin
def ones(em: Emitter, shape: Any, dtype: Any = dt.float32) -> TVal:
    """A tile of ones."""
    return em.constant(1, as_dtype(dtype), tile_shape(shape))


@builtin
def zeros_like(em: Emitter, x: Any) -> TVal:
    x = tile(x)
    return em.constant(0, x.dtype, x.shape)


def _cdiv_host(a: int, b: int) -> int:
    return -(-a // b)


def _cdiv(em: Emitter, a: Any, b: Any) -> Any:
    """Ceiling division `(a + b - 1) // b` (folded when both are compile-time; also works
    outside kernels, for grids)."""
    if is_number(a) and is_number(b):
        if b == 0:
            raise CompileError("cdiv by zero")
        return _cdiv_host(a, b)
    return em.floordiv(em.binary("sub", em.binary("add", a, b), 1), b)


cdiv = builtin(_cdiv, host=_cdiv_host)


@builtin
def static_range(em: Emitter, *args: Any) -> Any:
    """`for i in tc.static_range(n)`: a loop unrolled at compile time."""
    raise CompileError("tc.static_range can only be the iterable of a `for` loop")


# ---------------------------------------------------------------------------------------
# memory


def _view_offsets(em: Emitter, t: TensorArg, coords: Any, shape: tuple[int, ...] | None,
                  elements: bool) -> list[TVal]:
    cs = coords if isinstance(coords, tuple) else (coords,)
    if len(cs) != t.rank:
        raise CompileError(f"tensor {t.name} has rank {t.rank} but {len(cs)} coordinate(s) "
                           f"were given")
    out = []
    for i, c in enumerate(cs):
        if isinstance(c, TVal) and (c.is_tile or c.dtype is None or not c.dtype.is_int):
            raise CompileError(f"coordinate {i} must be an integer scalar, got {c.type}")
        if not isinstance(c, TVal) and (isinstance(c, bool) or not isinstance(c, int)):
            raise CompileError(f"coordinate {i} must be an integer, got {describe(c)}")
        off = c if elements else (c * shape[i] if isinstance(c, int) else
                                  em.binary("mul", c, shape[i]))
        out.append(em.materialize(off))
    return out


def _hints(what: str, cache_modifier: Any, eviction_policy: Any,
           volatile: Any = False) -> dict[str, Any]:
    """The cache hint attributes of a load or store from Triton-style arguments (the cache
    operator with or without its leading dot)."""
    from tilec.ir.ops.memory import EVICTIONS, LOAD_CACHES, STORE_CACHES
    caches = LOAD_CACHES if what == "load" else STORE_CACHES
    for name, value, choices in (("cache_modifier", cache_modifier, caches),
                                 ("eviction_policy", eviction_policy, EVICTIONS)):
        if not isinstance(value, str) or value.removeprefix(".") not in choices:
            shown = ", ".join(repr(f".{c}" if name == "cache_modifier" else c)
                              for c in choices if c)
            raise CompileError(f"tc.{what}'s {name} must be one of {shown} (or \"\"), got "
                               f"{describe(value)}")
    if not isinstance(volatile, bool):
        raise CompileError(f"tc.load's volatile must be True or False, got {describe(volatile)}")
    if volatile and (cache_modifier or eviction_policy):
        raise CompileError("a volatile load takes no cache_modifier or eviction_policy",
                           hint="PTX's ld.volatile has no cache operator or eviction priority")
    attrs = {"cache": cache_modifier.removeprefix("."), "evict": eviction_policy}
    if volatile:
        attrs["volatile"] = True
    return {k: v for k, v in attrs.items() if v}


@builtin
def load(em: Emitter, src: Any, *args: Any, mask: Any = None, other: Any = None,
         offsets: Any = None, shape: Any = None, cache_modifier: str = "",
         eviction_policy: str = "", volatile: bool = False) -> TVal:
    """`load(T, coords, shape)`: the tile at tile coordinates `coords` of tensor T (out of
    bounds reads 0; `offsets=` gives element offsets instead). `load(ptrs, mask, other)`:
    gather through a tile of pointers.

    Hints, as in Triton (the result is the same with or without them): `cache_modifier`
    ".ca" (the default), ".cg" (L2 only), ".cs" (streaming), ".lu" (last use), ".cv"
    (fetch again); `eviction_policy` "evict_first" or "evict_last" (L1's eviction priority
    and an L2 cache policy); `volatile=True` reads memory every time (`ld.volatile`: for
    polling a flag another program writes). A load with hints stays the instruction asked
    for: the pipeline never turns it into an asynchronous copy. On AMD, "evict_first",
    ".cs" and ".lu" mark the access nontemporal, volatile and ".cv" make it LLVM's volatile
    (system-coherent), and the rest have no instruction of their own there."""
    hints = _hints("load", cache_modifier, eviction_policy, volatile)
    if isinstance(src, TensorArg):
        if mask is not None or other is not None:
            raise CompileError("mask= and other= apply to pointer loads; tensor views are "
                               "bounds-checked (out of bounds reads 0)")
        coords = args[0] if args else None
        if len(args) > 1:
            shape = args[1]
        if len(args) > 2 or shape is None or (coords is None) == (offsets is None):
            raise CompileError(f"load from tensor {src.name} takes (T, coords, shape) or "
                               "(T, offsets=..., shape=...)")
        shp = tile_shape(shape)
        offs = _view_offsets(em, src, offsets if coords is None else coords, shp,
                             elements=coords is None)
        return em.op("load_view", src, offs, types=[TileType(shp, src.dtype)], attrs=hints)
    if len(args) > 2:
        raise CompileError("pointer load takes (ptrs, mask, other)")
    if args:
        mask = args[0]
    if len(args) > 1:
        other = args[1]
    if not isinstance(src, TVal) or not src.is_pointer:
        raise CompileError(f"tc.load needs a tensor parameter or pointers, got {describe(src)}",
                           hint="pointers come from T.ptr + offsets")
    shape_ = src.shape
    m = None
    if mask is not None:
        m = em.to_bool(mask)
        shape_ = broadcast_shapes(shape_, m.shape)
        m = em.broadcast(m, shape_)
    ptr = em.broadcast(src, shape_)
    pointee = ptr.element.pointee
    o = em.value_as(other, pointee, shape_) if other is not None and m is not None else None
    return em.op("load", ptr, mask=m, other=o, attrs=hints)


@builtin
def store(em: Emitter, dst: Any, *args: Any, mask: Any = None, offsets: Any = None,
          value: Any = None, cache_modifier: str = "", eviction_policy: str = "") -> None:
    """`store(T, coords, tile)`: write a tile at tile coordinates (out of bounds dropped;
    the tile is converted to T's dtype). `store(ptrs, value, mask)`: scatter. Hints as
    `load`'s: `cache_modifier` ".wb" (the default), ".cg", ".cs", ".wt"; `eviction_policy`
    "evict_first" or "evict_last"."""
    hints = _hints("store", cache_modifier, eviction_policy)
    if isinstance(dst, TensorArg):
        if mask is not None:
            raise CompileError("mask= applies to pointer stores; tensor views drop out-of-"
                               "bounds elements already")
        coords = None
        rest = list(args)
        if offsets is None and rest:
            coords = rest.pop(0)
        if rest and value is None:
            value = rest.pop(0)
        if rest or value is None or (coords is None) == (offsets is None):
            raise CompileError(f"store to tensor {dst.name} takes (T, coords, tile) or "
                               "(T, tile, offsets=...)")
        v = tile(value, "the stored value")
        if v.type.rank != dst.rank:
            raise CompileError(f"cannot store a {v.type} into tensor {dst.name} of rank "
                               f"{dst.rank}")
        offs = _view_offsets(em, dst, offsets if coords is None else coords, v.shape,
                             elements=coords is None)
        em.create("store_view", dst, offs, em.cast(v, dst.dtype), attrs=hints)
        return None
    rest = list(args)
    if rest and value is None:
        value = rest.pop(0)
    if rest and mask is None:
        mask = rest.pop(0)
    if rest or value is None:
        raise CompileError("pointer store takes (ptrs, value, mask)")
    if not isinstance(dst, TVal) or not dst.is_pointer:
        raise CompileError(f"tc.store needs a tensor parameter or pointers, got {describe(dst)}")
    shape_ = dst.shape
    if isinstance(value, TVal):
        shape_ = broadcast_shapes(shape_, value.shape)
    m = None
    if mask is not None:
        m = em.to_bool(mask)
        shape_ = broadcast_shapes(shape_, m.shape)
        m = em.broadcast(m, shape_)
    ptr = em.broadcast(dst, shape_)
    v = em.value_as(value, ptr.element.pointee, shape_)
    em.create("store", ptr, v, mask=m, attrs=hints)
    return None


def _ordering(sem: Any, scope: Any) -> dict[str, str]:
    """The `sem` and `scope` attributes of an atomic (None: acq_rel at gpu scope)."""
    from tilec.ir.ops.memory import ATOMIC_SCOPES, ATOMIC_SEMS
    attrs = {"sem": "acq_rel" if sem is None else sem,
             "scope": "gpu" if scope is None else scope}
    for name, choices in (("sem", ATOMIC_SEMS), ("scope", ATOMIC_SCOPES)):
        if attrs[name] not in choices:
            raise CompileError(f"atomic {name} must be one of {', '.join(map(repr, choices))}, "
                               f"got {describe(attrs[name])}")
    return attrs


def _atomic(em: Emitter, kind: str, ptr: Any, val: Any, mask: Any, sem: Any,
            scope: Any) -> TVal:
    if not isinstance(ptr, TVal) or not ptr.is_pointer:
        raise CompileError(f"atomic_{kind} needs pointers, got {describe(ptr)}")
    attrs = {"kind": kind, **_ordering(sem, scope)}
    shape_ = ptr.shape
    if isinstance(val, TVal):
        shape_ = broadcast_shapes(shape_, val.shape)
    m = None
    if mask is not None:
        m = em.to_bool(mask)
        shape_ = broadcast_shapes(shape_, m.shape)
        m = em.broadcast(m, shape_)
    p = em.broadcast(ptr, shape_)
    v = em.value_as(val, p.element.pointee, shape_)
    return em.op("atomic_rmw", p, v, mask=m, attrs=attrs)


_ATOMIC_DOC = """Atomically {what} at each pointer (where `mask` is true); returns the old
    values. `sem` ("relaxed", "acquire", "release", "acq_rel": the default) and `scope`
    ("cta", "gpu": the default, "sys") order it as in the PTX memory model. A scalar atomic
    is performed once for the program: with release semantics the program's earlier memory
    accesses happen before it, with acquire its later ones after it (a split-K "last program
    sums" counter needs no barrier of its own)."""


def _atomic_builtin(kind: str, what: str) -> Callable:
    def impl(em, ptr, val, mask=None, sem=None, scope=None):
        return _atomic(em, kind, ptr, val, mask, sem, scope)
    impl.__name__ = impl.__qualname__ = f"atomic_{kind}"
    impl.__doc__ = _ATOMIC_DOC.format(what=what)
    return builtin(impl)


atomic_add = _atomic_builtin("add", "add `val`")
atomic_max = _atomic_builtin("max", "take the maximum with `val`")
atomic_min = _atomic_builtin("min", "take the minimum with `val`")
atomic_and = _atomic_builtin("and", "and `val` in (integers)")
atomic_or = _atomic_builtin("or", "or `val` in (integers)")
atomic_xor = _atomic_builtin("xor", "xor `val` in (integers)")
atomic_xchg = _atomic_builtin("xchg", "store `val`")


@builtin
def atomic_cas(em, ptr, cmp, val, sem=None, scope=None):
    """Atomic compare-and-swap: store `val` where the old value equals `cmp`; returns the
    old values. `sem` and `scope` as for atomic_add."""
    if not isinstance(ptr, TVal) or not ptr.is_pointer:
        raise CompileError(f"atomic_cas needs pointers, got {describe(ptr)}")
    attrs = _ordering(sem, scope)
    shape_ = ptr.shape
    for x in (cmp, val):
        if isinstance(x, TVal):
            shape_ = broadcast_shapes(shape_, x.shape)
    p = em.broadcast(ptr, shape_)
    d = p.element.pointee
    return em.op("atomic_cas", p, em.value_as(cmp, d, shape_), em.value_as(val, d, shape_),
                 attrs=attrs)


# ---------------------------------------------------------------------------------------
# elementwise


def _math(name: str, doc: str) -> Callable:
    def impl(em: Emitter, x: Any) -> Any:
        v = em.materialize(x)
        if v.dtype is None:
            raise CompileError(f"tc.{name} needs numbers, got {v.type}")
        return em.op(name, em.cast(v, promotion.math_dtype(v.dtype)))
    impl.__name__ = name
    impl.__doc__ = doc
    return builtin(impl)


exp = _math("exp", "e ** x (ints become f32).")
exp2 = _math("exp2", "2 ** x.")
log = _math("log", "Natural logarithm.")
log2 = _math("log2", "Base-2 logarithm.")
sqrt = _math("sqrt", "Square root.")
rsqrt = _math("rsqrt", "1 / sqrt(x).")
tanh = _math("tanh", "Hyperbolic tangent.")
erf = _math("erf", "Error function.")
sin = _math("sin", "Sine.")
cos = _math("cos", "Cosine.")


def _round(name: str) -> Callable:
    def impl(em: Emitter, x: Any) -> Any:
        v = em.materialize(x)
        if v.dtype is not None and not v.dtype.is_float:
            return v  # floor/ceil of an integer is itself
        return em.op(name, em.cast(v, promotion.arith_dtype(v.dtype)))
    impl.__name__ = name
    impl.__doc__ = f"Elementwise {name}."
    return builtin(impl)


floor = _round("floor")
ceil = _round("ceil")


@builtin
def abs(em: Emitter, x: Any) -> Any:
    """Absolute value."""
    v = em.materialize(x)
    if v.dtype is None or v.dtype.is_bool:
        raise CompileError(f"tc.abs needs numbers, got {v.type}")
    if v.dtype.kind == "uint":
        return v
    return em.op("abs", em.cast(v, promotion.arith_dtype(v.dtype)))


@builtin
def sigmoid(em: Emitter, x: Any) -> TVal:
    """1 / (1 + exp(-x))."""
    e = exp.__tilec_builtin__(em, em.op("neg", em.cast(em.materialize(x), promotion.math_dtype(
        em.materialize(x).dtype))))
    return em.truediv(1.0, em.binary("add", e, 1.0))


@builtin
def maximum(em: Emitter, a: Any, b: Any) -> Any:
    """Elementwise maximum (NaN if either is NaN)."""
    return em.binary("max", a, b)


@builtin
def minimum(em: Emitter, a: Any, b: Any) -> Any:
    """Elementwise minimum."""
    return em.binary("min", a, b)


@builtin
def fma(em: Emitter, a: Any, b: Any, c: Any) -> TVal:
    """a * b + c with one rounding."""
    d, shape = em.common(a, b, c)
    if not d.is_float:
        raise CompileError(f"tc.fma needs float operands, got {d}")
    return em.op("fma", *(em.value_as(x, d, shape) for x in (a, b, c)))


@builtin
def where(em: Emitter, cond: Any, a: Any, b: Any) -> TVal:
    """`cond ? a : b` elementwise, with broadcasting and promotion of a and b."""
    c = em.to_bool(cond)
    if isinstance(a, TVal) and a.is_pointer:
        shape_ = broadcast_shapes(broadcast_shapes(c.shape, a.shape), getattr(b, "shape", ()))
        return em.op("select", em.broadcast(c, shape_), em.broadcast(a, shape_),
                     em.broadcast(em.materialize(b), shape_))
    d, shape_ = em.common(a, b)
    shape_ = broadcast_shapes(shape_, c.shape)
    return em.op("select", em.broadcast(c, shape_), em.value_as(a, d, shape_),
                 em.value_as(b, d, shape_))


@builtin
def cast(em: Emitter, x: Any, dtype: Any, bitcast: bool = False) -> Any:
    """Convert values to `dtype` (round to nearest even; floats to ints truncate and saturate).
    With bitcast=True, reinterpret the bits instead (see view)."""
    d = as_dtype(dtype)
    if is_number(x):
        return fold_constant(x, d)
    if bitcast:
        return view.__tilec_builtin__(em, x, d)
    return em.cast(em.materialize(x), d)


@builtin
def view(em: Emitter, x: Any, dtype: Any) -> TVal:
    """Reinterpret the bits of a tile as `dtype`; the last dimension scales so each row keeps
    its bits (a 64-wide u8 tile viewed as u4 is 128 wide)."""
    v, d = tile(x), as_dtype(dtype)
    if v.dtype is None:
        raise CompileError(f"cannot view {v.type}")
    bits = v.shape[-1] * v.dtype.bits
    if bits % d.bits:
        raise CompileError(f"cannot view {v.type} as {d}: a row of {bits} bits is not a "
                           f"whole number of {d.bits}-bit elements")
    shape_ = v.shape[:-1] + (bits // d.bits,)
    return em.op("view", v, types=[TileType(shape_, d)])


# ---------------------------------------------------------------------------------------
# shapes


@builtin
def reshape(em: Emitter, x: Any, *shape: Any) -> TVal:
    """Same elements in row-major order, another shape."""
    v = tile(x)
    shp = tile_shape(shape[0] if len(shape) == 1 else shape)
    n = 1
    for s in shp:
        n *= s
    if n != v.type.numel:
        raise CompileError(f"cannot reshape {v.type} ({v.type.numel} elements) to {list(shp)}")
    if shp == v.shape:
        return v
    return em.op("reshape", v, types=[TileType(shp, v.element)])


@builtin
def permute(em: Emitter, x: Any, *dims: Any) -> TVal:
    """Result dimension i is operand dimension dims[i]."""
    v = tile(x)
    ds = dims[0] if len(dims) == 1 and isinstance(dims[0], tuple) else dims
    ds = [norm_axis(d, v.type.rank, "dimension") for d in ds]
    if sorted(ds) != list(range(v.type.rank)):
        raise CompileError(f"{ds} is not a permutation of the {v.type.rank} dimensions")
    return em.op("permute", v, attrs={"dims": ds})


@builtin
def trans(em: Emitter, x: Any, *dims: Any) -> TVal:
    """Transpose: swap the two dimensions of a 2-D tile (or permute by `dims`)."""
    v = tile(x)
    if not dims:
        if v.type.rank != 2:
            raise CompileError(f"trans without dims needs a 2-D tile, got {v.type}")
        dims = (1, 0)
    return permute.__tilec_builtin__(em, v, *dims)


@builtin
def expand_dims(em: Emitter, x: Any, axis: Any) -> TVal:
    """Insert dimension(s) of size 1."""
    v = em.materialize(x)
    if not v.is_tile:
        v = em.broadcast(v, (1,))
        axes = axis if isinstance(axis, tuple) else (axis,)
        if axes in ((0,), (-1,)):
            return v
        raise CompileError("expand_dims of a scalar takes axis 0")
    for a in sorted(axis) if isinstance(axis, tuple) else (axis,):
        a = const_int(a, "axis")
        rank = v.type.rank + 1
        if not -rank <= a < rank:
            raise CompileError(f"axis {a} is out of range for expand_dims of {v.type}")
        v = em.op("expand_dims", v, attrs={"axis": a % rank})
    return v


@builtin
def take(em: Emitter, x: Any, index: Any, axis: Any = 0) -> TVal:
    """The slice of tile `x` at constant `index` along `axis`, which disappears (numpy's
    `take` of one index: `take(x, 1, axis=1)` is `x[:, 1]`; a scalar from a 1-D tile). The
    compiler keeps `axis` in each thread's registers, so a slice is free where the axis
    already lies there (a reshape that splits a thread's run, for instance)."""
    v = em.materialize(x)
    if not v.is_tile:
        raise CompileError(f"take slices a tile, got {v.type}")
    rank = v.type.rank
    a = const_int(axis, "axis")
    if not -rank <= a < rank:
        raise CompileError(f"axis {a} is out of range for take of {v.type}")
    a %= rank
    i = const_int(index, "index")
    n = v.type.shape[a]
    if not -n <= i < n:
        raise CompileError(f"index {i} is out of range for axis {a} of {v.type} (size {n})")
    return em.op("take", v, attrs={"axis": a, "index": i % n})


@builtin
def broadcast_to(em: Emitter, x: Any, *shape: Any) -> TVal:
    """Repeat size-1 (or missing leading) dimensions to `shape`."""
    shp = tile_shape(shape[0] if len(shape) == 1 else shape)
    if is_number(x):
        return em.constant(x, promotion.default_literal_dtype(x), shp)
    v = em.materialize(x)
    broadcast_shapes(v.shape, shp)
    return em.broadcast(v, shp)


# ---------------------------------------------------------------------------------------
# reductions and scans


def _reduce_axes(em: Emitter, x: Any, axis: Any, keep_dims: bool, fn: Callable) -> TVal:
    v = tile(x)
    if axis is None:
        out = v
        for a in reversed(range(v.type.rank)):
            out = fn(out, a)
        if keep_dims:
            out = em.broadcast(out, (1,) * v.type.rank)
        return out
    a = norm_axis(axis, v.type.rank)
    out = fn(v, a)
    if keep_dims:
        out = expand_dims.__tilec_builtin__(em, out, a) if out.is_tile else em.broadcast(
            out, (1,))
    return out


def _reducer(kind: str) -> Callable:
    def impl(em: Emitter, x: Any, axis: Any = None, keep_dims: bool = False,
             dtype: Any = None) -> TVal:
        v = tile(x)
        d = v.dtype
        if d is None:
            raise CompileError(f"cannot reduce {v.type}")
        if dtype is not None:
            d = as_dtype(dtype)
        elif kind in ("sum", "prod"):
            d = promotion.reduction_dtype(d)
        else:
            d = promotion.arith_dtype(d)
        k = kind
        if d.is_bool and kind in ("max", "min"):
            k = "or" if kind == "max" else "and"
        v = em.cast(v, d)
        return _reduce_axes(em, v, axis, keep_dims,
                            lambda t, a: em.op("reduce", t, attrs={"axis": a, "kind": k}))
    impl.__name__ = kind
    impl.__doc__ = f"Reduce with {kind} along `axis` (all axes if None)."
    return builtin(impl)


sum = _reducer("sum")
prod = _reducer("prod")
max = _reducer("max")
min = _reducer("min")


def _argreducer(kind: str) -> Callable:
    def impl(em: Emitter, x: Any, axis: Any = None, keep_dims: bool = False,
             tie_break_left: bool = True) -> TVal:
        v = tile(x)
        if v.dtype is None or v.dtype.is_bool:
            raise CompileError(f"arg{kind} needs numbers, got {v.type}")
        v = em.cast(v, promotion.arith_dtype(v.dtype))
        if axis is None:
            flat = reshape.__tilec_builtin__(em, v, (v.type.numel,)) if v.type.rank > 1 else v
            out = em.op("argreduce", flat, attrs={"axis": 0, "kind": kind})
            return em.broadcast(out, (1,) * v.type.rank) if keep_dims else out
        return _reduce_axes(em, v, axis, keep_dims,
                            lambda t, a: em.op("argreduce", t, attrs={"axis": a, "kind": kind}))
    impl.__name__ = "arg" + kind
    impl.__doc__ = f"Index (i32) of the {kind} along `axis`; the first on ties."
    return builtin(impl)


argmax = _argreducer("max")
argmin = _argreducer("min")


@builtin
def reduce(em: Emitter, x: Any, axis: Any, combine_fn: Any, keep_dims: bool = False) -> TVal:
    """Reduce `axis` with `combine_fn(a, b)`, an associative @tc.func on scalars."""
    v = tile(x)
    if v.dtype is None:
        raise CompileError(f"cannot reduce {v.type}")
    cg = em.codegen
    elem = ScalarType(v.dtype)

    def one(t: TVal, a: int) -> TVal:
        block = Block([elem, elem], ["a", "b"])
        with em.b.inside(block):
            r = cg.call(combine_fn, [TVal(block.args[0]), TVal(block.args[1])], {})
            r = em.value_as(r, v.dtype, ())
            if r.is_tile:
                raise CompileError("the combine function must return a scalar")
            em.create("yield", [r])
        shape_ = t.shape[:a] + t.shape[a + 1:]
        rt = TileType(shape_, v.dtype) if shape_ else elem
        return em.op("reduce_custom", t, attrs={"axis": a}, regions=[Region(block)],
                     types=[rt])
    return _reduce_axes(em, v, axis, keep_dims, one)


def _scanner(kind: str, name: str) -> Callable:
    def impl(em: Emitter, x: Any, axis: Any = 0, reverse: bool = False) -> TVal:
        return _scan(em, x, axis, kind, reverse)
    impl.__name__ = name
    impl.__doc__ = f"Inclusive prefix {kind} along `axis`."
    return builtin(impl)


def _scan(em: Emitter, x: Any, axis: Any, kind: str, reverse: bool) -> TVal:
    v = tile(x)
    if v.dtype is None:
        raise CompileError(f"cannot scan {v.type}")
    d = promotion.reduction_dtype(v.dtype) if kind in ("sum", "prod") else \
        promotion.arith_dtype(v.dtype)
    if d.is_bool:
        d = dt.int32
    a = norm_axis(axis, v.type.rank)
    return em.op("scan", em.cast(v, d), attrs={"axis": a, "kind": kind,
                                               "reverse": bool(reverse)})


cumsum = _scanner("sum", "cumsum")
cumprod = _scanner("prod", "cumprod")
cummax = _scanner("max", "cummax")
cummin = _scanner("min", "cummin")


@builtin
def scan(em: Emitter, x: Any, axis: Any = 0, kind: Any = "sum", reverse: bool = False) -> TVal:
    """Inclusive scan with kind "sum", "prod", "max" or "min" (or tc.maximum/tc.minimum)."""
    names = {id(maximum): "max", id(minimum): "min"}
    k = names.get(id(kind), kind)
    if k not in ("sum", "prod", "max", "min"):
        raise CompileError(f"scan kind must be 'sum', 'prod', 'max' or 'min', got "
                           f"{describe(kind)}", hint="custom scan combiners are not supported")
    return _scan(em, x, axis, k, reverse)


# ---------------------------------------------------------------------------------------
# matrix product


@builtin
def dot(em: Emitter, a: Any, b: Any, acc: Any = None, out_dtype: Any = None,
        precision: Any = None, input_precision: Any = None, warps_n: Any = None) -> TVal:
    """`acc + a @ b` for 2-D tiles a: MxK, b: KxN (accumulator f32 for floats, i32 for ints;
    `precision` "ieee" (default) or "tf32" for f32 inputs; `warps_n` fixes how many warps
    split N on a matrix instruction, 1 keeping each row of the result in one warp), or for
    3-D tiles a: BxMxK, b: BxKxN, a batch of B products (BxMxN) that the warps share out."""
    x, y = tile(a, "dot operand a"), tile(b, "dot operand b")
    if x.type.rank != y.type.rank or x.type.rank not in (2, 3):
        raise CompileError(f"dot takes two 2-D tiles or two 3-D ones, got {x.type} and "
                           f"{y.type}")
    (m, k), (k2, n) = x.shape[-2:], y.shape[-2:]
    batch = x.shape[:-2]
    if k != k2:
        raise CompileError(f"dot shapes do not chain: a is {m}x{k} but b is {k2}x{n}",
                           hint="a is MxK and b is KxN: the inner dimensions must agree")
    if batch != y.shape[:-2]:
        raise CompileError(f"dot batches differ: a holds {batch[0]} products but b "
                           f"{y.shape[0]}", hint="a is BxMxK and b is BxKxN")
    if x.dtype is None or y.dtype is None or x.dtype.is_bool or y.dtype.is_bool:
        raise CompileError(f"dot needs numbers, got {x.type} and {y.type}")
    if x.dtype != y.dtype:
        d = promotion.common_dtype(x.dtype, y.dtype)
        x, y = em.cast(x, d), em.cast(y, d)
    is_float = x.dtype.is_float
    if out_dtype is not None:
        od = as_dtype(out_dtype, "out_dtype")
    elif isinstance(acc, TVal):
        od = acc.dtype
    else:
        od = dt.float32 if is_float else dt.int32
    if od.is_float != is_float:
        raise CompileError(f"{x.dtype} products cannot accumulate in {od}",
                           hint="float inputs accumulate in a float dtype, ints in an int one")
    out = batch + (m, n)
    if acc is None:
        c = em.constant(0, od, out)
    else:
        if isinstance(acc, TVal) and acc.is_tile and acc.shape != out:
            raise CompileError(f"dot accumulator is {acc.type} but a @ b is "
                               f"{'x'.join(map(str, out))}")
        c = em.value_as(acc, od, out)
    p = precision if precision is not None else input_precision
    attrs = {}
    if p is not None:
        if p not in ("ieee", "tf32"):
            raise CompileError(f"precision must be 'ieee' or 'tf32', got {p!r}")
        attrs["precision"] = p
    if warps_n is not None:
        wn = const_int(warps_n, "warps_n")
        if wn < 1:
            raise CompileError(f"warps_n must be a positive integer, got {wn}")
        attrs["warps_n"] = wn
    return em.op("dot", x, y, c, attrs=attrs)


# ---------------------------------------------------------------------------------------
# debugging


@builtin
def print(em: Emitter, prefix: Any = "", *values: Any) -> None:
    """Print `prefix` and the values from every program instance."""
    if not isinstance(prefix, str):
        values = (prefix,) + values
        prefix = ""
    vals = [em.materialize(v, what="printed value") for v in values]
    em.create("print", vals, attrs={"prefix": prefix})


device_print = print


@builtin
def device_assert(em: Emitter, cond: Any, msg: str = "assertion failed") -> None:
    """Stop with `msg` if any element of `cond` is false (checked at run time)."""
    if is_number(cond):
        if not cond:
            raise CompileError(f"assertion is false at compile time: {msg}")
        return None
    em.create("assert", em.to_bool(cond), attrs={"message": str(msg)})


@builtin
def static_assert(em: Emitter, cond: Any, msg: str = "static assertion failed") -> None:
    """Check a compile-time condition."""
    if not is_number(cond):
        raise CompileError(f"static_assert needs a compile-time condition, got {describe(cond)}")
    if not cond:
        raise CompileError(f"static assertion failed: {msg}")


# ---------------------------------------------------------------------------------------
# the explicit level: shared memory, async copies, barriers, layouts


@builtin
def shared(em: Emitter, shape: Any, dtype: Any, layout: Any = None) -> TVal:
    """A shared-memory buffer (the layout is left to the compiler unless given)."""
    t = TileType(tile_shape(shape), as_dtype(dtype), _layout(layout), SHARED)
    return em.op("shared_alloc", types=[t])


def _shared_tile(x: Any, what: str) -> TVal:
    if not isinstance(x, TVal) or not x.is_tile or x.type.space != SHARED:
        raise CompileError(f"{what} must be a shared-memory tile (tc.shared), got {describe(x)}")
    return x


@builtin
def shared_load(em: Emitter, src: Any) -> TVal:
    """Read a shared tile into registers."""
    s = _shared_tile(src, "source")
    return em.op("shared_load", s, types=[TileType(s.shape, s.element)])


@builtin
def shared_store(em: Emitter, dst: Any, value: Any) -> None:
    """Write a register tile into a shared tile (converted to its dtype)."""
    s = _shared_tile(dst, "destination")
    em.create("shared_store", s, em.value_as(value, s.dtype, s.shape))


@builtin
def copy_async(em: Emitter, src: Any, coords: Any, dst: Any) -> None:
    """Start copying the tile at tile coordinates `coords` of tensor `src` into shared `dst`;
    complete after tc.wait()."""
    if not isinstance(src, TensorArg):
        raise CompileError(f"copy_async reads a tensor parameter, got {describe(src)}")
    s = _shared_tile(dst, "destination")
    offs = _view_offsets(em, src, coords, s.shape, elements=False)
    em.create("copy_async", src, offs, s)


@builtin
def wait(em: Emitter, pending: Any = 0) -> None:
    """Wait until at most `pending` asynchronous copies are in flight."""
    em.create("async_wait", attrs={"pending": const_int(pending, "pending")})


@builtin
def barrier(em: Emitter) -> None:
    """Block-wide barrier."""
    em.create("barrier")


@builtin
def gdc_wait(em: Emitter) -> None:
    """Wait until the previous launch on the stream has completed and its writes are visible
    (programmatic dependent launch, NVIDIA sm_90+). A kernel that calls `gdc_wait` or
    `gdc_launch_dependents` is launched so that it may start while the kernel before it
    finishes, if that kernel called `gdc_launch_dependents`: everything before `gdc_wait` runs
    early and must not read what the previous kernel writes, nor write what it reads. Does
    nothing where launches are ordered anyway (older GPUs, AMD, the interpreter)."""
    em.create("grid_dependency", attrs={"action": "wait"})


@builtin
def gdc_launch_dependents(em: Emitter) -> None:
    """Let the next launch on the stream start before this kernel ends (its programs wait at
    their `gdc_wait` for this one to finish). Does nothing where `gdc_wait` does nothing."""
    em.create("grid_dependency", attrs={"action": "launch_dependents"})


@builtin
def cluster_reduce(em: Emitter, x: Any, kind: Any = "sum") -> TVal:
    """`x` combined ("sum", "max" or "min") over the programs of this program's cluster:
    with the launch option `num_ctas=C`, each C consecutive programs along grid axis 0
    (program_id(0) // C) run as one thread-block cluster. In program order, so every
    program of the cluster gets the same value; each of them must reach the call, as a
    barrier. NVIDIA sm_90 and later (distributed shared memory); the interpreter runs a
    cluster's programs side by side."""
    return em.op("cluster_reduce", em.materialize(x), attrs={"kind": kind})


@builtin
def with_layout(em: Emitter, x: Any, layout: Any) -> TVal:
    """The tile in another register layout."""
    v = tile(x)
    return em.op("convert_layout", v, types=[v.type.with_layout(_layout(layout))])


# Methods of tiles (`x.to(...)`, `x.sum(0)`, ...): name -> builtin taking the tile first.
TILE_METHODS: dict[str, Callable] = {
    "to": cast, "view": view, "reshape": reshape, "permute": permute, "trans": trans,
    "expand_dims": expand_dims, "take": take, "broadcast_to": broadcast_to, "sum": sum,
    "max": max, "min": min, "prod": prod, "argmax": argmax, "argmin": argmin, "cumsum": cumsum,
    "cumprod": cumprod, "with_layout": with_layout, "load": shared_load,
    "store": shared_store, "exp": exp, "log": log, "sqrt": sqrt, "abs": abs,
}


def impl_of(stub: Any) -> Callable | None:
    return getattr(stub, "__tilec_builtin__", None)
