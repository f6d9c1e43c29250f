"""The executable meaning of every pure op, on numpy: one table shared by the constant
folder, the CPU interpreter and the GPU differential tests.

`evaluate(op, args)` computes an op's results from its operands' values. A tile is a numpy
array of shape `type.shape` in `dtype.compute_dtype`; a scalar is a 0-d array (numpy
scalars and Python numbers are accepted as operands). Elementwise ops also accept operands
with extra or fewer dimensions (numpy broadcasting): the interpreter uses this to run a
`reduce_custom` combiner on a whole batch of scalar pairs at once.

Exactness rules (bit-exact for every dtype, so the GPU can be compared against them):

- Integers are computed in int64 (uint64 for u64) and then wrap to the dtype's width
  (`DType.wrap`, two's complement), so `i3` 3 + 1 is -4 and `u4` 0 - 1 is 15.
- Integer `div` truncates toward zero and `rem` has the sign of the dividend (C, PTX).
  Division by zero (unspecified in PTX) is defined here: the quotient is all ones (-1
  signed, the maximum unsigned) and the remainder is the dividend. The one signed overflow,
  MIN / -1, wraps to MIN (remainder 0).
- Shift amounts are read as unsigned: `shl` by >= width gives 0; `shr` by >= width gives 0
  for unsigned types and the sign fill (0 or -1) for signed ones.
- Float ops are computed in float64 and rounded once, to nearest even, into the result
  dtype (`DType.round`). Since 53 >= 2p + 2 for p <= 25 this is the correctly rounded
  result of + - * / and sqrt for every format up to f32. `fma` is exact for every format:
  the product is exact in float64 for p <= 26 and the sum is rounded to odd before the
  final rounding; f64 fma uses exact rationals. Transcendentals (exp, log, tanh, erf, sin,
  cos, rsqrt, ...) are float64 libm results rounded once: faithful, not always correctly
  rounded; the GPU's approximations are compared with a tolerance.
- `max`/`min` propagate NaN; `cmp` with a NaN operand is false except `ne`.
- `cast` is `DType.convert` (RNE into floats; float->int truncates and saturates, NaN -> 0).
- `view` reinterprets bits: each element's pattern (`DType.encode`; native f16/f32/f64
  keep NaN payloads) is laid out little-endian along the last axis and the bits are read
  back as the new dtype.
- `reduce`/`scan` of floats accumulate in float64 and round each result once; `dot`
  multiplies in float64 (int64 for ints, wrapping), adds the accumulator and rounds once
  into the accumulator's dtype; `precision = "tf32"` first rounds f32 inputs to tf32.
- `argreduce` returns the first index of the max/min, NaN counting as larger than +inf.
- `reduce_custom` folds left to right along the axis with the combiner region, which the
  caller evaluates (`run_region`); the combiner is assumed associative.

Ops not covered (memory, control flow, pointers, program state) raise `NotFoldable`.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable, Sequence

import numpy as np

from tilec.ir import dtypes as dt
from tilec.ir.core import Operation, Region
from tilec.ir.dtypes import DType
from tilec.ir.types import (PointerType, TensorType, TileType, Type, dtype_of, element_of,
                            shape_of)

__all__ = ["NotFoldable", "evaluate", "covers", "coerce", "binary", "round_float",
           "structural", "STRUCTURAL_OPS"]

RunRegion = Callable[[Region, list], list]


class NotFoldable(KeyError):
    """`evaluate` has no meaning for this op (memory, control flow, pointers...)."""

    def __str__(self) -> str:  # KeyError would print the repr of its message
        return str(self.args[0]) if self.args else "not foldable"


# ---- value helpers -------------------------------------------------------------------------


def _dtype(t: Type, op: Operation) -> DType:
    d = dtype_of(t)
    if d is None:
        raise NotFoldable(f"'{op.name}' on {t}: pointers and tensors are not values here")
    return d


def coerce(value, d: DType) -> np.ndarray:
    """An operand in `d.compute_dtype`; other numbers are rounded or wrapped into `d`."""
    a = np.asarray(value)
    if a.dtype == d.compute_dtype:
        return a
    if d.is_float:
        return round_float(a.astype(np.float64), d)
    if d.is_bool:
        return a != 0
    return d.wrap(a)


def round_float(x: np.ndarray, d: DType) -> np.ndarray:
    """float64 values rounded to nearest even into float dtype `d`, in its compute_dtype."""
    if d == dt.float64:
        return np.asarray(x, np.float64)
    if d == dt.float32:
        return np.asarray(x).astype(np.float32)  # IEEE RNE, overflow to inf: same as encode
    return d.round(np.asarray(x, np.float64))


def _finish(x, d: DType) -> np.ndarray:
    """Raw float64/int64 results into dtype `d`: round floats, wrap ints."""
    if d.is_float:
        return round_float(x, d)
    if d.is_bool:
        return np.asarray(x).astype(np.bool_)
    return d.wrap(np.asarray(x))


# ---- elementwise arithmetic ----------------------------------------------------------------
# Each entry maps (a, b, dtype) of compute-dtype arrays to the result in compute dtype.


def _f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float64)


def _int_div(a: np.ndarray, b: np.ndarray, d: DType) -> tuple[np.ndarray, np.ndarray]:
    """C division: quotient truncated toward zero and remainder, with the rules for 0."""
    zero = b == 0
    safe = np.where(zero, 1, b).astype(a.dtype)
    q = a // safe  # floor division; fix it up to truncation below
    r = a - q * safe
    if d.kind == "int":
        fix = (r != 0) & ((a < 0) != (safe < 0))
        q = np.where(fix, q + 1, q)
        r = np.where(fix, r - safe, r)
    ones = d.wrap(np.asarray(-1))  # all bits set
    q = np.where(zero, ones, q)
    r = np.where(zero, a, r)
    return d.wrap(q), d.wrap(r)


def _shl(a, b, d: DType):
    n = b.astype(np.int64)
    big = (n < 0) | (n >= d.bits)
    shifted = a << np.clip(n, 0, 63).astype(a.dtype)
    return d.wrap(np.where(big, 0, shifted).astype(a.dtype))


def _shr(a, b, d: DType):
    n = b.astype(np.int64)
    big = (n < 0) | (n >= d.bits)
    if d.kind == "int":  # a is sign-extended in int64: shifting by 63 gives the sign fill
        return a >> np.where(big, 63, n)
    return np.where(big, 0, a >> np.clip(n, 0, 63).astype(a.dtype)).astype(a.dtype)


def _fma_exact(a, b, c, d: DType) -> np.ndarray:
    if d.mantissa + 1 > 26:  # f64 (or wider-than-26-bit formats): exact rationals
        def one(x, y, z):
            if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(z)):
                return x * y + z
            exact = Fraction(x) * Fraction(y) + Fraction(z)
            try:
                return float(exact)  # int/int division in CPython is correctly rounded
            except OverflowError:
                return math.copysign(math.inf, exact)
        out = np.frompyfunc(one, 3, 1)(_f64(a), _f64(b), _f64(c))
        return round_float(np.asarray(out, np.float64), d)
    p = _f64(a) * _f64(b)  # exact: 2 * 26 <= 53 bits
    c64 = _f64(c)
    s = p + c64
    # TwoSum: s + e == p + c exactly (for finite s).
    bb = s - p
    e = (p - (s - bb)) + (c64 - bb)
    # Round to odd: if inexact and s is even, step to the neighbour on e's side. Rounding a
    # round-to-odd float64 to a format of <= 51 bits is then correctly rounded.
    s = np.asarray(s, np.float64)
    even = (s.view(np.int64) & 1) == 0
    inexact = np.isfinite(e) & (e != 0)
    toward = np.where(e > 0, np.inf, -np.inf)
    s = np.where(inexact & even, np.nextafter(s, toward), s)
    return round_float(s, d)


_erf = np.frompyfunc(math.erf, 1, 1)


def _float_unary(fn):
    return lambda x, d: round_float(fn(_f64(x)), d)


def _float_binary(fn):
    return lambda a, b, d: round_float(fn(_f64(a), _f64(b)), d)


def _int_binary(fn):
    return lambda a, b, d: d.wrap(fn(a, b))


def _by_kind(float_fn=None, int_fn=None, bool_fn=None):
    """Dispatch on the operand dtype's kind."""
    def run(*args):
        d = args[-1]
        fn = float_fn if d.is_float else bool_fn if d.is_bool else int_fn
        if fn is None:
            raise NotFoldable(f"no meaning for dtype {d}")
        return fn(*args)
    return run


