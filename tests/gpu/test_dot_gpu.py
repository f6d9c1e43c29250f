"""`tc.dot` on the GPU: tensor cores (mma.sync; wgmma for f16/bf16 on sm_90a) for f16, bf16,
int8, fp8 e4m3/e5m2 and f32 with precision "tf32", the FMA path for exact f32; row- and
column-major B (a transposed torch view, or `tc.trans` of a loaded tile); M, N and K not
multiples of the tile. Each result is compared with torch in
float64 (int64 for int8) on random inputs, after poisoning the output (NaN, or 0xA5 bytes
for int32) so that an element the kernel did not write cannot pass.

Tolerances, relative to sqrt(K) * max|a| * max|b| (the scale of one rounding error of an
accumulated dot product of K terms):
- f16, bf16, fp8 inputs are exact in the f32 products of mma, accumulated in f32: 1e-5;
- tf32 rounds the inputs to 10 mantissa bits (2**-11 relative each): 4e-3;
- exact f32 (FMA path): 1e-5;
- int8 -> int32: bit-exact.
fp8 e4m3 needs sm_89+ (skipped below that); tilec passes fp8 as 8-bit PackedTensors.

Run with `pytest -m gpu tests/gpu/test_dot_gpu.py` on a machine with an NVIDIA GPU.
"""
from __future__ import annotations

import math

import pytest

import tilec as tc

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

GEN = torch.Generator().manual_seed(7)


@tc.kernel
def gemm(A: tc.Tensor, B: tc.Tensor, C: tc.Tensor, BM: tc.constexpr, BN: tc.constexpr,
         BK: tc.constexpr, TF32: tc.constexpr):
    pm, pn = tc.program_id(0), tc.program_id(1)
    acc = tc.zeros((BM, BN), C.dtype)
    for k in range(tc.cdiv(A.shape[1], BK)):
        a = tc.load(A, (pm, k), (BM, BK))
        b = tc.load(B, (k, pn), (BK, BN))
        if TF32:
            acc = tc.dot(a, b, acc, precision="tf32")
        else:
            acc = tc.dot(a, b, acc)
    tc.store(C, (pm, pn), acc)


def _arch_at_least(sm: int) -> bool:
    major, minor = torch.cuda.get_device_capability()
    return major * 10 + minor >= sm


def _inputs(dtype: str, m: int, n: int, k: int):
    """(a, b) as launch arguments, and (a, b) as float64/int64 torch references."""
    if dtype == "int8":
        a = torch.randint(-128, 128, (m, k), generator=GEN, dtype=torch.int8)
        b = torch.randint(-128, 128, (k, n), generator=GEN, dtype=torch.int8)
        return a.cuda(), b.cuda(), a.long(), b.long()
    a = torch.randn((m, k), generator=GEN) * 2
    b = torch.randn((k, n), generator=GEN) * 2
    if dtype in ("float8_e4m3", "float8_e5m2"):
        tdt = {"float8_e4m3": torch.float8_e4m3fn, "float8_e5m2": torch.float8_e5m2}[dtype]
        tcd = {"float8_e4m3": tc.float8_e4m3, "float8_e5m2": tc.float8_e5m2}[dtype]
        a8, b8 = a.to(tdt), b.to(tdt)
        pa = tc.PackedTensor(a8.view(torch.uint8).cuda(), tcd, (m, k))
        pb = tc.PackedTensor(b8.view(torch.uint8).cuda(), tcd, (k, n))
        return pa, pb, a8.double(), b8.double()
    tdt = getattr(torch, dtype)
    a, b = a.to(tdt), b.to(tdt)
    return a.cuda(), b.cuda(), a.double(), b.double()


def _run(a, b, out_dtype, m, n, *, bm, bn, bk, warps, tf32=False, stages=1):
    c = torch.empty((m, n), dtype=out_dtype, device="cuda")
    if out_dtype.is_floating_point:
        c.fill_(float("nan"))
    else:
        c.view(torch.uint8).fill_(0xA5)
    gemm[(tc.cdiv(m, bm), tc.cdiv(n, bn))](a, b, c, BM=bm, BN=bn, BK=bk, TF32=tf32,
                                           num_warps=warps, num_stages=stages)
    torch.cuda.synchronize()
    return c.cpu()


def _check(c, ref, a_ref, b_ref, tol, what):
    k = a_ref.shape[1]
    if tol == 0:
        assert torch.equal(c.long(), ref), what
        return
    assert not torch.isnan(c).any(), f"{what}: unwritten (NaN) elements"
    scale = math.sqrt(k) * float(a_ref.abs().max()) * float(b_ref.abs().max())
    err = float((c.double() - ref).abs().max()) / scale
    assert err < tol, f"{what}: error {err:.2e} x sqrt(K) max|a| max|b|, bound {tol}"


