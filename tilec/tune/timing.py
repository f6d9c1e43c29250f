"""Timing candidates on the GPU: CUDA events around each launch (through cuda-python, on the
stream the launches go to), a warm-up, input buffers rotated so that L2 does not keep a small
problem's inputs between launches, and the median of the repeats.

The GPU is held back (`stall`, a sleep kernel) while the host queues a batch of launches, so
that the events time the kernels back to back and not the host's launch path (a 60 us kernel
would otherwise measure the Python launch code as much as itself)."""
from __future__ import annotations

import math
import statistics
import sys
import time
from typing import Any, Callable

from tilec.runtime import cuda

# Rotate through enough copies of the tensor arguments that one launch's data has left a cache
# this many times the L2's size by the time it comes round again; and never more copies than
# this, nor more bytes of copies than this.
L2_MULTIPLE = 2
MAX_COPIES = 8
MAX_COPY_BYTES = 2 << 30
# The GPU is held back this many times the host's time to queue a batch's launches (the events
# it also queues are not in that estimate).
STALL_MARGIN = 3.0
MAX_STALL_MS = 50.0


def current_stream(device: int) -> int:
    """The raw stream the kernel launcher uses for torch tensors: torch's current one."""
    torch = sys.modules.get("torch")
    if torch is None:
        return 0
    return int(torch.cuda.current_stream(device).cuda_stream)


def copies_needed(bytes_per_set: int, l2_bytes: int) -> int:
    """How many sets of tensor arguments to rotate through (1: the data alone outgrows L2)."""
    if bytes_per_set <= 0:
        return 1
    wanted = -(-L2_MULTIPLE * l2_bytes // bytes_per_set)
    affordable = max(1, MAX_COPY_BYTES // bytes_per_set)
    return max(1, min(wanted, MAX_COPIES, affordable))


def stall_ms_for(host_ms_per_launch: float, reps: int) -> float:
    """How long to hold the GPU back so that the host can queue `reps` launches (and their
    events) before the first of them runs."""
    return min(MAX_STALL_MS, STALL_MARGIN * host_ms_per_launch * reps + 0.05)


def torch_stall(ms: float) -> None:
    """Keep torch's current stream busy for at least `ms` (a sleep kernel; its cycle count
    assumes a clock of at most 2 GHz, so it lasts at least that long)."""
    torch = sys.modules.get("torch")
    sleep = getattr(getattr(torch, "cuda", None), "_sleep", None)
    if sleep is not None and ms > 0:
        sleep(int(ms * 2e6))


def time_ms(run: Callable[[int], Any], sets: int, device: int, stream: int,
            warmup: int = 3, reps: int = 25, budget_ms: float = 200.0,
            stall: Callable[[float], Any] | None = None, start: int = 0) -> list[float]:
    """Milliseconds of `run(i)` (a launch on argument set `i % sets`), one CUDA event pair
    around each of `reps` launches after `warmup` untimed ones. Fewer repeats when one
    launch is long enough that `reps` of them would exceed `budget_ms`. `stall(ms)` holds
    the stream back for `ms` before the timed launches are queued (see above). `start`: the
    argument set of the first timed launch (callers timing in rounds carry on rotating)."""
    drv = cuda.driver()
    api = drv.api
    handle = api.CUstream(stream)
    with drv.in_context(device):
        t = time.perf_counter()
        for i in range(warmup):
            run(i % sets)
        host_ms = (time.perf_counter() - t) * 1e3 / max(1, warmup)
        probe = [drv.call("cuEventCreate", 0) for _ in range(2)]
        drv.call("cuEventRecord", probe[0], handle)
        run(0)
        drv.call("cuEventRecord", probe[1], handle)
        drv.call("cuEventSynchronize", probe[1])
        first = float(drv.call("cuEventElapsedTime", probe[0], probe[1]))
        for e in probe:
            drv.call("cuEventDestroy", e)
        reps = max(3, min(reps, int(budget_ms / max(first, 1e-3))))
        events = [(drv.call("cuEventCreate", 0), drv.call("cuEventCreate", 0))
                  for _ in range(reps)]
        try:
            if stall is not None:
                stall(stall_ms_for(host_ms, reps))
            for i, (begin, end) in enumerate(events):
                drv.call("cuEventRecord", begin, handle)
                run((start + i) % sets)
                drv.call("cuEventRecord", end, handle)
            drv.call("cuEventSynchronize", events[-1][1])
            return [float(drv.call("cuEventElapsedTime", s, e)) for s, e in events]
        finally:
            for pair in events:
                for e in pair:
                    drv.call("cuEventDestroy", e)


def median(times: list[float]) -> float:
    return statistics.median(times)


def spread(times: list[float]) -> tuple[float, float]:
    """The 10th and 90th percentiles of the samples (the median's neighbourhood)."""
    ordered = sorted(times)
    if len(ordered) < 2:
        return (ordered[0], ordered[0]) if ordered else (math.nan, math.nan)
    q = statistics.quantiles(ordered, n=10, method="inclusive")
    return q[0], q[-1]


# Two-stage timing of a search: every candidate gets FIRST_REPS samples; those within
# CONTENDER_MARGIN of the fastest are timed again, interleaved (one batch of each per round,
# ROUNDS rounds), so that the winner among close candidates is decided by many samples taken
# under the same conditions, and a clearly slower candidate costs few.
FIRST_REPS = 10
CONTENDER_MARGIN = 0.10
ROUNDS = 3


def contenders(medians: dict[Any, float], margin: float = CONTENDER_MARGIN) -> list[Any]:
    """The candidates whose median is within `margin` of the fastest, fastest first."""
    if not medians:
        return []
    best = min(medians.values())
    return sorted((c for c, ms in medians.items() if ms <= best * (1 + margin)),
                  key=lambda c: medians[c])
