"""Helpers: gemm candidates profiled the way the autotuner profiles them (in this process),
and a search's timing and compilation without a GPU or ptxas."""
from __future__ import annotations

from typing import Callable

import numpy as np

import tilec as tc
from tilec.backends.nvidia.compiler import CompiledKernel, Resources
from tilec.ir.printer import print_module
from tilec.lib.gemm import _tuned_grid, tuned_gemm
from tilec.tune import workers
from tilec.tune.autotuner import Autotuner
from tilec.tune.resources import DeviceLimits
from tilec.tune.timing import Session

H100 = DeviceLimits.for_arch("sm_90a")
FLAGS = dict(GROUP_M=8, ACC=tc.float32, EPI_F32=False, HAS_SCALE=False, HAS_BIAS=False,
             ACT="none", ROUND=False)


def gemm_values(m: int, n: int, k: int, dtype=np.float16) -> dict:
    """The bound arguments of tuned_gemm for an m x k @ k x n problem (arrays never read)."""
    a, b = np.empty((m, k), dtype), np.empty((k, n), dtype)
    c = np.empty((m, n), dtype)
    values, _ = tuned_gemm.kernel.bind((a, b, c, a, 1.0), {**FLAGS,
                                                           **tuned_gemm.configs[0].all()})
    return values


def gemm_profile(cfg: tc.Config, m: int = 4096, n: int = 4096, k: int = 4096,
                 dtype=np.float16):
    """The KernelProfile of one gemm configuration (sm_90a)."""
    from tilec.tune.autotuner import _facts
    values = gemm_values(m, n, k, dtype)
    module, _, _ = tuned_gemm._build(cfg, values)
    job = workers.Job(0, print_module(module, locations=True), "<gemm>", "gemm_kernel",
                      "sm_90a", cfg.num_warps, _facts(values),
                      ((cfg.num_warps, cfg.num_stages),))
    out = workers.analyse(job)
    assert out.error is None, out.error
    (variant,) = out.value
    assert variant.error is None, variant.error
    return variant.value


class FakeSession(Session):
    """A search's timing without a GPU: every candidate's results agree, and a run of `cfg`
    takes `ms(cfg)`. `rounds` holds the candidates of each `add`."""

    def __init__(self, report, ms: Callable[[tc.Config], float]):
        super().__init__(report, warmup=3, reps=25)
        self.ms = ms
        self.rounds: list[list[tc.Config]] = []

    def add(self, cands: list[tc.Config]) -> None:
        self.rounds.append(list(cands))
        super().add(cands)

    def check(self, cfg: tc.Config) -> bool:
        return True

    def sample(self, cfg: tc.Config, warmup: int, reps: int, start: int) -> list[float]:
        return [self.ms(cfg)] * reps

    def close(self) -> None:
        pass


def fake_timing(monkeypatch, ms: Callable[[tc.Config], float]) -> list[FakeSession]:
    """Searches time with a FakeSession; the list of the sessions made."""
    sessions: list[FakeSession] = []

    def session(self, grid, args, kwargs, device, report):
        sessions.append(FakeSession(report, ms))
        return sessions[-1]
    monkeypatch.setattr(Autotuner, "_timing", session)
    return sessions


def fake_compiler(monkeypatch) -> None:
    """Candidates "compile" in this process to a kernel without code (what ptxas would report
    for a kernel that neither spills nor outgrows shared memory)."""
    def compile_job(job: workers.Job) -> workers.Outcome:
        return workers.Outcome(job.index, CompiledKernel(
            job.name, job.arch, job.num_warps, "", None, 1024, [], Resources(64, 0, 0, 0, 0)))
    monkeypatch.setenv("TILEC_TUNE_JOBS", "1")
    monkeypatch.setattr(workers, "compile_job", compile_job)


__all__ = ["FLAGS", "H100", "FakeSession", "fake_compiler", "fake_timing", "gemm_profile",
           "gemm_values", "_tuned_grid"]
