"""Float math in LLVM IR: exp, exp2, log, log2, sqrt, rsqrt, tanh, erf, sin, cos, floor,
ceil, abs, neg (`unary`), and `fma`, `maximum`, `minimum`.

Accuracy (measured by tests/backends/llvm/test_math.py against float64 numpy/libm, in f32
ulps; "sloppy" = hooks with 3 low bits wrong, worse than PTX's `.approx` instructions):

    exact (bit-for-bit `semantics.py`): sqrt (correctly rounded, `llvm.sqrt` = `sqrt.rn`),
        floor, ceil, abs, neg, maximum, minimum, fma (f32, f64, storage-only formats that
        f32 holds)
    measured maxima: exp 0.85, exp2 0.91, log 0.89, log2 1.12, rsqrt 0.5, tanh 1.26,
    erf 1.14, sin 1.45, cos 1.49 ulp (sin/cos for |x| <= 1e5: Cody-Waite reduction only;
    beyond that they return the target's sin_approx/cos_approx, bounded but inaccurate).
    The same bounds hold with "sloppy" hooks: only rsqrt uses a hook, and it refines it.

Subnormal inputs and results are handled (scaling by powers of two around the hooks), which
assumes the function is not compiled with f32 flush-to-zero.

How: f32 exp/exp2/log/log2/sin/cos/tanh/erf are range reduction plus polynomials of our own
(near-minimax, fitted in float64 by weighted least squares with Lawson iterations; the fitted
relative error is given at each table), evaluated with `llvm.fma`; they do not use the
target's approx hooks, so every target computes the same bits. rsqrt refines the target's
`rsqrt_approx` with one Newton step on an exactly computed residual. `fast=True` maps exp2,
exp, log2, log, rsqrt, sin and cos straight to the hooks (PTX `ex2.approx` etc.) for kernels
that want speed over accuracy (softmax in attention).

f16, bf16 and storage-only formats compute in f32 (or f64 where f32 cannot hold the format)
and round once at the end: exact for sqrt/floor/ceil/abs/neg/max/min, within 1 ulp of the
format for the rest. f64 uses LLVM's intrinsics (`llvm.exp.f64`, ...) and libm's `erf`:
exact enough on the host, but NVPTX has no instruction for them, so the NVIDIA lowering must
route f64 transcendentals to libdevice (`__nv_exp`, ...) before ptxas; sqrt, rsqrt, floor,
ceil, abs, neg, fma, max and min of f64 need nothing.
"""
from __future__ import annotations

from typing import Callable, Sequence

from llvmlite import ir

from tilec.backends.llvm.casts import call_intrinsic, cast, from_compute, to_compute
from tilec.backends.llvm.dtypes import compute_dtype, is_storage_only
from tilec.errors import CompileError
from tilec.ir import dtypes as dt
from tilec.ir.dtypes import DType

__all__ = ["UNARY", "unary", "fma", "maximum", "minimum"]

F32 = ir.FloatType()
F64 = ir.DoubleType()
I32 = ir.IntType(32)

UNARY = ("exp", "exp2", "log", "log2", "sqrt", "rsqrt", "tanh", "erf", "sin", "cos", "floor",
         "ceil", "abs", "neg")


def _f(v: float) -> ir.Constant:
    return ir.Constant(F32, v)


def _i(v: int) -> ir.Constant:
    return ir.Constant(I32, v)


def _intr(b: ir.IRBuilder, name: str, *args: ir.Value) -> ir.Value:
    t = args[0].type
    return call_intrinsic(b, f"llvm.{name}.{t.intrinsic_name}", t, list(args))


def _fma(b, x, y, z):
    return _intr(b, "fma", x, y, z)


