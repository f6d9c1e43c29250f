"""`math.unary`, `fma`, `maximum`, `minimum`: run on the host CPU through llvmlite's JIT and
compared with float64 numpy in ulps (the bounds below are the measured maxima, documented in
tilec/backends/llvm/math.py), exactly where the op is exact; and all assemble for sm_90a."""
from __future__ import annotations

import math

import numpy as np
import pytest
from llvm_jit import (HostJit, HostTarget, add_nvptx_kernel, build_array_function, emit_ptx,
                      nvptx_module, ptxas_path, run_ptxas)
from llvmlite import ir

from tilec.backends.llvm import math as lmath
from tilec.errors import CompileError
from tilec.ir import dtypes as dt
from tilec.ir import semantics
from tilec.ir.dtypes import DType

_erf = np.frompyfunc(math.erf, 1, 1)
REFERENCE = {
    "exp": np.exp, "exp2": np.exp2, "log": np.log, "log2": np.log2, "sqrt": np.sqrt,
    "rsqrt": lambda x: 1.0 / np.sqrt(x), "tanh": np.tanh,
    "erf": lambda x: np.asarray(_erf(x), np.float64), "sin": np.sin, "cos": np.cos,
    "floor": np.floor, "ceil": np.ceil, "abs": np.abs, "neg": np.negative,
}
EXACT = ("sqrt", "floor", "ceil", "abs", "neg")
# Measured maximum error in f32 ulps with the accurate host hooks (and with sloppy ones).
# Measured: exp 0.85, exp2 0.91, log 0.89, log2 1.12, rsqrt 0.5, tanh 1.26, erf 1.14,
# sin 1.45, cos 1.49 (|x| <= 1e5; both hook kinds).
ULP_BOUND = {"exp": 1.0, "exp2": 1.0, "log": 1.0, "log2": 1.5, "rsqrt": 1.0, "tanh": 1.5,
             "erf": 1.5, "sin": 1.5, "cos": 1.5}
SINCOS_ACCURATE = 1e5  # beyond it sin/cos are the target's approximations (math.py)


