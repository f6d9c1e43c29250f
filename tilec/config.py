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
