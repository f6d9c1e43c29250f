"""Kernel building blocks written in the DSL itself (`@tc.func`, inlined at each call)."""
from __future__ import annotations

from tilec.lib.schedule import swizzle2d

__all__ = ["swizzle2d"]
