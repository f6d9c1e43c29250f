"""Compile one kernel of a tile-IR module for an NVIDIA GPU:

    tile IR --(GPU pass pipeline)--> laid-out tile IR --(llvm lowering)--> LLVM IR
            --(LLVM O3, NVPTX)--> PTX --(ptxas -v, when on PATH)--> cubin + resource report
"""
from __future__ import annotations

import functools
import importlib.util
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

import tilec.config as config
from tilec.backends.abi import Param
from tilec.backends.llvm.lower import passes_then_lower
from tilec.backends.nvidia.target import NvidiaTarget
from tilec.errors import TilecError
from tilec.ir.core import Module
from tilec.ir.printer import print_module

@dataclass(frozen=True)
class Resources:
    """What ptxas reports for the kernel (`ptxas -v`)."""

    registers: int
    shared_bytes: int      # static shared memory (dynamic shared memory is not counted)
    spill_stores: int      # bytes
    spill_loads: int       # bytes
    stack_bytes: int


@dataclass(frozen=True)
class CompiledKernel:
    name: str
    arch: str
    num_warps: int
    ptx: str
    cubin: bytes | None      # None when ptxas is not on PATH (the driver JITs the PTX)
    shared_bytes: int        # dynamic shared memory the launch must request
    params: list[Param]      # abi.kernel_params: what the launcher packs, in order
    resources: Resources | None
    llvm_ir: str = ""
    tile_ir: str = ""

    @property
    def num_threads(self) -> int:
        return 32 * self.num_warps

    @property
    def assembly(self) -> str:
        """The target's assembly text (PTX), as `amdgcn` is for AMD."""
        return self.ptx

    @property
    def binary(self) -> bytes | None:
        """What the runtime loads: the cubin (None: the driver JITs `ptx`)."""
        return self.cubin


class PtxasError(TilecError):
    """ptxas rejected the PTX (an internal error of the compiler)."""


def compile_kernel(module: Module, name: str, arch: str = "sm_90a",
                   num_warps: int | None = None, verify: bool | None = None,
                   dump: Callable[[str, str], None] | None = None) -> CompiledKernel:
    """Compile kernel @name of `module` (left unchanged) for `arch`. `num_warps` defaults to
    the kernel's `num_warps` attribute, else 4. `dump(pass_name, ir_text)` sees the IR after
    every pass."""
    target = NvidiaTarget(arch)
    work, warps, lowered = passes_then_lower(module, name, target, num_warps, verify, dump)
    ptx = target.emit_assembly(lowered.llvm_ir)
    cubin, resources = run_ptxas(ptx, arch, name)
    return CompiledKernel(name=name, arch=arch, num_warps=warps, ptx=ptx, cubin=cubin,
                          shared_bytes=lowered.shared_bytes, params=lowered.params,
                          resources=resources, llvm_ir=lowered.llvm_ir,
                          tile_ir=print_module(work))


def ptxas_path() -> str | None:
    """TILEC_PTXAS, else `ptxas` on PATH, else the one in the nvidia-cuda-nvcc wheel (the
    `test` extra installs it, so a machine without a CUDA toolkit still assembles PTX)."""
    explicit = config.ptxas()
    if explicit:
        return explicit
    found = shutil.which("ptxas")
    if found:
        return found
    spec = importlib.util.find_spec("nvidia.cuda_nvcc") if _has_nvidia_namespace() else None
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(root) / "bin" / "ptxas"
        if candidate.is_file():
            return str(candidate)
    return None


def ptxas_release() -> tuple[int, int] | None:
    """The CUDA release of the ptxas `run_ptxas` uses, e.g. (13, 0); None without one."""
    exe = ptxas_path()
    return None if exe is None else _ptxas_release(exe)


@functools.cache
def _ptxas_release(exe: str) -> tuple[int, int] | None:
    try:
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_ptxas_release(proc.stdout)


def parse_ptxas_release(text: str) -> tuple[int, int] | None:
    """(major, minor) from `ptxas --version` ("Cuda compilation tools, release 13.0, ...")."""
    m = re.search(r"release (\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _has_nvidia_namespace() -> bool:
    try:
        return importlib.util.find_spec("nvidia") is not None
    except (ImportError, ValueError):
        return False


def run_ptxas(ptx: str, arch: str, name: str) -> tuple[bytes | None, Resources | None]:
    """Assemble PTX to a cubin with `ptxas -arch=<arch> -v`; (None, None) without ptxas."""
    exe = ptxas_path()
    if exe is None:
        return None, None
    with tempfile.TemporaryDirectory(prefix="tilec-") as tmp:
        src, out = Path(tmp) / "kernel.ptx", Path(tmp) / "kernel.cubin"
        src.write_text(ptx)
        proc = subprocess.run([exe, f"-arch={arch}", "-v", str(src), "-o", str(out)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise PtxasError(f"ptxas failed on @{name} for {arch}:\n{proc.stderr.strip()}",
                             hint="this is a bug in tilec's code generation; please report it")
        return out.read_bytes(), parse_ptxas_report(proc.stderr + proc.stdout, name)


def parse_ptxas_report(text: str, name: str) -> Resources:
    """Read registers, shared memory, spills and stack off `ptxas -v` output for @name."""
    start = text.find(f"Function properties for {name}")
    section = text[start:] if start >= 0 else text

    def number(pattern: str) -> int:
        m = re.search(pattern, section)
        return int(m.group(1)) if m else 0
    return Resources(registers=number(r"Used (\d+) registers"),
                     shared_bytes=number(r"(\d+) bytes smem"),
                     spill_stores=number(r"(\d+) bytes spill stores"),
                     spill_loads=number(r"(\d+) bytes spill loads"),
                     stack_bytes=number(r"(\d+) bytes stack frame"))
