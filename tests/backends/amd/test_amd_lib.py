"""tilec.lib's GEMM template compiles for AMD with each of its tile configurations: MFMA for
the dot, the epilogue fused, no scratch."""
from __future__ import annotations

import pytest
from amd_util import compile_checked, disassembly, instructions

from tilec.lib.gemm import _DECODE, _HUGE_N, _LARGE, gemm_kernel

CASES = [("f16", "f32", "gelu", _LARGE, "v_mfma_f32_32x32x8_f16", 8),
         ("bf16", "f32", "silu", _DECODE, "v_mfma_f32_32x32x8_bf16", 8),
         ("i8", "i32", "relu", _HUGE_N, "v_mfma_i32_32x32x16_i8", 16)]


@pytest.mark.parametrize("t,acc,act,cfg,instr,k", CASES, ids=[c[0] for c in CASES])
def test_gemm_template_on_mfma(t, acc, act, cfg, instr, k):
    out = "i32" if t == "i8" else t
    module = gemm_kernel.compile(
        f"A: tensor<?x?x{t}>, B: tensor<?x?x{t}>, C: tensor<?x?x{out}>, Bias: tensor<?xf32>, "
        f"scale: f32, BM={cfg.BM}, BN={cfg.BN}, BK={cfg.BK}, GROUP_M={cfg.group_m}, "
        f"ACC={acc}, EPI_F32={t == 'i8'}, HAS_SCALE=True, HAS_BIAS=True, ACT=\"{act}\", "
        "ROUND=False")
    kernel = compile_checked(module, "gemm_kernel", "gfx942", num_warps=cfg.num_warps)
    found = instructions(disassembly(kernel))
    assert found.count(instr) == cfg.BM * cfg.BN * cfg.BK // (32 * 32 * k) // cfg.num_warps
    assert kernel.resources.scratch_bytes == 0
