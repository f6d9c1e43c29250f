"""How tilec element types (`DType`) are held in LLVM IR.

- bool -> `i1`; every int/uint -> `iN` with N = bits exactly (`i3`, `i17`: LLVM legalises
  odd widths). Signedness is not in the LLVM type: it lives in the DType, and the lowering
  picks `sdiv`/`udiv`, `sext`/`zext`, ... from it.
- f16 -> `half`, bf16 -> `bfloat`, f32 -> `float`, f64 -> `double`: the formats with native
  LLVM types (and GPU instructions).
- Every other float format (f8e4m3, f8e5m2, f6e3m2, f4e2m1, custom eEmM) is *storage-only*:
  its value is the `iN` bit pattern (N = bits); arithmetic decodes it into `compute_type`
  (f32, or f64 for formats f32 cannot hold exactly), computes there and encodes back
  (`casts.cast`).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from llvmlite.ir import types as _ir_types

from tilec.ir import dtypes as dt
from tilec.ir.dtypes import DType

__all__ = ["BFloatType", "llvm_type", "compute_type", "compute_dtype", "is_storage_only",
           "is_native_float", "constant", "float_constant"]


class BFloatType(_ir_types._BaseFloatType):
    """LLVM's `bfloat` (llvmlite 0.50 has no class for it). Constants print in LLVM's
    `0xR` + 4 hex digits form (LangRef, "Simple Constants"), which holds every bf16 value."""

    null = "0.0"
    intrinsic_name = "bf16"

    def __str__(self) -> str:
        return "bfloat"

    def format_constant(self, value) -> str:
        return "0xR%04X" % int(dt.bfloat16.encode(np.asarray(float(value)))[()])


BFloatType._create_instance()

_NATIVE = {"f16": ir.HalfType(), "bf16": BFloatType(), "f32": ir.FloatType(),
           "f64": ir.DoubleType()}


def is_native_float(dtype: DType) -> bool:
    """f16, bf16, f32 and f64: the float formats LLVM has a type for."""
    return dtype.is_float and dtype.name in _NATIVE


def is_storage_only(dtype: DType) -> bool:
    """Float formats held as their bit pattern (`iN`), computed on in `compute_type`."""
    return dtype.is_float and dtype.name not in _NATIVE


def llvm_type(dtype: DType) -> ir.Type:
    """The LLVM type of one value of `dtype` in registers (see the module docstring)."""
    if dtype.is_bool:
        return ir.IntType(1)
    if dtype.is_float:
        return _NATIVE.get(dtype.name) or ir.IntType(dtype.bits)
    return ir.IntType(dtype.bits)


def compute_dtype(dtype: DType) -> DType:
    """The dtype arithmetic on `dtype` is done in: f32 (or f64, for formats f32 cannot hold
    exactly) for storage-only floats; the dtype itself otherwise."""
    if not is_storage_only(dtype):
        return dtype
    return dt.float32 if dtype.compute_dtype == np.float32 else dt.float64


def compute_type(dtype: DType) -> ir.Type:
    """The LLVM type arithmetic on `dtype` is done in (`llvm_type(compute_dtype(dtype))`)."""
    return llvm_type(compute_dtype(dtype))


def constant(dtype: DType, value) -> ir.Constant:
    """The constant `value` of `dtype`, exactly as the cast op / `DType` rounds or wraps it:
    floats round to nearest even (storage-only floats as their pattern), ints wrap."""
    t = llvm_type(dtype)
    if dtype.is_bool:
        return ir.Constant(t, int(bool(value)))
    if dtype.is_int:
        return ir.Constant(t, int(dtype.encode(np.asarray(int(value)))[()]))
    pattern = int(dtype.encode(np.asarray(float(value)))[()])
    if is_storage_only(dtype):
        return ir.Constant(t, pattern)
    return float_constant(dtype, pattern)


def float_constant(dtype: DType, pattern: int) -> ir.Constant:
    """A native float constant given by its bit pattern (NaNs keep the pattern's class)."""
    t = llvm_type(dtype)
    value = float(dtype.decode(np.asarray(pattern, np.uint64))[()])
    return ir.Constant(t, float("nan") if np.isnan(value) else value)
