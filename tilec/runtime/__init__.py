"""Running kernels: the CPU interpreter, host tensors (packed sub-byte data), GPU drivers."""
