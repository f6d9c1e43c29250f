"""Shared helpers of the GPU benchmarks: versions, device-event timing, the results file.

Timing follows the device tool's METHOD.md: warm up first, time with CUDA events around
each repeat, report the median (and keep every sample in the JSON).
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


def time_ms(fn: Callable[[], object], warmup: int = 10, repeats: int = 50) -> list[float]:
    """Milliseconds of `fn` on the GPU, one sample per repeat, each between two CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    for s, e in zip(starts, ends):
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
