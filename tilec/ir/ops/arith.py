"""Elementwise arithmetic, comparison, selection, casts and constants.

Binary ops take operands of one type (shape and dtype): the frontend inserts the
broadcasts and casts that Python-style promotion implies. Integer `div`/`rem` truncate
toward zero (C and PTX semantics, as Triton does); `shr` is arithmetic on signed integers
and logical on unsigned ones.
"""
from __future__ import annotations

import math

from tilec.ir import dtypes as dt
from tilec.ir.core import Attr, Operation, Trait
from tilec.ir.ops.base import (COMMUTATIVE, ELEMENTWISE, PURE, SAME_LAYOUT, ElementwiseBinary,
                               ElementwiseUnary, check_result, numeric_kinds, same_types)
from tilec.ir.types import PointerType, ScalarType, TileType, dtype_of, element_of, like, shape_of

_PURE_EW = frozenset({PURE, ELEMENTWISE, SAME_LAYOUT})
_COMM = _PURE_EW | {COMMUTATIVE}


class Add(ElementwiseBinary):
    name = "add"
    traits = _COMM


class Sub(ElementwiseBinary):
    name = "sub"


class Mul(ElementwiseBinary):
    name = "mul"
    traits = _COMM


class Div(ElementwiseBinary):
    """Float division, or integer division truncating toward zero."""
    name = "div"


class Rem(ElementwiseBinary):
    """Remainder with the sign of the dividend (C fmod / PTX rem)."""
    name = "rem"


class Max(ElementwiseBinary):
    """Elementwise maximum; NaN if either float operand is NaN."""
    name = "max"
    traits = _COMM


class Min(ElementwiseBinary):
    name = "min"
    traits = _COMM


class And(ElementwiseBinary):
    name = "and"
    traits = _COMM
    kinds = "ib"


class Or(ElementwiseBinary):
    name = "or"
    traits = _COMM
    kinds = "ib"


class Xor(ElementwiseBinary):
    name = "xor"
    traits = _COMM
    kinds = "ib"


class Shl(ElementwiseBinary):
    """Shift left; shifting by the bit width or more gives 0."""
    name = "shl"
    kinds = "i"


class Shr(ElementwiseBinary):
    """Shift right: arithmetic for signed, logical for unsigned; clamped at the width."""
    name = "shr"
    kinds = "i"


class Neg(ElementwiseUnary):
    name = "neg"


class Abs(ElementwiseUnary):
    name = "abs"


class Not(ElementwiseUnary):
    """Bitwise complement of integers, logical not of bool."""
    name = "not"
    kinds = "ib"


class FloatUnary(ElementwiseUnary):
    """A math function of float elements (exp, log, sqrt, tanh, erf, sin, ...)."""
    kinds = "f"


class Exp(FloatUnary):
    name = "exp"


class Exp2(FloatUnary):
    name = "exp2"


class Log(FloatUnary):
    name = "log"


class Log2(FloatUnary):
    name = "log2"


class Sqrt(FloatUnary):
    name = "sqrt"


class Rsqrt(FloatUnary):
    name = "rsqrt"


class Tanh(FloatUnary):
    name = "tanh"


class Erf(FloatUnary):
    name = "erf"


class Sin(FloatUnary):
    name = "sin"


class Cos(FloatUnary):
    name = "cos"


class Floor(FloatUnary):
    name = "floor"


class Ceil(FloatUnary):
    name = "ceil"


class Fma(Operation):
    """a * b + c with one rounding."""
    name = "fma"
    operand_specs = ("a", "b", "c")
    num_results = 1
    traits = _PURE_EW

    def verify(self) -> None:
        same_types(self, self.a.type, self.b.type, self.c.type)
        numeric_kinds(self, self.a.type, "f")
        check_result(self, self.a.type)

    @classmethod
    def infer_types(cls, operand_types, attrs):
        return [operand_types[0]]


CMP_PREDICATES = ("eq", "ne", "lt", "le", "gt", "ge")


class Cmp(Operation):
    """Comparison giving bool; any comparison with a float NaN is false except `ne`."""
    name = "cmp"
    operand_specs = ("lhs", "rhs")
    attr_specs = {"pred": Attr(str, choices=CMP_PREDICATES)}
    num_results = 1
    traits = _PURE_EW

    def verify(self) -> None:
        same_types(self, self.lhs.type, self.rhs.type)
        numeric_kinds(self, self.lhs.type, "fib")
        check_result(self, like(self.lhs.type, dt.bool_))

    @classmethod
    def infer_types(cls, operand_types, attrs):
        return [like(operand_types[0], dt.bool_)]


class Select(Operation):
    """`cond ? a : b` elementwise (the DSL's `where`)."""
    name = "select"
    operand_specs = ("cond", "a", "b")
    num_results = 1
    traits = _PURE_EW

    def verify(self) -> None:
        same_types(self, self.a.type, self.b.type)
        if dtype_of(self.cond.type) != dt.bool_ or shape_of(self.cond.type) != shape_of(self.a.type):
            raise self.error(f"condition must be bool of the operands' shape, got {self.cond.type}")
        check_result(self, self.a.type)

    @classmethod
    def infer_types(cls, operand_types, attrs):
        return [operand_types[1]]


class Cast(Operation):
    """Value conversion to the result's dtype (see DType.convert for the exact rules)."""
    name = "cast"
    operand_specs = ("x",)
    num_results = 1
    traits = _PURE_EW

    def verify(self) -> None:
        src, out = self.x.type, self.results[0].type
        numeric_kinds(self, src, "fib")
        numeric_kinds(self, out, "fib", "result")
        if shape_of(src) != shape_of(out) or type(src) is not type(out):
            raise self.error(f"cast keeps the shape: {src} -> {out}")


class Constant(Operation):
    """A compile-time constant: a scalar, or a tile with every element equal to `value`."""
    name = "constant"
    attr_specs = {"value": Attr((int, float, bool))}
    num_results = 1
    traits = frozenset({PURE, Trait.CONSTANT})

    def verify(self) -> None:
        t = self.results[0].type
        d = numeric_kinds(self, t, "fib", "result")
        v = self.value
        if d.is_int or d.is_bool:
            if isinstance(v, float):
                raise self.error(f"integer constant has a float value {v!r}")
            if not (d.min <= int(v) <= d.max):
                raise self.error(f"value {v} does not fit in {d}")
        elif math.isinf(v) and not d.inf:
            raise self.error(f"{d} has no infinity")
        elif math.isfinite(v) and abs(v) > d.max:
            raise self.error(f"value {v!r} is out of range of {d} (largest finite {d.max:g})")


class Splat(Operation):
    """A tile whose every element is the scalar operand."""
    name = "splat"
    operand_specs = ("x",)
    num_results = 1
    traits = frozenset({PURE})

    def verify(self) -> None:
        t = self.results[0].type
        if not isinstance(self.x.type, (ScalarType, PointerType)):
            raise self.error(f"operand must be a scalar, got {self.x.type}")
        if not isinstance(t, TileType) or t.element != element_of(self.x.type):
            raise self.error(f"result must be a tile of {self.x.type}, got {t}")

