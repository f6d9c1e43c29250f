"""Autotuning: wall time of a tuning run and the speed of what it chose, for tilec and Triton,
in one run. For each GEMM shape (f16, 4096^3 and an LLM projection, M=128 N=11008 K=4096):

  tilec            `tilec.lib.gemm`'s search: its space (72 configurations), resource model,
                   cost model, the first 16 compiled in worker processes and timed
  tilec-exhaustive the same space with no budget: every configuration that fits is timed
  tilec-tutorial   tilec over the Triton tutorial's 8 matmul configurations
  triton           `triton.autotune` over those 8, on the Triton tutorial's matmul kernel
  tilec-reuse      a later process with tilec's database filled: no tuning

Each runs in a fresh process with empty compile caches (TILEC_CACHE_DIR, TRITON_CACHE_DIR), so
the wall time is what a first launch costs: from the first call to its end (imports and input
allocation excluded). The chosen configuration is then timed with CUDA events (median of 50).
Prints a table; writes benchmarks/results/autotune-<date>.json.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import triton
import triton.language as tl

ROOT = Path(__file__).resolve().parent.parent
SHAPES = [(4096, 4096, 4096), (128, 11008, 4096)]
METHODS = ["tilec", "tilec-exhaustive", "tilec-tutorial", "triton", "tilec-reuse"]

# The Triton matmul tutorial's CUDA configurations: (BM, BN, BK, num_warps, num_stages).
TUTORIAL = [(128, 256, 64, 8, 3), (64, 256, 32, 4, 4), (128, 128, 32, 4, 4), (128, 64, 32, 4, 4),
            (64, 128, 32, 4, 4), (128, 32, 32, 4, 4), (64, 32, 32, 2, 5), (32, 64, 32, 2, 5)]


@triton.autotune(configs=[triton.Config({"BM": bm, "BN": bn, "BK": bk, "GROUP": 8},
                                        num_warps=w, num_stages=s)
                          for bm, bn, bk, w, s in TUTORIAL], key=["M", "N", "K"])
@triton.jit
def triton_matmul(a_ptr, b_ptr, c_ptr, M, N, K, sam, sak, sbk, sbn, scm, scn,
                  BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP: tl.constexpr):
    # Grouped program order, then a K loop of masked loads and tl.dot: the tutorial's form.
    pid = tl.program_id(0)
    tiles_m, tiles_n = tl.cdiv(M, BM), tl.cdiv(N, BN)
    in_group = GROUP * tiles_n
    first_m = (pid // in_group) * GROUP
    rows = min(tiles_m - first_m, GROUP)
    pm = first_m + (pid % in_group) % rows
    pn = (pid % in_group) // rows
    offs_m = (pm * BM + tl.arange(0, BM)) % M
    offs_n = (pn * BN + tl.arange(0, BN)) % N
    offs_k = tl.arange(0, BK)
    a_ptrs = a_ptr + offs_m[:, None] * sam + offs_k[None, :] * sak
    b_ptrs = b_ptr + offs_k[:, None] * sbk + offs_n[None, :] * sbn
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for kk in range(0, tl.cdiv(K, BK)):
        a = tl.load(a_ptrs, mask=offs_k[None, :] < K - kk * BK, other=0.0)
        b = tl.load(b_ptrs, mask=offs_k[:, None] < K - kk * BK, other=0.0)
        acc = tl.dot(a, b, acc)
        a_ptrs += BK * sak
        b_ptrs += BK * sbk
    cm = pm * BM + tl.arange(0, BM)
    cn = pn * BN + tl.arange(0, BN)
    tl.store(c_ptr + cm[:, None] * scm + cn[None, :] * scn, acc.to(tl.float16),
             mask=(cm[:, None] < M) & (cn[None, :] < N))


def _inputs(m: int, n: int, k: int):
    import torch
    torch.manual_seed(0)
    a = torch.randn(m, k, device="cuda", dtype=torch.float16)
    b = torch.randn(k, n, device="cuda", dtype=torch.float16)
    c = torch.full((m, n), float("nan"), device="cuda", dtype=torch.float16)
    return a, b, c


def _error(a, b, c) -> float:
    ref = a.double() @ b.double()
    return float((c.double() - ref).abs().max() / ref.abs().max())


def run_tilec(method: str, m: int, n: int, k: int) -> dict:
    import torch

    import tilec as tc
    from tilec.lib.gemm import _tuned_grid, tuned_gemm
    from tilec.tune import Autotuner
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import median, time_ms
    configs, budget = tuned_gemm.configs, tuned_gemm.budget
    if method == "tilec-exhaustive":
        budget = None
    elif method == "tilec-tutorial":
        configs = [tc.Config(BM=bm, BN=bn, BK=bk, num_warps=w, num_stages=s)
                   for bm, bn, bk, w, s in TUTORIAL]
        budget = None
    tuner = Autotuner(tuned_gemm.kernel, configs, tuned_gemm.key, budget=budget)
    a, b, c = _inputs(m, n, k)
    flags = dict(GROUP_M=8, ACC=tc.float32, EPI_F32=False, HAS_SCALE=False, HAS_BIAS=False,
                 ACT="none", ROUND=False)
    grid = _tuned_grid(m, n)
    torch.cuda.synchronize()
    start = time.perf_counter()
    tuner[grid](a, b, c, a, 1.0, **flags)
    torch.cuda.synchronize()
    wall = time.perf_counter() - start
    err = _error(a, b, c)
    (cfg,) = tuner.chosen.values()
    ms = median(time_ms(lambda: tuner[grid](a, b, c, a, 1.0, **flags), repeats=50))
    out = {"wall_s": wall, "config": cfg.short(), "ms": ms, "rel_err": err,
           "tuned": tuner.tuning_count}
    report = next(iter(tuner.reports.values()), None)
    if report is not None:
        out.update(timed=len(report.timed), pruned=len(report.pruned), failed=len(report.failed),
                   mismatched=len(report.mismatched), seconds=report.seconds,
                   all_ms={c.short(): t for c, t in report.timed})
    return out


def run_triton(m: int, n: int, k: int) -> dict:
    import torch
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import median, time_ms

    a, b, c = _inputs(m, n, k)

    def call():
        grid = lambda meta: (triton.cdiv(m, meta["BM"]) * triton.cdiv(n, meta["BN"]),)  # noqa
        triton_matmul[grid](a, b, c, m, n, k, *a.stride(), *b.stride(), *c.stride())
    torch.cuda.synchronize()
    start = time.perf_counter()
    call()
    torch.cuda.synchronize()
    wall = time.perf_counter() - start
    err = _error(a, b, c)
    best = triton_matmul.best_config
    cfg = f"BK={best.kwargs['BK']} BM={best.kwargs['BM']} BN={best.kwargs['BN']} " \
          f"w{best.num_warps} s{best.num_stages}"
    ms = median(time_ms(call, repeats=50))
    return {"wall_s": wall, "config": cfg, "ms": ms, "rel_err": err}


def worker(method: str, m: int, n: int, k: int) -> None:
    result = run_triton(m, n, k) if method == "triton" else run_tilec(method, m, n, k)
    print("RESULT " + json.dumps(result))


def _run(method: str, shape: tuple[int, int, int], cache: str) -> dict:
    env = {key: v for key, v in os.environ.items() if key != "TILEC_INTERPRET"}
    env.update(TILEC_CACHE_DIR=cache, TRITON_CACHE_DIR=os.path.join(cache, "triton"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, __file__, "--worker", method, *map(str, shape)],
                          capture_output=True, text=True, env=env, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stdout + proc.stderr)[-2000:]}
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import write_result
    rows = []
    print(f"{'shape':>16} {'method':>17} {'wall s':>7} {'TFLOP/s':>8} {'timed':>5}  config")
    for shape in SHAPES:
        m, n, k = shape
        with tempfile.TemporaryDirectory(prefix="tilec-autotune-") as tmp:
            results = {}
            for method in METHODS:
                # each method a fresh cache, except tilec-reuse: tilec's, database and all
                cache = os.path.join(tmp, "tilec" if method == "tilec-reuse" else method)
                results[method] = r = _run(method, shape, cache)
                if "error" in r:
                    print(f"{str(shape):>16} {method:>17} FAILED\n{r['error']}")
                    continue
                r["tflops"] = 2 * m * n * k / r["ms"] / 1e9
                print(f"{'x'.join(map(str, shape)):>16} {method:>17} {r['wall_s']:7.2f} "
                      f"{r['tflops']:8.1f} {r.get('timed', ''):>5}  {r['config']}")
        row = {"M": m, "N": n, "K": k, "results": results}
        ok = [results.get(x, {}) for x in ("tilec", "tilec-exhaustive", "triton",
                                            "tilec-tutorial")]
        if all("tflops" in r for r in ok):
            tuned, exhaustive, triton_r, tutorial = ok
            row["tilec_vs_exhaustive"] = tuned["tflops"] / exhaustive["tflops"]
            row["tilec_wall_vs_triton"] = tuned["wall_s"] / triton_r["wall_s"]
            row["tutorial_wall_vs_triton"] = tutorial["wall_s"] / triton_r["wall_s"]
            row["tilec_vs_triton_tflops"] = tuned["tflops"] / triton_r["tflops"]
            print(f"{'':>16} tilec at {row['tilec_vs_exhaustive']:.3f} of exhaustive; wall "
                  f"{row['tilec_wall_vs_triton']:.2f}x Triton's (same 8 configs: "
                  f"{row['tutorial_wall_vs_triton']:.2f}x)")
        rows.append(row)
    path = write_result("autotune", {"rows": rows, "tutorial_configs": TUTORIAL,
                                     "jobs": os.cpu_count()})
    print(f"wrote {path}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], *map(int, sys.argv[3:6]))
    else:
        main()
