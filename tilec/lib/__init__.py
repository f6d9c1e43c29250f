"""Kernel building blocks written in the DSL itself (`@tc.func`, inlined at each call), and
library kernels (`gemm`, `attention`, `paged_attention`)."""
from __future__ import annotations

from tilec.lib.attention import attention
from tilec.lib.gemm import gemm
from tilec.lib.paged_attention import paged_attention
from tilec.lib.schedule import swizzle2d

__all__ = ["attention", "gemm", "paged_attention", "swizzle2d"]