_BINARY: dict[str, Callable] = {
    "add": _by_kind(_float_binary(np.add), _int_binary(np.add)),
    "sub": _by_kind(_float_binary(np.subtract), _int_binary(np.subtract)),
    "mul": _by_kind(_float_binary(np.multiply), _int_binary(np.multiply)),
    "div": _by_kind(_float_binary(np.divide), lambda a, b, d: _int_div(a, b, d)[0]),
    "rem": _by_kind(_float_binary(np.fmod), lambda a, b, d: _int_div(a, b, d)[1]),
    "max": _by_kind(_float_binary(np.maximum), lambda a, b, d: np.maximum(a, b)),
    "min": _by_kind(_float_binary(np.minimum), lambda a, b, d: np.minimum(a, b)),
    "and": _by_kind(None, _int_binary(np.bitwise_and), lambda a, b, d: a & b),
    "or": _by_kind(None, _int_binary(np.bitwise_or), lambda a, b, d: a | b),
    "xor": _by_kind(None, _int_binary(np.bitwise_xor), lambda a, b, d: a ^ b),
    "shl": _by_kind(None, _shl),
    "shr": _by_kind(None, _shr),
}

_UNARY: dict[str, Callable] = {
    "neg": _by_kind(lambda x, d: -x, lambda x, d: d.wrap(np.negative(x))),
    "abs": _by_kind(lambda x, d: np.abs(x),
                    lambda x, d: d.wrap(np.abs(x)) if d.kind == "int" else x),
    "not": _by_kind(None, lambda x, d: d.wrap(np.invert(x)), lambda x, d: ~x),
    "exp": _float_unary(np.exp),
    "exp2": _float_unary(np.exp2),
    "log": _float_unary(np.log),
    "log2": _float_unary(np.log2),
    "sqrt": _float_unary(np.sqrt),
    "rsqrt": _float_unary(lambda x: 1.0 / np.sqrt(x)),
    "tanh": _float_unary(np.tanh),
    "erf": _float_unary(lambda x: np.asarray(_erf(x), np.float64)),
    "sin": _float_unary(np.sin),
    "cos": _float_unary(np.cos),
    "floor": _float_unary(np.floor),
    "ceil": _float_unary(np.ceil),
}

