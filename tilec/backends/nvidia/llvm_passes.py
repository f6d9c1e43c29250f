"""LLVM IR text -> optimised module -> PTX, with llvmlite's NVPTX target machine."""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import llvmlite.binding as llvm

from tilec.backends.llvm.binding import initialise

if TYPE_CHECKING:
    from tilec.backends.nvidia.target import NvidiaTarget


@functools.cache
def target_machine(arch: str, ptx_version: int) -> llvm.TargetMachine:
    """The NVPTX target machine for `arch` emitting PTX ISA `ptx_version` (e.g. 80)."""
    initialise()
    target = llvm.Target.from_triple("nvptx64-nvidia-cuda")
    return target.create_target_machine(cpu=arch, features=f"+ptx{ptx_version}", opt=3)


def optimize_and_emit(target: NvidiaTarget, llvm_ir: str) -> str:
    """Parse, verify, run the O3 pipeline and emit PTX."""
    tm = target_machine(target.arch, target.ptx_version_for(llvm_ir))
    module = llvm.parse_assembly(llvm_ir)
    module.verify()
    tuning = llvm.create_pipeline_tuning_options(speed_level=3)
    builder = llvm.create_pass_builder(tm, tuning)
    builder.getModulePassManager().run(module, builder)
    return tm.emit_assembly(module)
