"""Per-thread values and the index arithmetic a register layout implies.

A tile value in the lowering is the Python list of this thread's LLVM element values, in
layout-local order (local index 0 .. local_size - 1); a scalar (uniform) value is a list of
one. A tile coordinate splits into a thread part and a local part, because every mode of a
layout is read either from the thread index or from the local index:

    coord[d] = thread_part[d](thread) + local_part[d][local]

`thread_part` is computed once per function (in the entry block) by reading the thread
index in mixed radix over the layout's spatial entries; `local_part` is a compile-time
table (`RegisterLayout.map(0, local)`, the thread-0 coordinates).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from llvmlite import ir

from tilec.ir.dtypes import DType
from tilec.ir.layout import RegisterLayout
from tilec.ir.types import PointerType

if TYPE_CHECKING:
    from tilec.backends.llvm.lower import Lowering

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32 = ir.FloatType()


def i32(value: int) -> ir.Constant:
    return ir.Constant(I32, int(value))


def i64(value: int) -> ir.Constant:
    return ir.Constant(I64, int(value))


@dataclass(frozen=True)
class TensorValue:
    """A tensor argument as the kernel sees it: base address, sizes (i32), strides (i64;
    bits for packed dtypes, see `is_packed`; the last one a constant where the launch
    specialised on a contiguous last dim), and whether every row starts 16-byte aligned
    (the launch's `aligned` fact: `tilec.runtime.tensor.rows_aligned`)."""

    ptr: ir.Value
    sizes: tuple[ir.Value, ...]
    strides: tuple[ir.Value, ...]
    dtype: DType
    rows_aligned: bool = False


def local_parts(layout: RegisterLayout) -> np.ndarray:
    """[local_size, rank] compile-time local part of each local element's coordinate."""
    return layout.coords()[0]


@dataclass(frozen=True)
class _Mode:
    dim: int
    weight: int   # the coordinate step of one unit of this mode within its dim


def _modes(layout: RegisterLayout) -> list[_Mode]:
    out = []
    for d, sizes in enumerate(layout.modes):
        for i in range(len(sizes)):
            out.append(_Mode(d, math.prod(sizes[i + 1:])))
    return out


def _entry_sizes(layout: RegisterLayout) -> list[int]:
    flat = [s for sizes in layout.modes for s in sizes]
    return [-e if e < 0 else flat[e] for e in layout.spatial]


class LayoutIndex:
    """Thread-dependent index values of one layout, computed in the function's entry block."""

    def __init__(self, lowering: Lowering, layout: RegisterLayout):
        b = lowering.entry
        tid = lowering.thread_id
        modes = _modes(layout)
        sizes = _entry_sizes(layout)
        parts: list[ir.Value] = [i32(0)] * layout.rank
        replica_digits: list[ir.Value] = []
        digits: dict[int, ir.Value] = {}
        stride = 1
        for e, size in reversed(list(zip(layout.spatial, sizes))):
            q = tid if stride == 1 else b.udiv(tid, i32(stride))
            digit = q if stride * size >= lowering.num_threads else b.urem(q, i32(size))
            stride *= size
            if e < 0:
                replica_digits.append(digit)
                continue
            digits[e] = digit
            m = modes[e]
            term = digit if m.weight == 1 else b.mul(digit, i32(m.weight))
            parts[m.dim] = term if _is_zero(parts[m.dim]) else b.add(parts[m.dim], term)
        self.thread_part: list[ir.Value] = parts
        self.digits = digits
        replica0: ir.Value = ir.Constant(I1, 1)
        for digit in replica_digits:
            replica0 = b.and_(replica0, b.icmp_unsigned("==", digit, i32(0)))
        self.replica0 = replica0
        self.local_part = local_parts(layout)


def _is_zero(v: ir.Value) -> bool:
    return isinstance(v, ir.Constant) and v.constant == 0


def coord(b: ir.IRBuilder, index: LayoutIndex, local: int, dim: int) -> ir.Value:
    """The i32 coordinate along `dim` of this thread's `local`-th element."""
    c = int(index.local_part[local, dim])
    part = index.thread_part[dim]
    if c == 0:
        return part
    if _is_zero(part):
        return i32(c)
    return b.add(part, i32(c))


def element_type(element: DType | PointerType, llvm_type) -> ir.Type:
    """Register type of one element: `llvm_type(dtype)`, or a global pointer."""
    if isinstance(element, PointerType):
        return ir.PointerType(addrspace=1)
    return llvm_type(element)


def int_const(t: ir.IntType, value: int) -> ir.Constant:
    """An iN constant from a Python int of any sign (wrapped to N bits)."""
    return ir.Constant(t, int(value) & ((1 << t.width) - 1))
