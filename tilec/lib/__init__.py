"""Kernel building blocks written in the DSL itself (`@tc.func`, inlined at each call), and
library kernels (`gemm`)."""
from __future__ import annotations

from tilec.lib.gemm import gemm
from tilec.lib.schedule import swizzle2d

__all__ = ["gemm", "swizzle2d"]
