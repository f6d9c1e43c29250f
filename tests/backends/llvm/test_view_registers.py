"""`view` that keeps every bit in its thread (convert._view_in_registers): on the host JIT,
each destination element of a group equals the bits the little-endian packing puts there,
for words viewed as every width 1..8 (what quant_gemm does with packed weights) and for
narrow elements merged into wider ones."""
from __future__ import annotations

import math

import numpy as np
import pytest
from llvm_jit import HostJit, build_array_function
from llvmlite import ir

from tilec.backends.llvm.convert import _view_in_registers
from tilec.ir import dtypes as dt

PAIRS = [(dt.uint32, dt.uint(b)) for b in range(1, 9)] + [
    (dt.uint32, dt.float4_e2m1), (dt.int32, dt.float6_e3m2), (dt.uint8, dt.int4),
    (dt.uint(3), dt.uint8), (dt.int4, dt.int32), (dt.uint(6), dt.uint(4))]


@pytest.mark.parametrize("src, dst", PAIRS, ids=str)
def test_view_in_registers_matches_packing(src, dst):
    group = math.lcm(src.bits, dst.bits)
    ns, nd = group // src.bits, group // dst.bits
    module = ir.Module()
    for j in range(nd):
        build_array_function(module, f"part{j}", [src] * ns, dst,
                             lambda b, v, j=j: _view_in_registers(b, v, src, dst)[j])
    jit = HostJit(opt=2)
    jit.add(module)
    rng = np.random.default_rng(0)
    inputs = [rng.integers(0, 1 << src.bits, 64, dtype=np.uint64) for _ in range(ns)]
    for j in range(nd):
        got = jit.run(f"part{j}", inputs, [src] * ns, dst)
        whole = [sum(int(inputs[i][r]) << (i * src.bits) for i in range(ns))
                 for r in range(64)]
        want = np.array([(w >> (j * dst.bits)) & ((1 << dst.bits) - 1) for w in whole],
                        dtype=np.uint64)
        np.testing.assert_array_equal(got, want, err_msg=f"{src} -> {dst}, element {j}")
