"""Packing sub-byte tensors: hand-written byte patterns and a big-int reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilec.errors import DTypeError
from tilec.ir import dtypes as D
from tilec.ir.dtypes import float_, int_, uint
from tilec.ir.packing import pack, pack_bits, packed_nbytes, unpack, unpack_bits


def ref_pack_row(patterns: list[int], bits: int) -> list[int]:
    """Element i occupies bits [i*bits, (i+1)*bits) of a little-endian integer."""
    acc = 0
    for i, p in enumerate(patterns):
        acc |= (p & ((1 << bits) - 1)) << (i * bits)
    return list(acc.to_bytes(packed_nbytes(len(patterns), bits), "little"))


def test_hand_written_bytes():
    assert pack(np.array([1, 2, 3]), D.uint4).tolist() == [0x21, 0x03]
    # int3: 1 -> 001, -1 -> 111 at bits 3..5, 2 -> 010 at bits 6..8: 1 + 56 + 128 = 0xB9.
    assert pack(np.array([1, -1, 2]), D.int3).tolist() == [0xB9, 0x00]
    assert pack(np.array([1, 0, 1, 1, 0, 0, 0, 0, 1]), D.uint1).tolist() == [0x0D, 0x01]
    assert pack(np.array([[1, 2, 3], [4, 5, 6]]), D.uint4).tolist() == [[0x21, 0x03],
                                                                         [0x54, 0x06]]
    assert pack(np.array([[1, 2, 3], [4, 5, 6]]), D.uint4, row_aligned=False).tolist() == [
        0x21, 0x43, 0x65]
    assert pack(np.array([1.0, -6.0]), D.float4_e2m1).tolist() == [0xF2]
    assert pack(np.array([True, False, True]), D.bool_).tolist() == [1, 0, 1]
    assert pack(np.array([0x1234]), D.uint16).tolist() == [0x34, 0x12]
    assert pack(np.array([-2]), int_(12)).tolist() == [0xFE, 0x0F]


def test_unpack_hand_written():
    assert unpack(np.array([0xB9, 0x00], np.uint8), D.int3, (3,)).tolist() == [1, -1, 2]
    assert unpack(np.array([0x21, 0x43, 0x65], np.uint8), D.uint4, (2, 3),
                  row_aligned=False).tolist() == [[1, 2, 3], [4, 5, 6]]
    assert unpack(np.array([0xF2], np.uint8), D.float4_e2m1, (2,)).tolist() == [1.0, -6.0]


WIDTHS = list(range(1, 9)) + [12, 16, 24, 33, 63, 64]


@settings(max_examples=150, deadline=None)
@given(data=st.data(), bits=st.sampled_from(WIDTHS), count=st.integers(0, 41))
def test_pack_bits_matches_reference(data, bits, count):
    patterns = data.draw(st.lists(st.integers(0, 2**bits - 1), min_size=count, max_size=count))
    buf = pack_bits(np.array(patterns, np.uint64), bits)
    assert buf.dtype == np.uint8 and buf.tolist() == ref_pack_row(patterns, bits)
    assert unpack_bits(buf, bits, count).tolist() == patterns


@settings(max_examples=100, deadline=None)
@given(data=st.data(), bits=st.sampled_from(WIDTHS), signed=st.booleans(),
       shape=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 17)))
def test_pack_unpack_round_trip_nd(data, bits, signed, shape):
    d = int_(bits) if signed else uint(bits)
    flat = data.draw(st.lists(st.integers(d.min, d.max), min_size=int(np.prod(shape)),
                              max_size=int(np.prod(shape))))
    values = np.array(flat, dtype=d.compute_dtype).reshape(shape)
    buf = pack(values, d)
    assert buf.shape == (*shape[:-1], packed_nbytes(shape[-1], bits))
    rows = [ref_pack_row([int(p) for p in d.encode(r)], bits)
            for r in values.reshape(-1, shape[-1])]
    assert buf.reshape(len(rows), -1).tolist() == rows
    out = unpack(buf, d, shape)
    assert out.dtype == d.compute_dtype and np.array_equal(out, values)
    flat_buf = pack(values, d, row_aligned=False)
    assert np.array_equal(unpack(flat_buf, d, shape, row_aligned=False), values)


@pytest.mark.parametrize("d", [D.float6_e3m2, D.float4_e2m1, D.float8_e4m3, float_(3, 3),
                               D.bfloat16, D.bool_], ids=str)
def test_float_and_bool_round_trip(d):
    patterns = np.arange(1 << d.bits, dtype=np.uint64)
    values = d.decode(patterns)
    if d.is_float:
        values = values[~np.isnan(values)]
    values = values[: 3 * (len(values) // 3) - 1].reshape(1, -1)  # odd length
    out = unpack(pack(values, d), d, values.shape)
    assert np.array_equal(out, values) and np.array_equal(np.signbit(out), np.signbit(values))


def test_shapes_and_errors():
    assert pack(np.zeros((2, 3, 5), np.int64), D.uint4).shape == (2, 3, 3)
    assert pack(np.int64(5), D.uint4).tolist() == [5]
    assert unpack(np.array([5], np.uint8), D.uint4, ()).tolist() == 5
    assert pack(np.zeros((2, 0)), D.uint4).shape == (2, 0)
    with pytest.raises(DTypeError, match="does not hold"):
        unpack(np.zeros(3, np.uint8), D.uint4, (2, 3))
    with pytest.raises(DTypeError):
        unpack(np.zeros(4, np.int32), D.uint4, (2, 3))
    with pytest.raises(DTypeError):
        pack_bits(np.zeros(3, np.uint64), 65)
