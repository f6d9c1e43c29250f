"""numpy arrays of ml_dtypes' types (bfloat16, float8) are kernel arguments like any other."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tilec as tc


@tc.kernel
def double(X: tc.Tensor, Y: tc.Tensor, BLOCK: tc.constexpr):
    tc.store(Y, (0,), tc.load(X, (0,), (BLOCK,)).to(tc.float32) * 2)


@tc.kernel
def triple_into(X: tc.Tensor, Y: tc.Tensor, BLOCK: tc.constexpr):
    tc.store(Y, (0,), tc.load(X, (0,), (BLOCK,)) * 3)


@pytest.mark.parametrize("dtype", [ml_dtypes.bfloat16, ml_dtypes.float8_e5m2,
                                   ml_dtypes.float8_e4m3fn])
def test_read_ml_dtypes_array(dtype):
    x = (np.random.default_rng(0).standard_normal(16) * 4).astype(dtype)
    y = np.full(16, np.nan, np.float32)
    double[(1,)](x, y, BLOCK=16)
    np.testing.assert_array_equal(y, x.astype(np.float32) * 2)


def test_write_bfloat16_array_rounds_to_nearest_even():
    x = np.random.default_rng(1).standard_normal(32).astype(np.float32)
    y = np.full(32, np.nan, ml_dtypes.bfloat16)
    triple_into[(1,)](x, y, BLOCK=32)
    np.testing.assert_array_equal(y.astype(np.float32),
                                  (x * 3).astype(ml_dtypes.bfloat16).astype(np.float32))
