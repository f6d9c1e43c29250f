"""Canonicalize and fold: small rewrite patterns applied until none fires.

Each pattern is a function `pattern(op) -> bool` whose docstring shows the rewrite. Constant
folding evaluates ops with `tilec.ir.semantics.evaluate`, the one executable meaning of
every op, so no arithmetic is repeated here. Float identities are only those that hold for
every value, -0.0 and NaN included (`x * 0` is not 0 for NaN or inf, `x + 0.0` is not x for
x = -0.0); the others are for integers (and bools) only.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from tilec.errors import TilecError
from tilec.ir import dtypes as dt
from tilec.ir import semantics
from tilec.ir.builder import Builder
from tilec.ir.core import Module, Operation, OpResult, Trait, Value
from tilec.ir.rewrite import apply_patterns, has_uses, inline_region_before, replace_op
from tilec.ir.types import TileType, Type, dtype_of

if TYPE_CHECKING:
    from tilec.ir.passes.manager import PassOptions

NAME = "canonicalize"

# Folding a bigger op is not worth the time (and the result is rarely uniform).
_MAX_FOLD_ELEMENTS = 1 << 16


def run(module: Module, options: PassOptions) -> Module:
    apply_patterns(module, PATTERNS, what=NAME)
    return module


# ---------------------------------------------------------------------------------------
# Helpers


def _const(v: Value) -> Operation | None:
    """The `constant` op defining `v`, if one does."""
    if isinstance(v, OpResult) and v.owner.has_trait(Trait.CONSTANT):
        return v.owner
    return None


def _defined_by(v: Value, name: str) -> Operation | None:
    if isinstance(v, OpResult) and v.owner.name == name:
        return v.owner
    return None


def _is_integral(t: Type) -> bool:
    d = dtype_of(t)
    return d is not None and (d.is_int or d.is_bool)


def _is_float(t: Type) -> bool:
    d = dtype_of(t)
    return d is not None and d.is_float


def _equals(v: Value, number: float) -> bool:
    """Whether `v` is a constant equal to `number`; for floats the sign of zero counts."""
    c = _const(v)
    if c is None:
        return False
    value = c.attrs["value"]
    if value != number:
        return False
    if _is_float(v.type) and number == 0:
        return math.copysign(1.0, float(value)) == math.copysign(1.0, number)
    return True


def _all_ones(t: Type) -> int | bool:
    d = dtype_of(t)
    if d.is_bool:
        return True
    return -1 if d.is_signed else d.max


def _zero(t: Type) -> int | bool:
    return False if dtype_of(t).is_bool else 0


def _constant(before: Operation, t: Type, value: Any, name: str | None = None) -> Value:
    """A new `constant` of type `t` in front of `before`."""
    names = [name] if name else None
    return Builder.before(before).op("constant", types=[t], attrs={"value": value}, names=names)


def _replace_with_constant(op: Operation, value: Any) -> bool:
    replace_op(op, [_constant(op, op.result.type, value, op.result.name)])
    return True


def _trip_count(loop: Operation) -> int | None:
    bounds = [_const(v) for v in (loop.lb, loop.ub, loop.step)]
    if any(c is None for c in bounds):
        return None
    lb, ub, step = (int(c.attrs["value"]) for c in bounds)
    return len(range(lb, ub, step)) if step != 0 else None


# ---------------------------------------------------------------------------------------
# Folding


def erase_dead(op: Operation) -> bool:
    """`%a = add %x, %y` with %a unused => (nothing)"""
    if op.has_trait(Trait.PURE) and op.results and not has_uses(op):
        op.erase()
        return True
    return False


def fold_constants(op: Operation) -> bool:
    """`%c = add %a, %b : i32` with `%a = constant {value = 2}`, `%b = constant {value = 3}`
    => `%c = constant {value = 5} : i32`. Pure ops with all-constant operands whose results
    are uniform (every element equal) fold; the values come from `semantics.evaluate`."""
    if (not op.operands or not op.results or op.regions or not op.has_trait(Trait.PURE)
            or op.has_trait(Trait.CONSTANT)):
        return False
    consts = [_const(v) for v in op.operands]
    if any(c is None for c in consts):
        return False
    types = [r.type for r in op.results] + [v.type for v in op.operands]
    if any(dtype_of(t) is None or _numel(t) > _MAX_FOLD_ELEMENTS for t in types):
        return False
    try:
        args = [semantics.evaluate(c, [])[0] for c in consts]
        results = semantics.evaluate(op, args)
    except semantics.NotFoldable:
        return False
    values = [_uniform_value(np.asarray(a), r.type) for a, r in zip(results, op.results)]
    if len(values) != len(op.results) or any(v is None for v in values):
        return False
    new = [_constant(op, r.type, v[0], r.name) for r, v in zip(op.results, values)]
    try:
        for v in new:
            v.owner.verify()
    except TilecError:  # a value the constant op cannot hold: leave the op alone
        for v in new:
            v.owner.erase()
        return False
    replace_op(op, new)
    return True


def _numel(t: Type) -> int:
    return t.numel if isinstance(t, TileType) else 1


def _uniform_value(a: np.ndarray, t: Type) -> tuple[Any] | None:
    """`(value,)` if every element of `a` has the same bits, as a constant's attribute."""
    d = dtype_of(t)
    shape = t.shape if isinstance(t, TileType) else ()
    if a.shape != shape or a.size == 0:
        return None
    bits = d.encode(a).ravel()
    if not np.all(bits == bits[0]):
        return None
    x = a.ravel()[0]
    if d.is_bool:
        return (bool(x),)
    return (int(x),) if d.is_int else (float(x),)


