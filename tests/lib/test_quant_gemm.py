"""tilec.lib.quant_gemm on the CPU interpreter against numpy (dequantize first, then matmul
in float64), for every weight width and float format; its PTX assembles (ptxas) for sm_80
and sm_90a, with the packed weights read as whole vectors; argument errors."""
from __future__ import annotations

from typing import NamedTuple

import ml_dtypes
import numpy as np
import pytest

import tilec as tc
import tilec.lib.quant_gemm as qg_mod
from tilec.backends.llvm.memory import packed_vector_groups
from tilec.backends.nvidia import compile_kernel
from tilec.ir import dtypes as dt
from tilec.ir.layout import parse_layout
from tilec.ir.layout_defaults import view_layout
from tilec.lib.quant_gemm import (QuantConfig, decode_a_layout, decode_bk, decode_layouts,
                                  dequantize, pick_config, quant_gemm, quant_gemm_kernel,
                                  quant_gemv_kernel, quantize, row_layout, scale_layout,
                                  slab_chunk, slab_layout, weight_layout)

INTS = [dt.int_(b) for b in range(1, 9)] + [dt.uint(b) for b in range(1, 9)]
FLOATS = [dt.float6_e3m2, dt.float6_e2m3, dt.float4_e2m1, dt.float3_e1m1, dt.float8_e4m3]
BF16 = ml_dtypes.bfloat16

DECODE = QuantConfig(16, 32, 32, 1, 1, 2)    # split-K over two programs, one launch
PREFILL = QuantConfig(32, 32, 32, 2, 2)
PREFILL_SPLIT = QuantConfig(32, 32, 32, 2, 2, 3)


class _Ref(NamedTuple):
    """The product with the dequantized weights (`dequantize`: each rounded to A's dtype),
    and how far a kernel that scales the exact products instead (the decode template
    without zero points) may be from it: half an ulp of A's dtype a weight."""
    value: np.ndarray
    slack: np.ndarray

    def __getitem__(self, rows):
        return _Ref(self.value[rows], self.slack[rows])


def _problem(d, m, n, k, g, act=np.float16, zero_point=None, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, k))
    a = rng.standard_normal((m, k)).astype(act)
    p, s, z = quantize(w, d, g, zero_point, act_dtype=act)
    a64, w64 = a.astype(np.float64), dequantize(p, s, z, g)
    half_ulp = 2.0 ** -11 if act == np.float16 else 2.0 ** -8
    return a, p, s, z, _Ref(a64 @ w64.T, half_ulp * (np.abs(a64) @ np.abs(w64).T))


def _check(out, ref, act):
    # Exact (or exactly scaled) weights, f32 accumulation, one rounding to the output dtype.
    eps = 2.0 ** -10 if act == np.float16 else 2.0 ** -7
    err = np.abs(out.astype(np.float64) - ref.value)
    bound = eps * np.abs(ref.value) + ref.slack + 1e-3 * max(1.0, np.abs(ref.value).max())
    assert np.all(err <= bound), err.max()


@pytest.mark.parametrize("d", INTS + FLOATS, ids=str)
def test_every_width_decode_and_prefill(d):
    a, p, s, z, ref = _problem(d, 5, 32, 64, 32)
    for cfg in (DECODE, PREFILL, PREFILL_SPLIT):
        _check(quant_gemm(a, p, s, z, 32, config=cfg), ref, np.float16)
    # M = 1: the one-row A path
    _check(quant_gemm(a[:1], p, s, z, 32, config=DECODE), ref[:1], np.float16)


@pytest.mark.parametrize("d, zero_point", [(dt.int4, True), (dt.uint3, False),
                                           (dt.uint8, True), (dt.float4_e2m1, False)], ids=str)
def test_bfloat16_and_zero_point_variants(d, zero_point):
    a, p, s, z, ref = _problem(d, 3, 16, 64, 32, act=BF16, zero_point=zero_point, seed=1)
    assert (z is not None) == zero_point
    out = quant_gemm(a, p, s, z, 32, config=DECODE)
    assert out.dtype == BF16
    _check(out, ref, BF16)


@pytest.mark.parametrize("d", [dt.uint5, dt.int7, dt.float6_e3m2], ids=str)
def test_dequantized_weights_are_exact(d):
    """With A = I the product is the dequantized weights themselves: bit-exact."""
    k = 32
    _, p, s, z, _ = _problem(d, 1, 16, k, 32, zero_point=d.kind == "uint")
    out = quant_gemm(np.eye(k, dtype=np.float16), p, s, z, 32, config=PREFILL)
    np.testing.assert_array_equal(out.astype(np.float64), dequantize(p, s, z, 32).T)


