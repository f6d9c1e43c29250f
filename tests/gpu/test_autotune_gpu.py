"""The autotuner on a GPU: the GEMM library's tuned choice against an exhaustive search of the
same space, the database reused by a later process, TILEC_AUTOTUNE=0, wrong configurations
discarded, reset_to_zero / restore, and `tilec tune`.

Every test points TILEC_CACHE_DIR at a fresh directory, so nothing tuned or compiled before
helps it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

import tilec as tc  # noqa: E402
from tilec.lib.gemm import _tuned_grid, gemm, tuned_gemm  # noqa: E402
from tilec.tune import Autotuner  # noqa: E402
from tilec.tune.autotuner import REFINE_BUDGET  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
F16_FLAGS = dict(GROUP_M=8, ACC=tc.float32, EPI_F32=False, HAS_SCALE=False, HAS_BIAS=False,
                 ACT="none", ROUND=False)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path))
    return tmp_path


def _gemm_inputs(m: int, n: int, k: int, seed: int = 0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    a = torch.randn(m, k, device="cuda", generator=g).half()
    b = torch.randn(k, n, device="cuda", generator=g).half()
    c = torch.full((m, n), float("nan"), device="cuda", dtype=torch.float16)
    return a, b, c


def _check_gemm(a, b, c) -> None:
    ref = a.double() @ b.double()
    err = float((c.double() - ref).abs().max() / ref.abs().max())
    assert err < 2e-3, err


def _copy(tuner: Autotuner, budget: int | None) -> Autotuner:
    """The same search with another budget and nothing chosen yet."""
    return Autotuner(tuner.kernel, tuner.configs, tuner.key, budget=budget)


@pytest.mark.parametrize("shape", [(4096, 4096, 4096), (128, 11008, 4096)],
                         ids=["4096^3", "llm-128x11008x4096"])
def test_gemm_tuning_is_within_5_percent_of_exhaustive(fresh_cache, shape):
    m, n, k = shape
    a, b, c = _gemm_inputs(m, n, k)
    args = (a, b, c, a, 1.0)
    grid = _tuned_grid(m, n)
    tuned = _copy(tuned_gemm, tuned_gemm.budget).tune(grid, args, dict(F16_FLAGS), 0)
    exhaustive = _copy(tuned_gemm, None).tune(grid, args, dict(F16_FLAGS), 0)
    times = {cfg: ms for cfg, ms in exhaustive.timed}
    best_cfg, best_ms = exhaustive.timed[0]
    print(f"\ntuned: {tuned.winner.short()} {tuned.timed[0][1]:.4f} ms in "
          f"{tuned.seconds['total']:.1f} s ({len(tuned.timed)} timed); exhaustive: "
          f"{best_cfg.short()} {best_ms:.4f} ms in {exhaustive.seconds['total']:.1f} s "
          f"({len(exhaustive.timed)} timed); refined: {tuned.refined}")
    print(f"pruned by the exhaustive run: {sorted(set(exhaustive.pruned.values()))}; "
          f"failed: {exhaustive.failed}; mismatched: {exhaustive.mismatched}")
    print("tuned: " + ", ".join(f"{c.short()} {ms:.4f} ms [{tuned.spread[c.short()][0]:.4f}-"
                                f"{tuned.spread[c.short()][1]:.4f}] x{tuned.spread[c.short()][2]}"
                                for c, ms in tuned.timed[:4]))
    print(f"seconds: tuned {tuned.seconds}; exhaustive {exhaustive.seconds}")
    # the budget, then at most REFINE_BUDGET neighbours of the best
    assert len(tuned.timed) <= tuned_gemm.budget + REFINE_BUDGET < len(exhaustive.timed)
    # every timed candidate has its spread; the close ones were timed again (more samples)
    assert set(tuned.spread) == {c.short() for c, _ in tuned.timed}
    assert tuned.spread[tuned.winner.short()][2] >= 10
    assert tuned.winner.short() not in exhaustive.mismatched
    # The tuned winner's time as the exhaustive run measured it (the same conditions).
    assert times[tuned.winner] <= 1.05 * best_ms, (tuned.winner, times[tuned.winner], best_ms)
    # The timing is reproducible: the two runs measured the winner within 3% of each other
    # (before the GPU was held back while launches queued, the launch path was in the
    # numbers and two runs of one config differed by tens of percent at the LLM shape).
    tuned_ms = dict(tuned.timed)[tuned.winner]
    assert abs(tuned_ms / times[tuned.winner] - 1) < 0.03, (tuned_ms, times[tuned.winner])
    launch = tuned_gemm.kernel[grid]
    launch(*args, **F16_FLAGS, **tuned.winner.all())
    _check_gemm(a, b, c)


LATER_PROCESS = """
import time, torch
from tilec.lib.gemm import gemm, tuned_gemm
a = torch.randn(2048, 1024, device="cuda").half()
b = torch.randn(1024, 2048, device="cuda").half()
start = time.perf_counter()
c = gemm(a, b)
torch.cuda.synchronize()
ref = a.double() @ b.double()
err = float((c.double() - ref).abs().max() / ref.abs().max())
print(tuned_gemm.tuning_count, len(tuned_gemm.chosen), err, time.perf_counter() - start)
"""


def test_winner_is_reused_by_a_later_process(fresh_cache):
    env = {k: v for k, v in os.environ.items() if k != "TILEC_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT)
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", LATER_PROCESS], capture_output=True,
                              text=True, env=env, timeout=600, cwd=ROOT)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        count, chosen, err, seconds = proc.stdout.split()
        runs.append((int(count), int(chosen), float(err), float(seconds)))
    assert runs[0][:2] == (1, 1)   # the first process tuned
    assert runs[1][:2] == (0, 1)   # the second read the database
    assert runs[0][2] < 2e-3 and runs[1][2] < 2e-3
    print(f"\nfirst process {runs[0][3]:.1f} s (tuning), second {runs[1][3]:.1f} s")
    show = subprocess.run([sys.executable, "-m", "tilec.cli", "tune", "--show"],
                          capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert "gemm_kernel-" in show.stdout and "winner" in show.stdout, show.stdout + show.stderr
    assert "key 2048, 2048, 1024" in show.stdout


def test_autotune_off_takes_the_cost_models_choice(fresh_cache, monkeypatch):
    monkeypatch.setenv("TILEC_AUTOTUNE", "0")
    tuner = _copy(tuned_gemm, tuned_gemm.budget)
    a, b, c = _gemm_inputs(1024, 1024, 1024, seed=1)
    tuner[_tuned_grid(1024, 1024)](a, b, c, a, 1.0, **F16_FLAGS)
    _check_gemm(a, b, c)
    (report,) = tuner.reports.values()
    assert report.method == "cost model" and not report.timed
    assert report.winner == report.predicted[0][0]
    assert tuner.tuning_count == 0
    assert not list(fresh_cache.glob("tuning/*/*.json"))  # a guess is not stored


@tc.kernel
def shift(X: tc.Tensor, Y: tc.Tensor, n: int, BLOCK: tc.constexpr, WRONG: tc.constexpr):
    i = tc.program_id(0) * BLOCK + tc.arange(0, BLOCK)
    tc.store(Y.ptr + i, tc.load(X.ptr + i, mask=i < n) * 2.0 + WRONG, mask=i < n)


def test_a_configuration_with_other_results_is_discarded(fresh_cache):
    configs = [tc.Config(BLOCK=128, WRONG=0), tc.Config(BLOCK=256, WRONG=1),
               tc.Config(BLOCK=512, WRONG=0)]
    tuner = tc.autotune(configs=configs, key=["n"])(shift)
    n = 1 << 20
    x = torch.randn(n, device="cuda")
    y = torch.full_like(x, float("nan"))
    tuner[lambda meta: (tc.cdiv(n, meta["BLOCK"]),)](x, y, n)
    (report,) = tuner.reports.values()
    assert report.mismatched == ["BLOCK=256 WRONG=1 w4 s3"]
    assert report.winner.kwargs["WRONG"] == 0 and len(report.timed) == 2
    torch.testing.assert_close(y, x * 2.0)


@tc.kernel
def accumulate(X: tc.Tensor, Y: tc.Tensor, n: int, BLOCK: tc.constexpr):
    i = tc.program_id(0) * BLOCK + tc.arange(0, BLOCK)
    tc.atomic_add(Y.ptr + i, tc.load(X.ptr + i, mask=i < n), mask=i < n)


@tc.kernel
def double_in_place(Y: tc.Tensor, n: int, BLOCK: tc.constexpr):
    i = tc.program_id(0) * BLOCK + tc.arange(0, BLOCK)
    tc.store(Y.ptr + i, tc.load(Y.ptr + i, mask=i < n) * 2.0, mask=i < n)


def test_reset_to_zero_and_restore(fresh_cache):
    configs = [tc.Config(BLOCK=128), tc.Config(BLOCK=256), tc.Config(BLOCK=1024)]
    n = 1 << 20
    grid = lambda meta: (tc.cdiv(n, meta["BLOCK"]),)  # noqa: E731
    x = torch.randn(n, device="cuda")
    y = torch.zeros_like(x)
    tc.autotune(configs=configs, key=["n"], reset_to_zero=["Y"])(accumulate)[grid](x, y, n)
    torch.testing.assert_close(y, x)  # added once, whatever ran while tuning
    z = x.clone()
    tc.autotune(configs=configs, key=["n"], restore=["Y"])(double_in_place)[grid](z, n)
    torch.testing.assert_close(z, x * 2.0)


def test_tilec_tune_fills_the_database_ahead_of_time(fresh_cache):
    env = {k: v for k, v in os.environ.items() if k != "TILEC_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-m", "tilec.cli", "tune", "tilec/lib/gemm.py::tuned_gemm",
           "--shapes", "M=128,N=11008,K=4096"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "winner" in first.stdout and "pruned" in first.stdout, first.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert "already tuned" in again.stdout, again.stdout
    # the library finds it: no tuning in this process
    before = tuned_gemm.tuning_count
    a, b, _ = _gemm_inputs(128, 11008, 4096, seed=3)
    c = gemm(a, b)
    _check_gemm(a, b, c)
    assert tuned_gemm.tuning_count == before
