"""Shared checks and declaration bases for op classes."""
from __future__ import annotations

from typing import Any

from tilec.ir import dtypes as dt
from tilec.ir.core import Operation, Trait
from tilec.ir.types import (PointerType, ScalarType, TileType, Type, dtype_of, element_of,
                            shape_of)

PURE = Trait.PURE
ELEMENTWISE = Trait.ELEMENTWISE
COMMUTATIVE = Trait.COMMUTATIVE
SAME_LAYOUT = Trait.SAME_OPERAND_LAYOUT


def numeric_kinds(op: Operation, t: Type, kinds: str, what: str = "operand") -> dt.DType:
    """Check that `t` holds numbers of one of `kinds` ("f": float, "i": int, "b": bool)."""
    d = dtype_of(t)
    ok = d is not None and ((d.is_float and "f" in kinds) or (d.is_int and "i" in kinds)
                            or (d.is_bool and "b" in kinds))
    if not ok:
        allowed = {"f": "float", "i": "integer", "b": "bool"}
        names = " or ".join(allowed[k] for k in kinds)
        raise op.error(f"{what} must be {names}, got {t}")
    return d


def same_types(op: Operation, *types: Type) -> None:
    """Elementwise operands must agree in shape and element type (no implicit broadcast)."""
    first = types[0]
    for t in types[1:]:
        if shape_of(t) != shape_of(first):
            raise op.error(f"shape mismatch: {t} vs {first}",
                           hint="broadcast explicitly with broadcast/expand_dims first")
        if element_of(t) != element_of(first):
            raise op.error(f"element type mismatch: {t} vs {first}",
                           hint="insert a cast so both operands have one dtype")


def result_like(op: Operation, index: int = 0) -> Type:
    return op.results[index].type


def check_result(op: Operation, expected: Type) -> None:
    got = op.results[0].type
    if _strip(got) != _strip(expected):
        raise op.error(f"result type {got} does not match the expected {expected}")


def _strip(t: Type) -> Type:
    # Layouts are assigned by a pass; type rules compare shape, element and space only.
    return t.with_layout(None) if isinstance(t, TileType) else t


def int_scalar(op: Operation, t: Type, what: str) -> None:
    if not (isinstance(t, ScalarType) and t.dtype.is_int):
        raise op.error(f"{what} must be an integer scalar, got {t}")


def tile_or_scalar_of(shape: tuple[int, ...], element: Any) -> Type:
    if shape:
        return TileType(shape, element)
    return ScalarType(element) if isinstance(element, dt.DType) else element


def is_pointer(t: Type) -> bool:
    return isinstance(element_of(t), PointerType) if not isinstance(t, PointerType) else True


class ElementwiseUnary(Operation):
    """`op %x : T`: the named function of each element; the result has the operand's type."""
    operand_specs = ("x",)
    num_results = 1
    traits = frozenset({PURE, ELEMENTWISE, SAME_LAYOUT})
    kinds = "fi"  # dtype kinds accepted

    def verify(self) -> None:
        numeric_kinds(self, self.x.type, self.kinds)
        check_result(self, self.x.type)

    @classmethod
    def infer_types(cls, operand_types, attrs):
        return [operand_types[0]]


class ElementwiseBinary(Operation):
    """`op %lhs, %rhs : T`: the named operator on each pair of elements; operands and result
    share one type (the frontend inserts broadcasts and casts first)."""
    operand_specs = ("lhs", "rhs")
    num_results = 1
    traits = frozenset({PURE, ELEMENTWISE, SAME_LAYOUT})
    kinds = "fi"

    def verify(self) -> None:
        same_types(self, self.lhs.type, self.rhs.type)
        numeric_kinds(self, self.lhs.type, self.kinds)
        check_result(self, self.lhs.type)

    @classmethod
    def infer_types(cls, operand_types, attrs):
        return [operand_types[0]]
