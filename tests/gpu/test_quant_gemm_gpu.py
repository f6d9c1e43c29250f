"""tilec.lib.quant_gemm on the GPU (torch CUDA tensors) against torch in float32: dequantize
the packed weights first (numpy, exactly as the kernel does), then matmul. Every integer
width 1..8 (signed, unsigned with zero points) and the float formats, decode (M <= 64,
split-K) and prefill (M = 200: tuned; 1024: dequantized, then tilec.lib.gemm) configurations,
ragged N. Outputs are poisoned (NaN).

Run with `pytest -m gpu tests/gpu/test_quant_gemm_gpu.py` on a machine with an NVIDIA GPU.
"""
from __future__ import annotations

import numpy as np
import pytest

import tilec as tc
from tilec.ir import dtypes as dt
from tilec.lib import quant_gemm as qg
from tilec.lib.quant_gemm import QuantConfig, dequantize, pick_config, quant_gemm, quantize

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

WIDTHS = [dt.int_(b) for b in range(1, 9)] + [dt.uint(b) for b in range(1, 9)] + [
    dt.float6_e3m2, dt.float6_e2m3, dt.float4_e2m1, dt.float3_e1m1, dt.float8_e4m3]


def _run(d, m, n, k, g, act=torch.float16, zero_point=None, seed=0, config=None):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, k))
    np_act = np.float16 if act == torch.float16 else __import__("ml_dtypes").bfloat16
    p, s, z = quantize(w, d, g, zero_point, act_dtype=np_act)
    w_ref = torch.from_numpy(dequantize(p, s, z, g)).float().cuda()
    dev = lambda x: None if x is None else torch.from_numpy(  # noqa: E731
        np.ascontiguousarray(x).view(np.uint16)).view(act).cuda()
    wp = tc.PackedTensor(torch.from_numpy(p.data).cuda(), p.dtype, p.shape)
    a = torch.randn(m, k, device="cuda").to(act)
    out = torch.full((m, n), float("nan"), dtype=act, device="cuda")
    quant_gemm(a, wp, dev(s), dev(z), g, out=out, config=config)
    torch.cuda.synchronize()
    ref = a.float() @ w_ref.T
    eps = 2.0 ** -10 if act == torch.float16 else 2.0 ** -7
    # The decode template without zero points scales the exact products instead of
    # rounding each weight: half an ulp of A's dtype a weight apart from `ref`.
    half_ulp = 2.0 ** -11 if act == torch.float16 else 2.0 ** -8
    tol = eps * ref.abs() + 1e-5 * k ** 0.5 * w_ref.abs().max() * a.float().abs().max() + 1e-3
    tol += half_ulp * (a.float().abs() @ w_ref.abs().T)
    err = (out.float() - ref).abs()
    assert not torch.isnan(out).any(), "unwritten (NaN) outputs"
    assert bool((err <= tol).all()), f"{d}: max error {err.max().item():.3g}"
    return a, wp, dev(s), dev(z), out


@pytest.mark.parametrize("m", [1, 16], ids=lambda m: f"M{m}")
@pytest.mark.parametrize("d", WIDTHS, ids=str)
def test_decode(d, m):
    _run(d, m, 1000, 1024, 128)


@pytest.mark.parametrize("m", [200, 1024], ids=lambda m: f"M{m}")
@pytest.mark.parametrize("d", [dt.uint4, dt.int3, dt.uint5, dt.int8, dt.float4_e2m1,
                               dt.float6_e3m2], ids=str)
def test_prefill(d, m):
    _run(d, m, 520, 512, 64)


@pytest.mark.parametrize("d", [dt.uint4, dt.int2, dt.float4_e2m1], ids=str)
def test_bfloat16(d):
    _run(d, 5, 384, 512, 128, act=torch.bfloat16)
    _run(d, 300, 384, 512, 128, act=torch.bfloat16)
    _run(d, 1024, 384, 512, 128, act=torch.bfloat16)   # dequantize, then tilec.lib.gemm


