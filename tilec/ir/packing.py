"""Host-side packing of tensors into the bytes global memory holds (DESIGN.md section 3).

Elements are packed with no padding between them, in little-endian bit order: element i of a
row occupies bits [i*w, (i+1)*w) of the row, where bit 0 is the least significant bit of
byte 0 and w is the element's `itemsize_bits`. By default each row (the last axis) starts on
a byte boundary; with ``row_aligned=False`` the whole tensor is one bit stream.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from tilec.errors import DTypeError

if TYPE_CHECKING:
    from tilec.ir.dtypes import DType

_U64 = np.uint64


def packed_nbytes(count: int, bits: int) -> int:
    """Bytes that `count` elements of `bits` bits take, packed."""
    return (count * bits + 7) // 8


def _check_bits(bits: int) -> None:
    if not 1 <= bits <= 64:
        raise DTypeError(f"element width must be 1..64 bits, got {bits}")


def _pack_rows(patterns: np.ndarray, bits: int) -> np.ndarray:
    """(rows, n) uint64 patterns -> (rows, packed_nbytes(n, bits)) uint8."""
    rows, n = patterns.shape
    if bits in (8, 16, 32, 64):
        return patterns.astype(f"<u{bits // 8}").view(np.uint8).reshape(rows, n * bits // 8)
    shifts = np.arange(bits, dtype=_U64)
    bit_matrix = ((patterns[:, :, None] >> shifts) & _U64(1)).astype(np.uint8)
    # packbits pads the last byte of each row with zero bits.
    return np.packbits(bit_matrix.reshape(rows, n * bits), axis=-1, bitorder="little")


def _unpack_rows(buf: np.ndarray, bits: int, n: int) -> np.ndarray:
    """(rows, nbytes) uint8 -> (rows, n) uint64 patterns."""
    rows = buf.shape[0]
    if bits in (8, 16, 32, 64):
        width = bits // 8
        return buf[:, : n * width].copy().view(f"<u{width}").astype(_U64).reshape(rows, n)
    bit_matrix = np.unpackbits(buf, axis=-1, bitorder="little")[:, : n * bits]
    element_bytes = (bits + 7) // 8
    padded = np.zeros((rows, n, element_bytes * 8), np.uint8)
    padded[:, :, :bits] = bit_matrix.reshape(rows, n, bits)
    as_bytes = np.zeros((rows, n, 8), np.uint8)
    as_bytes[:, :, :element_bytes] = np.packbits(padded, axis=-1, bitorder="little")
    return as_bytes.view("<u8").astype(_U64).reshape(rows, n)


def pack_bits(patterns, bits: int) -> np.ndarray:
    """Pack a 1-D array of bit patterns (low `bits` bits of each) into uint8 bytes."""
    _check_bits(bits)
    p = np.asarray(patterns).astype(_U64).reshape(1, -1) & _U64((1 << bits) - 1)
    return _pack_rows(p, bits).reshape(-1)


def unpack_bits(buf, bits: int, count: int) -> np.ndarray:
    """The first `count` patterns of `bits` bits packed in `buf`, as a 1-D uint64 array."""
    _check_bits(bits)
    b = np.asarray(buf, dtype=np.uint8).reshape(-1)
    if b.size < packed_nbytes(count, bits):
        raise DTypeError(f"{b.size} bytes hold fewer than {count} elements of {bits} bits")
    return _unpack_rows(b.reshape(1, -1), bits, count).reshape(-1)


def pack(values, dtype: DType, *, row_aligned: bool = True) -> np.ndarray:
    """Encode `values` as `dtype` and pack them: shape (*shape[:-1], ceil(shape[-1]*w/8))."""
    v = np.asarray(values)
    shape = v.shape if v.ndim else (1,)
    bits = dtype.itemsize_bits
    patterns = dtype.encode(v).reshape(shape)
    if not row_aligned:
        return pack_bits(patterns.reshape(-1), bits)
    rows = math.prod(shape[:-1])
    packed = _pack_rows(patterns.reshape(rows, shape[-1]), bits)
    return packed.reshape(*shape[:-1], packed.shape[-1])


def unpack(buf, dtype: DType, shape, *, row_aligned: bool = True) -> np.ndarray:
    """Inverse of `pack`: values of `dtype` (in its compute_dtype) with the given shape."""
    shape = tuple(int(s) for s in shape)
    row_shape = shape if shape else (1,)
    bits = dtype.itemsize_bits
    b = np.asarray(buf)
    if b.dtype != np.uint8:
        raise DTypeError(f"packed buffers are uint8, got {b.dtype}")
    if row_aligned:
        rows = math.prod(row_shape[:-1])
        row_bytes = packed_nbytes(row_shape[-1], bits)
        expected = rows * row_bytes
    else:
        expected = packed_nbytes(math.prod(row_shape), bits)
    if b.size != expected:
        raise DTypeError(
            f"buffer of {b.size} bytes does not hold a {dtype.name} tensor of shape {shape}",
            hint=f"expected {expected} bytes" + (" (each row byte aligned)" if row_aligned else ""),
        )
    if row_aligned:
        patterns = _unpack_rows(b.reshape(rows, row_bytes), bits, row_shape[-1])
    else:
        patterns = unpack_bits(b, bits, math.prod(row_shape))
    return dtype.decode(patterns).reshape(shape)
