"""Helpers: gemm candidates profiled the way the autotuner profiles them (in this process)."""
from __future__ import annotations

import numpy as np

import tilec as tc
from tilec.ir.printer import print_module
from tilec.lib.gemm import _tuned_grid, tuned_gemm
from tilec.tune import workers
from tilec.tune.resources import DeviceLimits

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


__all__ = ["FLAGS", "H100", "gemm_profile", "gemm_values", "_tuned_grid"]