def test_large_decode_shape_uses_parts_of_k():
    """8192^2 at M = 1: four parts of K in the mma's columns give the programs (tuned, the
    table's config, and parts under split-K)."""
    assert pick_config(1, 8192, 8192, 128).parts == 4
    _run(dt.uint4, 1, 8192, 8192, 128)
    _run(dt.int4, 1, 8192, 8192, 128, config=pick_config(1, 8192, 8192, 128))
    _run(dt.int3, 2, 8192, 8192, 128, config=QuantConfig(16, 128, 128, 4, 3, 2, parts=4))
    # 16 weight rows a warp (mma.sync, not wgmma)
    _run(dt.int4, 1, 8192, 8192, 128, config=QuantConfig(16, 128, 256, 8, 2, 1, parts=4))
    # programs of 2 warps and 64 rows (the tuner's other tile)
    _run(dt.int3, 1, 8192, 8192, 128, config=QuantConfig(16, 64, 256, 2, 2, 1, parts=8))
    _run(dt.uint5, 1, 8192, 8192, 128, zero_point=True,
         config=QuantConfig(16, 64, 128, 2, 3, 2, unroll=2, parts=4))
    # four one-group steps a trip (2048 / 128 = 16 steps a part, split in 2)
    _run(dt.int3, 1, 8192, 8192, 128, config=QuantConfig(16, 128, 128, 4, 2, 2, unroll=4,
                                                         parts=4))
    _run(dt.uint4, 16, 1000, 1024, 128, zero_point=True,
         config=QuantConfig(16, 64, 128, 4, 2, 2))


