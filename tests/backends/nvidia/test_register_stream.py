"""Tiles a loop decodes in registers (no dot) through the software pipeline: a `load_view`
whose uses compute in its own layout streams into a row-major stage buffer by cp.async and
is read back in that layout with 16-byte shared loads (the quantized GEMV's weight words).
Copies ahead of the loop's end are masked off, so a slice of K never reads the next one's.

The pipelined IR runs on the interpreter against numpy; ptxas assembles it for sm_80 and
sm_90a."""
from __future__ import annotations

import numpy as np
import pytest
from nvidia_util import ARCHS, compile_checked

import tilec as tc
from tilec.ir.passes.manager import GPU_PIPELINE, PassOptions, run_passes
from tilec.ir.printer import print_module
from tilec.runtime import interpreter

BN, BK, STEPS = 64, 16, 3
WL = "spatial(4,1)*local(2,1)*spatial(8,4)*local(1,4)"   # 16 contiguous bytes a thread


@tc.kernel
def slice_sums(W: tc.Tensor, Out: tc.Tensor, BN: tc.constexpr, BK: tc.constexpr,
               STEPS: tc.constexpr, WL: tc.constexpr):
    """Out[part, n] = sum of the low bytes of W[n, k] over slice `part` of K (STEPS tiles)."""
    pn, part = tc.program_id(0), tc.program_id(1)
    first = part * STEPS
    last = tc.minimum(first + STEPS, tc.cdiv(W.shape[1], BK)) - 1
    acc = tc.with_layout(tc.zeros((BN, BK), tc.int32), WL)
    for k in range(first, last + 1):
        w = tc.with_layout(tc.load(W, (pn, k), (BN, BK)), WL)
        acc = acc + (w & 255)
    tc.store(Out, (part, pn), tc.expand_dims(tc.sum(acc, 1), 0))


def _operands(n=128, k=16 * 7, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 2**31, (n, k)).astype(np.int32)
    parts = -(-k // (BK * STEPS))
    return w, np.full((parts, n), -1, np.int32)


def _module(args, stages=3):
    return slice_sums.ir(*args, BN=BN, BK=BK, STEPS=STEPS, WL=WL, num_warps=4,
                         num_stages=stages)


def test_streamed_tile_runs_on_the_interpreter():
    w, out = args = _operands()
    module = run_passes(_module(args), GPU_PIPELINE, PassOptions(target="sm_80", num_warps=4))
    text = print_module(module)
    assert text.count("copy_async") == 3 and "load_view" not in text
    assert text.count("shared_load") == 1
    grid = (w.shape[0] // BN, out.shape[0])
    interpreter.run(module, "slice_sums", [w, out], grid)
    # 7 tiles of K in slices of 3: the last slice is one tile, its copies ahead masked off.
    low = np.zeros((w.shape[0], out.shape[0] * BK * STEPS), np.int64)
    low[:, :w.shape[1]] = w & 255
    want = low.reshape(w.shape[0], -1, BK * STEPS).sum(axis=2).T
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("arch", ARCHS)
def test_streamed_tile_reads_16_bytes_at_a_time(arch):
    k = compile_checked(_module(_operands()), "slice_sums", arch, num_warps=4)
    runs = BN * BK // 4 // 128                 # 16-byte runs a thread reads per step
    assert k.ptx.count("ld.shared.v4.b32") == runs
    assert k.ptx.count("cp.async.cg.shared.global") == 3 * runs
    assert "ld.global" not in k.ptx.split("cp.async")[-1]   # the loop reads no global memory
    assert k.resources.spill_stores == 0


def test_one_stage_keeps_the_load():
    module = run_passes(_module(_operands(), stages=1), GPU_PIPELINE,
                        PassOptions(target="sm_80", num_warps=4))
    text = print_module(module)
    assert "copy_async" not in text and "load_view" in text
