"""GEMM: tilec's `tc.dot` kernel (examples/matmul.py's form) against cuBLAS (torch.matmul)
and Triton's tutorial matmul, in one run. f16 and bf16 in, f32 accumulate, output in the
input dtype. Prints a table of TFLOP/s and ratios; writes benchmarks/results/gemm-<date>.json
with the ptxas report of each tilec config (registers, spills) beside its time.

What limits it is read from the same run: 2*M*N*K flops; the ptxas resources; the number of
`mma.sync`/`wgmma`/`ldmatrix` instructions in the PTX.
"""
from __future__ import annotations

import sys

import torch
import triton
import triton.language as tl

import tilec as tc
from tilec.backends.nvidia.compiler import compile_kernel
from tilec.lib import swizzle2d

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import median, time_ms, write_result  # noqa: E402


@tc.kernel
def matmul(A: tc.Tensor, B: tc.Tensor, C: tc.Tensor,
           BM: tc.constexpr, BN: tc.constexpr, BK: tc.constexpr):
    # Grouped ordering: 8 rows of tiles at a time, for L2 reuse.
    pm, pn = swizzle2d(tc.program_id(0), tc.cdiv(A.shape[0], BM), tc.cdiv(B.shape[1], BN), 8)
    acc = tc.zeros((BM, BN), tc.float32)
    for k in range(tc.cdiv(A.shape[1], BK)):
        a = tc.load(A, (pm, k), (BM, BK))
        b = tc.load(B, (k, pn), (BK, BN))
        acc = tc.dot(a, b, acc)
    tc.store(C, (pm, pn), acc.to(C.dtype))


@triton.jit
def triton_matmul(a_ptr, b_ptr, c_ptr, M, N, K, sam, sak, sbk, sbn, scm, scn,
                  BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP: tl.constexpr):
    pid = tl.program_id(0)
    num_m, num_n = tl.cdiv(M, BM), tl.cdiv(N, BN)
    group = pid // (GROUP * num_n)
    first_m = group * GROUP
    size_m = min(num_m - first_m, GROUP)
    pm = first_m + (pid % (GROUP * num_n)) % size_m
    pn = (pid % (GROUP * num_n)) // size_m
    rm = (pm * BM + tl.arange(0, BM)) % M
    rn = (pn * BN + tl.arange(0, BN)) % N
    rk = tl.arange(0, BK)
    a = a_ptr + rm[:, None] * sam + rk[None, :] * sak
    b = b_ptr + rk[:, None] * sbk + rn[None, :] * sbn
    acc = tl.zeros((BM, BN), tl.float32)
    for k in range(0, tl.cdiv(K, BK)):
        acc += tl.dot(tl.load(a, mask=rk[None, :] < K - k * BK, other=0.0),
                      tl.load(b, mask=rk[:, None] < K - k * BK, other=0.0))
        a += BK * sak
        b += BK * sbk
    cm = pm * BM + tl.arange(0, BM)
    cn = pn * BN + tl.arange(0, BN)
    tl.store(c_ptr + cm[:, None] * scm + cn[None, :] * scn, acc.to(c_ptr.dtype.element_ty),
             mask=(cm[:, None] < M) & (cn[None, :] < N))


# (BM, BN, BK, warps, stages)
# On sm_90a the f16/bf16 dots run on wgmma (4 warps: one warpgroup, 8: two along M).
TILEC_CONFIGS = [(128, 256, 64, 8, 3), (128, 256, 64, 8, 4), (128, 128, 64, 8, 3),
                 (128, 128, 32, 4, 4), (128, 128, 64, 4, 3), (64, 128, 64, 4, 4),
                 (64, 64, 32, 4, 4)]
TRITON_CONFIGS = [(128, 128, 32, 4, 4), (128, 256, 64, 8, 3), (64, 128, 32, 4, 4)]
SHAPES = [(4096, 4096, 4096), (8192, 8192, 8192), (16, 4096, 4096), (128, 11008, 4096),
          (4096, 14336, 4096)]


def tflops(m: int, n: int, k: int, ms: float) -> float:
    return 2 * m * n * k / ms / 1e9