def normalize_constant(op: Operation) -> bool:
    """`constant {value = 1} : f32 => constant {value = 1.0} : f32`; likewise 0/1 of bool
    => false/true (one spelling per value, so CSE sees equal constants as equal)."""
    if not op.has_trait(Trait.CONSTANT):
        return False
    d, value = dtype_of(op.result.type), op.attrs["value"]
    if d is None:
        return False
    kind = float if d.is_float else bool if d.is_bool else int
    if type(value) is kind:
        return False
    op.attrs["value"] = kind(value)
    return True


def splat_of_constant(op: Operation) -> bool:
    """`%t = splat %c : tile<16xf32>` with `%c = constant {value = 1.5} : f32`
    => `%t = constant {value = 1.5} : tile<16xf32>`"""
    if op.name != "splat":
        return False
    c = _const(op.x)
    return c is not None and _replace_with_constant(op, c.attrs["value"])


def constants_to_the_right(op: Operation) -> bool:
    """`%r = add %c, %x` with %c constant and %x not => `%r = add %x, %c`
    (commutative ops; the identities below then only look at the right operand)."""
    if not op.has_trait(Trait.COMMUTATIVE):
        return False
    lhs, rhs = op.operands[0], op.operands[1]
    if _const(lhs) is None or _const(rhs) is not None:
        return False
    op.set_operand(0, rhs)
    op.set_operand(1, lhs)
    return True


# ---------------------------------------------------------------------------------------
# Algebraic identities


def add_zero(op: Operation) -> bool:
    """`add %x, 0 => %x` for integers; `add %x, -0.0 => %x` for floats
    (x + -0.0 is x for every x; x + 0.0 is not when x is -0.0)."""
    if op.name != "add":
        return False
    zero = -0.0 if _is_float(op.rhs.type) else 0
    return _equals(op.rhs, zero) and _forward(op, op.lhs)


def sub_zero(op: Operation) -> bool:
    """`sub %x, 0 => %x` (for floats, +0.0: x - 0.0 is x for every x, -0.0 included)."""
    if op.name != "sub":
        return False
    zero = 0.0 if _is_float(op.rhs.type) else 0
    return _equals(op.rhs, zero) and _forward(op, op.lhs)


def sub_self(op: Operation) -> bool:
    """`sub %x, %x => constant 0` for integers (not floats: inf - inf is NaN)."""
    if op.name == "sub" and op.lhs is op.rhs and _is_integral(op.lhs.type):
        return _replace_with_constant(op, 0)
    return False


