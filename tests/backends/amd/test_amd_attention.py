"""The attention libraries' kernels, as the library launches them, compiled from the same DSL
source for gfx942: they link and the dots are MFMA. Nothing goes to scratch, except D=128
flash attention at the configuration chosen for NVIDIA (8 wavefronts of 64 rows x 128: 6
VGPRs spill; no AMD-specific configuration exists yet)."""
from __future__ import annotations

import importlib

import ml_dtypes
import numpy as np
import pytest
from amd_util import compile_checked, disassembly, instructions
from launch_recorder import Recorder as _Recorder

from tilec.lib import attention, paged_attention
from tilec.lib.paged_attention import PagedConfig

attn_mod = importlib.import_module("tilec.lib.attention")
paged_mod = importlib.import_module("tilec.lib.paged_attention")


def _link(module, warps, arch="gfx942", scratch_free=True):
    name = module.functions[0].name
    k = compile_checked(module, name, arch, num_warps=warps)
    if scratch_free:
        assert k.resources.scratch_bytes == 0 and k.resources.vgpr_spills == 0, k.resources
    return instructions(disassembly(k))


@pytest.mark.parametrize("d, causal", [(64, True), (128, False)])
def test_flash_attention_links_with_mfma(monkeypatch, d, causal):
    rec = _Recorder(attn_mod.attention_kernel)
    monkeypatch.setattr(attn_mod, "attention_kernel", rec)
    x = np.zeros((1, 2, 256, d), np.float16)
    attention(x, x, x, causal=causal)
    (module, warps), = rec.modules
    found = _link(module, warps, scratch_free=d == 64)
    assert any(i.startswith("v_mfma_f32_") and i.endswith("f16") for i in found)


def test_paged_decode_links_with_mfma():
    rec = _Recorder(paged_mod.paged_kernel)
    merge = _Recorder(paged_mod.merge_kernel)
    mp = pytest.MonkeyPatch()
    mp.setattr(paged_mod, "paged_kernel", rec)
    mp.setattr(paged_mod, "merge_kernel", merge)
    try:
        q = np.zeros((2, 8, 128), ml_dtypes.bfloat16)
        kc = np.zeros((8, 64, 1, 128), ml_dtypes.bfloat16)
        table = np.arange(8, dtype=np.int32).reshape(2, 4)
        paged_attention(q, kc, kc, table, np.array([200, 40], np.int32),
                        config=PagedConfig(64, 2, 4))
    finally:
        mp.undo()
    assert len(rec.modules) == 1 and len(merge.modules) == 1
    (module, warps), = rec.modules
    found = _link(module, warps)
    assert any(i.startswith("v_mfma_f32_") for i in found)
    _link(*merge.modules[0])