def run_tilec(a, b, c, cfg):
    bm, bn, bk, warps, stages = cfg
    grid = (tc.cdiv(a.shape[0], bm) * tc.cdiv(b.shape[1], bn),)
    return lambda: matmul[grid](a, b, c, BM=bm, BN=bn, BK=bk, num_warps=warps,
                                num_stages=stages)


def run_triton(a, b, c, cfg):
    bm, bn, bk, warps, stages = cfg
    m, k = a.shape
    n = b.shape[1]
    grid = (triton.cdiv(m, bm) * triton.cdiv(n, bn),)
    return lambda: triton_matmul[grid](a, b, c, m, n, k, *a.stride(), *b.stride(), *c.stride(),
                                       BM=bm, BN=bn, BK=bk, GROUP=8, num_warps=warps,
                                       num_stages=stages)


def resources(dtype, cfg) -> dict:
    bm, bn, bk, warps, stages = cfg
    d = {torch.float16: "f16", torch.bfloat16: "bf16"}[dtype]
    module = matmul.compile(f"A: tensor<?x?x{d}>, B: tensor<?x?x{d}>, C: tensor<?x?x{d}>, "
                            f"BM={bm}, BN={bn}, BK={bk}, num_stages={stages}")
    k = compile_kernel(module, "matmul", "sm_90a", warps)
    r = k.resources
    return {"registers": r.registers, "spill_stores": r.spill_stores,
            "mma_sync": k.ptx.count("mma.sync"), "wgmma": k.ptx.count("wgmma.mma_async"),
            "ldmatrix": k.ptx.count("ldmatrix"),
            "cp_async": k.ptx.count("cp.async.cg"),
            "shared_bytes": k.shared_bytes}


def main() -> None:
    rows = []
    print(f"{'dtype':6} {'M':>5} {'N':>6} {'K':>5}  {'cuBLAS':>7} {'triton':>7} {'tilec':>7} "
          f"{'vs cuBLAS':>9}  best tilec config")
    for dtype in (torch.float16, torch.bfloat16):
        for m, n, k in SHAPES:
            if dtype == torch.bfloat16 and (m, n, k) not in SHAPES[:2]:
                continue
            a = torch.randn(m, k, dtype=dtype, device="cuda")
            b = torch.randn(k, n, dtype=dtype, device="cuda")
            c = torch.full((m, n), float("nan"), dtype=dtype, device="cuda")
            ref = torch.matmul(a, b)
            cublas = median(time_ms(lambda: torch.matmul(a, b)))
            best_triton = min(median(time_ms(run_triton(a, b, c, cfg))) for cfg in TRITON_CONFIGS)
            tilec_times = {}
            for cfg in TILEC_CONFIGS:
                c.fill_(float("nan"))
                fn = run_tilec(a, b, c, cfg)
                fn()
                err = ((c.float() - ref.float()).abs().max() / ref.float().abs().max()).item()
                ok = bool(err < 2e-2)
                tilec_times[cfg] = (median(time_ms(fn)), ok, err)
            cfg, (ms, ok, err) = min(tilec_times.items(), key=lambda kv: kv[1][0])
            row = {"dtype": str(dtype).removeprefix("torch."), "M": m, "N": n, "K": k,
                   "cublas_tflops": tflops(m, n, k, cublas),
                   "triton_tflops": tflops(m, n, k, best_triton),
                   "tilec_tflops": tflops(m, n, k, ms), "tilec_correct": ok,
                   "tilec_rel_err": err, "tilec_config": cfg,
                   "tilec_all": {str(c_): tflops(m, n, k, t[0]) for c_, t in tilec_times.items()},
                   "tilec_resources": resources(dtype, cfg)}
            row["vs_cublas"] = row["tilec_tflops"] / row["cublas_tflops"]
            row["vs_triton"] = row["tilec_tflops"] / row["triton_tflops"]
            rows.append(row)
            print(f"{row['dtype']:6} {m:5} {n:6} {k:5}  {row['cublas_tflops']:7.1f} "
                  f"{row['triton_tflops']:7.1f} {row['tilec_tflops']:7.1f} "
                  f"{row['vs_cublas']:9.2f}  {cfg} ok={ok} {row['tilec_resources']}")
    path = write_result("gemm", {"rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