def _horner(b: ir.IRBuilder, x: ir.Value, coeffs: Sequence[float]) -> ir.Value:
    """c0 + x*(c1 + x*(c2 + ...)) with fma."""
    acc = _f(coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc = _fma(b, acc, x, _f(c))
    return acc


def _select_lt(b, x, limit: float, value: float | None = None):
    """x < limit ? (value or limit) : x; NaN passes through."""
    return b.select(b.fcmp_ordered("<", x, _f(limit)), _f(limit if value is None else value), x)


def _select_gt(b, x, limit: float):
    return b.select(b.fcmp_ordered(">", x, _f(limit)), _f(limit), x)


def _is_nan(b, x):
    return b.fcmp_unordered("uno", x, x)


def _pow2(b: ir.IRBuilder, n: ir.Value) -> ir.Value:
    """2**n as f32 for -126 <= n <= 127 (i32 n): the exponent field alone."""
    return b.bitcast(b.shl(b.add(n, _i(127)), _i(23)), F32)


def _scale(b: ir.IRBuilder, y: ir.Value, n: ir.Value) -> ir.Value:
    """y * 2**n for y in [0.5, 2] and -152 <= n <= 130, rounding once: two factors keep
    each in the normal range and the first product exact."""
    half = b.ashr(n, _i(1))
    return b.fmul(b.fmul(y, _pow2(b, half)), _pow2(b, b.sub(n, half)))


def _to_i32(b, x):
    return call_intrinsic(b, "llvm.fptosi.sat.i32.f32", I32, [x])


# Adding 1.5 * 2**23 to an f32 of magnitude below 2**22 rounds it to an integer (the ulp there
# is 1), and that integer is then the low bits of the sum: one add instead of a rint and a
# (saturating) conversion.
_ROUNDER = 12582912.0
_ROUNDER_BITS = 0x4B400000


def _split_int(b: ir.IRBuilder, s: ir.Value) -> tuple[ir.Value, ir.Value]:
    """For s = t + _ROUNDER (t's rounding done by that add or an fma): (rint(t) as f32,
    as i32). NaN s gives NaN and an unspecified int."""
    return b.fsub(s, _f(_ROUNDER)), b.sub(b.bitcast(s, I32), _i(_ROUNDER_BITS))


# ---- exp, exp2 ------------------------------------------------------------------------------

# 2**f = 1 + f*P(f) on [-1/2, 1/2]; fitted relative error 2^-28.9.
_EXP2 = (0.6931472, 0.24022648, 0.055503324, 0.009618437, 0.0013398875, 1.535336e-04)
# e**r = 1 + r + r^2*P(r) on [-ln2/2, ln2/2]; fitted relative error 2^-28.3.
_EXP = (0.49999994, 0.16666521, 0.04166839, 0.008368716, 0.00138146)
_LOG2E = 1.442695
_LN2_HI = 0.693145751953125      # 16 significant bits: n * _LN2_HI is exact for |n| < 2**8
_LN2_LO = 1.4286068203094173e-06  # ln 2 - _LN2_HI


def _exp2_f32(b: ir.IRBuilder, x: ir.Value, target) -> ir.Value:
    # Past 129 / below -151 the result is inf / 0 whatever the fraction: clamping keeps the
    # integer part in _scale's range.
    x = _select_lt(b, _select_gt(b, x, 129.0), -151.0)
    n, k = _split_int(b, b.fadd(x, _f(_ROUNDER)))
    f = b.fsub(x, n)  # exact, in [-1/2, 1/2]
    p = _fma(b, f, _horner(b, f, _EXP2), _f(1.0))
    return _scale(b, p, k)


def _exp_f32(b: ir.IRBuilder, x: ir.Value, target) -> ir.Value:
    x = _select_lt(b, _select_gt(b, x, 89.0), -104.5)
    n, k = _split_int(b, _fma(b, x, _f(_LOG2E), _f(_ROUNDER)))  # n = rint(x log2 e)
    # Cody-Waite: r = x - n ln2 in two steps (n*_LN2_HI is exact, the first fma exact).
    r = _fma(b, n, _f(-_LN2_HI), x)
    r = _fma(b, n, _f(-_LN2_LO), r)
    inner = _fma(b, r, _horner(b, r, _EXP), _f(1.0))
    p = _fma(b, r, inner, _f(1.0))
    return _scale(b, p, k)


# ---- log, log2 ------------------------------------------------------------------------------

# log(1+t) = t + t^2*R(t) on [sqrt(1/2)-1, sqrt(2)-1]; fitted relative error 2^-27.9.
_LOG1P = (-0.49999988, 0.33333325, -0.25001585, 0.20001985, -0.16609056, 0.14181633,
          -0.13242985, 0.12905516, -0.07623068)
# log2(1+t) = t*(log2(e) + t*L(t)) on the same interval; fitted relative error 2^-27.9.
_LOG2E_HI = 1.442695  # f32(log2 e) and the rest
_LOG2E_LO = 1.9259629911266175e-08
_LOG2 = (-0.72134733, 0.48089823, -0.3606966, 0.28856763, -0.23961803, 0.20459773,
         -0.19105588, 0.18618724, -0.109977625)
_SQRT_HALF_BITS = 0x3F3504F3  # f32 sqrt(1/2): m = x / 2**k lands in [sqrt(1/2), sqrt(2))


def _log_reduce(b: ir.IRBuilder, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    """x = 2**k * (1 + t) with t in [sqrt(1/2)-1, sqrt(2)-1]; returns (k as f32, t)."""
    tiny = b.fcmp_ordered("<", x, _f(2.0**-126))  # subnormal: make it normal first
    xs = b.select(tiny, b.fmul(x, _f(2.0**23)), x)
    bits = b.bitcast(xs, I32)
    k = b.ashr(b.sub(bits, _i(_SQRT_HALF_BITS)), _i(23))
    m = b.bitcast(b.sub(bits, b.shl(k, _i(23))), F32)
    t = b.fsub(m, _f(1.0))  # exact (Sterbenz)
    k = b.add(k, b.select(tiny, _i(-23), _i(0)))
    return b.sitofp(k, F32), t


def _log_specials(b: ir.IRBuilder, x: ir.Value, r: ir.Value) -> ir.Value:
    r = b.select(b.fcmp_ordered("==", x, _f(float("inf"))), x, r)
    r = b.select(b.fcmp_ordered("==", x, _f(0.0)), _f(float("-inf")), r)
    bad = b.fcmp_unordered("<", x, _f(0.0))  # negative or NaN
    return b.select(bad, _f(float("nan")), r)


def _log2_f32(b: ir.IRBuilder, x: ir.Value, target) -> ir.Value:
    k, t = _log_reduce(b, x)
    # t*log2(e) as head + exact tail (fma), so that it rounds only once into the result.
    head = b.fmul(t, _f(_LOG2E_HI))
    tail = _fma(b, t, _f(_LOG2E_HI), b.fneg(head))
    tail = _fma(b, b.fmul(t, t), _horner(b, t, _LOG2), _fma(b, t, _f(_LOG2E_LO), tail))
    return _log_specials(b, x, b.fadd(b.fadd(k, head), tail))


def _log_f32(b: ir.IRBuilder, x: ir.Value, target) -> ir.Value:
    k, t = _log_reduce(b, x)
    p = _fma(b, b.fmul(t, t), _horner(b, t, _LOG1P), t)
    r = _fma(b, k, _f(_LN2_HI), _fma(b, k, _f(_LN2_LO), p))
    return _log_specials(b, x, r)


# ---- sin, cos -------------------------------------------------------------------------------

# sin r = r + r^3*S(r^2), cos r = 1 - r^2/2 + r^4*C(r^2) on [-pi/4, pi/4]; fitted relative
# errors 2^-37.5 and 2^-42.9.
_SIN = (-0.16666667, 0.008333329, -1.9839313e-04, 2.7181216e-06)
_COS = (0.041666668, -0.0013888883, 2.479946e-05, -2.7205755e-07)
_TWO_OVER_PI = 0.63661975
# pi/2 as the sum of three f32 (Cody & Waite, "Software Manual for the Elementary
# Functions", 1980): q * each part is exact in the fma, so r is accurate while q * 2**-75
# stays below r's ulp, i.e. for |x| up to ~1e5. No Payne-Hanek beyond that.
_PIO2 = (1.5707964, -4.371139e-08, -1.7151245e-15)


def _sincos_f32(b: ir.IRBuilder, x: ir.Value, quadrant_offset: int) -> ir.Value:
    q = _intr(b, "rint", b.fmul(x, _f(_TWO_OVER_PI)))
    r = x
    for part in _PIO2:
        r = _fma(b, q, _f(-part), r)
    r2 = b.fmul(r, r)
    sin = _fma(b, b.fmul(r, r2), _horner(b, r2, _SIN), r)
    cos = _fma(b, r2, _fma(b, r2, _horner(b, r2, _COS), _f(-0.5)), _f(1.0))
    quadrant = b.add(_to_i32(b, q), _i(quadrant_offset))
    odd = b.icmp_unsigned("!=", b.and_(quadrant, _i(1)), _i(0))
    v = b.select(odd, cos, sin)
    negate = b.icmp_unsigned("!=", b.and_(quadrant, _i(2)), _i(0))
    return b.select(negate, b.fneg(v), v)


_SINCOS_LIMIT = 1.0e5  # beyond it the reduction is wrong; the hooks are at least bounded


def _sin_f32(b: ir.IRBuilder, x: ir.Value, target) -> ir.Value:
    # -0 - q*pi/2 with q = -0 gives +0: keep the sign of zero explicitly.
    r = b.select(b.fcmp_ordered("==", x, _f(0.0)), x, _sincos_f32(b, x, 0))
    far = b.fcmp_ordered(">", _intr(b, "fabs", x), _f(_SINCOS_LIMIT))
    return b.select(far, target.sin_approx(b, x), r)


def _cos_f32(b: ir.IRBuilder, x: ir.Value, target) -> ir.Value:
    far = b.fcmp_ordered(">", _intr(b, "fabs", x), _f(_SINCOS_LIMIT))
    return b.select(far, target.cos_approx(b, x), _sincos_f32(b, x, 1))


# ---- tanh, erf ------------------------------------------------------------------------------

# tanh x = x + x^3*T(x^2) on [0, 0.625]; fitted relative error 2^-32.6.
_TANH = (-0.3333333, 0.13333206, -0.053946763, 0.021700703, -0.008177398, 0.0021429614)
# erf x = x + x*E(x^2) on [0, 1]; fitted relative error 2^-29.6.
_ERF = (0.12837917, -0.37612626, 0.112835854, -0.026853817, 0.0051883343, -8.0102455e-04,
        7.8540186e-05)
# log2(erfc a) = P(a) on [1, 4]; fitted absolute error 2^-28.7. Past 3.92 erf rounds to 1.
_LOG2_ERFC = (3.6784224e-04, -1.6300676, -0.9127657, -0.15710951, 0.03662001, -0.00598959,
              5.1463064e-04, 2.4707551e-05, -1.2952412e-05, 1.4850283e-06, -6.320563e-08)


def _tanh_f32(b: ir.IRBuilder, x: ir.Value, target) -> ir.Value:
    a = _intr(b, "fabs", x)
    x2 = b.fmul(x, x)
    small = _fma(b, b.fmul(x, x2), _horner(b, x2, _TANH), x)
    # tanh a = 1 - 2/(e^(2a) + 1): no cancellation for a >= 0.625 (tanh >= 0.55).
    e = _exp_f32(b, b.fadd(a, a), target)
    large = b.fsub(_f(1.0), b.fdiv(_f(2.0), b.fadd(e, _f(1.0))))
    large = _intr(b, "copysign", large, x)
    return b.select(b.fcmp_ordered("<", a, _f(0.625)), small, large)


def _erf_f32(b: ir.IRBuilder, x: ir.Value, target) -> ir.Value:
    a = _intr(b, "fabs", x)
    small = _fma(b, x, _horner(b, b.fmul(x, x), _ERF), x)
    erfc = _exp2_f32(b, _horner(b, _select_gt(b, a, 4.0), _LOG2_ERFC), target)
    large = _intr(b, "copysign", b.fsub(_f(1.0), erfc), x)
    return b.select(b.fcmp_ordered("<", a, _f(1.0)), small, large)


# ---- sqrt, rsqrt ----------------------------------------------------------------------------


def _sqrt(b: ir.IRBuilder, x: ir.Value, target) -> ir.Value:
    return _intr(b, "sqrt", x)  # correctly rounded: NVPTX sqrt.rn.f32 / .f64


def _rsqrt_f32(b: ir.IRBuilder, x: ir.Value, target) -> ir.Value:
    # Scale x into [2**-64, 2**64] (exactly) so that y*y and its rounding error stay normal.
    tiny = b.fcmp_ordered("<", x, _f(2.0**-64))
    huge = b.fcmp_ordered(">", x, _f(2.0**64))
    xs = b.fmul(x, b.select(tiny, _f(2.0**64), b.select(huge, _f(2.0**-64), _f(1.0))))
    y = target.rsqrt_approx(b, xs)
    # One Newton step y += y*(1 - x*y^2)/2 with the residual computed exactly: y^2 = p + lo.
    p = b.fmul(y, y)
    lo = _fma(b, y, y, b.fneg(p))
    residual = _fma(b, b.fneg(xs), lo, _fma(b, b.fneg(xs), p, _f(1.0)))
    y = _fma(b, b.fmul(y, _f(0.5)), residual, y)
    y = b.fmul(y, b.select(tiny, _f(2.0**32), b.select(huge, _f(2.0**-32), _f(1.0))))
    y = b.select(b.fcmp_ordered("==", x, _f(float("inf"))), _f(0.0), y)
    y = b.select(b.fcmp_ordered("==", x, _f(0.0)),
                 _intr(b, "copysign", _f(float("inf")), x), y)  # 1/sqrt(-0) = -inf
    return b.select(b.fcmp_unordered("<", x, _f(0.0)), _f(float("nan")), y)


# ---- fast variants: the hooks alone ----------------------------------------------------------


def _fast(name: str) -> Callable:
    def exp(b, x, t):
        return t.exp2_approx(b, b.fmul(x, _f(_LOG2E)))

    def log(b, x, t):
        return b.fmul(t.log2_approx(b, x), _f(0.6931472))

    table = {"exp2": lambda b, x, t: t.exp2_approx(b, x), "exp": exp,
             "log2": lambda b, x, t: t.log2_approx(b, x), "log": log,
             "rsqrt": lambda b, x, t: t.rsqrt_approx(b, x),
             "sin": lambda b, x, t: t.sin_approx(b, x), "cos": lambda b, x, t: t.cos_approx(b, x)}
    return table.get(name) or _F32[name]


_F32: dict[str, Callable] = {
    "exp": _exp_f32, "exp2": _exp2_f32, "log": _log_f32, "log2": _log2_f32, "sqrt": _sqrt,
    "rsqrt": _rsqrt_f32, "tanh": _tanh_f32, "erf": _erf_f32, "sin": _sin_f32, "cos": _cos_f32,
    "floor": lambda b, x, t: _intr(b, "floor", x), "ceil": lambda b, x, t: _intr(b, "ceil", x),
}


def _f64(b: ir.IRBuilder, name: str, x: ir.Value) -> ir.Value:
    """f64 through LLVM's intrinsics (libm on the host; libdevice on NVIDIA, see module doc)."""
    if name == "rsqrt":
        return b.fdiv(ir.Constant(F64, 1.0), _intr(b, "sqrt", x))
    if name == "erf":  # no LLVM intrinsic: the C library's
        module = b.module
        fn = module.globals.get("erf") or ir.Function(module, ir.FunctionType(F64, [F64]), "erf")
        return b.call(fn, [x])
    return _intr(b, name, x)


# ---- public entry points ---------------------------------------------------------------------


def unary(b: ir.IRBuilder, name: str, value: ir.Value, dtype: DType, target,
          fast: bool = False) -> ir.Value:
    """The elementwise op `name` (one of `UNARY`) on `value` of `dtype`, same type out."""
    if name not in UNARY:
        raise CompileError(f"no math lowering for '{name}'", hint=f"one of {', '.join(UNARY)}")
    if name in ("abs", "neg"):
        return _sign_op(b, name, value, dtype)
    if not dtype.is_float:
        raise CompileError(f"'{name}' needs a float operand, got {dtype}")
    if dtype == dt.float64 or compute_dtype(dtype) == dt.float64:
        x = to_compute(b, value, dtype)
        return from_compute(b, _f64(b, name, x), dtype)
    # exp and exp2 of formats with at most 11 significant bits (f16, bf16, fp8, ...): the
    # hardware approximation's relative error (about 2**-22) is far below their half ulp
    # (2**-12 and coarser), so the accurate f32 polynomial would buy nothing but time.
    fast = fast or (name in ("exp", "exp2") and dtype.mantissa <= 10)
    fn = _fast(name) if fast else _F32[name]
    if dtype == dt.float32:
        return fn(b, value, target)
    x = cast(b, value, dtype, dt.float32)  # f16, bf16 and storage-only: exact
    return cast(b, fn(b, x, target), dt.float32, dtype)


def _sign_op(b: ir.IRBuilder, name: str, x: ir.Value, dtype: DType) -> ir.Value:
    if dtype.is_bool:
        raise CompileError(f"'{name}' is not defined on bool")
    if dtype.is_int:
        negated = b.sub(ir.Constant(x.type, 0), x)  # wraps, like semantics
        if name == "neg":
            return negated
        if dtype.kind == "uint":
            return x
        return b.select(b.icmp_signed("<", x, ir.Constant(x.type, 0)), negated, x)
    if is_storage_only(dtype):  # the sign bit; NaN patterns stay NaN in every encoding
        sign = ir.Constant(x.type, 1 << (dtype.bits - 1))
        if name == "neg":
            return b.xor(x, sign)
        return b.and_(x, ir.Constant(x.type, (1 << (dtype.bits - 1)) - 1))
    return b.fneg(x) if name == "neg" else _intr(b, "fabs", x)


def fma(b: ir.IRBuilder, x: ir.Value, y: ir.Value, z: ir.Value, dtype: DType,
        target=None) -> ir.Value:
    """x*y + z rounded once into `dtype`.

    f32/f64: `llvm.fma`. f16/bf16: `llvm.fma.f16/.bf16` (PTX `fma.rn.f16/.bf16`, exact;
    targets without them may round twice through f32). Storage-only formats that f32 holds:
    exact in f64 (the product is exact, the sum rounded to odd, then one rounding), as
    semantics.py does; wider storage-only formats round twice (f64 fma, then the format).
    """
    if not dtype.is_float:
        raise CompileError(f"fma needs float operands, got {dtype}")
    if not is_storage_only(dtype):
        return _intr(b, "fma", x, y, z)
    if compute_dtype(dtype) == dt.float64:
        return from_compute(b, _intr(b, "fma", *(to_compute(b, v, dtype) for v in (x, y, z))),
                            dtype)
    a, c, d = (cast(b, v, dtype, dt.float64) for v in (x, y, z))
    p = b.fmul(a, c)  # exact: both have <= 24 significant bits
    s = b.fadd(p, d)
    # TwoSum (Knuth): s + e == p + d exactly.
    bb = b.fsub(s, p)
    e = b.fadd(b.fsub(p, b.fsub(s, bb)), b.fsub(d, bb))
    # Round to odd: if inexact and s's last bit is even, step to the neighbour toward e.
    i64 = ir.IntType(64)
    bits = b.bitcast(s, i64)
    even = b.icmp_unsigned("==", b.and_(bits, ir.Constant(i64, 1)), ir.Constant(i64, 0))
    inexact = b.fcmp_ordered("!=", e, ir.Constant(F64, 0.0))  # false for NaN e (inf sums)
    away = b.icmp_unsigned("==", b.lshr(bits, ir.Constant(i64, 63)),
                           b.lshr(b.bitcast(e, i64), ir.Constant(i64, 63)))
    step = b.select(away, ir.Constant(i64, 1), ir.Constant(i64, -1))
    stepped = b.bitcast(b.add(bits, step), F64)
    s = b.select(b.and_(inexact, even), stepped, s)
    return cast(b, s, dt.float64, dtype)


def _minmax(b: ir.IRBuilder, x: ir.Value, y: ir.Value, dtype: DType, pred: str) -> ir.Value:
    if dtype.is_bool:
        raise CompileError("max/min are not defined on bool", hint="use or/and")
    if dtype.is_int:
        cmp = b.icmp_signed if dtype.kind == "int" else b.icmp_unsigned
        return b.select(cmp(pred, x, y), x, y)
    cx, cy = to_compute(b, x, dtype), to_compute(b, y, dtype)
    # numpy's maximum/minimum (semantics.py): NaN if either is NaN, else x if x > y (x < y)
    # else y, so max(-0, +0) is +0 and max(+0, -0) is -0. llvm.maximum orders the zeros
    # instead, and fmax/maxnum drop NaN.
    r = b.select(b.fcmp_ordered(pred, cx, cy), x, y)
    r = b.select(_is_nan(b, cy), y, r)
    return b.select(_is_nan(b, cx), x, r)


def maximum(b: ir.IRBuilder, x: ir.Value, y: ir.Value, dtype: DType) -> ir.Value:
    """The `max` op: NaN-propagating, as semantics.py (numpy) defines it."""
    return _minmax(b, x, y, dtype, ">")


def minimum(b: ir.IRBuilder, x: ir.Value, y: ir.Value, dtype: DType) -> ir.Value:
    """The `min` op: NaN-propagating, as semantics.py (numpy) defines it."""
    return _minmax(b, x, y, dtype, "<")
