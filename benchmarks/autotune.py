"""Autotuning: wall time of a tuning run and the speed of what it chose, for tilec and Triton,
in one run. For each GEMM shape (f16, 4096^3 and an LLM projection, M=128 N=11008 K=4096):

  tilec            `tilec.lib.gemm`'s search: its space (72 configurations), resource model,
                   cost model, the first 16 compiled in worker processes and timed, then
                   up to 4 untimed neighbours of the best (refinement)
  tilec-exhaustive the same space with no budget: every configuration that fits is timed
  tilec-tutorial   tilec over the Triton tutorial's 8 matmul configurations
  triton           `triton.autotune` over those 8, on the Triton tutorial's matmul kernel
  triton-space     `triton.autotune` over tilec's 72 (the same kernel): the equivalent of
                   tilec's own search, run once (it compiles every configuration, serially)
  tilec-reuse      a later process with tilec's database filled: no tuning

Wall time: each runs in a fresh process with empty compile caches (TILEC_CACHE_DIR,
TRITON_CACHE_DIR), so it is what a first launch costs: from the first call to its end (imports
and input allocation excluded). tilec and triton, the two the goal compares, run WALL_RUNS
times each, alternating; their mean is compared.

Speed of the chosen configurations: measured afterwards in ONE process, every distinct chosen
configuration (the same configuration chosen by two methods is one measurement), interleaved
(ROUNDS rounds, each a batch of REPS launches of every configuration in turn), each launch
after a write of FLUSH_BYTES that evicts L2 (the same cold-L2 state for every method), with
the GPU held back while a batch is queued so that the events time the kernels and not the
launch paths. Reported: the median of all samples and the 10th-90th percentile spread.
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
METHODS = ["tilec", "triton", "tilec-exhaustive", "tilec-tutorial", "triton-space",
           "tilec-reuse"]
WALL_RUNS = 2          # tilec and triton: fresh-process runs each, alternating
ROUNDS, REPS = 5, 20   # the interleaved measurement of the chosen configurations
FLUSH_BYTES = 256 << 20

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


def _space_configs() -> list:
    """tilec.lib.gemm's tuning space as Triton configurations."""
    from tilec.lib.gemm import TUNING_SPACE as S
    return [triton.Config({"BM": bm, "BN": bn, "BK": bk, "GROUP": 8}, num_warps=w, num_stages=s)
            for bm in S["BM"] for bn in S["BN"] for bk in S["BK"] for w in S["num_warps"]
            for s in S["num_stages"]]


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


def _tilec_flags():
    import tilec as tc
    return dict(GROUP_M=8, ACC=tc.float32, EPI_F32=False, HAS_SCALE=False, HAS_BIAS=False,
                ACT="none", ROUND=False)


def run_tilec(method: str, m: int, n: int, k: int) -> dict:
    import torch

    import tilec as tc
    from tilec.lib.gemm import _tuned_grid, tuned_gemm
    from tilec.tune import Autotuner
    configs, budget = tuned_gemm.configs, tuned_gemm.budget
    if method == "tilec-exhaustive":
        budget = None
    elif method == "tilec-tutorial":
        configs = [tc.Config(BM=bm, BN=bn, BK=bk, num_warps=w, num_stages=s)
                   for bm, bn, bk, w, s in TUTORIAL]
        budget = None
    tuner = Autotuner(tuned_gemm.kernel, configs, tuned_gemm.key, budget=budget)
    a, b, c = _inputs(m, n, k)
    flags = _tilec_flags()
    grid = _tuned_grid(m, n)
    torch.cuda.synchronize()
    start = time.perf_counter()
    tuner[grid](a, b, c, a, 1.0, **flags)
    torch.cuda.synchronize()
    wall = time.perf_counter() - start
    err = _error(a, b, c)
    (cfg,) = tuner.chosen.values()
    out = {"wall_s": wall, "config": cfg.short(), "launch": {"impl": "tilec", **cfg.all()},
           "rel_err": err, "tuned": tuner.tuning_count}
    report = next(iter(tuner.reports.values()), None)
    if report is not None:
        out.update(timed=len(report.timed), pruned=len(report.pruned), failed=len(report.failed),
                   mismatched=len(report.mismatched), seconds=report.seconds,
                   all_ms={c.short(): t for c, t in report.timed}, spread=report.spread,
                   predicted=[c.short() for c, _ in report.predicted[:8]],
                   refined=report.refined)
    return out


def _triton_call(a, b, c, m: int, n: int, k: int, fn=None, **meta):
    grid = lambda meta: (triton.cdiv(m, meta["BM"]) * triton.cdiv(n, meta["BN"]),)  # noqa
    (fn or triton_matmul)[grid](a, b, c, m, n, k, *a.stride(), *b.stride(), *c.stride(), **meta)