def test_decode_is_autotuned():
    """Without a config, M <= 16 on the GPU runs the decode autotuner's choice for the key
    (rows and length of K's parts) of this width, group size, rows of A, zero points and
    parts; other widths tune apart."""
    _run(dt.int4, 1, 4096, 2048, 128)
    _run(dt.int4, 3, 4096, 2048, 128, zero_point=True)
    for m, zeros, parts in ((1, False, 8), (3, True, 2)):
        assert qg.decode_parts(m, 4096, 2048, 128) == parts
        tuner = qg.decode_tuner(dt.int4, 128, m, zeros, parts)
        key = (4096 * parts, 2048 // parts)
        chosen = [cfg for k, cfg in tuner.chosen.items() if k[:2] == key]
        assert len(chosen) == 1 and chosen[0] in tuner.configs
        assert chosen[0].kwargs["SCALE_ACC"] == (not zeros and chosen[0].kwargs["SG"] == 1)


@pytest.mark.parametrize("d, m, zero_point", [(dt.int4, 40, None), (dt.uint3, 64, True),
                                              (dt.float4_e2m1, 24, None), (dt.int8, 64, None)],
                         ids=str)
def test_decode_wide_tiles_of_a(d, m, zero_point):
    """17..64 rows of A run the decode template with one 32- or 64-row A tile: tuned, and
    under explicit configs with and without split-K (slabs summed a chunk at a time)."""
    _run(d, m, 1000, 1024, 128, zero_point=zero_point)
    assert qg.decode_tuner(d, 128, m, bool(zero_point)).chosen
    for cfg in (QuantConfig(16, 128, 64, 4, 3, 4), QuantConfig(16, 64, 64, 2, 2, 1)):
        _run(d, m, 1000, 1024, 128, zero_point=zero_point, config=cfg)


def test_prefill_is_autotuned():
    """64 < M < 1024 on the GPU: the prefill autotuner's choice for M, N and K (a ragged N),
    and a search apart for zero points."""
    _run(dt.int4, 100, 1000, 1024, 128)
    _run(dt.uint4, 100, 1000, 1024, 128, zero_point=True)
    for zeros in (False, True):
        tuner = qg.prefill_tuner(dt.int4 if not zeros else dt.uint4, 128, zeros)
        chosen = [cfg for k, cfg in tuner.chosen.items() if k[:3] == (100, 1000, 1024)]
        assert len(chosen) == 1 and chosen[0] in tuner.configs
    _run(dt.uint5, 300, 1000, 1024, 128, zero_point=True)


def test_decode_times_twice_the_parts_that_fit_one_wave():
    """At M = 1 and 8192 rows, `decode_parts` gives 4 parts (256 programs) and 8 still fit
    one wave (512): both are tuned, the faster kept, and the call is right either way."""
    for d in (dt.int4, dt.int6):
        _run(d, 1, 8192, 2048, 128)
        a = torch.randn(1, 2048, device="cuda").half()
        wp = tc.PackedTensor(torch.zeros((8192, 2048 * d.bits // 8), dtype=torch.uint8,
                                         device="cuda"), d, (8192, 2048))
        parts = qg.decode_tuned_parts(a, wp, False, 128)
        assert qg.decode_parts(1, 8192, 2048, 128) == 4 and parts in (4, 8)
        scales = torch.ones(8192, 16, device="cuda").half()
        out = torch.empty(1, 8192, device="cuda").half()
        for p in (4, 8):   # each searched, its winner's time known
            launch = qg._DecodeLaunch(a, wp, scales, None, 128, out, p)
            ms = launch.tuner.best_ms(*launch.args(*launch.workspace(True)), **launch.call)
            assert ms is not None and 0 < ms < 1
        _run(d, 1, 8192, 2048, 128)   # the choice again, from the cache


def test_split_k_leaves_its_counters_zero_and_repeats_bit_for_bit():
    """Split-K slices store into slabs of a workspace and each tile's last slice adds them
    up and resets its counter: after every call the counters are zero again, so later
    calls (other shapes, the same one again) stay right; and the slabs are added in slice
    order, so a call repeats its result bit for bit whichever slice arrives last."""
    cases = [(1, 8192, 8192, None), (16, 1000, 1024, QuantConfig(16, 64, 128, 4, 1, 4)),
             (2, 1000, 1024, QuantConfig(16, 64, 128, 2, 2, 2, parts=2)),
             (40, 520, 512, QuantConfig(32, 32, 64, 2, 2, 4)), (3, 1000, 1024, None),
             (16, 4096, 4096, QuantConfig(16, 128, 256, 4, 2, 8))]
    for m, n, k, cfg in cases * 2:
        a, wp, s, z, out = _run(dt.uint4, m, n, k, 128, zero_point=True, config=cfg)
        for _ in range(3):
            again = torch.full_like(out, float("nan"))
            quant_gemm(a, wp, s, z, 128, out=again, config=cfg)
            assert torch.equal(again, out)
    assert qg._WORKSPACES
    for _, arrived in qg._WORKSPACES.values():
        assert not arrived.any()


def _programmatic_entries():
    return {e.launcher.programmatic for e in qg.quant_gemv_kernel._entries.values()
            if hasattr(e, "launcher")}


def test_back_to_back_decode_calls_overlap_only_where_safe():
    """Decode calls on one stream start early (programmatic dependent launch: the next
    streams its operands while the previous finishes), and stay bit for bit what they are
    alone; a call whose activations are the previous call's output does not start early
    (it would read them before they are written)."""
    cfg = QuantConfig(16, 64, 128, 2, 2, 4, 2)
    a, w1, s1, _, alone1 = _run(dt.int4, 16, 2048, 2048, 128, config=cfg, seed=1)
    _, w2, s2, _, _ = _run(dt.int4, 16, 2048, 2048, 128, config=cfg, seed=2)
    torch.cuda.synchronize()
    ref2 = torch.empty_like(alone1)
    quant_gemm(alone1, w2, s2, None, 128, out=ref2, config=cfg)   # the chain, one at a time
    torch.cuda.synchronize()
    for _ in range(5):
        outs = [torch.full_like(alone1, float("nan")) for _ in range(4)]
        for o in outs:   # independent calls, back to back
            quant_gemm(a, w1, s1, None, 128, out=o, config=cfg)
        chained = torch.full_like(alone1, float("nan"))
        quant_gemm(outs[-1], w2, s2, None, 128, out=chained, config=cfg)
        torch.cuda.synchronize()
        for o in outs:
            assert torch.equal(o, alone1)
        assert torch.equal(chained, ref2)
    assert _programmatic_entries() == {True, False}
