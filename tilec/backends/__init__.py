"""Code generation: tile IR with layouts -> LLVM IR (common) -> PTX / AMDGCN (targets)."""
from __future__ import annotations


def compile_kernel(module, name: str, arch: str = "sm_90a", *args, **kwargs):
    """Compile kernel @name of `module` for `arch`: `tilec.backends.amd.compile_kernel` for
    gfx targets, `tilec.backends.nvidia.compile_kernel` otherwise (same arguments; the
    results share `name`, `arch`, `num_warps`, `num_threads`, `params`, `shared_bytes`,
    `llvm_ir`, `tile_ir`, `resources`, and `assembly` / `binary` for PTX / cubin or
    AMDGCN / HSACO). Each backend is imported on first use."""
    if arch.startswith("gfx"):
        from tilec.backends.amd.compiler import compile_kernel as compile_amd
        return compile_amd(module, name, arch, *args, **kwargs)
    from tilec.backends.nvidia.compiler import compile_kernel as compile_nvidia
    return compile_nvidia(module, name, arch, *args, **kwargs)


__all__ = ["compile_kernel"]
