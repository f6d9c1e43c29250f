"""Shared helpers of the GPU benchmarks: versions, device-event timing, the results file.

Timing follows the device tool's METHOD.md: warm up first, time with CUDA events around
each repeat (the stream asleep before each, so that launches are queued: device time),
report the median (and keep every sample in the JSON).
"""
from __future__ import annotations

import datetime
import json
import platform
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Callable

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def versions() -> dict[str, str]:
    """Versions of everything that changes the numbers: python, torch, CUDA, triton, tilec,
    llvmlite, ptxas, the driver."""
    import tilec
    out = {"python": platform.python_version(), "torch": torch.__version__,
           "torch_cuda": str(torch.version.cuda), "tilec": tilec.__version__}
    try:
        import triton
        out["triton"] = triton.__version__
    except ImportError:
        out["triton"] = "not installed"
    try:
        import llvmlite
        out["llvmlite"] = llvmlite.__version__
    except ImportError:
        out["llvmlite"] = "not installed"
    ptxas = shutil.which("ptxas")
    if ptxas:
        text = subprocess.run([ptxas, "--version"], capture_output=True, text=True, check=False).stdout
        out["ptxas"] = text.strip().splitlines()[-1] if text.strip() else "unknown"
    else:
        out["ptxas"] = "not on PATH"
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=False).stdout.strip()
        out["driver"] = smi.splitlines()[0] if smi else "unknown"
    except (OSError, subprocess.SubprocessError):
        out["driver"] = "unknown"
    return out


def device() -> dict[str, object]:
    p = torch.cuda.get_device_properties(0)
    return {"name": p.name, "capability": f"{p.major}.{p.minor}",
            "sm_count": p.multi_processor_count, "memory_gib": round(p.total_memory / 2**30, 1)}


# GPU cycles (~0.5 ms) the stream sleeps before each sample: the host queues the sample's
# launches meanwhile, so the events time the device's work, not the host's launch path.
# Without it a call whose host side takes about as long as its kernels (paged decode: 60-200
# us of Python and launches against a ~110 us kernel) measured 0.26-0.85 of a device copy
# run to run, Triton's peer 0.17-0.87; with it both repeat within 1% and agree with CUDA
# graph replays to 3% (H100, 2026-11-23).
SLEEP_CYCLES = 1_000_000


def time_ms(fn: Callable[[], object], warmup: int = 10, repeats: int = 50) -> list[float]:
    """Milliseconds of `fn` on the GPU, one sample per repeat, each between two CUDA events
    recorded after the stream slept (`SLEEP_CYCLES`)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    for s, e in zip(starts, ends):
        torch.cuda._sleep(SLEEP_CYCLES)
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in zip(starts, ends)]


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def write_result(name: str, payload: dict) -> Path:
    """Write benchmarks/results/<name>-<date>.json (with date, device and versions added)."""
    today = datetime.date.today().isoformat()
    full = {"benchmark": name, "date": today, "host": platform.node(), "device": device(),
            "versions": versions(), **payload}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{today}.json"
    path.write_text(json.dumps(full, indent=2) + "\n")
    return path