_CMP = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
        "gt": np.greater, "ge": np.greater_equal}


def binary(name: str, d: DType, a, b) -> np.ndarray:
    """The elementwise binary op `name` (add, max, xor, ...) on values of dtype `d`.

    The interpreter's atomics use this so that `atomic_rmw add` means what `add` means.
    """
    with np.errstate(all="ignore"):
        return _BINARY[name](coerce(a, d), coerce(b, d), d)


# ---- the op table ---------------------------------------------------------------------------
# Each rule takes (op, args) with args already in their operands' compute dtypes and returns
# the list of results.

Rule = Callable[[Operation, list], list]
_RULES: dict[str, Rule] = {}


def _rule(*names: str):
    def register(fn):
        for n in names:
            _RULES[n] = fn
        return fn
    return register


def _out(op: Operation, i: int = 0) -> Type:
    return op.results[i].type


@_rule(*_BINARY)
def _eval_binary(op, args):
    return [_BINARY[op.name](args[0], args[1], _dtype(op.operands[0].type, op))]


@_rule(*_UNARY)
def _eval_unary(op, args):
    return [_UNARY[op.name](args[0], _dtype(op.operands[0].type, op))]


@_rule("fma")
def _eval_fma(op, args):
    return [_fma_exact(*args, _dtype(op.a.type, op))]


@_rule("cmp")
def _eval_cmp(op, args):
    return [_CMP[op.pred](args[0], args[1])]


@_rule("select")
def _eval_select(op, args):
    cond, a, b = args
    return [np.where(cond, a, b)]


@_rule("cast")
def _eval_cast(op, args):
    src, out = _dtype(op.x.type, op), _dtype(_out(op), op)
    return [out.convert(args[0], src)]


@_rule("constant")
def _eval_constant(op, args):
    t = _out(op)
    d = _dtype(t, op)
    v = op.value
    if d.is_float:
        scalar = round_float(np.asarray(float(v)), d)
    elif d.is_bool:
        scalar = np.asarray(bool(v))
    else:
        scalar = d.wrap(np.asarray(int(v)))
    return [np.full(shape_of(t), scalar, d.compute_dtype)]


