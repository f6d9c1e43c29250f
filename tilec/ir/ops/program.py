"""The program instance and its arguments: grid position, tensor metadata, debugging."""
from __future__ import annotations

from tilec.ir import dtypes as dt
from tilec.ir.core import Attr, Operation, Trait
from tilec.ir.ops.base import PURE, check_result
from tilec.ir.types import PointerType, ScalarType, TensorType, dtype_of

_I32 = ScalarType(dt.int32)


class _GridQuery(Operation):
    attr_specs = {"axis": Attr(int, choices=(0, 1, 2))}
    num_results = 1
    traits = frozenset({PURE})

    def verify(self) -> None:
        check_result(self, _I32)

    @classmethod
    def infer_types(cls, operand_types, attrs):
        return [_I32]


class ProgramId(_GridQuery):
    """This program instance's index along a grid axis."""
    name = "program_id"


class NumPrograms(_GridQuery):
    """The grid's size along an axis."""
    name = "num_programs"


class _TensorQuery(Operation):
    operand_specs = ("tensor",)
    attr_specs = {"axis": Attr(int)}
    num_results = 1
    traits = frozenset({PURE})

    def verify(self) -> None:
        t = self.tensor.type
        if not isinstance(t, TensorType):
            raise self.error(f"operand must be a tensor, got {t}")
        if not 0 <= self.axis < t.rank:
            raise self.error(f"axis {self.axis} is out of range for {t}")
        check_result(self, _I32)

    @classmethod
    def infer_types(cls, operand_types, attrs):
        return [_I32]


class TensorDim(_TensorQuery):
    """A tensor argument's size along `axis`."""
    name = "tensor_dim"


class TensorStride(_TensorQuery):
    """A tensor argument's stride along `axis`, in elements."""
    name = "tensor_stride"


class TensorPtr(Operation):
    """A tensor argument's base address (`A.ptr` in the DSL)."""
    name = "tensor_ptr"
    operand_specs = ("tensor",)
    num_results = 1
    traits = frozenset({PURE})

    def verify(self) -> None:
        t = self.tensor.type
        if not isinstance(t, TensorType):
            raise self.error(f"operand must be a tensor, got {t}")
        check_result(self, PointerType(t.dtype))

    @classmethod
    def infer_types(cls, operand_types, attrs):
        return [PointerType(operand_types[0].dtype)]


class Print(Operation):
    """Print values from every program instance (and, on a GPU, every thread's elements)."""
    name = "print"
    operand_specs = ("values*",)
    attr_specs = {"prefix": Attr(str, "")}
    traits = frozenset({Trait.WRITES_MEMORY})


class Assert(Operation):
    """Stop with `message` if any element of `cond` is false."""
    name = "assert"
    operand_specs = ("cond",)
    attr_specs = {"message": Attr(str, "assertion failed")}
    traits = frozenset({Trait.WRITES_MEMORY})

    def verify(self) -> None:
        if dtype_of(self.cond.type) != dt.bool_:
            raise self.error(f"condition must be bool, got {self.cond.type}")
