"""Passes over tile IR: one module per pass, each exposing `NAME` and
`run(module, options) -> module` (it rewrites the module in place and returns it, keeping
no state between calls). `manager.run_passes` runs a list of them by name."""
from __future__ import annotations

from types import ModuleType

from tilec.ir.passes import canonicalize, cse, dce, inline, layout_assignment, pipeline

PASSES: dict[str, ModuleType] = {
    "inline": inline,
    "canonicalize": canonicalize,
    "cse": cse,
    "dce": dce,
    "layout_assignment": layout_assignment,
    "pipeline": pipeline,
}
