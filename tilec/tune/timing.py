"""Timing candidates on the GPU: CUDA events around each launch (through cuda-python, on the
stream the launches go to), a warm-up, input buffers rotated so that L2 does not keep a small
problem's inputs between launches, and the median of the repeats."""
from __future__ import annotations

import statistics
import sys
from typing import Any, Callable

from tilec.runtime import cuda

# Rotate through enough copies of the tensor arguments that one launch's data has left a cache
# this many times the L2's size by the time it comes round again; and never more copies than
# this, nor more bytes of copies than this.
L2_MULTIPLE = 2
MAX_COPIES = 8
MAX_COPY_BYTES = 2 << 30


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


def time_ms(run: Callable[[int], Any], sets: int, device: int, stream: int,
            warmup: int = 3, reps: int = 25, budget_ms: float = 200.0) -> list[float]:
    """Milliseconds of `run(i)` (a launch on argument set `i % sets`), one CUDA event pair
    around each of `reps` launches after `warmup` untimed ones. Fewer repeats when one
    launch is long enough that `reps` of them would exceed `budget_ms`."""
    drv = cuda.driver()
    api = drv.api
    handle = api.CUstream(stream)
    with drv.in_context(device):
        for i in range(warmup):
            run(i % sets)
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
            for i, (start, end) in enumerate(events):
                drv.call("cuEventRecord", start, handle)
                run(i % sets)
                drv.call("cuEventRecord", end, handle)
            drv.call("cuEventSynchronize", events[-1][1])
            return [float(drv.call("cuEventElapsedTime", s, e)) for s, e in events]
        finally:
            for pair in events:
                for e in pair:
                    drv.call("cuEventDestroy", e)


def median(times: list[float]) -> float:
    return statistics.median(times)
