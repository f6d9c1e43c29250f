"""Every TILEC_* environment variable, with its default and what it does.

Nothing else in tilec reads os.environ: ask this module.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Knob:
    name: str
    default: str
    doc: str


KNOBS = (
    Knob("TILEC_INTERPRET", "0", "Run every kernel on the CPU interpreter, even with a GPU."),
    Knob("TILEC_CACHE_DIR", "~/.cache/tilec", "Where compiled kernels and tuning results are kept."),
    Knob("TILEC_VERIFY", "0", "Run the IR verifier after every pass (always on in tests)."),
    Knob("TILEC_DUMP", "0", "Print the IR after every pass to stderr."),
    Knob("TILEC_PTXAS", "", "The ptxas to use (default: PATH, then the nvidia-cuda-nvcc wheel)."),
    Knob("TILEC_NATIVE_LAUNCH", "1", "Warm launches through the C extension when it was built "
         "(0: the Python path)."),
    Knob("TILEC_LLD", "", "The ld.lld that links AMD code objects (default: ROCm's, then PATH)."),
    Knob("TILEC_AMD_CODE_OBJECT", "4", "AMD code object version to emit: 4 (any ld.lld) or 5."),
    Knob("TILEC_AUTOTUNE", "1", "0: @tc.autotune never times; it takes the tuning database's "
         "winner, else the cost model's first choice."),
    Knob("TILEC_TUNE_JOBS", "0", "Processes compiling autotuning candidates (0: one per CPU)."),
)


def interpret() -> bool:
    return _flag("TILEC_INTERPRET")


def verify_each_pass() -> bool:
    return _flag("TILEC_VERIFY")


def dump_passes() -> bool:
    return _flag("TILEC_DUMP")


def native_launch() -> bool:
    return _flag("TILEC_NATIVE_LAUNCH", True)


def cache_dir() -> Path:
    raw = os.environ.get("TILEC_CACHE_DIR")
    if raw:
        return Path(raw).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "tilec"


def ptxas() -> str | None:
    """An explicit ptxas path from TILEC_PTXAS, or None to search for one."""
    return os.environ.get("TILEC_PTXAS") or None


def lld() -> str | None:
    """An explicit ld.lld path from TILEC_LLD, or None to search for one."""
    return os.environ.get("TILEC_LLD") or None


def amd_code_object() -> int:
    """The AMD code object version from TILEC_AMD_CODE_OBJECT (default 4)."""
    raw = os.environ.get("TILEC_AMD_CODE_OBJECT", "").strip()
    try:
        return int(raw) if raw else 4
    except ValueError:
        return -1


def autotune() -> bool:
    """False with TILEC_AUTOTUNE=0: use stored winners or the cost model, never time."""
    return _flag("TILEC_AUTOTUNE", default=True)


def tune_jobs() -> int:
    """How many processes compile autotuning candidates (TILEC_TUNE_JOBS; 0 or unset: one per
    CPU the process may use)."""
    raw = os.environ.get("TILEC_TUNE_JOBS", "").strip()
    jobs = int(raw) if raw.isdigit() else 0
    if jobs > 0:
        return jobs
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def child_environment(import_root: str) -> dict[str, str]:
    """This process's environment for a tilec worker process, with `import_root` first on
    its PYTHONPATH (so the child imports the same tilec) and one thread for numpy's BLAS:
    workers do no linear algebra, and sixteen children each starting a BLAS thread per core
    took 0.4 s longer to import numpy on a 16-core host (1.4 s against 1.0 s)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([import_root] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env
