"""Host tensors as kernels see them: dtype, shape and element strides of an argument, and
`PackedTensor` for sub-byte data packed the way global memory holds it (DESIGN.md section 3).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tilec.errors import LaunchError
from tilec.ir import packing
from tilec.ir.dtypes import DType, dtype as to_dtype, dtype_from_numpy

__all__ = ["PackedTensor", "pack", "unpack", "TensorInfo", "tensor_info", "contiguous_strides"]


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major element strides of `shape`."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


@dataclass(frozen=True, eq=False)
class PackedTensor:
    """A tensor of `dtype` packed into bytes: `data` is uint8 of shape
    (*shape[:-1], row_bytes), elements little-endian in bit order with each row byte aligned
    (what `tilec.ir.packing.pack` produces). The fields are fixed; a kernel that writes the
    tensor updates `data` in place."""

    data: np.ndarray
    dtype: DType
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "dtype", to_dtype(self.dtype))
        if not isinstance(self.data, np.ndarray) or self.data.dtype != np.uint8:
            raise LaunchError("PackedTensor data must be a uint8 numpy array")
        if not self.shape:
            raise LaunchError("PackedTensor needs at least one dimension")
        want = (*self.shape[:-1], self.row_bytes)
        if self.data.shape != want or not self.data.flags.c_contiguous:
            raise LaunchError(
                f"PackedTensor data of shape {self.data.shape} does not hold a {self.dtype} "
                f"tensor of shape {self.shape}", hint=f"expected contiguous uint8 of shape {want}")

    @property
    def row_bytes(self) -> int:
        """Bytes per row (the last axis), each row starting on a byte boundary."""
        return packing.packed_nbytes(self.shape[-1], self.dtype.itemsize_bits)

    @property
    def strides(self) -> tuple[int, ...]:
        """Element strides of the logical (unpacked) tensor, row-major."""
        return contiguous_strides(self.shape)

    def unpack(self) -> np.ndarray:
        return unpack(self)

    def __repr__(self) -> str:
        return f"PackedTensor({self.dtype}, shape={self.shape}, {self.data.nbytes} bytes)"


def pack(array, dtype: DType | str) -> PackedTensor:
    """Encode `array` (rounded or wrapped into `dtype`) and pack it row by row."""
    d = to_dtype(dtype)
    a = np.asarray(array)
    if a.ndim == 0:
        a = a.reshape(1)
    return PackedTensor(np.ascontiguousarray(packing.pack(a, d)), d, a.shape)


def unpack(packed: PackedTensor) -> np.ndarray:
    """The values of a PackedTensor, in its dtype's compute_dtype."""
    return packing.unpack(packed.data, packed.dtype, packed.shape)


@dataclass(frozen=True)
class TensorInfo:
    """What a kernel sees of a tensor argument. `strides` are in elements of the logical
    tensor; for a PackedTensor they are row-major and `row_bytes` is the packed row pitch."""

    dtype: DType
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    packed: bool = False
    row_bytes: int | None = None

    @property
    def contiguous(self) -> bool:
        return self.strides == contiguous_strides(self.shape) or math.prod(self.shape) <= 1


def tensor_info(arg) -> TensorInfo:
    """The tilec dtype, shape and element strides of a tensor argument (a numpy array of any
    numpy or ml_dtypes dtype, or a PackedTensor); LaunchError for anything else."""
    if isinstance(arg, PackedTensor):
        return TensorInfo(arg.dtype, arg.shape, arg.strides, True, arg.row_bytes)
    if not isinstance(arg, np.ndarray):
        raise LaunchError(f"expected a numpy array or a PackedTensor, got {type(arg).__name__}",
                          hint="on the CPU interpreter, tensors are numpy arrays")
    d = dtype_from_numpy(arg.dtype)
    size = arg.dtype.itemsize
    if any(s % size for s in arg.strides):
        raise LaunchError(f"array strides {arg.strides} are not multiples of its item size "
                          f"{size}", hint="pass a copy: np.ascontiguousarray(a)")
    return TensorInfo(d, tuple(arg.shape), tuple(s // size for s in arg.strides))