# (dtype, accumulator, tile BMxBNxBK, warps, tolerance, needs sm); M, N, K are ragged.
CONFIGS = [
    ("float16", torch.float32, (128, 128, 32), 4, 1e-5, 80),
    ("bfloat16", torch.float32, (64, 128, 32), 8, 1e-5, 80),
    ("int8", torch.int32, (64, 64, 64), 4, 0, 80),
    ("float8_e4m3", torch.float32, (64, 64, 64), 4, 1e-5, 89),
    ("float8_e5m2", torch.float32, (64, 64, 64), 4, 1e-5, 89),
    ("float32", torch.float32, (64, 64, 16), 4, 1e-5, 80),      # exact: FMA path
]


@pytest.mark.parametrize("dtype,acc,tile,warps,tol,sm", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_gemm(dtype, acc, tile, warps, tol, sm):
    if not _arch_at_least(sm):
        pytest.skip(f"{dtype} mma needs sm_{sm}")
    bm, bn, bk = tile
    m, n, k = 3 * bm - 17, 2 * bn + 5, 4 * bk + 3   # ragged in M, N and K
    a, b, a_ref, b_ref = _inputs(dtype, m, n, k)
    c = _run(a, b, acc, m, n, bm=bm, bn=bn, bk=bk, warps=warps)
    _check(c, a_ref @ b_ref, a_ref, b_ref, tol, f"{dtype} {m}x{k}x{n}")


# Software pipelining (num_stages >= 2): cp.async into a ring of shared buffers. K a
# multiple of 16 bytes per row takes the cp.async path (edges zero-filled through src-size);
# K + 3 makes rows misaligned, so every copy takes the synchronous fallback.
PIPELINED = [
    ("float16", torch.float32, (128, 128, 32), 4, 1e-5, 80, 3, 8),
    ("float16", torch.float32, (128, 128, 32), 4, 1e-5, 80, 4, 3),
    ("float16", torch.float32, (64, 64, 32), 4, 1e-5, 80, 2, 40),
    ("bfloat16", torch.float32, (128, 256, 32), 8, 1e-5, 80, 3, 8),
    ("int8", torch.int32, (64, 64, 64), 4, 0, 80, 3, 16),
    ("float8_e4m3", torch.float32, (64, 64, 64), 4, 1e-5, 89, 3, 16),
]


@pytest.mark.parametrize("dtype,acc,tile,warps,tol,sm,stages,k_extra", PIPELINED,
                         ids=[f"{c[0]}-{c[6]}stages-k+{c[7]}" for c in PIPELINED])
def test_gemm_pipelined(dtype, acc, tile, warps, tol, sm, stages, k_extra):
    if not _arch_at_least(sm):
        pytest.skip(f"{dtype} mma needs sm_{sm}")
    bm, bn, bk = tile
    m, n, k = 3 * bm - 17, 2 * bn + 8, 4 * bk + k_extra
    a, b, a_ref, b_ref = _inputs(dtype, m, n, k)
    c = _run(a, b, acc, m, n, bm=bm, bn=bn, bk=bk, warps=warps, stages=stages)
    _check(c, a_ref @ b_ref, a_ref, b_ref, tol, f"{dtype} {m}x{k}x{n} {stages} stages")


def test_gemm_tf32():
    m, n, k = 150, 97, 131
    a, b, a_ref, b_ref = _inputs("float32", m, n, k)
    c = _run(a, b, torch.float32, m, n, bm=64, bn=64, bk=16, warps=4, tf32=True)
    _check(c, a_ref @ b_ref, a_ref, b_ref, 4e-3, "tf32")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_gemm_column_major_b(dtype):
    """B passed as a transposed view (strides (1, K)): same result."""
    m, n, k = 200, 120, 72
    a, b, a_ref, b_ref = _inputs(dtype, m, n, k)
    b_col = b.t().contiguous().t()          # the same values, column-major
    assert b_col.stride() == (1, k)
    for stages in (1, 3):
        c = _run(a, b_col, torch.float32, m, n, bm=64, bn=64, bk=32, warps=4, stages=stages)
        _check(c, a_ref @ b_ref, a_ref, b_ref, 1e-5, f"{dtype} column-major B, {stages} stages")


def test_matmul_example_on_the_gpu():
    """examples/matmul.py (64x64x32 f16, 4 warps) asserts < 1e-5 relative error itself."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "examples" / "matmul.py"
    spec = importlib.util.spec_from_file_location("matmul_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main()


@tc.kernel
def gemm_nt(A: tc.Tensor, BT: tc.Tensor, C: tc.Tensor, BM: tc.constexpr, BN: tc.constexpr,
            BK: tc.constexpr):
    """C = A @ BT^T with BT's rows along N: on sm_90a wgmma reads b K-major, through the
    transpose of a pipeline stage."""
    pm, pn = tc.program_id(0), tc.program_id(1)
    acc = tc.zeros((BM, BN), tc.float32)
    for k in range(tc.cdiv(A.shape[1], BK)):
        a = tc.load(A, (pm, k), (BM, BK))
        bt = tc.load(BT, (pn, k), (BN, BK))
        acc = tc.dot(a, tc.trans(bt), acc)
    tc.store(C, (pm, pn), acc)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("tile,warps,stages", [((128, 128, 64), 8, 3), ((64, 64, 32), 4, 1),
                                               ((128, 64, 64), 4, 4)])
def test_gemm_transposed_b(dtype, tile, warps, stages):
    bm, bn, bk = tile
    m, n, k = 3 * bm - 17, 2 * bn + 8, 4 * bk + 8
    a, b, a_ref, b_ref = _inputs(dtype, m, n, k)
    bt = b.t().contiguous()
    c = torch.full((m, n), float("nan"), dtype=torch.float32, device="cuda")
    gemm_nt[(tc.cdiv(m, bm), tc.cdiv(n, bn))](a, bt, c, BM=bm, BN=bn, BK=bk, num_warps=warps,
                                              num_stages=stages)
    torch.cuda.synchronize()
    _check(c.cpu(), a_ref @ b_ref, a_ref, b_ref, 1e-5, f"{dtype} {m}x{k}x{n} b transposed")


@tc.kernel
def gemm_computed_b(A: tc.Tensor, B: tc.Tensor, C: tc.Tensor, BM: tc.constexpr,
                    BN: tc.constexpr, BK: tc.constexpr, B_ROWS_N: tc.constexpr):
    """C = A @ (2B) with b computed in registers (as dequantized weights are): on sm_90a
    wgmma, b stored into its shared operand along the dim its registers run (N, or K when
    B's rows are N: B_ROWS_N)."""
    pm, pn = tc.program_id(0), tc.program_id(1)
    acc = tc.zeros((BM, BN), tc.float32)
    for k in range(tc.cdiv(A.shape[1], BK)):
        a = tc.load(A, (pm, k), (BM, BK))
        if B_ROWS_N:
            b = tc.trans(tc.load(B, (pn, k), (BN, BK)) * 2.0)
        else:
            b = tc.load(B, (k, pn), (BK, BN)) * 2.0
        acc = tc.dot(a, b, acc)
    tc.store(C, (pm, pn), acc)


@pytest.mark.parametrize("rows_n", [False, True], ids=["b_kn", "b_nk"])
@pytest.mark.parametrize("tile,warps", [((128, 128, 64), 8), ((64, 64, 32), 4)])
def test_gemm_computed_b(rows_n, tile, warps):
    bm, bn, bk = tile
    m, n, k = 3 * bm - 17, 2 * bn + 8, 4 * bk + 8
    a, b, a_ref, b_ref = _inputs("float16", m, n, k)
    if rows_n:
        b = b.t().contiguous()
    c = torch.full((m, n), float("nan"), dtype=torch.float32, device="cuda")
    gemm_computed_b[(tc.cdiv(m, bm), tc.cdiv(n, bn))](a, b, c, BM=bm, BN=bn, BK=bk,
                                                      B_ROWS_N=rows_n, num_warps=warps,
                                                      num_stages=3)
    torch.cuda.synchronize()
    _check(c.cpu(), a_ref @ (2 * b_ref), a_ref, 2 * b_ref, 1e-5, f"{m}x{k}x{n} b computed")


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("inner", [False, True])
def test_gemm_of_gathered_rows(aligned, inner):
    """A[idx] @ B with A's rows gathered through pointers, pipelined by gather_async
    (cp.async, three stages); unaligned rows take the run-time fallback."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backends" / "nvidia"))
    from test_gather_pipeline import BK, BM, BN, gather_gemm
    m, n, k, rows = 3 * BM - 5, 2 * BN, 8 * BK, 1000
    pad = torch.randn(rows, k + 8, generator=GEN).to(torch.float16).cuda()
    a = pad[:, :k] if aligned else pad[:, 1:k + 1]
    idx = torch.randint(0, rows, (m,), generator=GEN, dtype=torch.int32).cuda()
    b = torch.randn(k, n, generator=GEN).to(torch.float16).cuda()
    c = torch.full((m, n), float("nan"), dtype=torch.float32, device="cuda")
    gather_gemm[(tc.cdiv(m, BM), tc.cdiv(n, BN))](a, idx, b, c, BM=BM, BN=BN, BK=BK,
                                                  INNER=inner, num_warps=4, num_stages=3)
    torch.cuda.synchronize()
    a_ref, b_ref = a.double().cpu()[idx.long().cpu()], b.double().cpu()
    _check(c.cpu(), a_ref @ b_ref, a_ref, b_ref, 1e-5, f"gathered rows, aligned={aligned}")
