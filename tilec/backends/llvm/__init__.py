"""The common lowering of laid-out tile IR to per-thread LLVM IR (targets plug in hooks)."""
