"""Code generation: tile IR with layouts -> LLVM IR (common) -> PTX / AMDGCN (targets)."""
