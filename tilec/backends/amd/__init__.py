"""AMD GPUs: the AmdTarget hooks and the compile driver (tile IR -> AMDGCN -> HSACO)."""
from tilec.backends.amd.compiler import CompiledKernel, Resources, compile_kernel
from tilec.backends.amd.target import ARCHS, AmdTarget

__all__ = ["ARCHS", "AmdTarget", "CompiledKernel", "Resources", "compile_kernel"]
