"""Cold compile time of the fused softmax kernel: tilec against Triton, in the same run.

Each measurement runs in a fresh Python process with an empty cache directory
(TILEC_CACHE_DIR / TRITON_CACHE_DIR in a new temp dir), after CUDA is initialised there, so
nothing compiled earlier helps: cold = (first launch + synchronize) - (a warm launch +
synchronize). The kernel is the one of examples/softmax.py (f32, BLOCK=1024) and its Triton
twin. Several fresh processes per compiler; the median is reported.

tilec's compile is also split into its stages by calling the pieces of
`tilec.backends.nvidia.compile_kernel` one by one in a warm process (median of several):
frontend (Python -> tile IR), passes (GPU pipeline incl. layout assignment), LLVM lowering,
LLVM -> PTX (NVPTX at O3), ptxas.

Writes benchmarks/results/compile_time-<date>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ROWS, COLS, BLOCK = 512, 1000, 1024


def child_tilec() -> dict:
    import torch
    torch.zeros(1, device="cuda").add_(1)  # CUDA context up before the clock starts
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    sys.path.insert(0, str(ROOT / "examples"))
    import softmax as example  # a fresh process: a fresh kernel object
    import_s = time.perf_counter() - t0
    x = torch.randn(ROWS, COLS, device="cuda")
    y = torch.full_like(x, float("nan"))

    def launch():
        example.softmax[(ROWS,)](x, y, COLS, BLOCK=BLOCK)
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    launch()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    launch()
    warm = time.perf_counter() - t0
    ok = bool(torch.allclose(y, torch.softmax(x, 1), rtol=1e-5, atol=1e-7))
    return {"first_s": first, "warm_s": warm, "cold_s": first - warm, "import_s": import_s,
            "correct": ok}


def child_triton() -> dict:
    import torch
    import triton
    import triton.language as tl
    torch.zeros(1, device="cuda").add_(1)
    torch.cuda.synchronize()

    @triton.jit
    def softmax_kernel(out_ptr, in_ptr, in_row_stride, out_row_stride, n_cols,
                       BLOCK_SIZE: tl.constexpr):
        row = tl.program_id(0)
        cols = tl.arange(0, BLOCK_SIZE)
        mask = cols < n_cols
        x = tl.load(in_ptr + row * in_row_stride + cols, mask=mask, other=-float("inf"))
        x = x - tl.max(x, axis=0)
        num = tl.exp(x)
        tl.store(out_ptr + row * out_row_stride + cols, num / tl.sum(num, axis=0), mask=mask)

    x = torch.randn(ROWS, COLS, device="cuda")
    y = torch.full_like(x, float("nan"))

    def launch():
        softmax_kernel[(ROWS,)](y, x, x.stride(0), y.stride(0), COLS, BLOCK_SIZE=BLOCK,
                                num_warps=4)
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    launch()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    launch()
    warm = time.perf_counter() - t0
    ok = bool(torch.allclose(y, torch.softmax(x, 1), rtol=1e-5, atol=1e-7))
    return {"first_s": first, "warm_s": warm, "cold_s": first - warm, "correct": ok}


def child_stages(repeats: int) -> dict:
    """tilec's compile, stage by stage (the steps of compile_kernel), median of `repeats`
    after one unmeasured round (a warm process: imports and first-call costs excluded)."""
    import torch
    sys.path.insert(0, str(ROOT / "examples"))
    import softmax as example
    from tilec.backends.llvm.lower import lower_kernel
    from tilec.backends.nvidia.compiler import run_ptxas
    from tilec.backends.nvidia.target import NvidiaTarget
    from tilec.ir.parser import parse_module
    from tilec.ir.passes.manager import GPU_PIPELINE, PassOptions, run_passes
    from tilec.ir.printer import print_module
    from tilec.runtime import cuda as rt_cuda
    arch = rt_cuda.device_properties(0).arch
    x = torch.randn(ROWS, COLS, device="cuda")
    y = torch.empty_like(x)
    times: dict[str, list[float]] = {k: [] for k in
                                     ("frontend", "passes", "llvm_lowering", "llvm_to_ptx",
                                      "ptxas", "total")}
    for i in range(repeats + 1):
        t = [time.perf_counter()]
        module = example.softmax.ir(x, y, COLS, BLOCK=BLOCK)
        t.append(time.perf_counter())
        work = parse_module(print_module(module, locations=True), module.source or "<m>")
        work = run_passes(work, GPU_PIPELINE, PassOptions(target=arch, num_warps=4),
                          verify=False)
        t.append(time.perf_counter())
        target = NvidiaTarget(arch)
        lowered = lower_kernel(work.get("softmax"), target, 4)
        t.append(time.perf_counter())
        ptx = target.emit_assembly(lowered.llvm_ir)
        t.append(time.perf_counter())
        run_ptxas(ptx, arch, "softmax")
        t.append(time.perf_counter())
        if i == 0:
            continue
        for k, name in enumerate(("frontend", "passes", "llvm_lowering", "llvm_to_ptx",
                                  "ptxas")):
            times[name].append(t[k + 1] - t[k])
        times["total"].append(t[-1] - t[0])
    return {k: statistics.median(v) for k, v in times.items()}


def run_child(kind: str, env_var: str | None, extra: list[str] = ()) -> dict:
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix=f"cold-{kind}-") as tmp:
        if env_var:
            env[env_var] = tmp
        proc = subprocess.run([sys.executable, __file__, "--child", kind, *extra],
                              capture_output=True, text=True, env=env, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["tilec", "triton", "stages"])
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per compiler")
    parser.add_argument("--stage-repeats", type=int, default=5)
    opts = parser.parse_args()
    if opts.child == "tilec":
        print(json.dumps(child_tilec()))
        return 0
    if opts.child == "triton":
        print(json.dumps(child_triton()))
        return 0
    if opts.child == "stages":
        print(json.dumps(child_stages(opts.stage_repeats)))
        return 0

    sys.path.insert(0, str(HERE))
    from common import write_result
    runs = {"tilec": [run_child("tilec", "TILEC_CACHE_DIR") for _ in range(opts.runs)]}
    try:
        import triton  # noqa: F401
        runs["triton"] = [run_child("triton", "TRITON_CACHE_DIR") for _ in range(opts.runs)]
    except ImportError:
        pass
    stages = run_child("stages", "TILEC_CACHE_DIR",
                       ["--stage-repeats", str(opts.stage_repeats)])
    summary = {k: {"cold_s": statistics.median(r["cold_s"] for r in v),
                   "first_s": statistics.median(r["first_s"] for r in v),
                   "warm_s": statistics.median(r["warm_s"] for r in v),
                   "correct": all(r["correct"] for r in v)} for k, v in runs.items()}
    if "triton" in summary:
        summary["tilec"]["vs_triton"] = summary["tilec"]["cold_s"] / summary["triton"]["cold_s"]
    path = write_result("compile_time", {"kernel": f"softmax f32 {ROWS}x{COLS} BLOCK={BLOCK}",
                                         "summary": summary, "runs": runs,
                                         "tilec_stages_warm_s": stages})
    print(f"\ncold compile of softmax (BLOCK={BLOCK}), median of {opts.runs} fresh processes")
    print(f"{'compiler':<8} {'cold s':>8} {'first s':>8} {'warm ms':>8} {'ok':>5}")
    for k, s in summary.items():
        print(f"{k:<8} {s['cold_s']:>8.3f} {s['first_s']:>8.3f} {s['warm_s'] * 1e3:>8.3f} "
              f"{str(s['correct']):>5}")
    if "triton" in summary:
        print(f"tilec / triton cold: {summary['tilec']['vs_triton']:.2f}x")
    print("tilec stages (warm process, median s): " +
          ", ".join(f"{k} {v:.4f}" for k, v in stages.items()))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
