"""tilec.lib.gemm on the GPU (torch CUDA tensors), against torch on the CPU in float64 (int64
for int8). Outputs are poisoned first (NaN, or 0xA5 bytes for ints) so that an element the
kernel did not write cannot pass. Shapes are ragged (not multiples of any tile) and cover
each tile-configuration bucket of `pick_config`: decode (M <= 16), large, and very large N.

Tolerance: accumulation error relative to sqrt(K) * max|a| * max|b| (as in test_dot_gpu.py),
plus one rounding to the output dtype relative to |reference|.

Run with `pytest -m gpu tests/gpu/test_gemm_gpu.py` on a machine with an NVIDIA GPU.
"""
from __future__ import annotations

import math

import pytest

import tilec as tc
from tilec.lib import gemm
from tilec.lib.gemm import pick_config

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

F = torch.nn.functional
FP8 = {"float8_e4m3": torch.float8_e4m3fn, "float8_e5m2": torch.float8_e5m2}
OUT_EPS = {torch.float16: 2.0 ** -11, torch.bfloat16: 2.0 ** -8, torch.float32: 2.0 ** -23,
           torch.float8_e4m3fn: 2.0 ** -4, torch.float8_e5m2: 2.0 ** -3}


def _sm() -> int:
    major, minor = torch.cuda.get_device_capability()
    return major * 10 + minor


def _need_fp8(dtype: str) -> None:
    if dtype in FP8 and _sm() < 89:
        pytest.skip(f"{dtype} GEMM needs sm_89 or newer (this GPU is sm_{_sm()})")


def _inputs(dtype: str, m: int, n: int, k: int, seed: int = 0, ta=False, tb=False):
    """(a, b) on the GPU (transposed views when ta/tb) and (a, b) as float64/int64 CPU refs."""
    gen = torch.Generator().manual_seed(seed)
    if dtype == "int8":
        a = torch.randint(-128, 128, (m, k), generator=gen, dtype=torch.int8)
        b = torch.randint(-128, 128, (k, n), generator=gen, dtype=torch.int8)
        ra, rb = a.long(), b.long()
    else:
        tdt = FP8.get(dtype) or getattr(torch, dtype)
        a = torch.randn((m, k), generator=gen).to(tdt)
        b = torch.randn((k, n), generator=gen).to(tdt)
        ra, rb = a.double(), b.double()
    # The same values, column-major: a transposed view of a contiguous transpose.
    ga = a.t().contiguous().cuda().t() if ta else a.cuda()
    gb = b.t().contiguous().cuda().t() if tb else b.cuda()
    return ga, gb, ra, rb


def _poisoned(m: int, n: int, dtype, transposed: bool = False):
    """An (m, n) output full of NaN (0xA5 bytes for ints), column-major when `transposed`."""
    c = torch.empty((n, m) if transposed else (m, n), dtype=dtype, device="cuda")
    if dtype.is_floating_point:
        c.fill_(float("nan"))
    else:
        c.view(torch.uint8).fill_(0xA5)
    return c.t() if transposed else c


def _act(y, act):
    return {None: lambda v: v, "relu": F.relu, "gelu": F.gelu,
            "gelu_tanh": lambda v: F.gelu(v, approximate="tanh"), "silu": F.silu}[act](y)


def _check_out(c, out_dtype, want, ra, rb, what, tol=1e-5):
    assert c.dtype == out_dtype, what
    if not out_dtype.is_floating_point:
        assert torch.equal(c.cpu().long(), want.long()), what
        return
    c64 = c.cpu().double()
    assert not torch.isnan(c64).any(), f"{what}: unwritten (NaN) elements"
    k = ra.shape[1]
    scale = math.sqrt(max(k, 1)) * float(ra.abs().max()) * float(rb.abs().max())
    bound = tol * scale + OUT_EPS[out_dtype] * want.abs() + 1e-6
    err = (c64 - want).abs()
    assert (err <= bound).all(), \
        f"{what}: max error {float(err.max()):.3e} where the bound is {float(bound.max()):.3e}"


# Shapes: decode-like (M <= 16), the large bucket, and very large N (128x256x64, 8 warps).
SHAPES = [(7, 300, 200), (300, 257, 131), (300, 8200, 72)]
DTYPES = ["float16", "bfloat16", "float32", "int8", "float8_e4m3", "float8_e5m2"]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_dtypes_default_out(dtype, shape):
    _need_fp8(dtype)
    m, n, k = shape
    a, b, ra, rb = _inputs(dtype, m, n, k)
    c = gemm(a, b)
    torch.cuda.synchronize()
    want = ra @ rb
    out_dtype = torch.int32 if dtype == "int8" else a.dtype
    _check_out(c, out_dtype, want, ra, rb, f"{dtype} {m}x{k}x{n}")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float8_e4m3", "float8_e5m2"])
