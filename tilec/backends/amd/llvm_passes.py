"""LLVM IR text -> optimised module -> AMDGCN assembly and a relocatable object, with
llvmlite's AMDGPU target machine."""
from __future__ import annotations

import functools

import llvmlite.binding as llvm

import tilec.config as config
from tilec.backends.llvm.binding import initialise
from tilec.errors import TilecError

TRIPLE = "amdgcn-amd-amdhsa"
# Code object versions tilec emits (AMDGPUUsage "Code Object V4/V5 Metadata"). v4 links with
# every ld.lld from 14 on (Debian 12's `lld`); lld 14 rejects v5 and v6 ("unknown abi
# version"). ROCm 5 and 6 load both v4 and v5.
CODE_OBJECT_VERSIONS = (4, 5)


def code_object_version() -> int:
    """The code object version to emit: TILEC_AMD_CODE_OBJECT (4 or 5), default 4."""
    v = config.amd_code_object()
    if v not in CODE_OBJECT_VERSIONS:
        raise TilecError(f"TILEC_AMD_CODE_OBJECT={v} is not a code object version tilec emits",
                         hint=f"one of {CODE_OBJECT_VERSIONS}")
    return v


@functools.cache
def target_machine(arch: str) -> llvm.TargetMachine:
    """The AMDGPU target machine for `arch` (wave64 is the default of gfx9)."""
    initialise()
    target = llvm.Target.from_triple(TRIPLE)
    return target.create_target_machine(cpu=arch, opt=3, reloc="pic")


def optimize_and_emit(target, llvm_ir: str) -> tuple[str, bytes]:
    """Parse, verify, run the O3 pipeline; the AMDGCN assembly and the relocatable object."""
    tm = target_machine(target.arch)
    module = llvm.parse_assembly(llvm_ir)
    module.verify()
    tuning = llvm.create_pipeline_tuning_options(speed_level=3)
    builder = llvm.create_pass_builder(tm, tuning)
    builder.getModulePassManager().run(module, builder)
    # Code generation rewrites the module (control-flow annotation): each output gets a copy.
    return tm.emit_assembly(module.clone()), tm.emit_object(module)
