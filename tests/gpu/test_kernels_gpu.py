"""Differential tests on the GPU: each DSL kernel runs on the GPU (torch CUDA tensors), on the
CPU interpreter (numpy; the semantic oracle) and, where torch has the operation, as a torch
reference in float64 / int64.

The GPU must match the interpreter bit for bit for integer and bit operations, casts,
floor/ceil/abs/max/min/where and the correctly rounded float operations (+ - *), and within
per-dtype bounds (a few units in the last place) for division, square roots, fma in 16-bit
formats and the transcendental functions; it must match the torch reference within the same
bounds.

Every GPU launch runs twice with differently poisoned outputs (NaN or 0xA5 bytes, then 0x5A
bytes): an element the kernel did not write keeps its poison, and cannot equal the oracle in
both runs. Inputs are random and never all zero. Kernels take their dtypes from their
arguments, so one kernel serves every dtype of a parametrisation (compile time dominates).

Run with `pytest -m gpu tests/gpu` on a machine with an NVIDIA GPU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

import tilec as tc
from tilec.ir import packing

torch = pytest.importorskip("torch")
ml_dtypes = pytest.importorskip("ml_dtypes")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

RNG = np.random.default_rng(2024)

# numpy (ml_dtypes) <-> torch dtypes that have no shared name.
_ML = {"bfloat16": (ml_dtypes.bfloat16, torch.bfloat16, np.int16),
       "float8_e4m3fn": (ml_dtypes.float8_e4m3fn, torch.float8_e4m3fn, np.uint8),
       "float8_e5m2": (ml_dtypes.float8_e5m2, torch.float8_e5m2, np.uint8)}


# ---- running one kernel three ways ------------------------------------------------------

@dataclass
class Out:
    """An output argument: a tensor of `shape` and numpy `dtype` (or a tilec sub-byte dtype,
    which becomes a PackedTensor), poisoned before every launch."""

    shape: tuple
    dtype: object


def _float_like(npdt) -> bool:
    return np.dtype(npdt).kind == "f" or np.dtype(npdt).name in _ML


def _host_out(o: Out, poison: int | None):
    """A poisoned host output: with poison None, NaN for floats and 0xA5 bytes otherwise;
    else every byte `poison`. Sub-byte dtypes become PackedTensors of poisoned bytes."""
    byte = 0xA5 if poison is None else poison
    if isinstance(o.dtype, tc.DType):
        row = packing.packed_nbytes(o.shape[-1], o.dtype.bits)
        return tc.PackedTensor(np.full((*o.shape[:-1], row), byte, np.uint8), o.dtype, o.shape)
    a = np.empty(o.shape, o.dtype)
    if poison is None and _float_like(o.dtype):
        a[...] = np.nan
    else:
        a.view(np.uint8)[...] = byte
    return a


# float8 arrays travel to the GPU as 8-bit PackedTensors of their bytes: torch float8 CUDA
# tensors cannot be launch arguments yet (test_torch_float8_tensor_argument).
_F8 = {"float8_e4m3fn": tc.float8_e4m3, "float8_e5m2": tc.float8_e5m2}
_F8_NP = {tc.float8_e4m3: ml_dtypes.float8_e4m3fn, tc.float8_e5m2: ml_dtypes.float8_e5m2}


def to_gpu(x):
    if isinstance(x, tc.PackedTensor):
        return tc.PackedTensor(torch.from_numpy(np.array(x.data)).cuda(), x.dtype, x.shape)
    if isinstance(x, np.ndarray):
        if x.dtype.name in _F8:
            data = torch.from_numpy(np.ascontiguousarray(x).view(np.uint8).copy()).cuda()
            return tc.PackedTensor(data, _F8[x.dtype.name], x.shape)
        if x.dtype.name in _ML:
            _, tdt, bits = _ML[x.dtype.name]
            return torch.from_numpy(x.view(bits).copy()).cuda().view(tdt)
        return torch.from_numpy(x.copy()).cuda()
    return x


def to_numpy(x):
    if isinstance(x, tc.PackedTensor) and x.dtype in _F8_NP:
        return x.data.cpu().numpy().view(_F8_NP[x.dtype])
    if isinstance(x, tc.PackedTensor):
        return tc.PackedTensor(x.data.cpu().numpy(), x.dtype, x.shape)
    if isinstance(x, torch.Tensor):
        for npdt, tdt, bits in _ML.values():
            if x.dtype == tdt:
                return x.view(getattr(torch, np.dtype(bits).name)).cpu().numpy().view(npdt)
        return x.cpu().numpy()
    return x


class _MlDtypesHost(np.ndarray):
    """An ml_dtypes (bfloat16, float8) numpy array whose `.data` is absent rather than raising
    ValueError. Works around a frontend bug (reported): `Kernel._tensor_spec` evaluates
    `hasattr(arr, "data")`, and for such arrays numpy raises ValueError ("cannot include dtype
    'E' in a buffer") instead of AttributeError, so `kernel[grid](bf16_numpy_array)` fails on
    the interpreter."""

    @property
    def data(self):
        raise AttributeError("data")


def _host(x):
    """x as the interpreter can take it, working around two reported interpreter bugs."""
    if isinstance(x, np.ndarray) and x.dtype.name == "float8_e5m2":
        # The interpreter's binding (`np.lib.stride_tricks.as_strided`) fails on float8_e5m2
        # arrays: numpy cannot read back their typestr '<f1'. The same bytes as an 8-bit
        # PackedTensor bind fine.
        return tc.PackedTensor(np.ascontiguousarray(x).view(np.uint8), tc.float8_e5m2, x.shape)
    if isinstance(x, np.ndarray) and x.dtype.name in _ML:
        return x.view(_MlDtypesHost)
    return x


def _unhost(h):
    if isinstance(h, _MlDtypesHost):
        return np.asarray(h)
    if isinstance(h, tc.PackedTensor) and h.dtype == tc.float8_e5m2:
        return np.asarray(h.data).view(ml_dtypes.float8_e5m2)
    return h


def run_both(kernel, grid, args: list, **consts):
    """Launch `kernel` on the interpreter and twice on the GPU (two poisons). Returns, for
    each Out in args, (interpreter result, [gpu result with poison 1, with poison 2]), as numpy
    arrays or host PackedTensors."""
    outs = [i for i, a in enumerate(args) if isinstance(a, Out)]
    host = [_host(_host_out(a, None) if isinstance(a, Out) else a) for a in args]
    kernel[grid](*host, **consts)
    host = [_unhost(h) for h in host]
    gpu_runs = []
    for poison in (None, 0x5A):
        dev = [to_gpu(_host_out(a, poison)) if isinstance(a, Out) else to_gpu(a) for a in args]
        kernel[grid](*dev, **consts)
        torch.cuda.synchronize()
        gpu_runs.append([to_numpy(dev[i]) for i in outs])
    return [(host[i], [run[k] for run in gpu_runs]) for k, i in enumerate(outs)]


def _raw(x) -> np.ndarray:
    """The bits of an output: bytes of an array; for a PackedTensor, each element's bit
    pattern (as uint64). The padding bits that end each packed row belong to no element and
    are not compared: the interpreter clears them on a store, the GPU leaves them as they
    were (reported; both keep every element right)."""
    if isinstance(x, tc.PackedTensor):
        data = np.asarray(x.data).reshape(-1, x.row_bytes)
        rows = [packing.unpack_bits(r, x.dtype.bits, x.shape[-1]) for r in data]
        return np.stack(rows).reshape(x.shape)
    return np.ascontiguousarray(x).view(np.uint8)


def assert_bits_equal(got, want, what: str) -> None:
    """Bit-exact equality, except that any NaN equals any NaN (payloads are not semantics)."""
    g, w = _raw(got), _raw(want)
    if g.shape == w.shape and np.array_equal(g, w):
        return
    if isinstance(want, np.ndarray) and want.dtype.kind == "f" or (
            isinstance(want, np.ndarray) and want.dtype.name in _ML):
        gv, wv = np.asarray(got, np.float64), np.asarray(want, np.float64)
        same = (gv == wv) & (np.signbit(gv) == np.signbit(wv)) | np.isnan(gv) & np.isnan(wv)
    elif isinstance(want, np.ndarray):
        same = got == want
    else:
        same = (g == w).reshape(-1)
        gv, wv = g.reshape(-1), w.reshape(-1)
    bad = np.flatnonzero(~np.asarray(same).reshape(-1))
    if bad.size == 0:
        return
    flat_g, flat_w = np.asarray(got if isinstance(got, np.ndarray) else g).reshape(-1), \
        np.asarray(want if isinstance(want, np.ndarray) else w).reshape(-1)
    shown = ", ".join(f"[{i}] gpu {flat_g[i]!r} want {flat_w[i]!r}" for i in bad[:8])
    raise AssertionError(f"{what}: {bad.size} of {same.size} differ: {shown}")


def check_exact(pair, what: str) -> None:
    interp, gpus = pair
    for k, g in enumerate(gpus):
        assert_bits_equal(g, interp, f"{what} (gpu run {k + 1} vs interpreter)")


EPS = {"float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7}


def assert_near(got, ref, dtype: str, ulps: float, what: str, scale: float = 1.0) -> None:
    """|got - ref| <= ulps * eps * (|ref| + scale) elementwise; NaN never passes (unless the
    reference is NaN too)."""
    g = np.asarray(got, np.float64)
    r = np.asarray(ref, np.float64)
    tol = ulps * EPS[dtype] * (np.abs(r) + scale)
    ok = (np.abs(g - r) <= tol) | (np.isnan(r) & np.isnan(g)) | (g == r)
    if not ok.all():
        bad = np.flatnonzero(~ok.reshape(-1))
        gf, rf = g.reshape(-1), r.reshape(-1)
        shown = ", ".join(f"[{i}] {gf[i]!r} vs {rf[i]!r}" for i in bad[:6])
        raise AssertionError(f"{what}: {bad.size} of {ok.size} outside {ulps} ulp: {shown}")


def check_near(pair, ref, dtype: str, ulps: float, what: str, scale: float = 1.0) -> None:
    interp, gpus = pair
    assert_near(interp, ref, dtype, ulps, f"{what} (interpreter vs torch)", scale)
    for k, g in enumerate(gpus):
        assert_near(g, interp, dtype, ulps, f"{what} (gpu run {k + 1} vs interpreter)", scale)
        assert_near(g, ref, dtype, ulps, f"{what} (gpu run {k + 1} vs torch)", scale)


FLOATS = {"float32": (np.float32, torch.float32), "float16": (np.float16, torch.float16),
          "bfloat16": (ml_dtypes.bfloat16, torch.bfloat16)}


def f64(x) -> torch.Tensor:
    """A numpy array as a float64 CUDA tensor (the reference precision)."""
    return torch.from_numpy(np.asarray(x, np.float64)).cuda()


# ---- float elementwise and math ---------------------------------------------------------

UNARY = ["exp", "exp2", "log", "log2", "sqrt", "rsqrt", "tanh", "erf", "sin", "cos", "abs",
         "floor", "ceil", "neg"]
BINARY = ["add", "sub", "mul", "div", "maximum", "minimum", "fma", "where"]


@tc.kernel
def float_math(X: tc.Tensor, P: tc.Tensor, Y: tc.Tensor, Z: tc.Tensor, U: tc.Tensor,
               B: tc.Tensor, n: int, BLOCK: tc.constexpr):
    """U[k] = the k-th function of UNARY (log, sqrt, rsqrt of P > 0; the rest of X);
    B[k] = the k-th of BINARY on X, Y (fma: X*Y+Z; where: X > Y ? X : Z)."""
    offs = tc.program_id(0) * BLOCK + tc.arange(0, BLOCK)
    m = offs < n
    x = tc.load(X.ptr + offs, mask=m, other=1.0)
    p = tc.load(P.ptr + offs, mask=m, other=1.0)
    y = tc.load(Y.ptr + offs, mask=m, other=1.0)
    z = tc.load(Z.ptr + offs, mask=m, other=1.0)
    u = U.ptr + offs
    su = U.stride(0)
    tc.store(u + 0 * su, tc.exp(x), mask=m)
    tc.store(u + 1 * su, tc.exp2(x), mask=m)
    tc.store(u + 2 * su, tc.log(p), mask=m)
    tc.store(u + 3 * su, tc.log2(p), mask=m)
    tc.store(u + 4 * su, tc.sqrt(p), mask=m)
    tc.store(u + 5 * su, tc.rsqrt(p), mask=m)
    tc.store(u + 6 * su, tc.tanh(x), mask=m)
    tc.store(u + 7 * su, tc.erf(x), mask=m)
    tc.store(u + 8 * su, tc.sin(x), mask=m)
    tc.store(u + 9 * su, tc.cos(x), mask=m)
    tc.store(u + 10 * su, tc.abs(x), mask=m)
    tc.store(u + 11 * su, tc.floor(x), mask=m)
    tc.store(u + 12 * su, tc.ceil(x), mask=m)
    tc.store(u + 13 * su, -x, mask=m)
    b = B.ptr + offs
    sb = B.stride(0)
    tc.store(b + 0 * sb, x + y, mask=m)
    tc.store(b + 1 * sb, x - y, mask=m)
    tc.store(b + 2 * sb, x * y, mask=m)
    tc.store(b + 3 * sb, x / y, mask=m)
    tc.store(b + 4 * sb, tc.maximum(x, y), mask=m)
    tc.store(b + 5 * sb, tc.minimum(x, y), mask=m)
    tc.store(b + 6 * sb, tc.fma(x, y, z), mask=m)
    tc.store(b + 7 * sb, tc.where(x > y, x, z), mask=m)


def _torch_unary(name: str, x, p):
    t = {"log": torch.log, "log2": torch.log2, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt}
    if name in t:
        return t[name](p)
    return {"exp": torch.exp, "exp2": torch.exp2, "tanh": torch.tanh, "erf": torch.erf,
            "sin": torch.sin, "cos": torch.cos, "abs": torch.abs, "floor": torch.floor,
            "ceil": torch.ceil, "neg": torch.neg}[name](x)


def _torch_binary(name: str, x, y, z):
    return {"add": lambda: x + y, "sub": lambda: x - y, "mul": lambda: x * y,
            "div": lambda: x / y, "maximum": lambda: torch.maximum(x, y),
            "minimum": lambda: torch.minimum(x, y), "fma": lambda: x * y + z,
            "where": lambda: torch.where(x > y, x, z)}[name]()


# Allowed error in units of the dtype's epsilon (relative, with an absolute floor of the same
# size). Exact: the op is correctly rounded or exact, so the GPU must equal the interpreter.
EXACT = {"abs", "floor", "ceil", "neg", "add", "sub", "mul", "maximum", "minimum", "where"}
ULPS = {"float32": 8.0, "float16": 2.0, "bfloat16": 2.0}


@pytest.mark.parametrize("dtype", list(FLOATS))
def test_float_math(dtype):
    npdt, _ = FLOATS[dtype]
    n = 5000  # ragged: not a multiple of BLOCK
    x = RNG.uniform(-4, 4, n).astype(npdt)
    x[:8] = np.array([0.5, -0.5, 1.5, -2.5, 3.0, -3.0, 0.25, 2.0]).astype(npdt)  # ties, ints
    p = RNG.uniform(0.05, 8, n).astype(npdt)
    y = RNG.uniform(-4, 4, n).astype(npdt)
    y[np.abs(y.astype(np.float32)) < 0.05] = npdt(0.5)  # divide by nothing tiny
    y[8:12] = x[8:12]  # equal operands: max/min/where ties
    z = RNG.uniform(-4, 4, n).astype(npdt)
    res_u, res_b = run_both(float_math, (tc.cdiv(n, 1024),),
                            [x, p, y, z, Out((len(UNARY), n), npdt),
                             Out((len(BINARY), n), npdt), n], BLOCK=1024)
    tx, tp, ty, tz = f64(x), f64(p), f64(y), f64(z)
    for k, name in enumerate(UNARY):
        ref = _torch_unary(name, tx, tp).cpu().numpy()
        pair = (res_u[0][k], [g[k] for g in res_u[1]])
        if name in EXACT:
            check_exact(pair, f"{name} {dtype}")
        check_near(pair, ref, dtype, 0.5 if name in EXACT else ULPS[dtype], f"{name} {dtype}")
    for k, name in enumerate(BINARY):
        ref = _torch_binary(name, tx, ty, tz).cpu().numpy()
        pair = (res_b[0][k], [g[k] for g in res_b[1]])
        if name in EXACT or (name == "fma" and dtype == "float32"):
            check_exact(pair, f"{name} {dtype}")
        # fma's reference is x*y+z in float64: exact for 16-bit inputs, within 2^-29 for f32.
        check_near(pair, ref, dtype, 0.5 if name in EXACT else ULPS[dtype], f"{name} {dtype}",
                   scale=1.0 if name != "fma" else 4.0)


# ---- integer arithmetic and bit operations ----------------------------------------------

INT_OPS = ["add", "sub", "mul", "div", "rem", "shl", "shr", "and", "or", "xor", "max", "min",
           "neg", "not"]


@tc.kernel
def int_ops(A: tc.Tensor, B: tc.Tensor, S: tc.Tensor, O: tc.Tensor, n: int,
            BLOCK: tc.constexpr):
    """O[k] = the k-th op of INT_OPS on A, B (shifts by S, in [0, bits))."""
    offs = tc.program_id(0) * BLOCK + tc.arange(0, BLOCK)
    m = offs < n
    a = tc.load(A.ptr + offs, mask=m, other=1)
    b = tc.load(B.ptr + offs, mask=m, other=1)
    s = tc.load(S.ptr + offs, mask=m, other=1)
    o = O.ptr + offs
    st = O.stride(0)
    tc.store(o + 0 * st, a + b, mask=m)
    tc.store(o + 1 * st, a - b, mask=m)
    tc.store(o + 2 * st, a * b, mask=m)
    tc.store(o + 3 * st, a // b, mask=m)
    tc.store(o + 4 * st, a % b, mask=m)
    tc.store(o + 5 * st, a << s, mask=m)
    tc.store(o + 6 * st, a >> s, mask=m)
    tc.store(o + 7 * st, a & b, mask=m)
    tc.store(o + 8 * st, a | b, mask=m)
    tc.store(o + 9 * st, a ^ b, mask=m)
    tc.store(o + 10 * st, tc.maximum(a, b), mask=m)
    tc.store(o + 11 * st, tc.minimum(a, b), mask=m)
    tc.store(o + 12 * st, -a, mask=m)
    tc.store(o + 13 * st, ~a, mask=m)


def _wrap(x: torch.Tensor, npdt) -> np.ndarray:
    """int64 values wrapped to npdt (two's complement)."""
    info = np.iinfo(npdt)
    span = 1 << info.bits
    return (((x.cpu().numpy() - info.min) % span) + info.min).astype(npdt)


@pytest.mark.parametrize("npdt", [np.int32, np.int8, np.uint8], ids=lambda d: d.__name__)
def test_int_ops(npdt):
    info = np.iinfo(npdt)
    n = 3001
    a = RNG.integers(max(info.min, -(2**30)), min(info.max, 2**30), n, endpoint=True)
    a[:6] = [info.min + 1, info.max, -7 if info.min < 0 else 7, 7, 0, 1]
    b = RNG.integers(-9 if info.min < 0 else 1, 10, n)
    b[b == 0] = 3
    b[:6] = [-1 if info.min < 0 else 1, 2, 2, -2 if info.min < 0 else 2, 5, 3]
    s = RNG.integers(0, info.bits, n)
    a, b, s = a.astype(npdt), b.astype(npdt), s.astype(npdt)
    (res,) = run_both(int_ops, (tc.cdiv(n, 512),), [a, b, s, Out((len(INT_OPS), n), npdt), n],
                      BLOCK=512)
    ta, tb, ts = (torch.from_numpy(v.astype(np.int64)).cuda() for v in (a, b, s))
    signed = info.min < 0
    refs = {"add": ta + tb, "sub": ta - tb, "mul": ta * tb,
            "div": torch.div(ta, tb, rounding_mode="trunc"), "rem": torch.fmod(ta, tb),
            "shl": ta << ts, "shr": ta >> ts, "and": ta & tb, "or": ta | tb, "xor": ta ^ tb,
            "max": torch.maximum(ta, tb), "min": torch.minimum(ta, tb), "neg": -ta,
            "not": ~ta}
    for k, name in enumerate(INT_OPS):
        pair = (res[0][k], [g[k] for g in res[1]])
        check_exact(pair, f"{name} {npdt.__name__}")
        ref = _wrap(refs[name], npdt)
        if name == "shr" and not signed:
            ref = (a.astype(np.int64) >> s.astype(np.int64)).astype(npdt)
        np.testing.assert_array_equal(pair[0], ref, err_msg=f"{name}: interpreter vs torch")


# ---- reductions, argmax/argmin, cumsum --------------------------------------------------

@tc.kernel
def reductions(X: tc.Tensor, Sum: tc.Tensor, Max: tc.Tensor, Min: tc.Tensor, Arg: tc.Tensor,
               Cum: tc.Tensor, R: int, C: int, BR: tc.constexpr, BC: tc.constexpr):
    """Over the valid R x C corner of a BR x BC tile: row k of Sum/Max/Min holds the reduction
    along axis k (padded to max(BR, BC)); Arg rows: argmax0, argmax1, argmin0, argmin1; Cum
    rows 0..R-1 the cumsum along axis 1, rows BR.. along axis 0."""
    rows = tc.arange(0, BR)
    cols = tc.arange(0, BC)
    m = (rows[:, None] < R) & (cols[None, :] < C)
    ptrs = X.ptr + rows[:, None] * X.stride(0) + cols[None, :]
    x = tc.load(ptrs, mask=m, other=0)
    hi = tc.where(m, x, tc.full((BR, BC), -1000, X.dtype))
    lo = tc.where(m, x, tc.full((BR, BC), 1000, X.dtype))
    mc = cols < C
    mr = rows < R
    tc.store(Sum.ptr + cols, tc.sum(x, axis=0), mask=mc)
    tc.store(Sum.ptr + Sum.stride(0) + rows, tc.sum(x, axis=1), mask=mr)
    tc.store(Max.ptr + cols, tc.max(hi, axis=0), mask=mc)
    tc.store(Max.ptr + Max.stride(0) + rows, tc.max(hi, axis=1), mask=mr)
    tc.store(Min.ptr + cols, tc.min(lo, axis=0), mask=mc)
    tc.store(Min.ptr + Min.stride(0) + rows, tc.min(lo, axis=1), mask=mr)
    sa = Arg.stride(0)
    tc.store(Arg.ptr + cols, tc.argmax(hi, axis=0), mask=mc)
    tc.store(Arg.ptr + sa + rows, tc.argmax(hi, axis=1), mask=mr)
    tc.store(Arg.ptr + 2 * sa + cols, tc.argmin(lo, axis=0), mask=mc)
    tc.store(Arg.ptr + 3 * sa + rows, tc.argmin(lo, axis=1), mask=mr)
    out = Cum.ptr + rows[:, None] * Cum.stride(0) + cols[None, :]
    tc.store(out, tc.cumsum(x, axis=1), mask=m)
    tc.store(out + BR * Cum.stride(0), tc.cumsum(x, axis=0), mask=m)


@pytest.mark.parametrize("npdt", [np.float32, np.int32], ids=lambda d: d.__name__)
@pytest.mark.parametrize("r,c", [(37, 45), (64, 64), (1, 50), (50, 1)])
def test_reductions_ragged(npdt, r, c):
    br, bc = 64, 64
    if npdt == np.int32:
        x = RNG.integers(-6, 7, (r, c)).astype(npdt)  # small range: ties for argmax/argmin
    else:
        x = RNG.standard_normal((r, c)).astype(npdt) * 4
    x[0, 0] = 5  # never all zeros
    w = max(br, bc)
    res = run_both(reductions, (1,), [x, Out((2, w), npdt), Out((2, w), npdt),
                                      Out((2, w), npdt), Out((4, w), np.int32),
                                      Out((2 * br, c), npdt), r, c], BR=br, BC=bc)
    (s, mx, mn, arg, cum) = res
    t = torch.from_numpy(x.astype(np.float64)).cuda()
    refs = [(s, 0, t.sum(0), c), (s, 1, t.sum(1), r), (mx, 0, t.amax(0), c),
            (mx, 1, t.amax(1), r), (mn, 0, t.amin(0), c), (mn, 1, t.amin(1), r)]
    exact = npdt == np.int32
    for k, ((interp, gpus), row, ref, count) in enumerate(refs):
        pair = (interp[row, :count], [g[row, :count] for g in gpus])
        if exact or k >= 2:  # max and min are exact in any order; float sums are not
            check_exact(pair, f"reduction {k} along axis {row}")
        check_near(pair, ref.cpu().numpy(), "float32", 64, f"reduction {k} axis {row}",
                   scale=4)
    interp, gpus = arg
    want = [x.argmax(0), x.argmax(1), x.argmin(0), x.argmin(1)]  # first index on ties
    for k, ref in enumerate(want):
        pair = (interp[k, :ref.size], [g[k, :ref.size] for g in gpus])
        check_exact(pair, f"arg row {k}")
        np.testing.assert_array_equal(pair[0], ref, err_msg=f"arg row {k} vs numpy")
    interp, gpus = cum
    for part, ref in ((slice(0, r), t.cumsum(1)), (slice(br, br + r), t.cumsum(0))):
        pair = (interp[part], [g[part] for g in gpus])
        if exact:
            check_exact(pair, "cumsum")
        else:  # the scan's order of additions is the implementation's: near, not exact
            check_near(pair, ref.cpu().numpy(), "float32", 64, "cumsum", scale=8)


# ---- atomics, gathers, control flow -----------------------------------------------------

@tc.kernel
def atomics_hist(Idx: tc.Tensor, V: tc.Tensor, Count: tc.Tensor, Total: tc.Tensor, n: int,
                 BLOCK: tc.constexpr):
    """Count[Idx[i]] += 1 and Total[Idx[i]] += V[i]: many duplicate addresses across blocks."""
    offs = tc.program_id(0) * BLOCK + tc.arange(0, BLOCK)
    m = offs < n
    i = tc.load(Idx.ptr + offs, mask=m, other=0)
    v = tc.load(V.ptr + offs, mask=m, other=0.0)
    tc.atomic_add(Count.ptr + i, 1, mask=m)
    tc.atomic_add(Total.ptr + i, v, mask=m)


def test_atomic_add_with_duplicate_addresses():
    n, bins = 20000, 37
    idx = RNG.integers(0, bins, n).astype(np.int32)
    v = RNG.integers(-8, 9, n).astype(np.float32)  # small ints: every order sums exactly
    # Accumulators start at a nonzero base: the kernel must add to it, not overwrite it.
    count_h = np.full(bins, 1000, np.int32)
    total_h = np.full(bins, 1000, np.float32)
    atomics_hist[(tc.cdiv(n, 256),)](idx.copy(), v.copy(), count_h, total_h, n, BLOCK=256)
    count_h, total_h = count_h - 1000, total_h - 1000
    for base in (1000, -77):
        count = torch.full((bins,), base, dtype=torch.int32, device="cuda")
        total = torch.full((bins,), float(base), device="cuda")
        atomics_hist[(tc.cdiv(n, 256),)](to_gpu(idx), to_gpu(v), count, total, n, BLOCK=256)
        torch.cuda.synchronize()
        ref_count = np.bincount(idx, minlength=bins)
        ref_total = np.bincount(idx, weights=v, minlength=bins)
        np.testing.assert_array_equal(count.cpu().numpy() - base, ref_count)
        np.testing.assert_array_equal(total.cpu().numpy().astype(np.float64) - base, ref_total)
        np.testing.assert_array_equal(count.cpu().numpy() - base, count_h)
        np.testing.assert_array_equal(total.cpu().numpy() - base, total_h)


@tc.kernel
def gather(X: tc.Tensor, Idx: tc.Tensor, Out: tc.Tensor, n: int, m: int, BLOCK: tc.constexpr):
    """Out[i] = X[Idx[i]] where 0 <= Idx[i] < m, else -7 (Idx may point outside X)."""
    offs = tc.program_id(0) * BLOCK + tc.arange(0, BLOCK)
    inb = offs < n
    i = tc.load(Idx.ptr + offs, mask=inb, other=-1)
    ok = inb & (i >= 0) & (i < m)
    tc.store(Out.ptr + offs, tc.load(X.ptr + i, mask=ok, other=-7.0), mask=inb)


def test_pointer_gather_with_mask_and_other():
    n, m = 4000, 777
    x = RNG.standard_normal(m).astype(np.float32) + 10
    idx = RNG.integers(-50, m + 50, n).astype(np.int32)  # some out of range: masked
    idx[:3] = [-(2**30), 2**30, m - 1]
    (res,) = run_both(gather, (tc.cdiv(n, 512),), [x, idx, Out((n,), np.float32), n, m],
                      BLOCK=512)
    check_exact(res, "gather")
    ref = np.where((idx >= 0) & (idx < m), x[np.clip(idx, 0, m - 1)], np.float32(-7))
    np.testing.assert_array_equal(res[0], ref)


@tc.kernel
def hinted_accesses(X: tc.Tensor, Idx: tc.Tensor, Out: tc.Tensor, n: int,
                    BLOCK: tc.constexpr):
    """Out[i] = 2 X[i] + X[Idx[i]] + X[0], every access with a cache hint (they choose the
    instructions: ld.global.cg, .cs, .L1::evict_last with an L2 policy, ld.volatile)."""
    pid = tc.program_id(0)
    offs = pid * BLOCK + tc.arange(0, BLOCK)
    inb = offs < n
    x = tc.load(X, (pid,), (BLOCK,), cache_modifier=".cg")
    i = tc.load(Idx.ptr + offs, mask=inb, other=0, cache_modifier=".cs")
    g = tc.load(X.ptr + i, mask=inb, other=0.0, eviction_policy="evict_last")
    first = tc.load(X.ptr, volatile=True)
    tc.store(Out, (pid,), x * 2.0 + g + first, cache_modifier=".cs")


def test_cache_hints_keep_results():
    n = 3000  # a ragged last block: the predicated paths as well as the vectors
    x = RNG.standard_normal(n).astype(np.float32)
    idx = RNG.integers(0, n, n).astype(np.int32)
    (res,) = run_both(hinted_accesses, (tc.cdiv(n, 512),), [x, idx, Out((n,), np.float32), n],
                      BLOCK=512)
    check_exact(res, "hinted accesses")
    np.testing.assert_array_equal(res[0], x * np.float32(2) + x[idx] + x[0])


@tc.kernel
def flag_handoff(Data: tc.Tensor, Flag: tc.Tensor, Out: tc.Tensor, Tries: tc.Tensor,
                 BLOCK: tc.constexpr):
    """Program 1 writes Data and raises Flag (release); program 0 polls Flag with volatile
    loads (at most 2^26 times, so a broken poll fails rather than hangs), then acquires and
    copies Data to Out."""
    offs = tc.arange(0, BLOCK)
    if tc.program_id(0) == 1:
        tc.store(Data.ptr + offs, offs.to(tc.float32) * 3.0 + 1.0)
        tc.atomic_xchg(Flag.ptr, 1, sem="release")
    else:
        seen = 0
        tries = 0
        while (seen == 0) & (tries < 67108864):
            seen = tc.load(Flag.ptr, volatile=True)
            tries += 1
        tc.atomic_add(Flag.ptr, 0, sem="acquire")  # Data's reads after the flag's
        tc.store(Out.ptr + offs, tc.load(Data.ptr + offs))
        tc.store(Tries.ptr, tries)


def test_volatile_poll_sees_another_programs_flag():
    block = 1024
    for _ in range(3):
        data = torch.full((block,), float("nan"), device="cuda")
        flag = torch.zeros(1, dtype=torch.int32, device="cuda")
        out = torch.full((block,), float("nan"), device="cuda")
        tries = torch.full((1,), -1, dtype=torch.int32, device="cuda")
        flag_handoff[(2,)](data, flag, out, tries, BLOCK=block)
        torch.cuda.synchronize()
        assert 0 < int(tries.item()) < 67108864, "the poll never saw the flag"
        want = torch.arange(block, device="cuda", dtype=torch.float32) * 3 + 1
        torch.testing.assert_close(out, want, rtol=0, atol=0)


@tc.kernel
def loop_and_branch(X: tc.Tensor, Out: tc.Tensor, Steps: tc.Tensor, n: int, iters: int,
                    BLOCK: tc.constexpr):
    """Even programs: x*1.5^iters by a loop; odd programs: x - iters. Steps: Collatz steps of
    |X| rounded (a while loop whose trip count differs per program)."""
    pid = tc.program_id(0)
    offs = pid * BLOCK + tc.arange(0, BLOCK)
    m = offs < n
    x = tc.load(X.ptr + offs, mask=m, other=1.0)
    if pid % 2 == 0:
        for _ in range(iters):
            x = x * 1.5
    else:
        x = x - iters
    tc.store(Out.ptr + offs, x, mask=m)
    v = tc.load(Steps.ptr + pid)
    steps = 0
    while v != 1:
        v = tc.where(v % 2 == 0, v // 2, 3 * v + 1)
        steps += 1
    tc.store(Steps.ptr + pid, steps)


def test_loop_and_if():
    n, block = 3000, 256
    grid = tc.cdiv(n, block)
    x = RNG.standard_normal(n).astype(np.float32) + 0.5
    starts = RNG.integers(2, 10000, grid).astype(np.int32)
    host_out = np.full(n, np.nan, np.float32)
    host_steps = starts.copy()
    loop_and_branch[(grid,)](x, host_out, host_steps, n, 5, BLOCK=block)
    out = torch.full((n,), float("nan"), device="cuda")
    steps = to_gpu(starts)
    loop_and_branch[(grid,)](to_gpu(x), out, steps, n, 5, BLOCK=block)
    torch.cuda.synchronize()
    assert_bits_equal(out.cpu().numpy(), host_out, "loop/if")
    np.testing.assert_array_equal(steps.cpu().numpy(), host_steps)
    blocks = np.arange(n) // block
    ref = np.where(blocks % 2 == 0, x.astype(np.float64) * 1.5**5, x.astype(np.float64) - 5)
    assert_near(host_out, ref, "float32", 4, "loop/if vs float64")

    def collatz(v):
        k = 0
        while v != 1:
            v, k = (v // 2 if v % 2 == 0 else 3 * v + 1), k + 1
        return k
    assert host_steps.tolist() == [collatz(int(s)) for s in starts]


# ---- tc.dot (FMA path) --------------------------------------------------------------------

@tc.kernel
def matmul(A: tc.Tensor, B: tc.Tensor, C: tc.Tensor, BM: tc.constexpr, BN: tc.constexpr,
           BK: tc.constexpr):
    pm, pn = tc.program_id(0), tc.program_id(1)
    acc = tc.zeros((BM, BN), tc.float32)
    for k in range(tc.cdiv(A.shape[1], BK)):
        a = tc.load(A, (pm, k), (BM, BK))
        b = tc.load(B, (k, pn), (BK, BN))
        acc = tc.dot(a, b, acc)
    tc.store(C, (pm, pn), acc)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("mkn", [(100, 77, 45), (33, 129, 70), (1, 5, 1)])
def test_dot_ragged(dtype, mkn):
    m, k, n = mkn
    npdt = FLOATS[dtype][0]
    a = RNG.standard_normal((m, k)).astype(npdt)
    b = RNG.standard_normal((k, n)).astype(npdt)
    (res,) = run_both(matmul, (tc.cdiv(m, 32), tc.cdiv(n, 32)), [a, b, Out((m, n), np.float32)],
                      BM=32, BN=32, BK=16)
    ref = (f64(a) @ f64(b)).cpu().numpy()
    # f32 accumulation of k products: the order of additions is the implementation's.
    check_near(res, ref, "float32", 4 * k, f"dot {dtype} {mkn}", scale=math.sqrt(k))


# ---- casts over every bit pattern --------------------------------------------------------

@tc.kernel
def casts(S: tc.Tensor, F: tc.Tensor, H: tc.Tensor, BF: tc.Tensor, I: tc.Tensor,
          OF: tc.Tensor, OH: tc.Tensor, OB: tc.Tensor, OI: tc.Tensor,
          SF: tc.Tensor, SH: tc.Tensor, SB: tc.Tensor, SI: tc.Tensor, BLOCK: tc.constexpr):
    """S (every bit pattern of its dtype) -> f32, f16, bf16, i32; and f32, f16, bf16, i32
    values back to S's dtype. Tensor views: the ragged tail is bounds-checked."""
    pid = tc.program_id(0)
    s = tc.load(S, (pid,), (BLOCK,))
    tc.store(OF, (pid,), tc.cast(s, tc.float32))
    tc.store(OH, (pid,), tc.cast(s, tc.float16))
    tc.store(OB, (pid,), tc.cast(s, tc.bfloat16))
    tc.store(OI, (pid,), tc.cast(s, tc.int32))
    tc.store(SF, (pid,), tc.cast(tc.load(F, (pid,), (BLOCK,)), S.dtype))
    tc.store(SH, (pid,), tc.cast(tc.load(H, (pid,), (BLOCK,)), S.dtype))
    tc.store(SB, (pid,), tc.cast(tc.load(BF, (pid,), (BLOCK,)), S.dtype))
    tc.store(SI, (pid,), tc.cast(tc.load(I, (pid,), (BLOCK,)), S.dtype))


SUB_BYTE_FLOATS = {"float6_e3m2": ml_dtypes.float6_e3m2fn, "float6_e2m3": ml_dtypes.float6_e2m3fn,
                   "float4_e2m1": ml_dtypes.float4_e2m1fn}
CAST_SOURCES = ([f"int{b}" for b in range(1, 9)] + [f"uint{b}" for b in range(1, 9)]
                + ["float8_e4m3", "float8_e5m2"] + list(SUB_BYTE_FLOATS))


def _source_tensor(name: str, n: int):
    """n elements cycling through every bit pattern of dtype `name`, as the kernel takes it
    (numpy arrays for 8-bit dtypes, PackedTensors below 8 bits), and their float64 values."""
    d = tc.dtype(name)
    bits = d.bits
    patterns = np.arange(n) % (1 << bits)
    if bits == 8:
        u8 = patterns.astype(np.uint8)
        npdt = {"int8": np.int8, "uint8": np.uint8, "float8_e4m3": ml_dtypes.float8_e4m3fn,
                "float8_e5m2": ml_dtypes.float8_e5m2}[name]
        arr = u8.view(npdt)
        return arr, arr.astype(np.float64)
    packed = tc.PackedTensor(packing.pack_bits(patterns, bits), d, (n,))
    if name in SUB_BYTE_FLOATS:
        values = patterns.astype(np.uint8).view(SUB_BYTE_FLOATS[name]).astype(np.float64)
    elif name.startswith("int"):
        values = np.where(patterns >= 1 << (bits - 1), patterns - (1 << bits), patterns)
    else:
        values = patterns
    return packed, np.asarray(values, np.float64)


def _cast_inputs(n: int):
    """Values to cast back: specials, halfway cases, out-of-range, tiny and huge magnitudes."""
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 1.5, 2.5,
                        -2.5, 3.5, 0.25, 0.75, 448.0, 464.0, 480.0, -480.0, 57344.0, 61440.0,
                        6.0, 7.0, 28.0, 32.0, 7.5, 1e-3, 2.0**-9, 2.0**-10, 2.0**-17, 1e30,
                        -1e30, 127.5, 128.0, -129.0, 255.5, 256.0, 3e9, -3e9])
    rest = n - special.size
    mags = 2.0 ** RNG.uniform(-20, 20, rest // 2)
    ints = RNG.integers(-600, 600, rest - rest // 2) + RNG.choice([0.0, 0.5, 0.25], rest -
                                                                    rest // 2)
    vals = np.concatenate([special, mags * RNG.choice([-1, 1], mags.size), ints])
    f = vals.astype(np.float32)
    with np.errstate(over="ignore"):
        h = vals.astype(np.float16)
    b = vals.astype(ml_dtypes.bfloat16)
    i = np.clip(np.nan_to_num(vals * 3.3), -2.0**31, 2.0**31 - 1).astype(np.int64)
    i[:40] = np.concatenate([np.arange(-20, 20)])
    return f, h, b, i.astype(np.int32)


def _out_of(name: str, n: int) -> Out:
    d = tc.dtype(name)
    if d.bits < 8:
        return Out((n,), d)
    return Out((n,), {"int8": np.int8, "uint8": np.uint8, "float8_e4m3": ml_dtypes.float8_e4m3fn,
                      "float8_e5m2": ml_dtypes.float8_e5m2}[name])


@pytest.mark.parametrize("name", CAST_SOURCES)
def test_casts_every_bit_pattern(name):
    n = 2048 + 37  # every pattern several times over, and a ragged tail
    src, values = _source_tensor(name, n)
    f, h, b, i = _cast_inputs(n)
    res = run_both(casts, (tc.cdiv(n, 512),),
                   [src, f, h, b, i, Out((n,), np.float32), Out((n,), np.float16),
                    Out((n,), ml_dtypes.bfloat16), Out((n,), np.int32),
                    _out_of(name, n), _out_of(name, n), _out_of(name, n), _out_of(name, n)],
                   BLOCK=512)
    errors = []

    def collect(check, *args, **kw):  # every direction is checked; all failures reported
        try:
            check(*args, **kw)
        except AssertionError as e:
            errors.append(str(e)[:700])
    labels = ["->f32", "->f16", "->bf16", "->i32", "f32->", "f16->", "bf16->", "i32->"]
    for label, pair in zip(labels, res):
        collect(check_exact, pair, f"{name} {label}")
    # The references: every pattern's value is exact in f32; ints and truncated floats in i32.
    collect(np.testing.assert_array_equal, res[0][0].astype(np.float64), values,
            err_msg=f"{name} -> f32: interpreter vs ml_dtypes/numpy")
    finite = np.isfinite(values) & (np.abs(values) < 2**31)
    collect(np.testing.assert_array_equal, res[3][0][finite], np.trunc(values[finite]),
            err_msg=f"{name} -> i32: interpreter vs numpy")
    # Casting the source's own values back round-trips: f32 -> dtype of exact values.
    back = run_both(casts, (tc.cdiv(n, 512),),
                    [src, values.astype(np.float32), h, b, i] +
                    [Out((n,), np.float32), Out((n,), np.float16),
                     Out((n,), ml_dtypes.bfloat16), Out((n,), np.int32)] +
                    [_out_of(name, n) for _ in range(4)], BLOCK=512)[4]
    collect(check_exact, back, f"{name} value round trip")
    for k, got in enumerate(back[1]):
        got_vals = tc.unpack(got) if isinstance(got, tc.PackedTensor) else got
        ok = np.isnan(values) | (np.asarray(got_vals, np.float64) == values)
        if not ok.all():
            bad = np.flatnonzero(~ok)[:6]
            errors.append(f"{name}: gpu run {k + 1}: f32 -> {name} does not round-trip its "
                          f"own values: " + ", ".join(
                              f"{values[j]} -> {np.asarray(got_vals)[j]}" for j in bad))
    assert not errors, "\n".join(errors)


@tc.kernel
def f8_to_f32(X: tc.Tensor, Y: tc.Tensor, BLOCK: tc.constexpr):
    tc.store(Y, (0,), tc.cast(tc.load(X, (0,), (BLOCK,)), tc.float32))


@pytest.mark.parametrize("tdt", ["float8_e4m3fn", "float8_e5m2"])
def test_torch_float8_tensor_argument(tdt):
    """A torch float8 CUDA tensor is a launch argument like any other."""
    x = torch.arange(256, dtype=torch.uint8, device="cuda").view(getattr(torch, tdt))
    y = torch.full((256,), float("nan"), device="cuda")
    f8_to_f32[(1,)](x, y, BLOCK=256)
    torch.cuda.synchronize()
    ref = x.float()
    assert torch.equal(y.isnan(), ref.isnan())
    assert torch.equal(y[~ref.isnan()], ref[~ref.isnan()])


# ---- packed sub-byte tensors ---------------------------------------------------------------

@tc.kernel
def packed_io(Q: tc.Tensor, F: tc.Tensor, Q2: tc.Tensor, K0: tc.constexpr, BR: tc.constexpr,
              BC: tc.constexpr):
    """F = Q as f32; Q2 = K0 - Q, stored back packed (K0 keeps the values in range)."""
    pr, pc = tc.program_id(0), tc.program_id(1)
    q = tc.load(Q, (pr, pc), (BR, BC))
    f = tc.cast(q, tc.float32)
    tc.store(F, (pr, pc), f)
    tc.store(Q2, (pr, pc), tc.cast(K0 - f, Q.dtype))


@pytest.mark.parametrize("name", ["uint4", "int3", "float4_e2m1"])
@pytest.mark.parametrize("shape", [(37, 45), (16, 64), (5, 3)])
def test_packed_load_store(name, shape):
    d = tc.dtype(name)
    if name == "uint4":
        vals = RNG.integers(0, 16, shape)
    elif name == "int3":
        vals = RNG.integers(-4, 4, shape)
    else:
        vals = RNG.choice([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.5, -1, -2, -3, -4, -6],
                          shape)
    vals.flat[0] = 3
    q = tc.pack(vals, d)
    k0 = {"uint4": 15.0, "int3": -1.0, "float4_e2m1": 0.0}[name]
    res = run_both(packed_io, (tc.cdiv(shape[0], 16), tc.cdiv(shape[1], 32)),
                   [q, Out(shape, np.float32), Out(shape, d)], K0=k0, BR=16, BC=32)
    check_exact(res[0], f"{name} packed -> f32")
    np.testing.assert_array_equal(res[0][0], vals.astype(np.float32))
    # The packed output: bytes equal to the interpreter's, padding bits of each row's last
    # byte included (they keep their poison: a store must not touch its neighbours' bits).
    check_exact(res[1], f"{name} packed store")
    np.testing.assert_array_equal(tc.unpack(res[1][1][0]), k0 - vals)


@tc.kernel
def _cluster_combine(X: tc.Tensor, S: tc.Tensor, M: tc.Tensor, H: tc.Tensor, I: tc.Tensor,
                     BLOCK: tc.constexpr):
    pid = tc.program_id(0)
    x = tc.load(X, (pid, 0), (1, BLOCK))
    tc.store(S, (pid, 0), tc.cluster_reduce(x))
    tc.store(M, (pid, 0), tc.cluster_reduce(x, "max") - tc.cluster_reduce(x, "min"))
    tc.store(H, (pid, 0), tc.cluster_reduce(x.to(tc.float16)))
    tc.store(I, (pid, 0), tc.full((1, BLOCK), tc.cluster_reduce(pid % 8 + 1)))


@pytest.mark.parametrize("ctas", [2, 4, 8])
def test_cluster_reduce_matches_the_interpreter(ctas):
    """Clusters of 2, 4 and 8 programs (`num_ctas`) combine through distributed shared
    memory: f32 sums (in program order, against the interpreter's exact sums rounded once)
    and f16 sums (in f32, rounded once) within rounding, max and min and an int scalar
    exactly; 64 programs of 256 values, every output written (two poisons)."""
    progs, block = 64, 256
    x = RNG.standard_normal((progs, block)).astype(np.float32)
    outs = {}
    for where in ("gpu", "cpu"):
        s, m = np.zeros_like(x), np.zeros_like(x)
        h, i = np.zeros(x.shape, np.float16), np.zeros(x.shape, np.int32)
        if where == "gpu":
            dev = [torch.from_numpy(v).cuda() for v in (x, s, m, h, i)]
            for poison in (float("nan"), 0.0):
                for t in dev[1:]:
                    t.fill_(poison if t.dtype.is_floating_point else -7)
                _cluster_combine[(progs,)](*dev, BLOCK=block, num_ctas=ctas)
                torch.cuda.synchronize()
                got = [t.cpu().numpy() for t in dev[1:]]
                if poison == 0.0:
                    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(got, first))
                first = got
            outs[where] = first
        else:
            _cluster_combine[(progs,)](x, s, m, h, i, BLOCK=block, num_ctas=ctas)
            outs[where] = [s, m, h, i]
    gs, gm, gh, gi = outs["gpu"]
    cs, cm, ch, ci = outs["cpu"]
    want = np.repeat(x.reshape(-1, ctas, block).astype(np.float64).sum(1), ctas, 0)
    np.testing.assert_allclose(gs, want, rtol=1e-5, atol=1e-5)     # f32 sums: their order
    np.testing.assert_allclose(gs, cs, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(gm, cm)
    np.testing.assert_allclose(gh.astype(np.float32), ch.astype(np.float32), rtol=2e-3,
                               atol=1e-4)
    np.testing.assert_array_equal(gi, ci)
    scalars = (np.arange(progs) % 8 + 1).reshape(-1, ctas).sum(1)
    assert (gi == np.repeat(scalars, ctas)[:, None]).all()


def test_cluster_launch_needs_whole_clusters_on_the_gpu():
    x = torch.zeros(6, 256, device="cuda")
    with pytest.raises(tc.LaunchError, match="grid dimension 0 is 6: clusters of num_ctas = 4"):
        _cluster_combine[(6,)](x, x, x, x.half(), x.int(), BLOCK=256, num_ctas=4)


@tc.kernel
def _take_parts(X: tc.Tensor, H: tc.Tensor, R: tc.Tensor, E: tc.Tensor, L: tc.constexpr):
    # halves of each thread's runs (a local axis: registers), a row (a split axis: the
    # layout pass gathers it), an element (a scalar)
    x = tc.with_layout(tc.load(X, (0, 0), (32, 256)), L)
    g = tc.reshape(x, (32, 2, 128))
    tc.store(H, (0, 0), tc.take(g, 1, axis=1) - tc.take(g, 0, axis=1))
    y = tc.load(X, (0, 0), (32, 256))
    tc.store(R, (0,), tc.take(y, 5, axis=0))
    tc.store(E, (0,), tc.full((1,), tc.take(tc.take(y, -1, axis=1), 31)))


def test_take_matches_the_interpreter():
    """`tc.take` along a local axis, a split one and down to a scalar: bit for bit."""
    x = RNG.standard_normal((32, 256)).astype(np.float32)
    res = run_both(_take_parts, (1,), [x, Out((32, 128), np.float32), Out((256,), np.float32),
                                       Out((1,), np.float32)],
                   L="spatial(32,1)*local(1,2)*spatial(1,4)*local(1,32)")
    for (cpu, gpus), want in zip(res, (x[:, 128:] - x[:, :128], x[5], x[31, -1:])):
        np.testing.assert_array_equal(cpu, want)
        for g in gpus:
            np.testing.assert_array_equal(g, want)


@tc.kernel
def _split_k_dot(A: tc.Tensor, B: tc.Tensor, C: tc.Tensor, P: tc.constexpr):
    a = tc.load(A, (0, 0), (64, 256))
    b = tc.load(B, (0, 0), (256, 16))
    parts = tc.dot(tc.permute(tc.reshape(a, (64, P, 256 // P)), (1, 0, 2)),
                   tc.reshape(b, (P, 256 // P, 16)))
    tc.store(C, (0, 0), tc.sum(parts, axis=0))


@pytest.mark.parametrize("dtype,warps", [(np.float16, 4), (np.float16, 8), (np.float32, 4)])
def test_batched_dot_splits_k_across_warps(dtype, warps):
    """A batch of 4 products (K in 4 parts) over the warps (f16 on mma, f32 on FMAs),
    summed across them."""
    a = RNG.standard_normal((64, 256)).astype(dtype)
    b = RNG.standard_normal((256, 16)).astype(dtype)
    want = a.astype(np.float64) @ b.astype(np.float64)
    res = run_both(_split_k_dot, (1,), [a, b, Out((64, 16), np.float32)], P=4,
                   num_warps=warps)
    ((cpu, gpus),) = res
    np.testing.assert_allclose(cpu, want, rtol=1e-5, atol=1e-4)
    for g in gpus:
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-4)


@tc.kernel
def fill_after_a_while(X: tc.Tensor, value: float, n: int, iters: int, BLOCK: tc.constexpr):
    """Lets the next launch start at once (programmatic dependent launch), then spends
    `iters` dependent multiplies before it writes X = value."""
    tc.gdc_launch_dependents()
    offs = tc.program_id(0) * BLOCK + tc.arange(0, BLOCK)
    m = offs < n
    v = tc.load(X.ptr + offs, mask=m, other=0.0) * 0.0
    for _ in range(iters):
        v = v * 0.5
    tc.store(X.ptr + offs, v + value, mask=m)


@tc.kernel
def add_after_wait(W: tc.Tensor, X: tc.Tensor, Y: tc.Tensor, Early: tc.Tensor, n: int,
                   BLOCK: tc.constexpr):
    """Y = W + X, W loaded before gdc_wait and X after; Early: X as read before the wait."""
    offs = tc.program_id(0) * BLOCK + tc.arange(0, BLOCK)
    m = offs < n
    w = tc.load(W.ptr + offs, mask=m)
    early = tc.load(X.ptr + offs, mask=m, volatile=True)
    tc.gdc_wait()
    tc.store(Y.ptr + offs, w + tc.load(X.ptr + offs, mask=m), mask=m)
    tc.store(Early.ptr + offs, early, mask=m)


def test_programmatic_launch_starts_early_and_waits():
    """The second kernel (gdc_wait) starts while the first (gdc_launch_dependents) still
    runs: its reads before the wait see the first's old X at least once; its reads after the
    wait always see the new X."""
    n, block = 1 << 16, 1024
    w = torch.randn(n, device="cuda")
    x = torch.zeros(n, device="cuda")
    started_early = False
    for value in (1.0, 2.0, 3.0, 4.0):
        y = torch.full((n,), float("nan"), device="cuda")
        early = torch.full((n,), float("nan"), device="cuda")
        fill_after_a_while[(n // block,)](x, value, n, 20000, BLOCK=block)
        add_after_wait[(n // block,)](w, x, y, early, n, BLOCK=block)
        torch.cuda.synchronize()
        torch.testing.assert_close(y, w + value, rtol=0, atol=0)
        started_early |= bool((early == value - 1).any())
    assert started_early, "the second kernel never started before the first ended"