def test_f32_out_poisoned(dtype):
    _need_fp8(dtype)
    m, n, k = 150, 97, 131
    a, b, ra, rb = _inputs(dtype, m, n, k, seed=1)
    out = _poisoned(m, n, torch.float32)
    assert gemm(a, b, torch.float32, out=out) is out
    torch.cuda.synchronize()
    _check_out(out, torch.float32, ra @ rb, ra, rb, f"{dtype} -> f32")


@pytest.mark.parametrize("act", [None, "relu", "gelu", "gelu_tanh", "silu"])
@pytest.mark.parametrize("out_dtype", [torch.float16, torch.float32])
def test_epilogues(act, out_dtype):
    m, n, k = 150, 97, 131
    a, b, ra, rb = _inputs("float16", m, n, k, seed=2)
    bias = torch.randn(n, generator=torch.Generator().manual_seed(3))
    out = _poisoned(m, n, out_dtype)
    gemm(a, b, bias=bias.cuda(), activation=act, scale=0.25, out=out)
    torch.cuda.synchronize()
    want = _act(0.25 * (ra @ rb) + bias.double(), act)
    _check_out(out, out_dtype, want, ra, rb, f"f16 {act} -> {out_dtype}")


@pytest.mark.parametrize("dtype", ["bfloat16", "float8_e4m3"])
def test_epilogue_other_dtypes(dtype):
    _need_fp8(dtype)
    m, n, k = 70, 300, 96
    a, b, ra, rb = _inputs(dtype, m, n, k, seed=4)
    bias = torch.randn(n, generator=torch.Generator().manual_seed(5)).to(torch.bfloat16)
    out = _poisoned(m, n, torch.bfloat16)
    gemm(a, b, bias=bias.cuda(), activation="gelu", scale=-1.5, out=out)
    torch.cuda.synchronize()
    want = _act(-1.5 * (ra @ rb) + bias.double(), "gelu")
    _check_out(out, torch.bfloat16, want, ra, rb, f"{dtype} gelu -> bf16")


@pytest.mark.parametrize("ta,tb", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "int8"])
def test_transposed_inputs(dtype, ta, tb):
    m, n, k = 200, 120, 72
    a, b, ra, rb = _inputs(dtype, m, n, k, seed=6, ta=ta, tb=tb)
    assert a.is_contiguous() != ta and b.is_contiguous() != tb
    out_dtype = torch.int32 if dtype == "int8" else torch.float32
    out = _poisoned(m, n, out_dtype, transposed=True)   # a column-major output too
    gemm(a, b, out=out)
    torch.cuda.synchronize()
    _check_out(out, out_dtype, ra @ rb, ra, rb, f"{dtype} ta={ta} tb={tb}")


def test_int8_integer_epilogue_exact():
    m, n, k = 130, 70, 200
    a, b, ra, rb = _inputs("int8", m, n, k, seed=7)
    bias = torch.randint(-20000, 20000, (n,), dtype=torch.int32,
                         generator=torch.Generator().manual_seed(8))
    out = _poisoned(m, n, torch.int32)
    gemm(a, b, bias=bias.cuda(), activation="relu", out=out)
    torch.cuda.synchronize()
    assert torch.equal(out.cpu().long(), torch.relu(ra @ rb + bias.long()))


def test_int8_scaled_to_f16():
    m, n, k = 130, 70, 200
    a, b, ra, rb = _inputs("int8", m, n, k, seed=9)
    bias = torch.randn(n, generator=torch.Generator().manual_seed(10))
    c = gemm(a, b, torch.float16, bias=bias.cuda(), activation="silu", scale=1e-3)
    torch.cuda.synchronize()
    want = _act(1e-3 * (ra @ rb).double() + bias.double(), "silu")
    _check_out(c, torch.float16, want, ra.double(), rb.double(), "int8 silu -> f16", tol=1e-7)


def test_f32_is_exact_not_tf32():
    m, n, k = 150, 97, 131
    a, b, ra, rb = _inputs("float32", m, n, k, seed=11)
    a = a + 2.0 ** -15     # bits below tf32's 10-bit mantissa
    ra = a.cpu().double()
    c = gemm(a, b)
    torch.cuda.synchronize()
    _check_out(c, torch.float32, ra @ rb, ra, rb, "f32 exact", tol=1e-6)


def test_bias_wrong_length_before_launch():
    a = torch.zeros((4, 5), dtype=torch.float16, device="cuda")
    b = torch.zeros((5, 3), dtype=torch.float16, device="cuda")
    with pytest.raises(tc.LaunchError, match=r"'bias' must be a vector of length N = 3"):
        gemm(a, b, bias=torch.zeros(4, device="cuda"))


def test_fp8_below_sm89_is_a_clear_error():
    if _sm() >= 89:
        pytest.skip("this GPU runs fp8 GEMMs (sm_89 or newer)")
    a = torch.zeros((4, 5), device="cuda").to(torch.float8_e4m3fn)
    with pytest.raises(tc.LaunchError, match="needs sm_89"):
        gemm(a, a.t().contiguous())


def test_config_buckets():
    assert pick_config(7, 300, 200).BM == 64
    assert pick_config(300, 257, 131).BN == 128
    assert pick_config(300, 8200, 72).BN == 256
