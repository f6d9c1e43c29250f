"""Python AST -> tile IR: the DSL surface (`dsl`), promotion rules (`promotion`), the AST
visitor (`codegen`) and the kernel object (`kernel`)."""
from __future__ import annotations