def mul_one(op: Operation) -> bool:
    """`mul %x, 1 => %x`, `div %x, 1 => %x` (exact for floats too)."""
    return op.name in ("mul", "div") and _equals(op.rhs, 1) and _forward(op, op.lhs)


def mul_zero(op: Operation) -> bool:
    """`mul %x, 0 => constant 0` for integers (not floats: NaN * 0 is NaN)."""
    if op.name == "mul" and _is_integral(op.rhs.type) and _equals(op.rhs, 0):
        return _replace_with_constant(op, 0)
    return False


def rem_one(op: Operation) -> bool:
    """`rem %x, 1 => constant 0` for integers."""
    if op.name == "rem" and _is_integral(op.rhs.type) and _equals(op.rhs, 1):
        return _replace_with_constant(op, 0)
    return False


def bitwise_identity(op: Operation) -> bool:
    """`and %x, -1 => %x`, `or %x, 0 => %x`, `xor %x, 0 => %x` (-1: all bits set; true for
    bool); also `shl %x, 0 => %x`, `shr %x, 0 => %x`."""
    if op.name not in ("and", "or", "xor", "shl", "shr") or not _is_integral(op.rhs.type):
        return False
    neutral = _all_ones(op.rhs.type) if op.name == "and" else _zero(op.rhs.type)
    return _equals(op.rhs, neutral) and _forward(op, op.lhs)


def bitwise_absorb(op: Operation) -> bool:
    """`and %x, 0 => constant 0`, `or %x, -1 => constant -1` (all bits set)."""
    if op.name not in ("and", "or") or not _is_integral(op.rhs.type):
        return False
    absorbing = _zero(op.rhs.type) if op.name == "and" else _all_ones(op.rhs.type)
    return _equals(op.rhs, absorbing) and _replace_with_constant(op, absorbing)


def idempotent(op: Operation) -> bool:
    """`and %x, %x => %x`, `or`, `max` and `min` likewise (floats too: max(x, x) is x)."""
    if op.name in ("and", "or", "max", "min") and op.lhs is op.rhs:
        return _forward(op, op.lhs)
    return False


def xor_self(op: Operation) -> bool:
    """`xor %x, %x => constant 0`"""
    if op.name == "xor" and op.lhs is op.rhs:
        return _replace_with_constant(op, _zero(op.lhs.type))
    return False


def involution(op: Operation) -> bool:
    """`neg (neg %x) => %x`, `not (not %x) => %x` (integer negation wraps both ways)."""
    if op.name not in ("neg", "not"):
        return False
    inner = _defined_by(op.x, op.name)
    return inner is not None and _forward(op, inner.x)


def cmp_self(op: Operation) -> bool:
    """`cmp %x, %x {pred = "eq"} => constant true` for integers (eq/le/ge true,
    ne/lt/gt false; not floats: NaN is unequal to itself)."""
    if op.name != "cmp" or op.lhs is not op.rhs or not _is_integral(op.lhs.type):
        return False
    return _replace_with_constant(op, op.pred in ("eq", "le", "ge"))


def select_same(op: Operation) -> bool:
    """`select %c, %x, %x => %x`"""
    return op.name == "select" and op.a is op.b and _forward(op, op.a)


def select_constant(op: Operation) -> bool:
    """`select %true, %a, %b => %a`, `select %false, %a, %b => %b`"""
    if op.name != "select":
        return False
    c = _const(op.cond)
    return c is not None and _forward(op, op.a if c.attrs["value"] else op.b)


def _forward(op: Operation, value: Value) -> bool:
    """Replace `op`'s one result by `value` (if the types agree, layouts included)."""
    if value.type != op.result.type:
        return False
    replace_op(op, [value])
    return True


# ---------------------------------------------------------------------------------------
# Casts, layouts and shapes


def same_type_noop(op: Operation) -> bool:
    """`%y = cast %x : T => %x` where %x has type T; likewise `convert_layout`, `broadcast`,
    `reshape` and `view`; `permute %x {dims = [0, 1, ...]} => %x`."""
    if op.name in ("cast", "convert_layout", "broadcast", "reshape", "view"):
        return _forward(op, op.x)
    if op.name == "permute" and list(op.dims) == list(range(len(op.dims))):
        return _forward(op, op.x)
    return False


