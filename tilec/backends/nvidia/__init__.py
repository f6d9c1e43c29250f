"""NVIDIA GPUs: the NvidiaTarget hooks and the compile driver (tile IR -> PTX -> cubin)."""
from tilec.backends.nvidia.compiler import CompiledKernel, Resources, compile_kernel
from tilec.backends.nvidia.target import ARCHS, NvidiaTarget

__all__ = ["ARCHS", "NvidiaTarget", "CompiledKernel", "Resources", "compile_kernel"]
