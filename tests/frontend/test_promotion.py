"""The promotion table of tilec.frontend.promotion, and the casts the frontend inserts."""
from __future__ import annotations

import pytest

import tilec as tc
from tilec.frontend import promotion as P
from tilec.ir import dtypes as dt
from tilec.ir.types import TileType


@pytest.mark.parametrize("a,b,want", [
    (dt.float16, dt.float16, dt.float16),
    (dt.float16, dt.float32, dt.float32),
    (dt.bfloat16, dt.float16, dt.float32),
    (dt.float32, dt.float64, dt.float64),
    (dt.int32, dt.float16, dt.float16),
    (dt.int64, dt.float32, dt.float32),
    (dt.int8, dt.int32, dt.int32),
    (dt.uint8, dt.int32, dt.int32),
    (dt.uint32, dt.int8, dt.uint32),
    (dt.int32, dt.uint32, dt.uint32),
    (dt.int64, dt.uint64, dt.uint64),
    (dt.bool_, dt.int16, dt.int16),
    (dt.bool_, dt.float16, dt.float16),
    (dt.bool_, dt.bool_, dt.bool_),
    (dt.int4, dt.int4, dt.int8),
    (dt.uint4, dt.int8, dt.uint8),
    (dt.uint(12), dt.int8, dt.uint16),
    (dt.float8_e4m3, dt.float8_e4m3, dt.float16),
    (dt.float8_e5m2, dt.float16, dt.float16),
    (dt.float8_e4m3, dt.bfloat16, dt.float32),
    (dt.float4_e2m1, dt.int32, dt.float16),
    (dt.float_(8, 10), dt.float16, dt.float32),   # 19-bit float with f32's range -> f32
])
def test_common_dtype(a, b, want):
    assert P.common_dtype(a, b) == want
    assert P.common_dtype(b, a) == want


@pytest.mark.parametrize("value,other,want", [
    (3, dt.int8, dt.int8),
    (300, dt.int8, dt.int32),
    (-1, dt.uint32, dt.int32),          # then common(u32, i32) = u32: -1 wraps, as in C
    (2**40, dt.int32, dt.int64),
    (3, dt.float16, dt.float16),
    (1.5, dt.float16, dt.float16),
    (1.5, dt.int32, dt.float32),
    (True, dt.int8, dt.int8),
    (2, dt.float8_e4m3, dt.float16),
])
def test_literal_dtype(value, other, want):
    assert P.literal_dtype(value, other) == want


def test_defaults_and_reductions():
    assert P.default_literal_dtype(1) == dt.int32
    assert P.default_literal_dtype(2**33) == dt.int64
    assert P.default_literal_dtype(2**63) == dt.uint64
    assert P.default_literal_dtype(1.0) == dt.float32
    assert P.default_literal_dtype(True) == dt.bool_
    assert P.reduction_dtype(dt.int8) == dt.int32
    assert P.reduction_dtype(dt.uint16) == dt.uint32
    assert P.reduction_dtype(dt.bool_) == dt.int32
    assert P.reduction_dtype(dt.float16) == dt.float16
    assert P.math_dtype(dt.int32) == dt.float32
    assert P.math_dtype(dt.float8_e5m2) == dt.float16


def _result_types(src_sig: str, kernel) -> dict[str, TileType]:
    m = kernel.compile(src_sig)
    return {op.results[0].name: op.results[0].type for op in m.walk()
            if op.results and op.results[0].name}


@tc.kernel
def mixed(A: tc.Tensor, B: tc.Tensor, C: tc.Tensor, BLOCK: tc.constexpr):
    a = tc.load(A, (0,), (BLOCK,))
    b = tc.load(B, (0,), (BLOCK,))
    c = tc.load(C, (0,), (BLOCK,))
    s1 = a + b
    s2 = a + 300
    s3 = a / 2
    s4 = a + 1.5
    s5 = c * c
    s6 = a < b
    s7 = tc.sum(a, axis=0)
    s8 = tc.exp(a)
    s9 = (a > 0) + (b > 0)
    tc.store(A, (0,), s1 + s2 + s3 + s4 + s5 + s6 + s7 + s8 + s9)


def test_frontend_inserts_promotions():
    t = _result_types("A: tensor<?xi8>, B: tensor<?xu8>, C: tensor<?xf8e4m3>, BLOCK=8", mixed)
    assert t["s1"].element == dt.uint8
    assert t["s2"].element == dt.int32
    assert t["s3"].element == dt.float32
    assert t["s4"].element == dt.float32
    assert t["s5"].element == dt.float16
    assert t["s6"].element == dt.bool_
    assert t["s7"].dtype == dt.int32
    assert t["s8"].element == dt.float32
    assert t["s9"].element == dt.int32
