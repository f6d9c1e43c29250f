"""Code generation: tile IR with layouts -> LLVM IR (common) -> PTX / AMDGCN (targets)."""
from __future__ import annotations


def compile_kernel(*args, **kwargs):
    """`tilec.backends.nvidia.compiler.compile_kernel` (imported on first use)."""
    from tilec.backends.nvidia.compiler import compile_kernel as compile_nvidia
    return compile_nvidia(*args, **kwargs)


__all__ = ["compile_kernel"]