def cast_of_cast(op: Operation) -> bool:
    """`%b = cast %a : B; %c = cast %b : C => %c = cast %a : C` when B holds every value
    of %a's type exactly (a widening), e.g. i8 -> i32 -> f32 => i8 -> f32."""
    inner = _defined_by(op.x, "cast") if op.name == "cast" else None
    if inner is None or not holds_exactly(dtype_of(inner.result.type), dtype_of(inner.x.type)):
        return False
    op.set_operand(0, inner.x)
    return True


def holds_exactly(wide: dt.DType, narrow: dt.DType) -> bool:
    """Whether every value of `narrow` is a value of `wide` (so a cast to `wide` is exact)."""
    if wide == narrow:
        return True
    if wide.is_bool:
        return False
    if narrow.is_float:
        return (wide.is_float and wide.mantissa >= narrow.mantissa and wide.max >= narrow.max
                and wide.smallest_subnormal <= narrow.smallest_subnormal
                and (wide.inf or not narrow.inf) and (wide.nan != "none" or narrow.nan == "none"))
    # Integers (bool is 0..1).
    if wide.is_float:
        magnitude = max(narrow.max, -narrow.min)
        return (magnitude <= 2 ** (wide.mantissa + 1) and magnitude <= wide.max
                and wide.smallest_subnormal <= 1)
    return wide.min <= narrow.min and narrow.max <= wide.max


def collapse_chain(op: Operation) -> bool:
    """`reshape (reshape %x) => reshape %x`; likewise `convert_layout` and `broadcast`
    (only the last shape or layout matters)."""
    if op.name not in ("reshape", "convert_layout", "broadcast"):
        return False
    inner = _defined_by(op.x, op.name)
    if inner is None:
        return False
    op.set_operand(0, inner.x)
    return True


def permute_of_permute(op: Operation) -> bool:
    """`permute (permute %x {dims = [1, 2, 0]}) {dims = [1, 2, 0]}
    => permute %x {dims = [2, 0, 1]}` (result dim i is x's dim inner[outer[i]])."""
    inner = _defined_by(op.x, "permute") if op.name == "permute" else None
    if inner is None:
        return False
    op.attrs["dims"] = [inner.dims[d] for d in op.dims]
    op.set_operand(0, inner.x)
    return True


# ---------------------------------------------------------------------------------------
# Control flow


def if_constant(op: Operation) -> bool:
    """`%r = if %true {A; yield %a} {B; yield %b} => A` with %a for %r (and the else
    region for false)."""
    if op.name != "if":
        return False
    c = _const(op.cond)
    if c is None:
        return False
    region = op.regions[0] if c.attrs["value"] else op.regions[1]
    replace_op(op, inline_region_before(region, op, []))
    return True


def for_no_trips(op: Operation) -> bool:
    """`%r = for %c0, %c0, %c1, %init {...} => %init` (constant bounds, no iteration)."""
    if op.name != "for" or _trip_count(op) != 0:
        return False
    replace_op(op, list(op.inits))
    return True


def for_one_trip(op: Operation) -> bool:
    """`%r = for %c0, %c1, %c1, %init {^(%i, %acc): B; yield %v} => B` with %i = %c0,
    %acc = %init and %v for %r (constant bounds, one iteration)."""
    if op.name != "for" or _trip_count(op) != 1:
        return False
    replace_op(op, inline_region_before(op.regions[0], op, [op.lb, *op.inits]))
    return True


PATTERNS = [
    erase_dead,
    fold_constants,
    normalize_constant,
    splat_of_constant,
    constants_to_the_right,
    add_zero,
    sub_zero,
    sub_self,
    mul_one,
    mul_zero,
    rem_one,
    bitwise_identity,
    bitwise_absorb,
    idempotent,
    xor_self,
    involution,
    cmp_self,
    select_same,
    select_constant,
    same_type_noop,
    cast_of_cast,
    collapse_chain,
    permute_of_permute,
    if_constant,
    for_no_trips,
    for_one_trip,
]
