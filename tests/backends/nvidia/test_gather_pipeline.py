"""Gathers through the software pipeline: a dot operand loaded through a tile of pointers
(rows picked by an index array, as a paged KV cache's block table picks pages) streams into
shared memory by `gather_async` (cp.async, 16 bytes a run), stages ahead like a view.

The pipelined IR runs on the interpreter against numpy (the index reads cloned for later
iterations included); ptxas assembles it for sm_80 and sm_90a; the contiguity analysis that
lets runs be copied whole (tilec/ir/contiguity.py) is checked on the kernel's own values."""
from __future__ import annotations

import re

import numpy as np
import pytest
from nvidia_util import compile_checked

import tilec as tc
from tilec.ir.contiguity import last_dim_step, run_alignment
from tilec.ir.passes.manager import GPU_PIPELINE, PassOptions, run_passes
from tilec.ir.printer import print_module
from tilec.runtime import interpreter

BM, BN, BK = 64, 64, 32


@tc.kernel
def gather_gemm(A: tc.Tensor, Idx: tc.Tensor, B: tc.Tensor, C: tc.Tensor,
                BM: tc.constexpr, BN: tc.constexpr, BK: tc.constexpr, INNER: tc.constexpr):
    """C = A[Idx] @ B. With INNER the row ids are read again in every step (the pipeline
    then clones that read for the steps it copies ahead)."""
    pm, pn = tc.program_id(0), tc.program_id(1)
    r = pm * BM + tc.arange(0, BM)
    live = r < Idx.shape[0]
    cols = tc.arange(0, BK)
    src = tc.load(Idx.ptr + r, mask=live, other=0)
    acc = tc.zeros((BM, BN), tc.float32)
    for k in range(0, A.shape[1], BK):
        ids = tc.load(Idx.ptr + r, mask=live, other=0) if INNER else src
        rows = ids.to(tc.int64) * A.stride(0)
        a = tc.load(A.ptr + tc.expand_dims(rows, 1) + tc.expand_dims(k + cols, 0),
                    mask=tc.expand_dims(live, 1), other=0.0)
        b = tc.load(B, (k // BK, pn), (BK, BN))
        acc = tc.dot(a, b, acc)
    tc.store(C, (pm, pn), acc)


def _operands(m=100, k=96, n=128, src_rows=150, aligned=True, seed=0):
    rng = np.random.default_rng(seed)
    pad = np.zeros((src_rows, k + 8), np.float16)
    a = pad[:, :k] if aligned else pad[:, 1:k + 1]   # rows 2 bytes past 16-byte alignment
    a[...] = rng.standard_normal((src_rows, k)).astype(np.float16)
    idx = rng.integers(0, src_rows, m).astype(np.int32)
    b = rng.standard_normal((k, n)).astype(np.float16)
    c = np.full((m, n), np.nan, np.float32)
    return a, idx, b, c


def _module(args, inner, stages=3):
    return gather_gemm.ir(*args, BM=BM, BN=BN, BK=BK, INNER=inner, num_warps=4,
                          num_stages=stages)


def _pipelined(args, inner, arch="sm_80"):
    return run_passes(_module(args, inner), GPU_PIPELINE, PassOptions(target=arch, num_warps=4))


@pytest.mark.parametrize("inner", [False, True])
def test_pipelined_gather_runs_on_the_interpreter(inner):
    a, idx, b, c = args = _operands()
    module = _pipelined(args, inner)
    text = print_module(module)
    # Two stages copied before the loop, one a step inside it.
    assert text.count("gather_async") == 3 and text.count("copy_async") == 3
    # The row ids of the steps ahead are read under the loop's bound (a pointer past the
    # end would fault, where a view reads zeros).
    assert text.count("= load ") == (3 if inner else 1)
    interpreter.run(module, "gather_gemm", [a, idx, b, c], (2, 2))
    want = a.astype(np.float32)[idx] @ b.astype(np.float32)
    np.testing.assert_allclose(c, want, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
@pytest.mark.parametrize("inner", [False, True])
def test_gather_copies_whole_runs(arch, inner):
    """Aligned rows (the launch's `aligned` fact, a stride times the gathered ids): one
    cp.async of 16 bytes a run and no fallback; unaligned ones check the runs' alignment
    at run time and fall back to a copy element by element."""
    args = _operands()
    k = compile_checked(_module(args, inner), "gather_gemm", arch, num_warps=4)
    runs = BM * BK // 8 // 128            # 16-byte runs of A a thread copies per step
    copies = k.ptx.count("cp.async.cg.shared.global")
    assert copies == 3 * (runs + BK * BN // 8 // 128)
    assert not re.search(r"ld\.global(\.\w+)*\.b16", k.ptx)
    assert k.resources.spill_stores == 0
    loose = compile_checked(_module(_operands(aligned=False), inner), "gather_gemm", arch,
                            num_warps=4)
    assert loose.ptx.count("cp.async.cg.shared.global") == copies
    assert re.search(r"ld\.global(\.\w+)*\.b16", loose.ptx)


def _gather_of(module):
    fn = module.functions[0]
    return fn, next(op for op in fn.walk() if op.name == "gather_async")


def test_contiguity_of_the_gathered_tile():
    fn, gather = _gather_of(_pipelined(_operands(), True))
    assert last_dim_step(gather.ptr) == 1       # base + row offset + consecutive columns
    assert last_dim_step(gather.mask) == 0      # a row's mask, with the loop's bound
    assert run_alignment(gather.ptr, 8, fn) == 16
    assert run_alignment(gather.ptr, 1, fn) == 2   # single elements: f16's own alignment
    fn, gather = _gather_of(_pipelined(_operands(aligned=False), True))
    assert run_alignment(gather.ptr, 8, fn) == 2


@tc.kernel
def strided_gather(A: tc.Tensor, B: tc.Tensor, C: tc.Tensor, STEP: tc.constexpr):
    r = tc.arange(0, 64)
    c = tc.arange(0, 32)
    acc = tc.zeros((64, 64), tc.float32)
    for k in range(0, A.shape[1], 32 * STEP):
        a = tc.load(A.ptr + tc.expand_dims(r * A.stride(0), 1) + tc.expand_dims(k + c * STEP, 0))
        acc = tc.dot(a, tc.load(B, (0, 0), (32, 64)), acc)
    tc.store(C, (0, 0), acc)


def test_columns_that_skip_are_not_runs():
    """Every other column: no runs, so no gather is pipelined (it would copy element by
    element); the load stays a load."""
    a = np.zeros((64, 128), np.float16)
    b = np.zeros((32, 64), np.float16)
    c = np.zeros((64, 64), np.float32)
    module = run_passes(strided_gather.ir(a, b, c, STEP=2, num_warps=4, num_stages=3),
                        GPU_PIPELINE, PassOptions(target="sm_80", num_warps=4))
    assert "gather_async" not in print_module(module)
    module = run_passes(strided_gather.ir(a, b, c, STEP=1, num_warps=4, num_stages=3),
                        GPU_PIPELINE, PassOptions(target="sm_80", num_warps=4))
    fn, gather = _gather_of(module)
    # No mask in the source; the copies ahead are masked by the loop's bound.
    assert last_dim_step(gather.ptr) == 1 and last_dim_step(gather.mask) == 0
