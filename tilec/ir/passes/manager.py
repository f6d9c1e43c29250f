"""The pass pipeline: a list of pass names run in order, with the verifier after each pass
(in tests, with TILEC_VERIFY=1, or when asked) and a dump hook (`--dump-passes`, TILEC_DUMP).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Sequence

import tilec.config as config
from tilec.errors import IRError
from tilec.ir.core import Module
from tilec.ir.printer import print_module
from tilec.ir.verifier import verify as verify_module

DEFAULT_PIPELINE = [
    "inline",
    "canonicalize",
    "cse",
    "dce",
]

# For a GPU target: the target-independent cleanups, then layouts, then the cleanups again
# (folding and CSE now see laid-out types; dce drops what the conversions left behind);
# then software pipelining (it reads the operand layouts) and the cleanups of what it made.
GPU_PIPELINE = DEFAULT_PIPELINE + [
    "layout_assignment",
    "canonicalize",
    "cse",
    "dce",
    "pipeline",
    "canonicalize",
    "cse",
    "dce",
]
# The first pass of GPU_PIPELINE that reads num_warps (from PassOptions) and the first that
# reads the function's num_stages: the passes before each give one module whatever its value,
# so the autotuner runs them once for candidates that differ only there.
FIRST_READING_NUM_WARPS = "layout_assignment"
FIRST_READING_NUM_STAGES = "pipeline"

Dump = Callable[[str, str], None]


@dataclass(frozen=True)
class PassOptions:
    """What a pass may depend on besides the module (part of the compile cache key)."""

    target: str | None = None   # e.g. "sm_80", "gfx942"; None before a backend is chosen
    num_warps: int = 4

    @property
    def warp_size(self) -> int:
        """Lanes per warp on the target (64 on AMD gfx9, else 32)."""
        from tilec.ir.layout_defaults import warp_size
        return warp_size(self.target)


def dump_to_stderr(pass_name: str, text: str) -> None:
    """The default dump: the module after each pass, under a header naming the pass."""
    sys.stderr.write(f"// ----- IR after {pass_name} ----- //\n{text}\n")


def run_passes(module: Module, names: Sequence[str] = DEFAULT_PIPELINE,
               options: PassOptions | None = None, verify: bool | None = None,
               dump: Dump | None = None) -> Module:
    """Run the passes `names` in order. With `verify` (default: TILEC_VERIFY) the verifier
    runs after each pass, and an IRError names the pass that broke the IR; `dump(name, text)`
    (default with TILEC_DUMP: print to stderr) sees the module after each pass."""
    from tilec.ir.passes import PASSES

    unknown = [n for n in names if n not in PASSES]
    if unknown:
        raise IRError(f"unknown pass {unknown[0]!r}", hint=f"passes: {', '.join(PASSES)}")
    options = options or PassOptions()
    if verify is None:
        verify = config.verify_each_pass()
    if dump is None and config.dump_passes():
        dump = dump_to_stderr
    for name in names:
        module = PASSES[name].run(module, options)
        if verify:
            try:
                verify_module(module)
            except IRError as e:
                raise IRError(f"IR is invalid after pass '{name}': {e.message}", e.loc,
                              e.hint) from e
        if dump is not None:
            dump(name, print_module(module))
    return module
