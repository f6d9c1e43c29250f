"""The attention kernels as the library launches them, compiled for sm_80 and sm_90a (ptxas
assembles every one): no spills at the default configurations, and P goes from the QK^T
accumulator into the P @ V product in registers."""
from __future__ import annotations

import importlib
import re

import ml_dtypes
import numpy as np
import pytest
from launch_recorder import Recorder as _Recorder

from tilec.backends.nvidia import compile_kernel
from tilec.lib import attention, paged_attention
from tilec.lib.paged_attention import PagedConfig

attn_mod = importlib.import_module("tilec.lib.attention")
paged_mod = importlib.import_module("tilec.lib.paged_attention")


def _compile(module, warps, arch):
    name = module.functions[0].name
    k = compile_kernel(module, name, arch=arch, num_warps=warps)
    assert k.cubin and f".target {arch}" in k.ptx
    assert k.resources.spill_stores == 0 and k.resources.spill_loads == 0, k.resources
    return k


@pytest.mark.parametrize("d, causal, window, arch", [
    (128, False, None, "sm_90a"),
    (128, False, None, "sm_80"),
    (64, True, 32, "sm_80"),
])
def test_attention_ptx(monkeypatch, d, causal, window, arch):
    rec = _Recorder(attn_mod.attention_kernel)
    monkeypatch.setattr(attn_mod, "attention_kernel", rec)
    x = np.zeros((1, 2, 256, d), ml_dtypes.bfloat16)
    attention(x, x, x, causal=causal, window=window)
    (module, warps), = rec.modules
    k = _compile(module, warps, arch)
    cfg = attn_mod.pick_config(d, 256, 256)
    # After the first product, shared memory is written only by the cp.async fallback (at
    # most one st.shared.b16 per element of the K and V tiles, in each of the two loops): p
    # feeds the second product as a renaming of registers, with no trip through shared
    # memory (the tile IR above has no conversion of it either). On sm_90a both products
    # are wgmma, reading K (K-major, through the transpose) and V (N-major) where cp.async
    # put them.
    first = "wgmma.mma_async" if arch == "sm_90a" else "mma.sync"
    after = k.ptx[k.ptx.index(first):]
    if arch == "sm_90a":
        assert "mma.sync" not in k.ptx
        instrs = set(re.findall(r"wgmma\.mma_async\S+ .*, (\d), (\d), (\d);", k.ptx))
        assert instrs == {("1", "1", "0"), ("1", "1", "1")}, instrs   # scales; K, then V
    stores = re.findall(r"st\.shared\S*", after)
    assert set(stores) == {"st.shared.b16"}
    assert len(stores) <= 2 * 2 * cfg.BN * d // (32 * warps)
    # The two loops' K/V stage buffers share their bytes; q's staging comes on top.
    assert k.shared_bytes == cfg.num_stages * 2 * cfg.BN * d * 2 + cfg.BM * d * 2
    fn = [line for line in k.tile_ir.splitlines() if "convert_layout" in line]
    assert len(fn) == 1 and "%q_cvt" in fn[0], fn
    dots = [line for line in k.tile_ir.splitlines() if " = dot " in line]
    assert len(dots) == 4 and all("warps_n = 1" in line for line in dots)
    assert "ex2.approx" in k.ptx and k.ptx.count("cp.async.cg") >= 4


@pytest.mark.parametrize("d", [64, 128])
def test_attention_wgmma_configs(monkeypatch, d):
    """The H100's configurations (two warpgroups of 64 rows at D = 128, one at D = 64, 128
    keys a block) compile for sm_90a without spills, both products on wgmma."""
    rec = _Recorder(attn_mod.attention_kernel)
    monkeypatch.setattr(attn_mod, "attention_kernel", rec)
    x = np.zeros((1, 2, 256, d), ml_dtypes.bfloat16)
    cfg = attn_mod.pick_config(d, 4096, 4096, wgmma=True)
    assert cfg.BN == 128 and cfg.num_warps == (8 if d == 128 else 4)
    attention(x, x, x, config=cfg)
    (module, warps), = rec.modules
    k = _compile(module, warps, "sm_90a")
    assert {f"m64n{n}k16" for n in (128, d)} == set(re.findall(r"wgmma\.mma_async\.sync"
                                                              r"\.aligned\.(m64n\d+k16)", k.ptx))
    assert "mma.sync" not in k.ptx


@pytest.mark.parametrize("cache, split, arch", [
    (ml_dtypes.bfloat16, True, "sm_90a"),
    (ml_dtypes.float8_e4m3fn, False, "sm_80"),
])
def test_paged_ptx(monkeypatch, cache, split, arch):
    rec = _Recorder(paged_mod.paged_kernel)
    merge = _Recorder(paged_mod.merge_kernel)
    monkeypatch.setattr(paged_mod, "paged_kernel", rec)
    monkeypatch.setattr(paged_mod, "merge_kernel", merge)
    q = np.zeros((2, 8, 128), ml_dtypes.bfloat16)
    kc = np.zeros((8, 64, 1, 128), cache)
    table = np.arange(8, dtype=np.int32).reshape(2, 4)
    paged_attention(q, kc, kc, table, np.array([200, 40], np.int32),
                    config=PagedConfig(64, 2 if split else 1, 4))
    compiled = [_compile(module, warps, arch) for module, warps in rec.modules + merge.modules]
    assert len(merge.modules) == (1 if split else 0)
    if cache is ml_dtypes.bfloat16:
        # K and V gathered page by page through the block table, by cp.async three stages
        # deep (two blocks ahead: 2 x 8 runs of 16 bytes a thread, and 8 + 8 in the loop),
        # each run's alignment known from the launch (no fallback element by element).
        ptx = compiled[0].ptx
        assert ptx.count("cp.async.cg.shared.global") == 3 * 2 * 64 * 128 // 8 // 128
        # (q's masked load keeps one: 16 x 128 elements over 128 threads)
        assert len(re.findall(r"ld\.global(?:\.\w+)*\.b16", ptx)) <= 16 * 128 // 128