def f32_ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|got - want| in units of the f32 ulp at `want` (exact float64); specials must match."""
    got = got.astype(np.float64)
    with np.errstate(over="ignore"):
        want = np.where(np.isinf(want.astype(np.float32)), want.astype(np.float32), want)
    finite = np.isfinite(want)
    _, e = np.frexp(np.where(finite & (want != 0), want, 1.0))
    ulp = np.ldexp(1.0, np.maximum(e - 24, -149))
    with np.errstate(invalid="ignore"):
        err = np.abs(got - want) / ulp
    special_ok = (np.isnan(got) & np.isnan(want)) | (got == want)
    return np.where(finite, np.where(np.isfinite(got), err, np.inf),
                    np.where(special_ok, 0.0, np.inf))


def f32_inputs(name: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, 100_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 2.0**-149, 2.0**-126,
                         3.4028235e38, -3.4028235e38], np.float32)
    ranges = {"exp": (-104, 89), "exp2": (-151, 129), "log": (0, 4), "log2": (0, 4),
              "rsqrt": (0, 4), "tanh": (-10, 10), "erf": (-5, 5), "sin": (-100, 100),
              "cos": (-100, 100)}
    lo, hi = ranges.get(name, (-100, 100))
    parts = [bits, specials, rng.uniform(lo, hi, 100_000).astype(np.float32),
             (1.0 + rng.uniform(-1e-3, 1e-3, 20_000)).astype(np.float32)]
    if name in ("sin", "cos"):
        k = rng.integers(-20_000, 20_000, 20_000)
        parts += [(k * np.pi / 2).astype(np.float32), rng.uniform(-1e4, 1e4, 50_000)
                  .astype(np.float32), rng.uniform(-1e-3, 1e-3, 5_000).astype(np.float32)]
    if name in ("tanh", "erf"):
        parts += [rng.uniform(-1.2, 1.2, 50_000).astype(np.float32),
                  rng.uniform(-1e-4, 1e-4, 5_000).astype(np.float32)]
    if name in ("exp", "exp2"):  # the overflow and subnormal edges
        edge = 88.72284 if name == "exp" else 128.0
        low = -103.97 if name == "exp" else -149.0
        parts += [rng.uniform(edge - 0.01, edge + 0.01, 5_000).astype(np.float32),
                  rng.uniform(low - 2, low + 20, 20_000).astype(np.float32)]
    if name in ("log", "log2", "rsqrt"):
        parts += [np.abs(bits), np.array([2.0**-130, 1.0000001, 0.99999994], np.float32)]
    return np.concatenate(parts)


def patterns_of(x: np.ndarray, dtype: DType) -> np.ndarray:
    return dtype.encode(np.asarray(x, np.float64)) if dtype != dt.float32 else \
        x.astype(np.float32).view(np.uint32).astype(np.uint64)


@pytest.fixture(scope="module")
def jit() -> HostJit:
    return HostJit(opt=2)


def _compile_unary(jit: HostJit, dtype: DType, target, names, tag: str = "") -> None:
    module = ir.Module()
    for name in names:
        build_array_function(module, f"{name}_{dtype}{tag}", [dtype], dtype,
                             lambda b, v, name=name: lmath.unary(b, name, v[0], dtype, target))
    jit.add(module)


@pytest.mark.parametrize("sloppy", [False, True], ids=["hooks", "sloppy-hooks"])
def test_f32_accuracy(jit, sloppy):
    tag = "_sloppy" if sloppy else ""
    _compile_unary(jit, dt.float32, HostTarget(sloppy=sloppy), lmath.UNARY, tag)
    worst = {}
    for name in lmath.UNARY:
        x = f32_inputs(name)
        got = jit.run(f"{name}_f32{tag}", [patterns_of(x, dt.float32)], [dt.float32],
                      dt.float32).astype(np.uint32).view(np.float32)
        with np.errstate(all="ignore"):
            want = REFERENCE[name](x.astype(np.float64))
        if name in EXACT:
            exact = semantics.round_float(want, dt.float32)
            same = (got.view(np.uint32) == exact.view(np.uint32)) | (np.isnan(got)
                                                                     & np.isnan(exact))
            assert same.all(), (name, x[~same][:5], got[~same][:5], exact[~same][:5])
            continue
        ulps = f32_ulps(got, want)
        if name in ("sin", "cos"):
            far = np.abs(x) > SINCOS_ACCURATE
            assert (np.abs(got[far & np.isfinite(x)]) <= 1).all()
            ulps[far] = 0
        worst[name] = round(float(ulps.max()), 2)
        i = int(np.argmax(ulps))
        assert ulps.max() <= ULP_BOUND[name], (name, x[i], got[i], want[i], ulps.max())
    print("max f32 ulp error", "(sloppy hooks)" if sloppy else "", worst)


SMALL_FLOATS = [dt.float16, dt.bfloat16, dt.float8_e4m3, dt.float8_e5m2, dt.float6_e3m2,
                dt.float_(3, 4, bias=5, inf=True)]


def _ordinal(dtype: DType, p: np.ndarray) -> np.ndarray:
    """Patterns as integers ordered like their values (+0 and -0 both 0)."""
    sign = (p >> np.uint64(dtype.bits - 1)) & np.uint64(1)
    mag = (p & np.uint64((1 << (dtype.bits - 1)) - 1)).astype(np.int64)
    return np.where(sign == 1, -mag, mag)


@pytest.mark.parametrize("dtype", SMALL_FLOATS, ids=str)
def test_small_formats_exhaustive(jit, dtype):
    """Every pattern: exact ops bit-exact; the rest within 1 ulp of the format."""
    _compile_unary(jit, dtype, HostTarget(), lmath.UNARY)
    p = np.arange(1 << dtype.bits, dtype=np.uint64)
    x = dtype.decode(p).astype(np.float64)
    for name in lmath.UNARY:
        got = jit.run(f"{name}_{dtype}", [p], [dtype], dtype)
        with np.errstate(all="ignore"):
            want = dtype.encode(REFERENCE[name](x))
        nan_got, nan_want = np.isnan(dtype.decode(got)), np.isnan(dtype.decode(want))
        assert (nan_got == nan_want).all(), (name, x[nan_got != nan_want][:5])
        finite = ~nan_want
        if name in EXACT:
            same = got[finite] == want[finite]
            assert same.all(), (name, x[finite][~same][:5])
        else:
            off = np.abs(_ordinal(dtype, got[finite]) - _ordinal(dtype, want[finite]))
            assert off.max() <= 1, (name, x[finite][np.argmax(off)])


def test_f64_via_intrinsics(jit):
    _compile_unary(jit, dt.float64, HostTarget(), lmath.UNARY)
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-20, 20, 5000), rng.uniform(0, 100, 5000), [0.0, -0.0]])
    for name in lmath.UNARY:
        got = jit.run(f"{name}_f64", [x.view(np.uint64)], [dt.float64], dt.float64)
        got = got.view(np.float64)
        with np.errstate(all="ignore"):
            want = REFERENCE[name](x)
        close = np.isclose(got, want, rtol=4e-16, atol=0, equal_nan=True) | (got == want)
        assert close.all(), (name, x[~close][:3], got[~close][:3], want[~close][:3])


def _binary_inputs(dtype: DType, n: int = 4000) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(5)
    if dtype.bits <= 8:  # every pair
        p = np.arange(1 << dtype.bits, dtype=np.uint64)
        a, c = np.meshgrid(p, p)
        return a.ravel(), c.ravel(), rng.permutation(a.ravel())
    values = np.concatenate([rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n),
                             [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0]])
    patterns = [patterns_of(rng.permutation(values).astype(np.float32), dtype)
                for _ in range(3)]
    patterns[1][:7] = patterns[0][:7][::-1]  # equal, zero and NaN pairs both ways
    patterns[1][7:14] = patterns[0][7:14]
    return tuple(patterns)


def _run_binary(jit, dtype, name, fn, nargs):
    module = ir.Module()
    build_array_function(module, f"{name}_{dtype}", [dtype] * nargs, dtype,
                         lambda b, v: fn(b, *v, dtype))
    jit.add(module)
    return lambda *args: jit.run(f"{name}_{dtype}", list(args), [dtype] * nargs, dtype)


@pytest.mark.parametrize("dtype", [dt.float32, dt.float8_e4m3, dt.float6_e3m2, dt.float16,
                                   dt.bfloat16, dt.int8, dt.uint16], ids=str)
def test_maximum_minimum_exact(jit, dtype):
    if dtype.is_float:
        a, c, _ = _binary_inputs(dtype)
    else:
        rng = np.random.default_rng(2)
        a, c = (rng.integers(0, 1 << dtype.bits, 5000, dtype=np.uint64) for _ in range(2))
    for name, fn in (("max", lmath.maximum), ("min", lmath.minimum)):
        got = _run_binary(jit, dtype, name, fn, 2)(a, c)
        with np.errstate(all="ignore"):
            want = semantics.binary(name, dtype, dtype.decode(a), dtype.decode(c))
            want = dtype.encode(want)
        if dtype.is_float:
            nan = np.isnan(dtype.decode(want).astype(np.float64))
            assert (np.isnan(dtype.decode(got).astype(np.float64)) == nan).all(), name
            got, want = got[~nan], want[~nan]
        assert (got == want).all(), name


@pytest.mark.parametrize("dtype", [dt.float32, dt.float8_e4m3, dt.float8_e5m2,
                                   dt.float4_e2m1, dt.float_(3, 4, bias=5, inf=True)], ids=str)
def test_fma_exact(jit, dtype):
    a, c, d = _binary_inputs(dtype)
    got = _run_binary(jit, dtype, "fma", lambda b, x, y, z, t: lmath.fma(b, x, y, z, t), 3)(
        a, c, d)
    with np.errstate(all="ignore"):
        want = semantics._fma_exact(*(dtype.decode(v) for v in (a, c, d)), dtype)
        want = dtype.encode(want)
    nan = np.isnan(dtype.decode(want).astype(np.float64))
    assert (np.isnan(dtype.decode(got).astype(np.float64)) == nan).all()
    bad = got[~nan] != want[~nan]
    assert not bad.any(), [tuple(dtype.decode(v[~nan][bad][:3])) for v in (a, c, d)]


def test_errors():
    b = ir.IRBuilder(ir.Function(ir.Module(), ir.FunctionType(ir.VoidType(), []), "f")
                     .append_basic_block())
    x = ir.Constant(ir.IntType(32), 1)
    with pytest.raises(CompileError, match="needs a float"):
        lmath.unary(b, "exp", x, dt.int32, HostTarget())
    with pytest.raises(CompileError, match="no math lowering"):
        lmath.unary(b, "cbrt", x, dt.float32, HostTarget())
    true = ir.Constant(ir.IntType(1), 1)
    with pytest.raises(CompileError, match="bool"):
        lmath.unary(b, "neg", true, dt.bool_, HostTarget())
    with pytest.raises(CompileError, match="bool"):
        lmath.maximum(b, true, true, dt.bool_)


# ---- NVPTX ---------------------------------------------------------------------------------------

# f64 transcendentals become libm/libdevice calls, which the NVIDIA lowering links (math.py).
F64_ON_NVPTX = ("sqrt", "rsqrt", "floor", "ceil", "abs", "neg")


def test_math_assembles_for_sm_90a():
    from tilec.backends.nvidia.target import NvidiaTarget
    assert ptxas_path(), "ptxas is part of the test environment"
    target = NvidiaTarget("sm_90a")
    module = nvptx_module()
    for dtype in (dt.float32, dt.float16, dt.bfloat16, dt.float8_e4m3, dt.float64):
        names = F64_ON_NVPTX if dtype == dt.float64 else lmath.UNARY
        for name in names:
            for fast in (False, True):
                add_nvptx_kernel(module, f"{name}_{dtype}_{int(fast)}", [dtype], dtype,
                                 lambda b, v, name=name, dtype=dtype, fast=fast:
                                 lmath.unary(b, name, v[0], dtype, target, fast=fast))
        add_nvptx_kernel(module, f"fma_{dtype}", [dtype] * 3, dtype,
                         lambda b, v, dtype=dtype: lmath.fma(b, *v, dtype))
        add_nvptx_kernel(module, f"max_{dtype}", [dtype] * 2, dtype,
                         lambda b, v, dtype=dtype: lmath.maximum(b, *v, dtype))
        add_nvptx_kernel(module, f"min_{dtype}", [dtype] * 2, dtype,
                         lambda b, v, dtype=dtype: lmath.minimum(b, *v, dtype))
    ptx = emit_ptx(module)
    assert ".extern" not in ptx
    assert "fma.rn.f16" in ptx and "fma.rn.bf16" in ptx and "sqrt.rn.f32" in ptx
    assert "ex2.approx" in ptx and "rsqrt.approx" in ptx
    run_ptxas(ptx)
