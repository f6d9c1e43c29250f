"""Helpers for the AMD backend tests: compile kernels (ld.lld always links, the metadata is
read back), once per session for each (source, kernel, arch, warps)."""
from __future__ import annotations

import functools
import re
from pathlib import Path

from nvidia_util import is_kernel, wrap_as_kernel

from tilec.backends.amd import CompiledKernel, compile_kernel
from tilec.backends.amd.hsaco import disassemble
from tilec.ir.core import Module
from tilec.ir.layout import RegisterLayout
from tilec.ir.parser import parse_file, parse_module
from tilec.ir.types import TileType

ARCHS = ("gfx90a", "gfx942")
TESTS = Path(__file__).resolve().parents[2]
CORPUS = TESTS / "ir" / "corpus"


def wave64_warps(module: Module, name: str) -> int | None:
    """Wavefronts for a kernel whose layouts were written by hand for T threads (T / 64:
    the same threads, in half as many warps); None when nothing fixes the thread count."""
    fn = module.get(name)
    for op in fn.walk():
        for v in op.results:
            layout = v.type.layout if isinstance(v.type, TileType) else None
            if isinstance(layout, RegisterLayout):
                return max(1, layout.num_threads // 64)
    return None


def compile_checked(module: Module, name: str, arch: str, **kw) -> CompiledKernel:
    """compile_kernel, and check that ld.lld linked a code object whose metadata describes
    this kernel as wave64 with the block size it was compiled for."""
    warps = wave64_warps(module, name)
    if warps is not None and "num_warps" not in kw:
        module.get(name).attrs["num_warps"] = warps
    k = compile_kernel(module, name, arch=arch, **kw)
    assert k.hsaco and k.hsaco[:4] == b"\x7fELF", f"ld.lld produced no code object for @{name}"
    md = k.metadata()
    assert md.wavefront_size == 64 and md.max_flat_workgroup_size == k.num_threads
    assert f".amdgcn_target \"amdgcn-amd-amdhsa--{arch}" in k.amdgcn
    return k


@functools.cache
def compiled_file(path: str, name: str, arch: str) -> CompiledKernel:
    """A function of a .tile file compiled for `arch` (device functions wrapped in a
    kernel), cached for the session: several tests read the same code objects."""
    module = parse_file(path)
    fn = module.get(name)
    if not is_kernel(fn):
        module, name = wrap_as_kernel(module, fn)
    return compile_checked(module, name, arch)


@functools.cache
def compiled_text(text: str, source: str, arch: str) -> CompiledKernel:
    module = parse_module(text, source)
    return compile_checked(module, module.functions[0].name, arch)


def disassembly(k: CompiledKernel) -> str:
    """`llvm-objdump -d` of the kernel's code object (once per code object)."""
    return _disassemble(k.hsaco, k.arch)


@functools.cache
def _disassemble(hsaco: bytes, arch: str) -> str:
    return disassemble(hsaco, arch)


def instructions(dis: str) -> list[str]:
    """The mnemonics of a disassembly."""
    return [m.group(1) for m in re.finditer(r"^\s+([sv]_\w+|ds_\w+|global_\w+|buffer_\w+|"
                                            r"scratch_\w+|flat_\w+)", dis, re.M)]
