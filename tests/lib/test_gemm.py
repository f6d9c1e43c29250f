"""tilec.lib.gemm on the CPU interpreter (numpy arrays), against numpy in float64. Outputs are
poisoned (NaN, or a sentinel for ints) before the call, so a tile left unwritten shows."""
from __future__ import annotations

import importlib
import math

import ml_dtypes
import numpy as np
import pytest

import tilec as tc
from tilec.lib import gemm
from tilec.lib.gemm import GemmConfig, pick_config

# `tilec.lib.gemm` is the function; the module is reached through sys.modules.
gemm_mod = importlib.import_module("tilec.lib.gemm")

M, N, K = 37, 29, 45
F8E4, F8E5, BF16 = ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2, ml_dtypes.bfloat16
_erf = np.vectorize(math.erf)


def act_ref(y: np.ndarray, act: str | None) -> np.ndarray:
    if act is None:
        return y
    if act == "relu":
        return np.maximum(y, 0)
    if act == "gelu":
        return 0.5 * y * (1 + _erf(y / math.sqrt(2)))
    if act == "gelu_tanh":
        return 0.5 * y * (1 + np.tanh(math.sqrt(2 / math.pi) * (y + 0.044715 * y ** 3)))
    if act == "silu":
        return y / (1 + np.exp(-y))
    raise AssertionError(act)


