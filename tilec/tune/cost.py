"""Cost models: predicted run time of each candidate configuration, to order them before any
compile so that a budget is spent on the likeliest winners.

A cost model is any object with `predict(candidates, limits) -> list[float]` (seconds, lower is
better; only the order matters). `RooflineModel` is analytical; a learned model can take its
place (`tc.autotune(..., cost_model=...)`) and read `KernelProfile.features()`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

from tilec.tune.resources import DeviceLimits, KernelProfile


@dataclass(frozen=True)
class Candidate:
    """A configuration as the cost model sees it: its profile and how many programs run."""

    profile: KernelProfile
    programs: int
    unique_bytes: float    # bytes of every tensor argument: what DRAM must move at least
    num_stages: int = 3    # the software pipeline's depth


class CostModel(Protocol):
    def predict(self, candidates: Sequence[Candidate], limits: DeviceLimits) -> list[float]:
        """Predicted seconds per candidate (only their order is used)."""
        ...


class RooflineModel:
    """Per SM, the programs resident at once (occupancy from threads, shared memory and
    registers) share its tensor cores, its share of L2 bandwidth and its shared-memory
    bandwidth; a program's loop cannot run faster than the memory latency allows with its
    pipeline depth (`num_stages - 1` tiles in flight); programs run in waves over the SMs,
    and the whole run moves at least the tensors' bytes through DRAM."""

    def predict(self, candidates: Sequence[Candidate], limits: DeviceLimits) -> list[float]:
        return [self.time(c, limits) for c in candidates]

    @staticmethod
    def occupancy(p: KernelProfile, limits: DeviceLimits) -> int:
        """Programs resident on one SM at once."""
        by_threads = limits.max_threads_per_sm // max(1, p.threads)
        by_shared = limits.shared_per_sm // p.shared_bytes if p.shared_bytes else 1 << 30
        # Registers are allocated per warp in units of 256 (8 per thread).
        regs = max(8, -(-p.registers // 8) * 8)
        by_registers = limits.registers_per_sm // (regs * p.threads)
        return max(1, min(limits.max_blocks_per_sm, by_threads, by_shared, by_registers))

    def time(self, c: Candidate, limits: DeviceLimits) -> float:
        p = c.profile
        sms = limits.sm_count
        if p.dot_bits >= 32:
            rate = limits.fma_flops
        elif p.dot_bits:
            rate = limits.mma_flops * 16 / p.dot_bits
        else:
            rate = limits.mma_flops
        per_program = max(p.flops / (rate / sms),
                          p.global_bytes / (limits.l2_bytes_per_s / sms),
                          p.shared_read_bytes / (limits.shared_bytes_per_clock_per_sm *
                                                 limits.clock_hz))
        latency = p.loop_trips * limits.memory_latency_s / max(1, c.num_stages - 1)
        resident = self.occupancy(p, limits)
        total, left = 0.0, c.programs
        while left > 0:  # waves: the last one may leave SMs idle
            in_wave = min(left, sms * resident)
            per_sm = math.ceil(in_wave / sms)
            total += max(per_sm * per_program, latency)
            left -= in_wave
        return max(total, c.unique_bytes / limits.dram_bytes_per_s)


DEFAULT_MODEL = RooflineModel()
