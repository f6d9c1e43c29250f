"""How a kernel's IR arguments become machine-level parameters (the launch ABI).

The lowering declares the LLVM function with exactly these parameters, in this order, and
the launcher packs exactly these values; both read this one list.

- `tensor<RxT>`: the base address (a global pointer), then R sizes (i32), then R strides
  (i64). Strides count elements, except for packed dtypes (`is_packed`: widths other than
  8, 16, 32 and 64 bits), where they count bits: rows of packed tensors start on byte
  boundaries, so a row of a 3-bit or 12-bit tensor is not a whole number of elements.
- scalar ints: i32 when 32 bits or narrower (sign- or zero-extended), i64 otherwise.
- scalar floats: f32 for every float of 32 bits or fewer (the kernel rounds back exactly,
  since the value came from that dtype), f64 for f64.
- bool: i32 (0 or 1).
- `ptr<T>`: a global pointer.
"""
from __future__ import annotations

from dataclasses import dataclass

from tilec.ir.core import Function
from tilec.ir.dtypes import DType
from tilec.ir.types import PointerType, ScalarType, TensorType

# Machine types of parameters, as LLVM names them; the launcher maps them to ctypes.
POINTER = "ptr"
I32 = "i32"
I64 = "i64"
F32 = "float"
F64 = "double"


@dataclass(frozen=True)
class Param:
    """One machine parameter: which IR argument it comes from and which part of it."""

    arg: int          # index of the IR function argument
    part: str         # "value", "ptr", "size" or "stride"
    dim: int          # the dimension for "size"/"stride", else 0
    machine: str      # POINTER, I32, I64, F32 or F64
    name: str         # for messages and the LLVM parameter name


def is_packed(dtype: DType) -> bool:
    """Tensors of `dtype` are packed bit streams with byte-aligned rows; strides count bits."""
    return dtype.storage_dtype is None


def stride_bits(dtype: DType) -> int:
    """Bits in one unit of a tensor of `dtype`'s ABI strides: 1 for packed dtypes, else the
    element's storage size."""
    return 1 if is_packed(dtype) else dtype.itemsize_bits


def scalar_machine_type(dtype: DType) -> str:
    if dtype.is_float:
        return F64 if dtype.bits > 32 else F32
    if dtype.is_bool:
        return I32
    return I64 if dtype.bits > 32 else I32


def kernel_params(fn: Function) -> list[Param]:
    """The machine parameters of kernel `fn`, in order."""
    params: list[Param] = []
    for i, arg in enumerate(fn.args):
        base = arg.name or f"arg{i}"
        t = arg.type
        if isinstance(t, TensorType):
            params.append(Param(i, "ptr", 0, POINTER, f"{base}.ptr"))
            params.extend(Param(i, "size", d, I32, f"{base}.size{d}") for d in range(t.rank))
            params.extend(Param(i, "stride", d, I64, f"{base}.stride{d}") for d in range(t.rank))
        elif isinstance(t, PointerType):
            params.append(Param(i, "value", 0, POINTER, base))
        elif isinstance(t, ScalarType):
            params.append(Param(i, "value", 0, scalar_machine_type(t.dtype), base))
        else:
            raise TypeError(f"kernel argument {base} of type {t} cannot be passed to a kernel")
    return params