def ref(a, b, bias=None, act=None, scale=None) -> tuple[np.ndarray, np.ndarray]:
    """(exact result in float64, a bound on |terms| for the tolerance)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    y = a64 @ b64
    mag = np.abs(a64) @ np.abs(b64)
    if scale is not None:
        y, mag = y * scale, mag * abs(scale)
    if bias is not None:
        y = y + bias.astype(np.float64)
        mag = mag + np.abs(bias.astype(np.float64))
    return act_ref(y, act), mag


def poisoned(shape, dtype) -> np.ndarray:
    if np.dtype(dtype).kind in "iu":
        return np.full(shape, np.iinfo(dtype).min, dtype=dtype)
    return np.full(shape, np.nan, dtype=dtype)


def check(got: np.ndarray, want: np.ndarray, mag: np.ndarray, out_eps: float) -> None:
    got = got.astype(np.float64)
    assert not np.isnan(got).any(), "unwritten (NaN) outputs"
    # f32 accumulation over K terms, the f32 epilogue, then rounding to the output dtype.
    tol = (K + 8) * 2.0 ** -24 * mag + out_eps * np.abs(want) + 1e-6
    err = np.abs(got - want)
    assert (err <= tol).all(), f"max err {err.max()} at {np.unravel_index(err.argmax(), err.shape)}"


def rand(rng, shape, dtype) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


EPS = {np.float16: 2.0 ** -11, BF16: 2.0 ** -8, np.float32: 2.0 ** -24, F8E4: 2.0 ** -4,
       F8E5: 2.0 ** -3}


@pytest.mark.parametrize("dtype", [np.float16, BF16, np.float32])
def test_plain_default_out_dtype(dtype):
    rng = np.random.default_rng(1)
    a, b = rand(rng, (M, K), dtype), rand(rng, (K, N), dtype)
    c = gemm(a, b)
    assert c.dtype == np.dtype(dtype) and c.shape == (M, N)
    want, mag = ref(a, b)
    check(c, want, mag, EPS[dtype])


@pytest.mark.parametrize("act", [None, "relu", "gelu", "gelu_tanh", "silu"])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("scale", [None, -0.37])
def test_epilogues(act, with_bias, scale):
    rng = np.random.default_rng(2)
    a, b = rand(rng, (M, K), np.float16), rand(rng, (K, N), np.float16)
    bias = rand(rng, (N,), np.float32) if with_bias else None
    out = poisoned((M, N), np.float32)
    c = gemm(a, b, np.float32, bias=bias, activation=act, scale=scale, out=out)
    assert c is out
    want, mag = ref(a, b, bias, act, scale)
    check(c, want, mag, 2.0 ** -22)


def test_epilogue_f16_out_bf16_bias():
    rng = np.random.default_rng(3)
    a, b = rand(rng, (M, K), np.float16), rand(rng, (K, N), np.float16)
    bias = rand(rng, (N,), BF16)
    out = poisoned((M, N), np.float16)
    gemm(a, b, bias=bias, activation="gelu", scale=0.5, out=out)
    want, mag = ref(a, b, bias, "gelu", 0.5)
    check(out, want, mag, 2.0 ** -11)


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_transposed_inputs(ta, tb):
    rng = np.random.default_rng(4)
    a = rand(rng, (K, M), np.float16).T if ta else rand(rng, (M, K), np.float16)
    b = rand(rng, (N, K), np.float16).T if tb else rand(rng, (K, N), np.float16)
    assert a.flags.c_contiguous != ta and b.flags.c_contiguous != tb
    bias = rand(rng, (2 * N,), np.float32)[::2]  # a strided bias vector
    out = poisoned((N, M), np.float32).T  # a column-major output too
    gemm(a, b, out=out, bias=bias, activation="silu")
    want, mag = ref(a, b, bias, "silu")
    check(out, want, mag, 2.0 ** -22)


def test_transposed_f32_scaled():
    rng = np.random.default_rng(5)
    a = rand(rng, (K, M), np.float32).T
    b = rand(rng, (N, K), np.float32).T
    out = poisoned((N, M), np.float32).T
    gemm(a, b, out=out, scale=1.5)
    want, mag = ref(a, b, None, None, 1.5)
    check(out, want, mag, 2.0 ** -24)


def test_f32_exact_fma():
    """f32 inputs take the exact path (no tf32): error within f32 accumulation."""
    rng = np.random.default_rng(6)
    a, b = rand(rng, (M, K), np.float32), rand(rng, (K, N), np.float32)
    # Values that tf32 (10-bit mantissa) would visibly round.
    a += np.float32(2.0 ** -15)
    out = poisoned((M, N), np.float32)
    gemm(a, b, out=out)
    want, mag = ref(a, b)
    err = np.abs(out.astype(np.float64) - want)
    assert (err <= (K + 1) * 2.0 ** -24 * mag).all()


def test_int8_exact():
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, (M, K)).astype(np.int8)
    b = rng.integers(-128, 128, (N, K)).astype(np.int8).T  # column-major
    c = gemm(a, b)
    assert c.dtype == np.int32
    np.testing.assert_array_equal(c, a.astype(np.int64) @ b.astype(np.int64))


def test_int8_integer_epilogue():
    rng = np.random.default_rng(8)
    a = rng.integers(-128, 128, (M, K)).astype(np.int8)
    b = rng.integers(-128, 128, (K, N)).astype(np.int8)
    bias = rng.integers(-20000, 20000, N).astype(np.int32)
    out = poisoned((M, N), np.int32)
    gemm(a, b, bias=bias, activation="relu", out=out)
    np.testing.assert_array_equal(out, np.maximum(a.astype(np.int64) @ b + bias, 0))


def test_int8_scaled_rounds_to_int32():
    rng = np.random.default_rng(9)
    a = rng.integers(-128, 128, (M, K)).astype(np.int8)
    b = rng.integers(-128, 128, (K, N)).astype(np.int8)
    out = poisoned((M, N), np.int32)
    gemm(a, b, scale=0.37, out=out)
    want = a.astype(np.float64) @ b * 0.37
    # Rounded to nearest; the f32 epilogue may move a value within 1 ulp of a half.
    assert np.abs(out - want).max() <= 0.5 + 1e-3


@pytest.mark.parametrize("act", [None, "gelu"])
def test_int8_to_float_out(act):
    rng = np.random.default_rng(10)
    a = rng.integers(-128, 128, (M, K)).astype(np.int8)
    b = rng.integers(-128, 128, (K, N)).astype(np.int8)
    bias = rand(rng, (N,), np.float32)
    out = poisoned((M, N), np.float32)
    gemm(a, b, np.float32, bias=bias, activation=act, scale=1e-4, out=out)
    want, mag = ref(a, b, bias, act, 1e-4)
    check(out, want, mag, 2.0 ** -22)


@pytest.mark.parametrize("dtype", [F8E4, F8E5])
def test_fp8(dtype):
    rng = np.random.default_rng(11)
    a, b = rand(rng, (M, K), dtype), rand(rng, (K, N), dtype)
    out = poisoned((M, N), np.float32)
    gemm(a, b, out=out, scale=0.5, activation="relu")
    want, mag = ref(a, b, None, "relu", 0.5)
    check(out, want, mag, 2.0 ** -22)
    c = gemm(a, b)
    assert c.dtype == np.dtype(dtype)


@pytest.mark.parametrize("group_m", [1, 2])
def test_many_tiles_grouped_and_plain_order(group_m):
    """Several tiles in both directions (small tiles keep the interpreter quick), with the
    swizzled and the row-major program order."""
    rng = np.random.default_rng(12)
    m, n = 70, 53
    a, b = rand(rng, (m, K), np.float16), rand(rng, (K, n), np.float16)
    bias = rand(rng, (n,), np.float32)
    out = poisoned((m, n), np.float32)
    gemm(a, b, np.float32, bias=bias, out=out, config=GemmConfig(16, 16, 16, 4, 2, group_m))
    want, mag = ref(a, b, bias)
    check(out, want, mag, 2.0 ** -22)


def test_decode_shape():
    rng = np.random.default_rng(13)
    a, b = rand(rng, (3, 70), np.float16), rand(rng, (70, 100), np.float16)
    out = poisoned((3, 100), np.float16)
    gemm(a, b, out=out, activation="gelu_tanh")
    want, mag = ref(a, b, None, "gelu_tanh")
    global K
    k0, K = K, 70
    try:
        check(out, want, mag, 2.0 ** -11)
    finally:
        K = k0


def test_k_zero_gives_epilogue_of_zero():
    a, b = np.zeros((5, 0), np.float16), np.zeros((0, 7), np.float16)
    bias = np.arange(7, dtype=np.float32) - 3
    c = gemm(a, b, np.float32, bias=bias, activation="relu")
    np.testing.assert_array_equal(c, np.broadcast_to(np.maximum(bias, 0), (5, 7)))


def test_empty_output():
    c = gemm(np.zeros((0, 4), np.float16), np.zeros((4, 6), np.float16))
    assert c.shape == (0, 6)


def test_pick_config_table():
    assert pick_config(1, 4096, 4096) == GemmConfig(64, 64, 32, 4, 4)
    assert pick_config(16, 4096, 4096) == GemmConfig(64, 64, 32, 4, 4)
    assert pick_config(4096, 4096, 4096) == GemmConfig(128, 128, 32, 4, 4)
    assert pick_config(4096, 14336, 4096) == GemmConfig(128, 256, 64, 8, 3)
    assert pick_config(4096, 4096, 4096, itemsize=4).BK == 16


def test_exported():
    import tilec.lib
    assert tilec.lib.gemm is gemm


# --------------------------------------------------------------------------------------
# errors: LaunchErrors naming the argument, raised before any launch

class _NoLaunch:
    def __getitem__(self, grid):
        raise AssertionError("gemm launched a kernel for bad arguments")


@pytest.fixture
def no_launch(monkeypatch):
    monkeypatch.setattr(gemm_mod, "gemm_kernel", _NoLaunch())


f16 = np.float16


@pytest.mark.parametrize("args, kwargs, match", [
    ((np.zeros((4, 5), f16), np.zeros((6, 3), f16)), {},
     r"inner dimensions do not match: 'a' is 4x5 but 'b' is 6x3"),
    ((np.zeros((2, 4, 5), f16), np.zeros((5, 3), f16)), {}, r"'a' must be 2-D"),
    ((np.zeros((4, 5), f16), np.zeros(5, f16)), {}, r"'b' must be 2-D"),
    ((np.zeros((4, 5), np.float64), np.zeros((5, 3), np.float64)), {},
     r"'a' has unsupported dtype f64"),
    ((np.zeros((4, 5), np.int16), np.zeros((5, 3), np.int16)), {},
     r"'a' has unsupported dtype i16"),
    ((np.zeros((4, 5), f16), np.zeros((5, 3), BF16)), {},
     r"'a' and 'b' must have the same dtype, got f16 and bf16"),
    ((np.zeros((4, 5), f16), np.zeros((5, 3), f16)), {"bias": np.zeros(4, np.float32)},
     r"'bias' must be a vector of length N = 3, got shape \(4,\)"),
    ((np.zeros((4, 5), f16), np.zeros((5, 3), f16)), {"bias": np.zeros((1, 3), np.float32)},
     r"'bias' must be a vector of length N = 3"),
    ((np.zeros((4, 5), f16), np.zeros((5, 3), f16)), {"activation": "swish"},
     r"unknown activation 'swish'"),
    ((np.zeros((4, 5), f16), np.zeros((5, 3), f16)), {"scale": "2"},
     r"'scale' must be a Python number"),
    ((np.zeros((4, 5), f16), np.zeros((5, 3), f16)), {"out": np.zeros((3, 4), np.float32)},
     r"'out' must have shape \(4, 3\)"),
    ((np.zeros((4, 5), f16), np.zeros((5, 3), f16)), {"out": np.zeros((4, 3), np.float64)},
     r"unsupported 'out' dtype f64"),
    ((np.zeros((4, 5), f16), np.zeros((5, 3), f16), np.int32), {},
     r"unsupported 'out_dtype' dtype i32 for f16 inputs"),
    ((np.zeros((4, 5), f16), np.zeros((5, 3), f16), np.float32),
     {"out": np.zeros((4, 3), np.float16)}, r"'out' is f16 but out_dtype is f32"),
    (([[1.0]], np.zeros((1, 3), f16)), {}, r"'a' must be a tensor"),
])
def test_errors(no_launch, args, kwargs, match):
    with pytest.raises(tc.LaunchError, match=match) as info:
        gemm(*args, **kwargs)
    loc = info.value.loc  # the user's call, not the library's line
    assert loc is not None and loc.file == __file__ and loc.line == info.tb.tb_lineno