def run_triton(method: str, m: int, n: int, k: int) -> dict:
    import torch
    tuned = triton_matmul
    if method == "triton-space":
        tuned = triton.autotune(configs=_space_configs(), key=["M", "N", "K"])(triton_matmul.fn)
    a, b, c = _inputs(m, n, k)
    torch.cuda.synchronize()
    start = time.perf_counter()
    _triton_call(a, b, c, m, n, k, tuned)
    torch.cuda.synchronize()
    wall = time.perf_counter() - start
    err = _error(a, b, c)
    best = tuned.best_config
    cfg = f"BK={best.kwargs['BK']} BM={best.kwargs['BM']} BN={best.kwargs['BN']} " \
          f"w{best.num_warps} s{best.num_stages}"
    launch = {"impl": "triton", **best.kwargs, "num_warps": best.num_warps,
              "num_stages": best.num_stages}
    return {"wall_s": wall, "config": cfg, "launch": launch, "rel_err": err}


def measure(m: int, n: int, k: int, launches: list[dict]) -> dict:
    """The interleaved cold-L2 measurement of `launches` (see the module's docstring): for
    each, its samples' median, 10th and 90th percentiles (ms) and its error."""
    import statistics

    import torch

    from tilec.lib.gemm import gemm_kernel
    from tilec.tune.timing import spread, torch_stall
    a, b, c = _inputs(m, n, k)
    flags = _tilec_flags()
    calls = []
    for spec in launches:
        meta = {key: v for key, v in spec.items() if key != "impl"}
        if spec["impl"] == "tilec":
            programs = triton.cdiv(m, meta["BM"]) * triton.cdiv(n, meta["BN"])
            launch = gemm_kernel[(programs,)]
            calls.append(lambda launch=launch, meta=meta: launch(a, b, c, a, 1.0, **flags,
                                                                 **meta))
        else:
            calls.append(lambda meta=meta: _triton_call(a, b, c, m, n, k, triton_matmul.fn,
                                                        **meta))
    errors = []
    for call in calls:  # compile, check, warm up
        c.fill_(float("nan"))
        call()
        torch.cuda.synchronize()
        errors.append(_error(a, b, c))
        for _ in range(3):
            call()
    flush = torch.empty(FLUSH_BYTES // 4, dtype=torch.int32, device="cuda")
    samples: list[list[float]] = [[] for _ in calls]
    for r in range(ROUNDS):
        order = list(range(len(calls)))
        order = order[r % len(order):] + order[:r % len(order)]  # each goes first in turn
        for i in order:
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                      for _ in range(REPS)]
            torch.cuda.synchronize()
            torch_stall(20.0)  # >= 20 ms of GPU sleep: the host queues the whole batch
            for start, end in events:
                flush.zero_()
                start.record()
                calls[i]()
                end.record()
            torch.cuda.synchronize()
            samples[i] += [s.elapsed_time(e) for s, e in events]
    out = []
    for spec, times, err in zip(launches, samples, errors):
        p10, p90 = spread(times)
        out.append({**spec, "ms": statistics.median(times), "p10_ms": p10, "p90_ms": p90,
                    "samples": len(times), "rel_err": err})
    return {"measured": out}


def worker(method: str, m: int, n: int, k: int) -> None:
    result = run_triton(method, m, n, k) if method.startswith("triton") else \
        run_tilec(method, m, n, k)
    print("RESULT " + json.dumps(result))


def _env(cache: str) -> dict:
    env = {key: v for key, v in os.environ.items() if key != "TILEC_INTERPRET"}
    env.update(TILEC_CACHE_DIR=cache, TRITON_CACHE_DIR=os.path.join(cache, "triton"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    return env


def _result(proc: subprocess.CompletedProcess) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stdout + proc.stderr)[-2000:]}
    return json.loads(lines[-1][len("RESULT "):])


def _run(method: str, shape: tuple[int, int, int], cache: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", method, *map(str, shape)],
                          capture_output=True, text=True, env=_env(cache), timeout=900)
    return _result(proc)


def _measure(shape: tuple[int, int, int], launches: list[dict], cache: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--measure", *map(str, shape),
                           json.dumps(launches)], capture_output=True, text=True,
                          env=_env(cache), timeout=900)
    return _result(proc)