@_rule("splat")
def _eval_splat(op, args):
    return [structural(op, args[0])]


@_rule("arange")
def _eval_arange(op, args):
    return [np.arange(op.start, op.end, dtype=dt.int32.compute_dtype)]


def _bit_matrix(patterns: np.ndarray, bits: int) -> np.ndarray:
    """(..., n) uint64 patterns -> (..., n * bits) uint8 bits, little-endian."""
    shifts = np.arange(bits, dtype=np.uint64)
    m = ((patterns[..., None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return m.reshape(*patterns.shape[:-1], patterns.shape[-1] * bits)


_NATIVE_BITS = {"f16": np.uint16, "f32": np.uint32, "f64": np.uint64}


def _patterns(x: np.ndarray, d: DType) -> np.ndarray:
    native = _NATIVE_BITS.get(d.name)
    if native is not None:  # keep NaN payloads of the IEEE formats numpy holds natively
        return np.ascontiguousarray(x, d.compute_dtype).view(native).astype(np.uint64)
    return d.encode(x).astype(np.uint64)


def _from_patterns(p: np.ndarray, d: DType) -> np.ndarray:
    native = _NATIVE_BITS.get(d.name)
    if native is not None:
        return np.ascontiguousarray(p.astype(native)).view(d.compute_dtype)
    return d.decode(p)


@_rule("view")
def _eval_view(op, args):
    src, out = _dtype(op.x.type, op), _dtype(_out(op), op)
    shape = shape_of(_out(op))
    bits = _bit_matrix(_patterns(args[0], src), src.bits)
    grouped = bits.reshape(*shape, out.bits).astype(np.uint64)
    patterns = (grouped << np.arange(out.bits, dtype=np.uint64)).sum(axis=-1, dtype=np.uint64)
    return [_from_patterns(patterns, out)]


# Shape-only ops: their meaning does not depend on the element type, so the interpreter
# applies them to the offsets of pointer tiles as well (`structural`).
STRUCTURAL_OPS = frozenset({"splat", "reshape", "permute", "expand_dims", "broadcast",
                            "convert_layout", "take"})


def structural(op: Operation, x: np.ndarray) -> np.ndarray:
    """A shape-only op (`STRUCTURAL_OPS`) applied to an array of any dtype."""
    x = np.asarray(x)
    name = op.name
    if name == "splat":
        return np.full(shape_of(_out(op)), x, x.dtype)
    if name == "reshape":
        return x.reshape(shape_of(_out(op)))
    if name == "permute":
        return np.transpose(x, op.dims).copy()
    if name == "expand_dims":
        return np.expand_dims(x, op.axis)
    if name == "take":
        return np.take(x, op.index, axis=op.axis)
    if name == "broadcast":
        return np.broadcast_to(x, shape_of(_out(op))).copy()
    if name == "convert_layout":
        return x
    raise NotFoldable(f"'{name}' is not a shape-only op")


@_rule("reshape", "permute", "expand_dims", "broadcast", "convert_layout", "take")
def _eval_structural(op, args):
    return [structural(op, args[0])]


def _reduce_float(x, axis, kind):
    x = _f64(x)
    return {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min}[kind](x, axis=axis)


_INT_REDUCE = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min,
               "and": np.bitwise_and.reduce, "or": np.bitwise_or.reduce,
               "xor": np.bitwise_xor.reduce}
_BOOL_REDUCE = {"and": np.logical_and.reduce, "or": np.logical_or.reduce,
                "xor": np.logical_xor.reduce, "max": np.logical_or.reduce,
                "min": np.logical_and.reduce}


@_rule("reduce")
def _eval_reduce(op, args):
    d = _dtype(op.x.type, op)
    x, axis, kind = args[0], op.axis, op.kind
    if d.is_float:
        return [round_float(_reduce_float(x, axis, kind), d)]
    if d.is_bool:
        return [np.asarray(_BOOL_REDUCE[kind](x, axis=axis))]
    return [d.wrap(np.asarray(_INT_REDUCE[kind](x, axis=axis)))]


@_rule("argreduce")
def _eval_argreduce(op, args):
    d = _dtype(op.x.type, op)
    x, axis = args[0], op.axis
    if not d.is_float:
        idx = np.argmax(x, axis=axis) if op.kind == "max" else np.argmin(x, axis=axis)
        return [np.asarray(idx, dt.int32.compute_dtype)]
    nan = np.isnan(x)
    if op.kind == "max":
        best = np.max(np.where(nan, -np.inf, x), axis=axis, keepdims=True)
        hit = np.where(np.any(nan, axis=axis, keepdims=True), nan, (x == best) & ~nan)
    else:
        best = np.min(np.where(nan, np.inf, x), axis=axis, keepdims=True)
        hit = np.where(np.all(nan, axis=axis, keepdims=True), nan, (x == best) & ~nan)
    return [np.asarray(np.argmax(hit, axis=axis), dt.int32.compute_dtype)]  # first True


_ACCUMULATE = {"sum": np.add.accumulate, "prod": np.multiply.accumulate,
               "max": np.maximum.accumulate, "min": np.minimum.accumulate}


@_rule("scan")
def _eval_scan(op, args):
    d = _dtype(op.x.type, op)
    x, axis = args[0], op.axis
    if op.reverse:
        x = np.flip(x, axis)
    acc = _ACCUMULATE[op.kind]
    out = _finish(acc(_f64(x), axis=axis), d) if d.is_float else d.wrap(acc(x, axis=axis))
    if op.reverse:
        out = np.flip(out, axis)
    return [np.ascontiguousarray(out)]


_TF32 = dt.float_(8, 10)


@_rule("dot")
def _eval_dot(op, args):
    a, b, acc = args
    da, dc = _dtype(op.a.type, op), _dtype(op.acc.type, op)
    if dc.is_float:
        if op.precision == "tf32" and da == dt.float32:
            a, b = _TF32.round(a), _TF32.round(b)
        return [round_float(np.matmul(_f64(a), _f64(b)) + _f64(acc), dc)]
    wide = np.uint64 if np.uint64 in (a.dtype.type, acc.dtype.type) else np.int64
    prod = np.matmul(a.astype(wide), b.astype(wide))
    return [dc.wrap(prod + acc.astype(wide))]


def _reduce_custom(op: Operation, args: list, run_region: RunRegion | None) -> list:
    if run_region is None:
        raise NotFoldable("'reduce_custom' needs a region evaluator")
    x = np.moveaxis(args[0], op.axis, 0)
    acc = x[0]
    for i in range(1, x.shape[0]):
        acc = run_region(op.regions[0], [acc, x[i]])[0]
    d = _dtype(op.x.type, op)
    return [np.asarray(coerce(acc, d))]


# ---- entry points -----------------------------------------------------------------------


def covers(op: Operation | str) -> bool:
    """Whether `evaluate` gives this op (or op name) a meaning."""
    name = op if isinstance(op, str) else op.name
    return name in _RULES or name == "reduce_custom"


def evaluate(op: Operation, args: Sequence, run_region: RunRegion | None = None) -> list:
    """The results of pure op `op` on operand values `args` (see the module docstring).

    Raises NotFoldable for ops without a meaning here (memory, control flow, pointer
    operands), so a constant folder can skip them.
    """
    for v in op.operands:
        if _is_address(v.type):
            raise NotFoldable(f"'{op.name}' has pointer or tensor operands")
    if len(args) != len(op.operands):
        raise ValueError(f"'{op.name}' has {len(op.operands)} operands, got {len(args)} values")
    values = [coerce(a, _dtype(v.type, op)) for a, v in zip(args, op.operands)]
    with np.errstate(all="ignore"):
        if op.name == "reduce_custom":
            results = _reduce_custom(op, values, run_region)
        else:
            rule = _RULES.get(op.name)
            if rule is None:
                raise NotFoldable(f"no semantics for '{op.name}'")
            results = rule(op, values)
    return [_result(r, res.type, op) for r, res in zip(results, op.results)]


def _is_address(t: Type) -> bool:
    """Tensors, pointers and tiles of pointers: values only the interpreter holds."""
    if isinstance(t, TensorType):
        return True
    return isinstance(element_of(t), PointerType)


def _result(value, t: Type, op: Operation) -> np.ndarray:
    d = _dtype(t, op)
    a = np.asarray(value)
    if a.dtype != d.compute_dtype:
        a = a.astype(d.compute_dtype)
    if isinstance(t, TileType) and a.shape != t.shape and a.size == t.numel:
        a = a.reshape(t.shape)
    return a
