"""The one-time set-up of llvmlite's LLVM for both GPU targets.

LLVM's command-line options are process-wide and some are read once (the pass gate that
`-opt-disable` configures is cached by the context on its first pass), so every option tilec
sets is set here, before any module is parsed or any target machine made.
"""
from __future__ import annotations

import functools

import llvmlite.binding as llvm


@functools.cache
def initialise() -> None:
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    # NVPTX: 32-bit pointers to shared, constant and local memory (nvidia/target.py's
    # DATA_LAYOUT says so to the IR).
    llvm.set_option("", "--nvptx-short-ptr")
    # Straight-line strength reduction (a codegen IR pass of both GPU targets) is quadratic
    # in a basic block's address expressions: on a fully unrolled 128x128 GEMM body it was
    # 78% of LLVM's time (0.56 of 0.72 s), and without it the main loop's SASS is the same
    # instruction for instruction (ptxas strength-reduces the addresses itself).
    llvm.set_option("", "-opt-disable=slsr")