def _key(launch: dict) -> str:
    return json.dumps(launch, sort_keys=True)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import write_result
    rows = []
    for shape in SHAPES:
        m, n, k = shape
        name = "x".join(map(str, shape))
        with tempfile.TemporaryDirectory(prefix="tilec-autotune-") as tmp:
            results: dict[str, dict] = {}
            walls: dict[str, list[float]] = {"tilec": [], "triton": []}
            plan = [x for _ in range(WALL_RUNS) for x in ("tilec", "triton")] + METHODS[2:]
            for i, method in enumerate(plan):
                # each run a fresh cache, except tilec-reuse: the first tilec run's, database
                # and all
                cache = os.path.join(tmp, "tilec-0" if method == "tilec-reuse" else f"{method}-{i}")
                r = _run(method, shape, cache)
                if "error" in r:
                    print(f"{name:>16} {method:>17} FAILED\n{r['error']}")
                    results.setdefault(method, r)
                    continue
                if method in walls or method == "triton-space":
                    walls.setdefault(method, []).append(r["wall_s"])
                    print(f"{name:>16} {method:>17} wall {r['wall_s']:.2f} s  {r['config']}"
                          + (f"  {_breakdown(r)}" if "seconds" in r else ""))
                if method not in results or "error" in results[method]:
                    results[method] = r   # the first run's config is the one measured
            for method, ws in walls.items():
                if method in results and "error" not in results[method] and ws:
                    results[method]["wall_runs_s"] = ws
                    results[method]["wall_s"] = sum(ws) / len(ws)
            ok = {x: r for x, r in results.items() if "launch" in r}
            distinct = {_key(r["launch"]): r["launch"] for r in ok.values()}
            measured = _measure(shape, list(distinct.values()), os.path.join(tmp, "measure"))
        if "error" in measured:
            print(f"{name:>16} measurement FAILED\n{measured['error']}")
        else:
            by_key = {_key({x: v for x, v in d.items() if x not in
                            ("ms", "p10_ms", "p90_ms", "samples", "rel_err")}): d
                      for d in measured["measured"]}
            print(f"{'shape':>16} {'method':>17} {'wall s':>7} {'TFLOP/s':>8} {'p10-p90':>13} "
                  f"{'timed':>5}  config")
            for method in METHODS:
                r = results.get(method)
                if r is None or "launch" not in r:
                    continue
                d = by_key[_key(r["launch"])]
                r["ms"], r["spread_ms"], r["measure_err"] = d["ms"], [d["p10_ms"], d["p90_ms"]], \
                    d["rel_err"]
                r["tflops"] = 2 * m * n * k / d["ms"] / 1e9
                lo, hi = (2 * m * n * k / d[x] / 1e9 for x in ("p90_ms", "p10_ms"))
                print(f"{name:>16} {method:>17} {r['wall_s']:7.2f} {r['tflops']:8.1f} "
                      f"{lo:6.1f}-{hi:<6.1f} {r.get('timed', ''):>5}  {r['config']}")
        row = {"M": m, "N": n, "K": k, "results": results}
        need = [results.get(x, {}) for x in ("tilec", "tilec-exhaustive", "triton",
                                              "tilec-tutorial", "triton-space")]
        if all("tflops" in r for r in need):
            tuned, exhaustive, triton_r, tutorial, triton_space = need
            row["tilec_vs_exhaustive"] = tuned["tflops"] / exhaustive["tflops"]
            # The comparison: the same configuration list for both tuners (tilec's
            # 72, and the tutorial's 8); and the stricter one of tilec's 72 against Triton's 8.
            row["tilec_wall_vs_triton_space"] = tuned["wall_s"] / triton_space["wall_s"]
            row["tutorial_wall_vs_triton"] = tutorial["wall_s"] / triton_r["wall_s"]
            row["tilec_wall_vs_triton"] = tuned["wall_s"] / triton_r["wall_s"]
            row["tilec_vs_triton_tflops"] = tuned["tflops"] / triton_r["tflops"]
            row["tilec_vs_triton_space_tflops"] = tuned["tflops"] / triton_space["tflops"]
            row["goal_met"] = row["tilec_vs_exhaustive"] >= 0.97 and \
                row["tilec_wall_vs_triton_space"] < 1.0 and row["tutorial_wall_vs_triton"] < 1.0
            print(f"{'':>16} tilec at {row['tilec_vs_exhaustive']:.3f} of exhaustive"
                  f"{' (the same config)' if tuned['config'] == exhaustive['config'] else ''}; "
                  f"wall vs Triton on the same configs: {row['tilec_wall_vs_triton_space']:.2f}x "
                  f"(72), {row['tutorial_wall_vs_triton']:.2f}x (8); tilec's 72 vs Triton's 8: "
                  f"{row['tilec_wall_vs_triton']:.2f}x; goal "
                  f"{'met' if row['goal_met'] else 'NOT met'}")
        rows.append(row)
    path = write_result("autotune", {"rows": rows, "tutorial_configs": TUTORIAL,
                                     "jobs": os.cpu_count(), "wall_runs": WALL_RUNS,
                                     "measure": {"rounds": ROUNDS, "reps": REPS,
                                                 "flush_bytes": FLUSH_BYTES}})
    print(f"wrote {path}")


def _breakdown(r: dict) -> str:
    """The tuner's own account of its wall time."""
    return " ".join(f"{x} {v:.2f}" for x, v in r["seconds"].items())


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], *map(int, sys.argv[3:6]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--measure":
        print("RESULT " + json.dumps(measure(*map(int, sys.argv[2:5]), json.loads(sys.argv[5]))))
    else:
        main()