def test_default_config_and_odd_shapes():
    """M, N not multiples of the tiles; the table's config (decode: split-K) at group 64."""
    a, p, s, z, ref = _problem(dt.uint4, 7, 40, 128, 64)
    cfg = pick_config(7, 40, 128, 64)
    assert cfg.BK == 64
    _check(quant_gemm(a, p, s, z, 64), ref, np.float16)
    out = np.full((7, 40), np.nan, np.float16)
    assert quant_gemm(a, p, s, z, 64, out=out) is out
    _check(out, ref, np.float16)


def test_pick_config_table():
    c = pick_config(1, 8192, 8192, 128)
    # 4 bits at M = 1: steps of two groups, 2 programs a SM (quant_gemm-notes.md), from
    # four parts of K in the mma's columns rather than split-K
    assert (c.BM, c.BN, c.BK, c.num_stages, c.parts, c.split_k) == (16, 128, 256, 3, 4, 1)
    assert -(-8192 * c.parts // c.BN) * c.split_k >= 256       # every SM busy at M = 1
    c3 = pick_config(1, 8192, 8192, 128, 3)          # dearer unpacking: one group a step
    assert c3.BK == 128 and (c3.parts, c3.split_k) == (c.parts, c.split_k)
    assert pick_config(1, 4096, 4096, 128).parts == 8
    assert pick_config(4, 4096, 4096, 128).parts == 2             # M * parts <= 8
    assert pick_config(1, 4096, 4096 + 128, 128).parts == 1       # 33 groups: no halves
    assert pick_config(16, 8192, 8192, 128).BK == 128
    assert pick_config(16, 4096, 4096, 128).BM == 16
    assert pick_config(64, 4096, 4096, 128)[:3] == (16, 128, 64)   # decode, 64-row A tile
    assert pick_config(65, 4096, 4096, 128) == QuantConfig(64, 64, 64, 4, 3)
    assert pick_config(128, 4096, 4096, 128) == QuantConfig(64, 64, 64, 4, 3)
    assert pick_config(4096, 4096, 4096, 128) == QuantConfig(128, 128, 64, 8, 3)
    assert pick_config(4096, 4096, 4096, 32).BK == 32


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 6, 7, 8])
def test_weight_layout_views_words_in_registers(bits):
    """Each thread's words are exactly the bits of its run of weights: the view keeps them
    in registers, and 4-bit runs are 16 bytes."""
    for bn, bk, warps in [(32, 128, 4), (64, 64, 4), (128, 64, 8), (16, 32, 4)]:
        wl, el = weight_layout(bn, bk, warps, bits)
        words, elems = parse_layout(wl), parse_layout(el)
        assert words.shape == (bn, bk * bits // 32) and elems.shape == (bn, bk)
        assert words.num_threads == elems.num_threads == 32 * warps
        assert view_layout(words, 32, bits) == elems
        assert packed_vector_groups(elems, bits) * bits % 32 == 0
    assert weight_layout(32, 128, 4, 4)[0] == "spatial(32,4)*local(1,4)"
    assert weight_layout(64, 128, 4, 4)[0] == "spatial(64,2)*local(1,8)"


def test_weight_layout_refuses_tiles_without_whole_words():
    with pytest.raises(tc.LaunchError, match="does not split into whole words"):
        weight_layout(16, 16, 4, 3)


def test_packed_vector_groups_refuses_scattered_runs():
    assert packed_vector_groups(parse_layout("local(1,16)*spatial(32,4)*local(1,2)"), 4) == 1
    assert packed_vector_groups(parse_layout("local(1,16)*spatial(32,4)*local(1,2)"), 16) == 2
    assert packed_vector_groups(parse_layout("spatial(32,4)*local(1,8)"), 3) == 1
    assert packed_vector_groups(parse_layout("spatial(32,4)*local(1,32)"), 3) == 32


def _signature(wd: str, cfg: QuantConfig, act: str = "f16") -> str:
    bits = dt.dtype(wd).bits
    wl, el = weight_layout(cfg.BN, cfg.BK, cfg.num_warps, bits)
    facts = "{contiguous = true, aligned = 16}"  # what a launch on torch tensors gives
    return (f"A: tensor<?x?x{act}> {facts}, W: tensor<?x?xu32> {facts}, "
            f"S: tensor<?x?x{act}> {facts}, Z: tensor<?x?x{act}> {facts}, "
            f"C: tensor<?x?x{act}> {facts}, Ws: tensor<?x?x?xf32> {facts}, "
            f"Arrived: tensor<?xi32> {facts}, "
            f"BM={cfg.BM}, BN={cfg.BN}, BK={cfg.BK}, G=128, SPLIT={cfg.split_k}, "
            f"HAS_ZERO={dt.dtype(wd).is_int}, "     # zero points: integer weights only
            f"WDT={wd}, WB={cfg.BK * bits // 32}, WL=\"{wl}\", EL=\"{el}\", "
            f"ONE_ROW={cfg.BM == 16}, AL=\"{row_layout(cfg.BK, cfg.num_warps)}\", "
            f"SLABS=\"{slab_layout(cfg.split_k, cfg.BM, cfg.BN, cfg.num_warps)}\", "
            f"CHUNK={slab_chunk(cfg.split_k, cfg.BM, cfg.BN, cfg.num_warps)}, "
            f"num_warps={cfg.num_warps}, num_stages={cfg.num_stages}")


@pytest.mark.parametrize("wd, cfg, act", [
    ("u4", QuantConfig(16, 128, 128, 4, 1, 4), "f16"),
    ("i3", pick_config(16, 4096, 4096, 128, 3), "bf16"),
    ("u5", pick_config(16, 4096, 4096, 128, 5), "f16"),
    ("u2", QuantConfig(16, 128, 128, 4, 1, 4), "f16"),
    ("f6e3m2", pick_config(1, 4096, 4096, 128, 6), "f16"),
    ("u4", pick_config(4096, 4096, 4096, 128, 4), "f16"),
    ("f4e2m1", pick_config(128, 4096, 4096, 128, 4), "bf16"),
    ("u8", pick_config(128, 4096, 4096, 128, 8), "f16"),
], ids=str)
def test_ptx_assembles(wd, cfg, act):
    module = quant_gemm_kernel.compile(_signature(wd, cfg, act))
    for arch in ("sm_80", "sm_90a"):
        k = compile_kernel(module, "quant_gemm_kernel", arch=arch)
        assert k.cubin and f".target {arch}" in k.ptx
        # On sm_90a, whole warpgroups of 64-row blocks of A: wgmma, the dequantized
        # weights stored into its shared operand in 16-byte runs along K.
        wgmma = arch == "sm_90a" and cfg.num_warps % 4 == 0 and \
            cfg.BM % (64 * (cfg.num_warps // 4)) == 0
        assert ("wgmma.mma_async" if wgmma else "mma.sync") in k.ptx
        assert ("mma.sync" if wgmma else "wgmma.mma_async") not in k.ptx
        assert k.resources.spill_stores == 0, k.resources
        if wd in ("u4", "f4e2m1", "u2", "u8"):
            # The packed words: whole 16-byte vectors (32 weights a thread at 4 bits).
            assert "ld.global.v4.b32" in k.ptx, wd
        # The view of words as weights stays in registers: shared memory only for the
        # mma operands (st.shared of 16 bytes, read back by ldmatrix or wgmma).
        assert "st.shared.b8" not in k.ptx and "st.shared.u8" not in k.ptx
        if wgmma:
            assert "st.shared.b16" not in k.ptx and "st.shared.v4.b32" in k.ptx


# --------------------------------------------------------------------------------------
# the decode template (M <= 16): quant_gemv_kernel

@pytest.mark.parametrize("d, zero_point, m", [(dt.int4, False, 1), (dt.uint4, True, 16),
                                              (dt.int3, False, 9), (dt.uint2, True, 1),
                                              (dt.float6_e3m2, False, 4)], ids=str)
def test_decode_steps_spanning_groups(d, zero_point, m):
    """K steps of several groups (BK = 128 > G = 32: a tile of scales a step), K not a
    multiple of the step (the last one reads zeros past K), N not a multiple of BN."""
    a, p, s, z, ref = _problem(d, m, 40, 224, 32, zero_point=zero_point, seed=2)
    for cfg in (QuantConfig(16, 32, 128, 2, 1, 1), QuantConfig(16, 16, 64, 1, 1, 3)):
        _check(quant_gemm(a, p, s, z, 32, config=cfg), ref, np.float16)


@pytest.mark.parametrize("d, zero_point, m", [(dt.int4, False, 1), (dt.int3, False, 5),
                                              (dt.uint2, True, 16), (dt.int8, False, 12)],
                         ids=str)
def test_decode_two_steps_a_trip(d, zero_point, m):
    """UNROLL = 2 and 4: several one-group steps a loop trip. Slices of 3 and 2 steps (7
    steps of K in splits of 3: the last trip of an odd slice has a step past the slice,
    whose scales are zeroed), 7 steps in trips of 4, K past the last whole step, N not a
    multiple of BN."""
    a, p, s, z, ref = _problem(d, m, 40, 224, 32, zero_point=zero_point, seed=3)
    for cfg in (QuantConfig(16, 32, 32, 2, 1, 3, unroll=2),
                QuantConfig(16, 16, 32, 1, 3, 1, unroll=2),
                QuantConfig(16, 16, 32, 1, 2, 1, unroll=4)):
        _check(quant_gemm(a, p, s, z, 32, config=cfg), ref, np.float16)


@pytest.mark.parametrize("d, zero_point, m, parts, split",
                         [(dt.int4, False, 1, 4, 1), (dt.int4, False, 1, 8, 1),
                          (dt.uint2, True, 1, 2, 2), (dt.int3, False, 2, 4, 1),
                          (dt.int8, False, 4, 2, 3), (dt.float6_e3m2, False, 1, 4, 1),
                          (dt.uint5, True, 3, 2, 1)], ids=str)
def test_decode_parts_of_k(d, zero_point, m, parts, split):
    """K cut into interleaved parts, M*P rows of parts in the mma's columns (`decode_parts`,
    `_sum_parts`), alone and under split-K; N not a multiple of the tile's rows."""
    a, p, s, z, ref = _problem(d, m, 40, 512, 32, zero_point=zero_point, seed=5)
    for cfg in (QuantConfig(16, 32, 64, 2, 2, split, parts=parts),
                QuantConfig(16, 16, 32, 1, 1, split, unroll=2, parts=parts)):
        _check(quant_gemm(a, p, s, z, 32, config=cfg), ref, np.float16)


@pytest.mark.parametrize("d, zero_point, m", [(dt.int4, False, 24), (dt.uint3, True, 40),
                                              (dt.float4_e2m1, False, 64)], ids=str)
def test_decode_wide_tiles_of_a(d, zero_point, m):
    """17..64 rows of A: one tile of 32 or 64 rows (rows past M read zeros, never stored),
    alone and under split-K (4 slices of a 64-row tile: summed two slabs at a time), and
    the table's config."""
    assert slab_chunk(4, 64, 32, 2) == 2 and slab_chunk(4, 32, 32, 2) == 4
    a, p, s, z, ref = _problem(d, m, 40, 256, 32, zero_point=zero_point, seed=7)
    for cfg in (QuantConfig(16, 32, 64, 2, 2, 1), QuantConfig(16, 32, 64, 2, 2, 2),
                QuantConfig(16, 32, 64, 2, 2, 4)):
        _check(quant_gemm(a, p, s, z, 32, config=cfg), ref, np.float16)
    assert pick_config(m, 40, 256, 32).BM == 16
    _check(quant_gemm(a, p, s, z, 32), ref, np.float16)


def test_decode_parts_need_contiguous_rows():
    """A strided A (a reshape would copy it) takes the template without parts."""
    a, p, s, z, ref = _problem(dt.int4, 2, 40, 512, 32, seed=6)
    wide = np.zeros((2, 1024), np.float16)
    wide[:, ::2] = a
    cfg = QuantConfig(16, 32, 64, 2, 2, 1, parts=4)
    _check(quant_gemm(wide[:, ::2], p, s, z, 32, config=cfg), ref, np.float16)


def test_decode_bk():
    assert decode_bk(128, 128, 4) == 128
    assert decode_bk(32, 128, 3) == 128       # a thread's quarter: whole words of i3
    assert decode_bk(64, 32, 4) == 64         # two groups a step
    assert decode_bk(16, 48, 4) == 96         # a multiple of G = 48 with whole words
    assert decode_bk(16, 128, 8) == 16


def test_decode_layouts_are_the_mma_fragments():
    """After mma_k_order's permutation, the weights' layout is dot_layouts' A operand and
    A's is its B operand, up to each thread's register order: no data moves."""
    from tilec.backends.llvm.convert import register_map
    from tilec.ir import mma
    from tilec.ir.layout_defaults import reshape_layout
    bn, bk, warps = 128, 128, 4
    wl, el = (parse_layout(x) for x in decode_layouts(bn, bk, warps, 4))
    assert view_layout(wl, 32, 4) == el

    def k_order(layout, rows):
        five = reshape_layout(layout, (rows, 4, bk // 16, 2, 2))
        return reshape_layout(five.permute((0, 2, 3, 1, 4)), (rows, bk))
    for bm in (8, 16, 32, 64):
        act = parse_layout(decode_a_layout(bm, bk, warps))
        want = mma.dot_layouts((bn, bk), (bk, bm), mma.select("sm_90a", dt.float16,
                                                               dt.float32), warps, 1)
        for got, ref in ((k_order(el, bn), want.a), (k_order(act, bm).permute((1, 0)),
                                                      want.b)):
            keys = [1] * 2
            keys[0] = got.shape[1]
            assert register_map(got, keys, ref, keys) is not None
    assert parse_layout(decode_a_layout(1, bk, warps)).reduce(0) is not None


def _decode_module(wd: str, m: int, zeros: bool, cfg: QuantConfig):
    """(the decode template's module as `quant_gemm` would launch it with `cfg` on aligned
    contiguous tensors, the tc.Config of its constexprs)."""
    bm = max(8, qg_mod.decode_rows(m * cfg.parts))
    chosen = qg_mod.decode_config(cfg, wd, 128, m, zeros)
    facts = "{contiguous = true, aligned = 16}"
    consts = ", ".join(f'{k}="{v}"' if isinstance(v, str) else f"{k}={v}"
                       for k, v in chosen.all().items())
    module = quant_gemv_kernel.compile(
        f"A: tensor<?x?xf16> {facts}, W: tensor<?x?xu32> {facts}, S: tensor<?x?xf16> "
        f"{facts}, Z: tensor<?x?xf16> {facts}, C: tensor<?x?xf16> {facts}, "
        f"Ws: tensor<?x?x?xf32> {facts}, Arrived: tensor<?xi32> {facts}, "
        f"BM={bm}, G=128, HAS_ZERO={zeros}, WDT={wd}, ONE_ROW={m * cfg.parts == 1}, "
        f"{consts}")
    return module, chosen


@pytest.mark.parametrize("wd, bits, m, zeros", [("u4", 4, 1, False), ("i4", 4, 16, True),
                                                ("i3", 3, 1, False), ("f6e3m2", 6, 8, False),
                                                ("u8", 8, 1, True), ("i4", 4, 64, False),
                                                ("u3", 3, 32, True)], ids=str)
def test_decode_ptx_streams_the_weights(wd, bits, m, zeros):
    """The decode template as `quant_gemm` launches it: the weight words and A's rows come
    through the pipeline's stage buffers (cp.async in, 16-byte shared loads out), never
    through a layout conversion or ldmatrix on their way to the mma."""
    module, _ = _decode_module(wd, m, zeros, pick_config(m, 8192, 8192, 128, bits))
    for arch in ("sm_80", "sm_90a"):
        k = compile_kernel(module, "quant_gemv_kernel", arch=arch)
        assert k.cubin and "mma.sync" in k.ptx
        # No shared-memory round trip into the mma (the old template's 16 stores and 8
        # ldmatrix a step): at most the epilogue's transposed store of the accumulator.
        assert "ldmatrix" not in k.ptx and k.ptx.count("st.shared") <= 8
        assert k.resources.spill_stores == 0, k.resources
        assert "cp.async.cg.shared.global" in k.ptx and "ld.shared.v4.b32" in k.ptx
        if bits == 4:
            assert "lop3.b32" in k.ptx          # nibble pairs: one and/xor each


@pytest.mark.parametrize("cfg", [QuantConfig(16, 64, 256, 4, 2, 1, parts=8),
                                 QuantConfig(16, 128, 128, 8, 3, 1, parts=4)], ids=str)
def test_decode_sixteen_rows_a_warp_is_mma_sync(cfg):
    """16 weight rows a warp: the mma.sync layouts are also a wgmma plan's (m64 over four
    warps), but A's 8 columns fit no wgmma shared layout, so the dot stays on mma.sync
    (it was an internal error)."""
    module, _ = _decode_module("i4", 1, False, cfg)
    k = compile_kernel(module, "quant_gemv_kernel", arch="sm_90a")
    assert "mma.sync" in k.ptx and "wgmma" not in k.ptx
    assert k.resources.spill_stores == 0, k.resources


@pytest.mark.parametrize("wd, m, zeros, cfg", [
    ("i4", 1, False, QuantConfig(16, 128, 256, 4, 3, 1, parts=4)),   # two groups a step
    ("u4", 1, True, QuantConfig(16, 128, 128, 4, 3, 1, parts=4)),    # zero points
    ("u4", 16, True, QuantConfig(16, 128, 128, 4, 3, 4))], ids=str)
def test_decode_weights_keep_the_casts_pairs(wd, m, zeros, cfg):
    """Where the scales' multiply or the zero points' fma stands between the cast and the
    mma, it takes the cast's f16x2 pairs as they come (`elementwise.map_pairs`): fewer
    half-word packs in the PTX than pairs (more than one a pair, and as many unpacks,
    when they were repacked as neighbours)."""
    import re
    module, chosen = _decode_module(wd, m, zeros, cfg)
    ptx = compile_kernel(module, "quant_gemv_kernel", arch="sm_90a").ptx
    pairs = ptx.count("lop3.b32")
    packs = len(re.findall(r"mov\.b32\s+%r\d+, \{", ptx))
    assert chosen.kwargs["PAIR"] == 4 and packs < pairs, (packs, pairs)


def test_decode_tuner_space_and_prune():
    """On the GPU the decode template's tiles come from `tc.autotune`: one tuner per weight
    dtype, group size, rows of A (1, 2..8, 9..16, 17..32, 33..64), zero points and parts of K, keyed by the rows
    and length of the parts; its candidates (programs of 4 warps and 128 rows or 2 and 64)
    carry the layouts their tiles need, and the prune keeps 512..2048 warps with at least
    two steps a slice (every split for small shapes gone: the unsplit ones)."""
    t = qg_mod.decode_tuner(dt.int4, 128, 1, False)
    assert t is qg_mod.decode_tuner(dt.int4, 128, 1, False)            # cached
    assert t is not qg_mod.decode_tuner(dt.int4, 128, 1, True)        # zero points: SCALE_ACC off
    assert t is not qg_mod.decode_tuner(dt.float4_e2m1, 128, 1, False)  # same width, dearer cast
    assert t.key == ["W.shape[0]", "A.shape[1]"]
    assert len(t.configs) == 2 * 3 * 2 * 5 and t.budget == qg_mod.DECODE_BUDGET
    assert {(c.kwargs["BN"], c.num_warps) for c in t.configs} == {(128, 4), (64, 2)}
    one_group = [c for c in t.configs if c.kwargs["BK"] == 128]
    assert {c.kwargs["UNROLL"] for c in one_group} == {1, 2}
    assert all(c.kwargs["SCALE_ACC"] and c.kwargs["SG"] == 1 for c in one_group)
    with_zeros = qg_mod.decode_tuner(dt.int4, 128, 1, True)
    assert not any(c.kwargs["SCALE_ACC"] for c in with_zeros.configs)
    # K in the order of the cast's nibble pairs everywhere: the zero points' fma and the
    # scales' multiply (two groups a step) take its registers as they come, like the mma
    assert {c.kwargs["PAIR"] for c in t.configs + with_zeros.configs} == {4}
    big = {"A": np.zeros((1, 8192)), "W": np.zeros((8192, 1))}
    kept = qg_mod._prune_decode(t.configs, big)
    assert {c.kwargs["SPLIT"] for c in kept} == {2, 4, 8}
    assert all(8192 // c.kwargs["BK"] >= 2 * c.kwargs["UNROLL"] * c.kwargs["SPLIT"]
               for c in kept)
    small = {"A": np.zeros((1, 224)), "W": np.zeros((40, 1))}
    assert {c.kwargs["SPLIT"] for c in qg_mod._prune_decode(t.configs, small)} == {1}
    # Four parts of K (8192^2 at M = 1 as `quant_gemm` launches it: 32768 rows of 2048):
    # the programs are there without split-K.
    # 17..64 rows: shorter steps (A's runs for every row live through a step)
    wide = qg_mod.decode_tuner(dt.int4, 128, 64, False)
    assert wide is qg_mod.decode_tuner(dt.int4, 128, 33, False) and wide is not t
    assert {(c.kwargs["BK"], c.kwargs["UNROLL"]) for c in wide.configs} == \
        {(64, 1), (64, 2), (128, 1)}
    assert {c.kwargs["AL"] for c in wide.configs} >= {"replicate(4)*local(8,1)*spatial(8,4)"
                                                       "*local(1,16)"}
    four = qg_mod.decode_tuner(dt.int4, 128, 1, False, 4)
    assert four is not t and {c.kwargs["PARTS"] for c in four.configs} == {4}
    parts = {"A": np.zeros((4, 2048)), "W": np.zeros((32768, 1))}
    assert {c.kwargs["SPLIT"] for c in qg_mod._prune_decode(four.configs, parts)} == {1, 2}


def test_prefill_tuner_space_and_prune():
    """On the GPU, 64 < M < 1024 takes the prefill template's tiles from `tc.autotune`: one
    tuner per weight dtype, group size and zero points, keyed by M, N and K; whole
    warpgroups of 64-row blocks (wgmma on sm_90a); the prune keeps tiles under twice M's
    rows, at most 128 accumulators a thread and 64..1024 programs, splits only with 8
    steps a slice."""
    t = qg_mod.prefill_tuner(dt.int4, 128, False)
    assert t is qg_mod.prefill_tuner(dt.int4, 128, False)
    assert t is not qg_mod.prefill_tuner(dt.int4, 128, True)
    assert t.key == ["A.shape[0]", "W.shape[0]", "A.shape[1]"]
    assert t.budget == qg_mod.PREFILL_BUDGET
    assert all(c.kwargs["BM"] % (64 * (c.num_warps // 4)) == 0 for c in t.configs)
    assert {c.kwargs["BK"] for c in qg_mod.prefill_tuner(dt.int4, 64, False).configs} \
        == {64}                                                          # BK divides G
    big = {"A": np.zeros((128, 8192)), "W": np.zeros((8192, 1))}
    kept = qg_mod._prune_prefill(t.configs, big)
    assert kept and {c.kwargs["BM"] for c in kept} == {64, 128}
    for c in kept:
        tiles = -(-128 // c.kwargs["BM"]) * (8192 // c.kwargs["BN"])
        assert 1 <= tiles * c.kwargs["SPLIT"] <= 1024
        assert c.kwargs["BM"] * c.kwargs["BN"] <= 128 * 32 * c.num_warps
        assert c.kwargs["SPLIT"] == 1 or 8192 // c.kwargs["BK"] >= 8 * c.kwargs["SPLIT"]
    tiny = {"A": np.zeros((70, 64)), "W": np.zeros((40, 1))}
    assert {c.kwargs["SPLIT"] for c in qg_mod._prune_prefill(t.configs, tiny)} == {1}


@pytest.mark.torch
def test_pack_torch_round_trip():
    import torch
    q = torch.randint(-4, 4, (3, 10))
    p = tc.pack(q, tc.int3)
    assert isinstance(p.data, torch.Tensor) and p.data.dtype == torch.uint8
    assert p.shape == (3, 10) and tuple(p.data.shape) == (3, 4)
    np.testing.assert_array_equal(tc.unpack(p), q.numpy())


# --------------------------------------------------------------------------------------
# errors: LaunchErrors naming the argument, raised before any launch

class _NoLaunch:
    def __getitem__(self, grid):
        raise AssertionError("quant_gemm launched a kernel for bad arguments")


@pytest.fixture
def no_launch(monkeypatch):
    monkeypatch.setattr(qg_mod, "quant_gemm_kernel", _NoLaunch())
    monkeypatch.setattr(qg_mod, "quant_gemv_kernel", _NoLaunch())


f16 = np.float16
_W = tc.pack(np.zeros((8, 64)), tc.uint4)
_S = np.ones((8, 2), f16)


@pytest.mark.parametrize("args, kwargs, match", [
    ((np.zeros((2, 64), np.float32), _W, _S), {}, r"'a' must be float16 or bfloat16, got f32"),
    ((np.zeros((2, 64), f16), np.zeros((8, 64)), _S), {},
     r"'w_packed' must be a tc.PackedTensor, got ndarray"),
    ((np.zeros((2, 32), f16), _W, _S), {}, r"'a' is 2x32 but 'w_packed' is 8x64"),
    ((np.zeros((2, 64), f16), tc.pack(np.zeros((8, 64)), tc.int16), _S), {},
     r"unsupported weight dtype i16"),
    ((np.zeros((2, 64), f16), _W, _S), {"group_size": 24},
     r"group_size must be a multiple of 16 dividing K = 64, got 24"),
    ((np.zeros((2, 64), f16), _W, np.ones((8, 4), f16)), {},
     r"'scales' must be f16 of shape \(8, 2\), got f16 of shape \(8, 4\)"),
    ((np.zeros((2, 64), f16), _W, _S, np.zeros((8, 2), np.float32)), {},
     r"'zeros' must be f16 of shape \(8, 2\), got f32"),
    ((np.zeros((2, 64), f16), tc.pack(np.zeros((8, 64)), tc.float4_e2m1), _S,
      np.zeros((8, 2), f16)), {}, r"zero points apply to integer weights, not f4e2m1"),
    ((np.zeros((2, 64), f16), _W, _S), {"config": QuantConfig(32, 16, 64, 4, 1),
                                         "group_size": 32},
     r"config BK = 64 must divide group_size = 32"),
    ((np.zeros((2, 64), f16), _W, _S), {"config": QuantConfig(16, 32, 64, 4, 1),
                                         "group_size": 32},
     r"decode template needs BN a multiple of 16 \* num_warps"),
    ((np.zeros((2, 64), f16), _W, _S), {"config": QuantConfig(16, 64, 64, 4, 1, parts=4)},
     r"config parts = 4 must be a power of two with M \* parts <= 8 \(M = 2\) and whole "
     r"groups of 32 in each of K's parts \(K = 64\)"),
    (([[1.0]], _W, _S), {}, r"'a' must be a tensor"),
    ((np.zeros((2, 64), f16), _W, _S), {"out": np.zeros((2, 8), np.float32)},
     r"'out' must be f16 of shape \(2, 8\) on the device of 'a', got f32"),
])
def test_errors(no_launch, args, kwargs, match):
    kw = dict(kwargs)
    kw.setdefault("group_size", 32)
    with pytest.raises(tc.LaunchError, match=match) as info:
        quant_gemm(*args, **kw)
    loc = info.value.loc  # the user's call, not the library's line
    assert loc is not None and loc.file == __file__ and loc.line == info.tb.tb_lineno


# --------------------------------------------------------------------------------------
# the prefill path's dequantization (M >= DEQUANT_MIN_M on the GPU: then tilec.lib.gemm)

@pytest.mark.parametrize("d, zero_point, g", [(dt.uint4, True, 64), (dt.int3, False, 32),
                                              (dt.float6_e3m2, False, 128),
                                              (dt.int8, False, 64)], ids=str)
def test_dequant_kernel_is_the_reference_formula(d, zero_point, g):
    """Bit-exact against `dequantize`, transposed (K x N), N not a multiple of the tile."""
    n, k = 72, 256
    _, p, s, z, _ = _problem(d, 1, n, k, g, zero_point=zero_point, seed=3)
    bn, bk, warps = qg_mod._DEQUANT_TILE
    bk = min(bk, g)
    out = np.full((k, n), np.nan, np.float16)
    wl, _ = weight_layout(bn, bk, warps, d.bits)
    qg_mod.dequant_kernel[(tc.cdiv(n, bn), tc.cdiv(k, bk))](
        qg_mod._words(p), s, z if z is not None else s, out, BN=bn, BK=bk, G=g,
        HAS_ZERO=z is not None, WDT=d, WB=bk * d.bits // 32, WL=wl, num_warps=warps)
    np.testing.assert_array_equal(out.astype(np.float64), dequantize(p, s, z, g).T)


def test_dequant_kernel_assembles():
    bn, bk, warps = qg_mod._DEQUANT_TILE
    wl, _ = weight_layout(bn, bk, warps, 4)
    facts = "{contiguous = true, aligned = 16}"
    module = qg_mod.dequant_kernel.compile(
        f"W: tensor<?x?xi32> {facts}, S: tensor<?x?xf16> {facts}, Z: tensor<?x?xf16> {facts}, "
        f"Out: tensor<?x?xf16> {facts}, BN={bn}, BK={bk}, G=128, HAS_ZERO=True, WDT=i4, "
        f"WB={bk * 4 // 32}, WL='{wl}', num_warps={warps}")
    for arch in ("sm_80", "sm_90a"):
        k = compile_kernel(module, "dequant_kernel", arch=arch)
        assert k.cubin[:4] == b"\x7fELF" and k.resources.spill_stores == 0
