"""Compile one kernel of a tile-IR module for an AMD GPU (the same entry point and steps as
`tilec.backends.nvidia.compiler.compile_kernel`):

    tile IR --(GPU pass pipeline, wave64 layouts)--> laid-out tile IR --(llvm lowering)-->
    LLVM IR --(LLVM O3, AMDGPU)--> AMDGCN + relocatable object --(ld.lld -shared)--> HSACO
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tilec.backends.abi import POINTER, Param
from tilec.backends.amd import hsaco as code_object
from tilec.backends.amd.llvm_passes import optimize_and_emit
from tilec.backends.amd.target import AmdTarget
from tilec.backends.llvm.lower import passes_then_lower
from tilec.ir.core import Module
from tilec.ir.printer import print_module

WAVE = 64


@dataclass(frozen=True)
class Resources:
    """What the code object's metadata says about the kernel."""

    vgprs: int
    agprs: int
    sgprs: int
    shared_bytes: int       # static LDS (dynamic LDS is not counted)
    scratch_bytes: int      # private segment per work-item: spills and stack
    vgpr_spills: int
    sgpr_spills: int


@dataclass(frozen=True)
class CompiledKernel:
    name: str
    arch: str
    num_warps: int           # wavefronts of 64 lanes
    amdgcn: str              # the assembly LLVM printed
    obj: bytes               # the relocatable object
    hsaco: bytes | None      # the linked code object; None without ld.lld
    shared_bytes: int        # dynamic LDS the launch must request
    params: list[Param]      # abi.kernel_params: what the launcher packs, in order
    resources: Resources | None
    llvm_ir: str = ""
    tile_ir: str = ""

    @property
    def num_threads(self) -> int:
        return WAVE * self.num_warps

    @property
    def assembly(self) -> str:
        """The target's assembly text (AMDGCN), as `ptx` is for NVIDIA."""
        return self.amdgcn

    @property
    def binary(self) -> bytes | None:
        """What the runtime loads (the HSACO), as `cubin` is for NVIDIA."""
        return self.hsaco

    def metadata(self) -> code_object.KernelMetadata:
        """The kernel's entry in the code object's metadata note (needs the HSACO)."""
        if self.hsaco is None:
            from tilec.errors import TilecError
            raise TilecError(f"@{self.name} was not linked: no ld.lld", hint=code_object.LLD_HINT)
        return code_object.kernel_metadata(self.hsaco, self.name)


def compile_kernel(module: Module, name: str, arch: str = "gfx942",
                   num_warps: int | None = None, verify: bool | None = None,
                   dump: Callable[[str, str], None] | None = None) -> CompiledKernel:
    """Compile kernel @name of `module` (left unchanged) for `arch`. `num_warps` (wavefronts
    of 64) defaults to the kernel's `num_warps` attribute, else 4. `dump(pass_name, ir_text)`
    sees the IR after every pass. Links with ld.lld when there is one (`hsaco.lld_path`)."""
    target = AmdTarget(arch)
    work, warps, lowered = passes_then_lower(module, name, target, num_warps, verify, dump)
    amdgcn, obj = optimize_and_emit(target, lowered.llvm_ir)
    linked = code_object.link(obj, name) if code_object.lld_path() else None
    resources = None
    if linked is not None:
        md = code_object.kernel_metadata(linked, name)
        resources = Resources(vgprs=md.vgprs, agprs=md.agprs, sgprs=md.sgprs,
                              shared_bytes=md.group_segment_bytes,
                              scratch_bytes=md.private_segment_bytes,
                              vgpr_spills=md.vgpr_spills, sgpr_spills=md.sgpr_spills)
    return CompiledKernel(name=name, arch=arch, num_warps=warps, amdgcn=amdgcn, obj=obj,
                          hsaco=linked, shared_bytes=lowered.shared_bytes,
                          params=lowered.params, resources=resources,
                          llvm_ir=lowered.llvm_ir, tile_ir=print_module(work))


# -- the kernel argument segment ---------------------------------------------------------------

# Size (= alignment) of each machine parameter type in the kernarg segment: LLVM lays the
# explicit arguments out in order, each at the next multiple of its ABI alignment, and
# records each `.offset` in the metadata (AMDGPUUsage "Code Object V4 Metadata", kernel
# argument map); tests/backends/amd check this against the metadata of every test kernel.
_SIZE = {POINTER: 8, "i32": 4, "i64": 8, "float": 4, "double": 8}


@dataclass(frozen=True)
class KernargSlot:
    offset: int
    size: int
    machine: str


def kernarg_layout(params: list[Param]) -> tuple[list[KernargSlot], int]:
    """Where the runtime writes each parameter in the kernarg segment, and where the explicit
    arguments end (the metadata's `.kernarg_segment_size` is at least that; hidden arguments,
    when the kernel has any, follow)."""
    slots, offset = [], 0
    for p in params:
        size = _SIZE[p.machine]
        offset = -(-offset // size) * size
        slots.append(KernargSlot(offset, size, p.machine))
        offset += size
    return slots, offset
