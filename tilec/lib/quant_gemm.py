"""Weight-only quantized GEMM: ``C = A @ dequant(W).T`` with low-bit weights of any width.

A is MxK activations (f16 or bf16). W is the NxK weight matrix of a linear layer (one row
per output feature, as `torch.nn.Linear.weight`), quantized along K and packed row by row
as a `tc.PackedTensor` of any integer width 1..8 (signed or unsigned) or a small float
format (float6_e3m2, float6_e2m3, float4_e2m1, float3_e1m1, fp8). Each row has one scale
per group of `group_size` consecutive K elements (`scales`: N x K/group_size, A's dtype),
and optionally one zero point per group (`zeros`, same shape and dtype, in units of the
quantized integers):

    dequant(W)[n, k] = round(q[n, k] * s - round(z * s)),  s = scales[n, k // G],
                                                            z = zeros[n, k // G] (or 0)

in A's dtype: the zero point's product once per row and group, then one fused multiply-add
per weight (the form GPTQ/AWQ-style kernels use). q converts to A's dtype exactly, so the
kernel's dequantized weights equal that formula bit for bit; the products accumulate in
f32 and the result is rounded to A's dtype. One exception, closer to the exact product:
the decode template without zero points, when a K step is one group, feeds q itself to
the mma and scales the step's f32 products by s (one multiply a row instead of one a
weight), so each weight's term differs from the formula's by at most half an ulp of A's
dtype (the formula's rounding of q * s).

Three paths by M; `pick_config` chooses the tiles per M bucket:

- decode (M <= 64, `quant_gemv_kernel`): the weights are the mma's A operand and A's rows
  its B operand, each thread loading runs of consecutive weights and the same runs of A
  that, after a permutation of K on both (`mma_k_order`), already are the mma fragments.
  A's tile is all its rows (8, 16, 32 or 64: `decode_rows`), so the weights are read and
  dequantized once.
  128-row tiles of N, K cut into parts (`decode_parts`, or twice as many where the
  autotuner's search finds them faster) and split-K, so that many
  programs stream disjoint slices of the packed weight bytes at once (the weights are
  read exactly once; A is small and stays in L2); the weight words and A's runs stream
  through the pipeline's stage buffers (num_stages - 1 steps ahead, cp.async), the
  scales a step ahead in registers. K's parts are rows of the same bytes (N*P x K/P) and
  meet in the mma's otherwise idle B columns (M*P <= 8): their sums add up in registers
  (`_sum_parts`). Split-K slices store their f32 partial sums into slabs of a
  workspace, and each output tile's last slice adds them up in slice order and rounds the
  total into C (`_add_split`): one launch.
- prefill (`quant_gemm_kernel`): square output tiles on `tc.dot`, A streamed through the
  cp.async pipeline and the packed weight tile dequantized in registers before it meets
  the tensor cores (wgmma on sm_90a, where the dequantized tile is stored into the
  instruction's shared operand in 16-byte runs; mma.sync elsewhere).
- large M on the GPU (M >= DEQUANT_MIN_M): `dequant_kernel` writes the dequantized weights
  once (K x N, A's dtype, the same formula) and `tilec.lib.gemm` multiplies.

`quantize` makes (packed weights, scales, zeros) from a float matrix, for tests and
examples; `dequantize` is the reference formula above in numpy.
"""
from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

import tilec as tc
from tilec.backends.llvm.fastcasts import PAIRED_FIELDS, has_paired_float, pair_distance
from tilec.errors import LaunchError
from tilec.ir import dtypes as dt
from tilec.ir.layout import local, parse_layout
from tilec.ir.layout_defaults import default_layout, reshape_layout
from tilec.lib import _host

__all__ = ["QuantConfig", "dequant_kernel", "dequantize", "pick_config", "quant_gemm",
           "quant_gemm_kernel", "quant_gemv_kernel", "quantize", "WEIGHT_DTYPES"]


@tc.func
def _split_k_slice(A, W, split_k, BM: tc.constexpr, BN: tc.constexpr, BK: tc.constexpr):
    """This program's output tile (pm, pn), its slice of K (split-K) and the slice's first
    and last K steps, and the steps every slice is given (the last slice may have fewer).
    A tile's slices are consecutive programs: launched together, they read one block of
    weight rows (M = 16, 8192^2, 4 slices: 0.7 us faster than slices a grid apart)."""
    grid_n = tc.cdiv(W.shape[0], BN)
    tile = tc.program_id(0) // split_k
    part = tc.program_id(0) % split_k
    steps = tc.cdiv(tc.cdiv(A.shape[1], BK), split_k)
    first = part * steps
    last = tc.minimum(first + steps, tc.cdiv(A.shape[1], BK)) - 1
    return tile // grid_n, tile % grid_n, part, first, last, steps


@tc.func
def _add_split(acc, C, Ws, Arrived, pm, pn, part, SPLIT: tc.constexpr, BM: tc.constexpr,
               BN: tc.constexpr, SLABS: tc.constexpr, CHUNK: tc.constexpr):
    """Split-K in one launch: each slice stores its partial sums (acc: C's BM x BN tile
    (pm, pn), f32) into its own slab of the workspace Ws (SPLIT x Mp x N, Mp = M rounded up
    to whole tiles); the tile's last slice to arrive (a counter per tile in Arrived, zero
    between calls) loads the tile of CHUNK slabs at once (all of them where the registers
    allow: `slab_chunk`), in layout SLABS (`slab_layout`: each thread holds those slabs'
    values at its places, so their sum, in a fixed order, stays in registers), rounds the
    sum into C and zeroes the counter for the next call. Plain
    stores and loads: atomic f32 adds into one total, then an exchange to read and clear it,
    cost ~4 us more at M = 16 (8192^2, 4 slices: quant_gemm-notes.md), and the fixed order
    makes the result independent of which slice arrives last. One load of all slabs rather
    than one a slab: 0.2-0.6 us faster at M = 16 (the loads of one a slab, each behind its
    own bounds check, went out one after another)."""
    tc.store(Ws, tc.expand_dims(acc, 0), offsets=(part, pm * BM, pn * BN))
    # acq_rel: every thread's stores above happen before the count (release), and the
    # last slice's loads below after the other slices' stores (acquire).
    counter = Arrived.ptr + pm * tc.cdiv(C.shape[1], BN) + pn
    if tc.atomic_add(counter, 1, sem="acq_rel") == SPLIT - 1:
        slabs = tc.load(Ws, offsets=(0, pm * BM, pn * BN), shape=(CHUNK, BM, BN))
        total = tc.sum(tc.with_layout(slabs, SLABS), axis=0)
        for c in tc.static_range(CHUNK, SPLIT, CHUNK):
            slabs = tc.load(Ws, offsets=(c, pm * BM, pn * BN), shape=(CHUNK, BM, BN))
            total = total + tc.sum(tc.with_layout(slabs, SLABS), axis=0)
        tc.store(C, (pm, pn), total.to(C.dtype))
        tc.atomic_xchg(counter, 0, sem="relaxed")


@tc.kernel
def quant_gemm_kernel(A: tc.Tensor, W: tc.Tensor, S: tc.Tensor, Z: tc.Tensor, C: tc.Tensor,
                      Ws: tc.Tensor, Arrived: tc.Tensor, BM: tc.constexpr,
                      BN: tc.constexpr, BK: tc.constexpr,
                      G: tc.constexpr, SPLIT: tc.constexpr, HAS_ZERO: tc.constexpr,
                      WDT: tc.constexpr,
                      WB: tc.constexpr, WL: tc.constexpr, EL: tc.constexpr,
                      ONE_ROW: tc.constexpr, AL: tc.constexpr, SLABS: tc.constexpr,
                      CHUNK: tc.constexpr):
    # W: the packed weight rows as 32-bit words (N x K*bits/32); a BN x BK tile of WDT
    # weights is a BN x WB tile of words, viewed as WDT in registers (each thread keeps its
    # words: layout WL over words is EL over weights).
    pm, pn, part, first, last, steps = _split_k_slice(A, W, SPLIT, BM, BN, BK)
    acc = tc.zeros((BM, BN), tc.float32)
    # Two steps of packed words in flight ahead of the one computing (a step past this
    # program's slice re-reads its last one, from cache): the memory-level parallelism the
    # bandwidth-bound decode shapes need, at a few registers per thread.
    words = tc.with_layout(tc.load(W, (pn, first), (BN, WB)), WL)
    ahead = tc.with_layout(tc.load(W, (pn, tc.minimum(first + 1, last)), (BN, WB)), WL)
    for i in range(steps):
        k = first + i
        nxt = tc.with_layout(tc.load(W, (pn, tc.minimum(k + 2, last)), (BN, WB)), WL)
        if ONE_ROW:
            # M = 1: the one row, read as 16-byte vectors (layout AL) and broadcast to the
            # mma's 16 rows (the other rows' results are never stored): no out-of-bounds
            # rows, so no per-element loads.
            a = tc.broadcast_to(tc.with_layout(tc.load(A, (0, k), (1, BK)), AL), (BM, BK))
        else:
            a = tc.load(A, (pm, k), (BM, BK))                   # out of bounds reads 0
        g = (k * BK) // G
        s = tc.load(S, offsets=(pn * BN, g), shape=(BN, 1))
        q = tc.view(words, WDT).to(A.dtype)
        if HAS_ZERO:
            # q*s - z*s with one rounding per weight: an fma, after a product per row.
            w = tc.fma(q, s, -(tc.load(Z, offsets=(pn * BN, g), shape=(BN, 1)) * s))
        else:
            w = q * s
        w = tc.with_layout(w, EL)    # dequantize in the load's layout, then to the mma's
        acc = tc.dot(a, tc.trans(w), acc)
        words = ahead
        ahead = nxt
    if SPLIT > 1:
        _add_split(acc, C, Ws, Arrived, pm, pn, part, SPLIT, BM, BN, SLABS, CHUNK)
    else:
        tc.store(C, (pm, pn), acc.to(C.dtype))                  # out of bounds dropped


@tc.func
def mma_k_order(x, R: tc.constexpr, P: tc.constexpr):
    """The columns of x (rows x 16R) in the order the mma k steps read them, so that the
    thread of column group c (lane % 4) owns the contiguous run c*4R .. c*4R + 4R - 1 and
    holds columns (i, i + P) of each 2P of its run in one register (PTX ISA 9.7.14.5.8: A
    fragment columns and B fragment rows are 2*(lane%4) + i%2 + 8*(i//2 % 2)):
    - P = 1: run column 4s + 2h + j goes to 16s + 8h + 2c + j (k step s, half h, lane j);
    - P > 1 (the pairs `paired_fields_to_f16` makes of low-bit ints): run column
      2P*g + P*j + 2t + h goes to 16*(g*P/2 + t) + 8h + 2c + j.
    A permutation of K on both operands leaves the dot as it is; the reshapes and the
    permute only rename registers."""
    rows = x.shape[0]
    if P == 1:
        return tc.reshape(tc.permute(tc.reshape(x, (rows, 4, R, 2, 2)), (0, 2, 3, 1, 4)),
                          (rows, 16 * R))
    return tc.reshape(tc.permute(tc.reshape(x, (rows, 4, 2 * R // P, 2, P // 2, 2)),
                                 (0, 2, 4, 5, 1, 3)), (rows, 16 * R))


@tc.func
def _decode_scales(k, S, Z, pn, BN: tc.constexpr, BK: tc.constexpr, G: tc.constexpr,
                   HAS_ZERO: tc.constexpr, SG: tc.constexpr, SL: tc.constexpr,
                   SCALE_ACC: tc.constexpr):
    """The K step k's scales and zero points (Z is S without zero points), loaded where the
    weights of their group are (layout SL: z * s uses s twice, so a conversion would not
    sink into the load), or with SCALE_ACC where the step's products are (the layout
    assignment's choice, from their use)."""
    g = (k * BK) // G
    if SCALE_ACC:
        s = tc.load(S, offsets=(pn * BN, g), shape=(BN, 1))
        return s, s
    s = tc.with_layout(tc.load(S, offsets=(pn * BN, g), shape=(BN, SG)), SL)
    z = s
    if HAS_ZERO:
        z = tc.with_layout(tc.load(Z, offsets=(pn * BN, g), shape=(BN, SG)), SL)
    return s, z


@tc.func
def _decode_step(acc, words, a, s, z, BM: tc.constexpr, BN: tc.constexpr, BK: tc.constexpr,
                 HAS_ZERO: tc.constexpr, WDT: tc.constexpr, ONE_ROW: tc.constexpr,
                 SG: tc.constexpr, GE: tc.constexpr, SCALE_ACC: tc.constexpr,
                 PAIR: tc.constexpr):
    """acc += one K step of the decode template, its operands already loaded. With
    SCALE_ACC (one group a step, no zero points) the quantized values go into the mma as
    they are (exact in A's dtype), in the K order of the pairs their conversion makes
    (PAIR), and the step's f32 products take the scale: one multiply a row and column
    instead of one a weight."""
    a = mma_k_order(a, BK // 16, PAIR)
    if ONE_ROW:
        a = tc.broadcast_to(a, (BM, BK))
    if SCALE_ACC:
        q = mma_k_order(tc.view(words, WDT).to(a.dtype), BK // 16, PAIR)
        part = tc.dot(q, tc.trans(a), tc.zeros((BN, BM), tc.float32), warps_n=1)
        return tc.fma(part, s.to(tc.float32), acc)
    q = tc.reshape(tc.view(words, WDT).to(a.dtype), (BN, SG, GE))
    s = tc.expand_dims(s, 2)
    if HAS_ZERO:  # q*s - z*s with one rounding per weight: an fma
        w = tc.fma(q, s, -(tc.expand_dims(z, 2) * s))
    else:
        w = q * s
    w = mma_k_order(tc.reshape(w, (BN, BK)), BK // 16, PAIR)
    return tc.dot(w, tc.trans(a), acc, warps_n=1)


@tc.func
def _sum_parts(acc, BM: tc.constexpr, BN: tc.constexpr, P: tc.constexpr):
    """C's (BM/P) x (BN/P) tile from a decode tile acc (BN x BM) of K split in P parts
    (`decode_parts`): weight row r*P + s and A row m*P + s hold part s of rows r and m, so
    C[m, r] sums acc[r*P + s, m*P + s] over s; the other products are thrown away (they
    sit in columns the mma computes anyway). P consecutive rows of the mma's C fragment
    are lanes of one warp: the sum is shuffles."""
    if P == 1:
        return tc.trans(acc)
    t = tc.reshape(acc, (BN // P, P, BM // P, P))
    s = tc.arange(0, P)
    same = tc.expand_dims(tc.expand_dims(tc.expand_dims(s, 1), 2), 0) == \
        tc.expand_dims(tc.expand_dims(tc.expand_dims(s, 0), 0), 0)
    return tc.trans(tc.sum(tc.sum(tc.where(same, t, 0.0), axis=3), axis=1))


@tc.kernel
def quant_gemv_kernel(A: tc.Tensor, W: tc.Tensor, S: tc.Tensor, Z: tc.Tensor, C: tc.Tensor,
                      Ws: tc.Tensor, Arrived: tc.Tensor, BM: tc.constexpr,
                      BN: tc.constexpr, BK: tc.constexpr, G: tc.constexpr,
                      SPLIT: tc.constexpr, HAS_ZERO: tc.constexpr,
                      WDT: tc.constexpr, WB: tc.constexpr, WL: tc.constexpr,
                      EL: tc.constexpr, ONE_ROW: tc.constexpr, AL: tc.constexpr,
                      SG: tc.constexpr, GE: tc.constexpr, SL: tc.constexpr,
                      SCALE_ACC: tc.constexpr, PAIR: tc.constexpr,
                      UNROLL: tc.constexpr, PARTS: tc.constexpr, SLABS: tc.constexpr,
                      CHUNK: tc.constexpr,
                      EARLY: tc.constexpr = False):
    # The decode template (M <= 64): C^T (a BN x BM tile, BM = 8..64; with K's parts,
    # rows of parts that `_sum_parts` adds up) = dequant(W) @ A^T on mma.m16n8k16, the
    # weights as the A operand (16 rows of W a fragment, a row of A per column of the
    # 8-wide B fragments). Each thread loads runs of BK/4 consecutive
    # weights of its rows (layout WL over words, EL over weights: `decode_layouts`) and
    # the same runs of A (AL); `mma_k_order` reorders K on both so that these runs already
    # are the mma fragments: no shared memory, no conversion, A's words straight into the
    # B operand. A step may span several groups (BK > G): SG scale columns of GE weights.
    # EARLY (programmatic dependent launch): the next launch on the stream may start as soon
    # as this one has, and this one streams its operands while the previous launch (another
    # decode call, the only kind that lets it start early) finishes; it waits for that launch
    # only before it touches the workspace and C, which calls share or read. The host passes
    # EARLY only where no operand overlaps the previous decode call's output.
    if EARLY:
        tc.gdc_launch_dependents()
    pm, pn, part, first, last, steps = _split_k_slice(A, W, SPLIT, BM, BN, BK)
    acc = tc.zeros((BN, BM), tc.float32)
    # The weight words and A's runs stream through shared memory: the pipeline pass copies
    # them num_stages - 1 steps ahead with cp.async and each step reads its stage back in
    # these layouts (16-byte shared loads). The scales, two bytes a row, are loaded a step
    # ahead into registers instead (from DRAM: the step's own load would stall it).
    # UNROLL steps a trip: one barrier and the copies of UNROLL * BK weights of each row
    # (e.g. two one-group steps of 64 bytes: a row's whole 128-byte line) per trip, each
    # step still one group (its own scale). A step past the slice (its last trip's, when
    # UNROLL does not divide its steps) has its scales zeroed: it adds nothing.
    s, z = _decode_scales(first, S, Z, pn, BN, BK, G, HAS_ZERO, SG, SL, SCALE_ACC)
    for t in range(first, last + 1, UNROLL):
        for u in tc.static_range(UNROLL):
            k = t + u
            words = tc.with_layout(tc.load(W, (pn, k), (BN, WB)), WL)
            if ONE_ROW:  # the one row (broadcast to every column of the B fragment)
                a = tc.with_layout(tc.load(A, (0, k), (1, BK)), AL)
            else:
                a = tc.with_layout(tc.load(A, (pm, k), (BM, BK)), AL)
            s2, z2 = _decode_scales(tc.minimum(k + 1, last), S, Z, pn, BN, BK, G, HAS_ZERO,
                                    SG, SL, SCALE_ACC)
            if UNROLL > 1:
                s = tc.where(k <= last, s, 0.0)
            acc = _decode_step(acc, words, a, s, z, BM, BN, BK, HAS_ZERO, WDT, ONE_ROW, SG,
                               GE, SCALE_ACC, PAIR)
            s = s2
            z = z2
    out = _sum_parts(acc, BM, BN, PARTS)
    if EARLY:
        tc.gdc_wait()
    if SPLIT > 1:
        _add_split(out, C, Ws, Arrived, pm, pn, part, SPLIT, BM // PARTS, BN // PARTS, SLABS,
                   CHUNK)
    else:
        tc.store(C, (pm, pn), out.to(C.dtype))


@tc.kernel
def dequant_kernel(W: tc.Tensor, S: tc.Tensor, Z: tc.Tensor, Out: tc.Tensor,
                   BN: tc.constexpr, BK: tc.constexpr, G: tc.constexpr,
                   HAS_ZERO: tc.constexpr, WDT: tc.constexpr, WB: tc.constexpr,
                   WL: tc.constexpr):
    """Out (K x N, S's dtype) = dequant(W)^T: the same per-weight formula as the GEMM
    templates, for the prefill path that hands the dequantized weights to `tilec.lib.gemm`."""
    pn = tc.program_id(0)
    pk = tc.program_id(1)
    q = tc.view(tc.with_layout(tc.load(W, (pn, pk), (BN, WB)), WL), WDT).to(S.dtype)
    g = (pk * BK) // G
    s = tc.load(S, offsets=(pn * BN, g), shape=(BN, 1))
    if HAS_ZERO:
        w = tc.fma(q, s, -(tc.load(Z, offsets=(pn * BN, g), shape=(BN, 1)) * s))
    else:
        w = q * s
    tc.store(Out, (pk, pn), tc.trans(w))


class QuantConfig(NamedTuple):
    BM: int
    BN: int
    BK: int
    num_warps: int
    num_stages: int
    split_k: int = 1
    unroll: int = 1     # decode template: K steps a loop trip
    parts: int = 1      # decode template: interleaved parts of K (`decode_parts`)


# M bucket -> tile configuration; `pick_config` is the one place the choice is made, so the
# autotuner (`@tc.autotune(configs=[tc.Config(...)], key=["M", "N", "K"])`) can take it over.
_DECODE = QuantConfig(16, 128, 128, 4, 3)      # M <= 64 (quant_gemv_kernel): split from the shape
_MEDIUM = QuantConfig(64, 64, 64, 4, 3)        # M <= 256
_LARGE = QuantConfig(128, 128, 64, 8, 3)
# Decode programs (output tiles x K slices): ~2 per SM on an H100, each streaming a long
# slice (at 8192^2: 4 slices of 16 steps). Each slice pays a pipeline fill and the split-K
# epilogue's round trips; more, shorter slices ran no faster at any width once the weights
# streamed through the pipeline (quant_gemm-notes.md).
_TARGET_PROGRAMS = 256


def _cheap_decode(bits: int) -> bool:
    """Widths whose fields never straddle words (one and/xor a pair after a shift a word):
    at M = 1 the table gives them steps of 256 (fewer trips, barriers and copies a weight;
    the autotuner, which the GPU uses, weighs that against scaling the products)."""
    return bits in (2, 4)


def weight_layout(bn: int, bk: int, num_warps: int, bits: int) -> tuple[str, str]:
    """(layout of the BN x BK*bits/32 word tile, layout of the BN x BK weight tile it views
    as): each thread holds one run of consecutive K elements, 32 of them for the usual tiles
    (16 bytes of 4-bit weights: one ld.global.v4), and its words are exactly that run's bits,
    so the view stays in registers (`layout_defaults.view_layout`)."""
    threads = 32 * num_warps
    whole = 32 // math.gcd(bits, 32)            # fewest elements that fill whole words
    run = min(bk, max(whole, bn * bk // threads))
    lanes_k = bk // run
    rows = max(1, threads // lanes_k)
    if run % whole or bk % run or threads % lanes_k:
        raise LaunchError(f"quant_gemm: a {bn}x{bk} tile of {bits}-bit weights does not "
                          f"split into whole words over {num_warps} warps")
    outer = [f"local({bn // rows},1)"] if bn > rows else []
    if rows > bn:  # a small tile: the extra threads hold copies
        outer, rows = [f"replicate({rows // bn})"], bn
    spread = f"spatial({rows},{lanes_k})"
    return ("*".join(outer + [spread, f"local(1,{run * bits // 32})"]),
            "*".join(outer + [spread, f"local(1,{run})"]))


def decode_bk(bk: int, group_size: int, bits: int) -> int:
    """The decode template's K step for a requested `bk`: at least `bk`, a multiple of 16
    (mma k steps) whose quarter is whole 32-bit words of `bits`-bit weights (each thread
    reads a quarter of a row's step), and a divisor or a multiple of the group size (a step
    sees whole groups, or lies inside one)."""
    whole = 32 // math.gcd(bits, 32)
    unit = math.lcm(16, 4 * whole)
    step = -(-bk // unit) * unit
    while group_size % step and step % group_size:
        step += unit
    return step


def decode_layouts(bn: int, bk: int, num_warps: int, bits: int) -> tuple[str, str]:
    """(words WL, weights EL) of the decode template: warp w holds rows w*BN/W .. of the
    weight tile, lane l row l/4 of each of its BN/(8W) blocks of 8 rows and the run of BK/4
    weights starting at (l % 4)*BK/4. After `mma_k_order` these are the A fragments of
    mma.m16n8k16 as `dot_layouts` places them (warps along M = the weight rows), up to the
    order of each thread's registers."""
    run = bk // 4
    if bk % 16 or bn % (16 * num_warps) or run * bits % 32:
        raise LaunchError(f"quant_gemm: the decode template needs BN a multiple of 16 * "
                          f"num_warps and BK/4 whole words of {bits}-bit weights, got BN = "
                          f"{bn}, BK = {bk}, {num_warps} warps")
    blocks = bn // (8 * num_warps)
    outer = f"spatial({num_warps},1)*" + (f"local({blocks},1)*" if blocks > 1 else "")
    return (f"{outer}spatial(8,4)*local(1,{run * bits // 32})",
            f"{outer}spatial(8,4)*local(1,{run})")


def decode_a_layout(bm: int, bk: int, num_warps: int) -> str:
    """A's layout AL in the decode template, for a tile of `bm` rows (1: the one row of
    M = 1, broadcast later; else 8..64): the same runs as the weights' (lane l: row l/4 + 8j
    of each block of 8 rows), which after `mma_k_order` are the mma's B fragments; every
    warp holds all of them."""
    run = bk // 4
    if bm == 1:
        return f"replicate({8 * num_warps})*spatial(1,4)*local(1,{run})"
    blocks = f"local({bm // 8},1)*" if bm > 8 else ""
    return f"replicate({num_warps})*{blocks}spatial(8,4)*local(1,{run})"


def scale_layout(el: str, bn: int, bk: int, group_size: int) -> str:
    """The layout of a step's BN x SG scales (SG = BK/G, or 1) that `decode_layouts`' weight
    layout `el` broadcasts over each group: every thread holds the scales of its weights."""
    sg = max(1, bk // group_size)
    groups = reshape_layout(parse_layout(el), (bn, sg, bk // sg))
    return str(groups.reduce(2).squeeze(2))


def row_layout(bk: int, num_warps: int) -> str:
    """The layout of one BK-long row of A: 8 halves (16 bytes) a thread, copies elsewhere."""
    lanes = max(1, bk // 8)
    threads = 32 * num_warps
    rep = f"replicate({threads // lanes})*" if threads > lanes else ""
    return f"{rep}spatial(1,{lanes})*local(1,{bk // lanes})"


# The most f32 values of the slabs a thread loads at once in `_add_split`: all 4 slabs of a
# 16-row tile (the fastest hand-off, quant_gemm-notes.md session 14); a 64 x 128 tile
# loads them one at a time (all four: 256 registers, spilled).
SLAB_VALUES = 64


def slab_chunk(split: int, bm: int, bn: int, num_warps: int) -> int:
    """How many of a split's slabs `_add_split` loads at once (a power of two dividing it)."""
    chunk = split
    while chunk > 1 and chunk * bm * bn > SLAB_VALUES * 32 * num_warps:
        chunk //= 2
    return chunk


@functools.cache
def slab_layout(split: int, bm: int, bn: int, num_warps: int) -> str:
    """The layout `_add_split` loads `slab_chunk` of a split's BM x BN f32 slabs in: the
    default layout of one BM x BN tile (16-byte vectors), the slab axis local to each
    thread."""
    if split == 1:
        return ""
    tile = default_layout((bm, bn), 32, 32 * num_warps)
    return str(local(slab_chunk(split, bm, bn, num_warps), 1, 1)
               * reshape_layout(tile, (1, bm, bn)))


def pick_config(m: int, n: int, k: int, group_size: int, bits: int = 4) -> QuantConfig:
    """The tile configuration for an MxK @ (NxK)^T problem of `bits`-bit weights, by M
    bucket and, for decode, by how cheaply the width unpacks. The prefill templates' BK
    divides the group size (one scale per row and step); the decode template's steps may
    span whole groups (`decode_bk`)."""
    cfg = _DECODE if m <= DECODE_MAX_M else _MEDIUM if m <= 256 else _LARGE
    cfg = cfg._replace(BK=min(cfg.BK, group_size))
    if m <= DECODE_MAX_M:
        if m == 1 and _cheap_decode(bits):
            cfg = cfg._replace(BK=2 * cfg.BK)   # `decode_bk` makes it whole groups
        if decode_rows(m) > 16:
            cfg = cfg._replace(BK=min(cfg.BK, _DECODE_WIDE_BK))
        parts = decode_parts(m, n, k, group_size)
        tiles = -(-n * parts // cfg.BN)
        steps = -(-k // parts // cfg.BK)
        split = 1
        while tiles * split * 2 <= _TARGET_PROGRAMS and steps % (split * 2) == 0 and \
                steps // (split * 2) >= 4:
            split *= 2
        cfg = cfg._replace(split_k=split, parts=parts)
    return cfg


_PART_COLUMNS = 8   # the mma's B fragment (BM = 8): rows of A times parts of K


def decode_parts(m: int, n: int, k: int, group_size: int) -> int:
    """Into how many interleaved parts P the decode template cuts K (a power of two): row
    r of the weights becomes rows r*P .. r*P + P-1 of K/P each (the same bytes: an N*P x
    K/P matrix), A's rows likewise, and the mma's B fragment, 8 columns wide where M is 1,
    carries the M*P rows of parts (`_sum_parts` keeps the products of matching parts). A
    split of K whose partial sums meet in registers: enough programs (~2 an SM) without
    split-K's atomics and round trips through L2 (~2 us a launch at 8192^2). Parts are
    whole groups, and M*P rows fit the 8-column fragment."""
    parts = 1
    while (_parts_fit(m, k, group_size, parts * 2)
           and -(-n * parts // _DECODE_ROWS) < _TARGET_PROGRAMS):
        parts *= 2
    return parts


def _parts_fit(m: int, k: int, group_size: int, parts: int) -> bool:
    """Whether M*P rows fit the 8-column fragment and each of K's P parts is whole groups."""
    return (k % group_size == 0 and m * parts <= _PART_COLUMNS
            and (k // group_size) % parts == 0)


# ---------------------------------------------------------------------------------------
# host side

WEIGHT_DTYPES = tuple([dt.int_(b) for b in range(1, 9)] + [dt.uint(b) for b in range(1, 9)]
                      + [dt.float6_e3m2, dt.float6_e2m3, dt.float4_e2m1, dt.float3_e1m1,
                         dt.float8_e4m3, dt.float8_e5m2])
_ACT = {"float16": dt.float16, "bfloat16": dt.bfloat16}


_torch, _is_torch = _host.torch, _host.is_torch


def _info(x: Any, name: str) -> tuple[dt.DType, tuple[int, ...]]:
    if isinstance(x, tc.PackedTensor):
        return x.dtype, x.shape
    if _is_torch(x):
        tname = str(x.dtype).removeprefix("torch.")
        if tname not in _ACT:
            raise LaunchError(f"quant_gemm: argument '{name}' must be float16 or bfloat16, "
                              f"got {x.dtype}")
        return _ACT[tname], tuple(int(s) for s in x.shape)
    if isinstance(x, np.ndarray):
        try:
            return dt.dtype_from_numpy(x.dtype), tuple(x.shape)
        except tc.TilecError:
            raise LaunchError(f"quant_gemm: argument '{name}' has dtype {x.dtype}, which "
                              "tilec does not support") from None
    raise LaunchError(f"quant_gemm: argument '{name}' must be a tensor (a numpy array or a "
                      f"torch tensor), got {type(x).__name__}")


@_host.located
def quant_gemm(a: Any, w_packed: tc.PackedTensor, scales: Any, zeros: Any = None,
               group_size: int = 128, *, out: Any = None,
               config: QuantConfig | None = None) -> Any:
    """``a @ dequant(w_packed).T`` (M x N, a's dtype), written to `out` (allocated when not
    given) and returned. See the module docstring for the formula. numpy arguments run on the
    CPU interpreter, torch CUDA tensors (and PackedTensors holding one) on the GPU."""
    da, sa = _info(a, "a")
    if not isinstance(w_packed, tc.PackedTensor):
        raise LaunchError(f"quant_gemm: argument 'w_packed' must be a tc.PackedTensor, got "
                          f"{type(w_packed).__name__}", hint="make one with tc.pack(q, dtype) "
                          "or tilec.lib.quant_gemm.quantize(w, dtype)")
    dw, sw = w_packed.dtype, w_packed.shape
    if da not in _ACT.values():
        raise LaunchError(f"quant_gemm: argument 'a' must be float16 or bfloat16, got {da}")
    if len(sa) != 2 or len(sw) != 2:
        raise LaunchError(f"quant_gemm: 'a' (MxK) and 'w_packed' (NxK) must be 2-D, got "
                          f"shapes {sa} and {sw}")
    (m, k), (n, k2) = sa, sw
    if k != k2:
        raise LaunchError(f"quant_gemm: 'a' is {m}x{k} but 'w_packed' is {n}x{k2}",
                          hint="w_packed is NxK, one row per output feature (nn.Linear)")
    if dw not in WEIGHT_DTYPES:
        raise LaunchError(f"quant_gemm: unsupported weight dtype {dw}",
                          hint="int1..int8, uint1..uint8, float3/4/6/8 formats")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 16 \
            or group_size % 16 or k % group_size:
        raise LaunchError(f"quant_gemm: group_size must be a multiple of 16 dividing K = {k}, "
                          f"got {group_size!r}")
    if k * dw.bits % 32:
        raise LaunchError(f"quant_gemm: rows of {k} {dw.bits}-bit weights are not whole 32-bit "
                          "words", hint="K * bits must be a multiple of 32")
    ds, ss = _info(scales, "scales")
    groups = (n, k // group_size)
    if ss != groups or ds != da:
        raise LaunchError(f"quant_gemm: 'scales' must be {da} of shape {groups}, got {ds} of "
                          f"shape {ss}")
    if zeros is not None:
        if dw.is_float:
            raise LaunchError(f"quant_gemm: zero points apply to integer weights, not {dw}")
        dz, sz = _info(zeros, "zeros")
        if sz != groups or dz != da:
            raise LaunchError(f"quant_gemm: 'zeros' must be {da} of shape {groups}, got {dz} "
                              f"of shape {sz}")
    on_torch = _is_torch(a)
    if any(_is_torch(x) != on_torch for x in (w_packed, scales) + ((zeros,) if zeros is not
                                                                  None else ())):
        raise LaunchError("quant_gemm: all arguments must live on the same device")

    if out is not None:
        do, so = _info(out, "out")
        if so != (m, n) or do != da or _is_torch(out) != on_torch:
            raise LaunchError(f"quant_gemm: 'out' must be {da} of shape ({m}, {n}) on the "
                              f"device of 'a', got {do} of shape {so}")
    else:
        if on_torch:
            out = _torch().empty((m, n), dtype=a.dtype, device=a.device)
        else:
            out = np.empty((m, n), dtype=a.dtype)
    if m == 0 or n == 0:
        return out
    if config is None and m >= DEQUANT_MIN_M and on_torch:
        return _dequantize_then_gemm(a, w_packed, scales, zeros, group_size, out)
    if config is None and m <= DECODE_MAX_M and _host.on_gpu(a):
        return _decode(a, w_packed, scales, zeros, group_size, out, None, on_torch)
    cfg = config or pick_config(m, n, k, group_size, dw.bits)
    if m <= DECODE_MAX_M and cfg.BM == 16:
        return _decode(a, w_packed, scales, zeros, group_size, out, cfg, on_torch)
    if cfg.BK > group_size or group_size % cfg.BK or cfg.BK * dw.bits % 32:
        raise LaunchError(f"quant_gemm: config BK = {cfg.BK} must divide group_size = "
                          f"{group_size} and hold whole 32-bit words of {dw.bits}-bit weights")
    head = (a, _words(w_packed), scales, zeros if zeros is not None else scales, out)
    call = dict(G=group_size, HAS_ZERO=zeros is not None, WDT=dw, ONE_ROW=m == 1)
    grid = _prefill_grid(m, n)
    if config is None and _host.on_gpu(a):   # DECODE_MAX_M < M < DEQUANT_MIN_M
        tuner = prefill_tuner(dw, group_size, zeros is not None)
        ws = _split_workspace(a, m, n, _PREFILL_MIN_TILE, _PREFILL_MIN_TILE,
                              max(PREFILL_SPACE["SPLIT"]), on_torch)
        chosen = tuner.config(grid, *head, *ws, **call)
    else:
        chosen = prefill_config(cfg, dw.bits)
        ws = _split_workspace(a, m, n, cfg.BM, cfg.BN, cfg.split_k, on_torch)
    quant_gemm_kernel[grid(chosen.kwargs)](*head, *ws, **call, **chosen.all())
    return out


def prefill_config(cfg: QuantConfig, bits: int) -> tc.Config:
    """The prefill template's constexprs and options for tile configuration `cfg` and
    `bits`-bit weights: the layouts that follow from the tile."""
    return _prefill_config(cfg.BM, cfg.BN, cfg.BK, cfg.num_warps, cfg.num_stages,
                           cfg.split_k, bits)


@functools.cache
def _prefill_config(bm: int, bn: int, bk: int, num_warps: int, stages: int, split: int,
                    bits: int) -> tc.Config:
    wl, el = weight_layout(bn, bk, num_warps, bits)
    return tc.Config(num_warps=num_warps, num_stages=stages, BM=bm, BN=bn, BK=bk,
                     SPLIT=split, WB=bk * bits // 32, WL=wl, EL=el,
                     AL=row_layout(bk, num_warps), SLABS=slab_layout(split, bm, bn, num_warps),
                     CHUNK=slab_chunk(split, bm, bn, num_warps))


def _prefill_grid(m: int, n: int):
    return lambda meta: (tc.cdiv(m, meta["BM"]) * tc.cdiv(n, meta["BN"]) * meta["SPLIT"],)


# The prefill autotuner's space (DECODE_MAX_M < M < DEQUANT_MIN_M on the GPU; one tuner per
# weight dtype, group size and zero points, keyed by M, N and K as Triton's matmul tuners
# are: a new M costs a search, 3-9 s on the H100): the tiles the H100 sweeps kept near the
# best at M = 128..512 (quant_gemm-notes.md, session 17), whole warpgroups of 64-row
# blocks of A so that sm_90a runs them on wgmma.
PREFILL_TILES = ((64, 4), (128, 4), (128, 8), (256, 8))   # (BM, warps)
PREFILL_SPACE = {"BN": [64, 128], "BK": [64, 128], "num_stages": [3, 4], "SPLIT": [1, 2, 4]}
PREFILL_BUDGET = 32
_PREFILL_MIN_TILE = 64


def _prune_prefill(configs: list, values: dict) -> list:
    """64..1024 programs (a split only where it makes up for too few tiles, with at least 8
    steps a slice), BM under twice M, at most 128 accumulators a thread."""
    m, n, k = values["A"].shape[0], values["W"].shape[0], values["A"].shape[1]
    keep = []
    for c in configs:
        bm, bn, bk, split = (c.kwargs[x] for x in ("BM", "BN", "BK", "SPLIT"))
        tiles = tc.cdiv(m, bm) * tc.cdiv(n, bn)
        if bm >= 2 * m or bm * bn > 128 * 32 * c.num_warps or tiles * split > 1024 \
                or (split > 1 and (tiles * split > 512 or tc.cdiv(k, bk) < 8 * split)):
            continue
        keep.append(c)
    small = [c for c in configs if c.kwargs["SPLIT"] == 1 and c.kwargs["BM"] < 2 * m]
    return keep or small or configs[:1]


def prefill_tuner(wdtype: Any, group_size: int, zeros: bool):
    """The autotuner of the prefill template for these weights (`tc.autotune` over
    PREFILL_TILES and PREFILL_SPACE, keyed by M, N and K)."""
    return _prefill_tuner(dt.dtype(wdtype), group_size, zeros)


@functools.cache
def _prefill_tuner(d: dt.DType, group_size: int, zeros: bool):
    configs = [_prefill_config(bm, bn, bk, warps, stages, split, d.bits)
               for bm, warps in PREFILL_TILES for bn in PREFILL_SPACE["BN"]
               for bk in PREFILL_SPACE["BK"] if bk <= group_size and group_size % bk == 0
               and bk * d.bits % 32 == 0
               for stages in PREFILL_SPACE["num_stages"] for split in PREFILL_SPACE["SPLIT"]]
    return tc.autotune(configs=configs, key=["A.shape[0]", "W.shape[0]", "A.shape[1]"],
                       prune=_prune_prefill, budget=PREFILL_BUDGET, compare=("C",),
                       check_registers=False)(quant_gemm_kernel)


def _decode(a: Any, w_packed: tc.PackedTensor, scales: Any, zeros: Any, group_size: int,
            out: Any, cfg: QuantConfig | None, on_torch: bool) -> Any:
    """M <= DECODE_MAX_M on the decode template (`quant_gemv_kernel`): with `cfg` its tiles
    (BM = 16 marks the template; its A tile is `decode_rows(M)`), without
    (on the GPU) the autotuner's choice for this width, group size, rows, shape and parts
    of K (`decode_parts`, or twice as many where they still fit one wave: the faster of
    the two tuned searches)."""
    (m, k), n, dw = a.shape, w_packed.shape[0], w_packed.dtype
    has_zero = zeros is not None
    early = on_torch and a.is_cuda and _may_start_early(a, (a, w_packed.data, scales, zeros),
                                                          out)
    parts = decode_parts(m, n, k, group_size) if cfg is None else cfg.parts
    if parts != 1 and (parts < 1 or parts & (parts - 1) or m * parts > _PART_COLUMNS
                       or k % (group_size * parts)):
        raise LaunchError(f"quant_gemm: config parts = {parts} must be a power of two with "
                          f"M * parts <= {_PART_COLUMNS} (M = {m}) and whole groups of "
                          f"{group_size} in each of K's parts (K = {k})")
    contiguous = all(_contiguous(x) for x in (a, scales, zeros) if x is not None)
    if parts > 1 and not contiguous:
        parts = 1   # a reshape would copy
        if cfg is not None:
            cfg = cfg._replace(parts=1)
    if cfg is not None:
        launch = _DecodeLaunch(a, w_packed, scales, zeros, group_size, out, parts, early)
        chosen = decode_config(cfg, dw, group_size, m, has_zero)
        ws, arrived = _split_workspace(a, m, n, launch.bm // parts, cfg.BN // parts,
                                       cfg.split_k, on_torch)
        launch.run(chosen, ws, arrived)
        return out
    key = (dw, group_size, has_zero, n, k, m, getattr(a, "device", None))
    if contiguous and key not in _TUNED_PARTS:
        more = 2 * parts
        choices = [parts] + ([more] if _parts_fit(m, k, group_size, more)
                             and -(-n * more // _DECODE_ROWS) <= _WAVE_PROGRAMS else [])
        times = {}
        for p in choices:
            launch = _DecodeLaunch(a, w_packed, scales, zeros, group_size, out, p, early)
            ws = launch.workspace(on_torch)
            launch.tune(ws)
            times[p] = launch.tuner.best_ms(*launch.args(*ws), **launch.call)
        timed = {p: t for p, t in times.items() if t is not None}
        _TUNED_PARTS[key] = min(timed, key=timed.get) if timed else parts
    launch = _DecodeLaunch(a, w_packed, scales, zeros, group_size, out,
                           _TUNED_PARTS[key] if contiguous else parts, early)
    ws = launch.workspace(on_torch)
    launch.run(launch.tune(ws), *ws)
    return out


# The output of the last decode launch on each (device, stream). A decode launch starts
# early (EARLY: programmatic dependent launch) unless one of its operands overlaps it: only
# a decode launch lets the next one start before it ends, and an early launch reads its
# operands before it waits for the previous one (`quant_gemv_kernel`).
_LAST_OUTPUT: dict[tuple[int, int], tuple[int, int]] = {}


def _span(x: Any) -> tuple[int, int]:
    """The bytes a torch tensor's elements span: [first, last + 1)."""
    start = x.data_ptr()
    if x.numel() == 0:
        return start, start
    last = sum((size - 1) * stride for size, stride in zip(x.shape, x.stride()))
    return start, start + (last + 1) * x.element_size()


def _may_start_early(a: Any, operands: tuple, out: Any) -> bool:
    """Whether this decode launch may start before the previous launch on the current
    stream ends (and record its output for the next): none of `operands` overlaps the last
    decode launch's output there. Sharper than needed where other kernels ran in between
    (those let it start only once they end), never wrong."""
    torch = _torch()
    dev = a.device.index
    key = (dev, torch._C._cuda_getCurrentRawStream(dev))
    last = _LAST_OUTPUT.get(key)
    _LAST_OUTPUT[key] = _span(out)
    if last is None:
        return True
    spans = (_span(x) for x in operands if x is not None)
    return not any(start < last[1] and last[0] < end for start, end in spans)


def decode_tuned_parts(a: Any, w_packed: tc.PackedTensor, zeros: bool,
                       group_size: int = 128) -> int | None:
    """The parts of K the decode autotuner chose for A and these weights (None before a
    call on contiguous operands of their shapes, dtype and device)."""
    (m, k), (n, _) = a.shape, w_packed.shape
    return _TUNED_PARTS.get((w_packed.dtype, group_size, zeros, n, k, m,
                             getattr(a, "device", None)))


# (weights dtype, group size, zero points, N, K, M, device) -> the parts of K the decode
# autotuner's searches chose between `decode_parts` and twice as many.
_TUNED_PARTS: dict[tuple, int] = {}
# Programs of 128 rows (4 warps) a wave on an H100: 132 SMs x 4 (~128 registers a thread).
# More parts than `decode_parts` gives are timed only while their warps fit one wave.
_WAVE_PROGRAMS = 4 * 132


class _DecodeLaunch:
    """One decode launch with K cut in `parts`: the kernel's arguments (K's parts as rows of
    the same bytes), its constexprs, grid and autotuner."""

    def __init__(self, a: Any, w_packed: tc.PackedTensor, scales: Any, zeros: Any,
                 group_size: int, out: Any, parts: int, early: bool = False):
        m, n, dw = a.shape[0], w_packed.shape[0], w_packed.dtype
        self.m, self.n, self.parts = m, n, parts
        self.bm = max(8, decode_rows(m * parts))
        has_zero = zeros is not None
        head = (a, _words(w_packed), scales, zeros if has_zero else scales)
        if parts > 1:  # K's parts as rows: the same bytes as N*P x K/P (A, scales likewise)
            head = tuple(x.reshape(x.shape[0] * parts, x.shape[1] // parts) for x in head)
        self.head = head + (out,)
        self.call = dict(BM=self.bm, G=group_size, HAS_ZERO=has_zero, WDT=dw,
                         ONE_ROW=m * parts == 1, EARLY=early)
        self.tiles = tc.cdiv(m * parts, self.bm)
        self.tuner_of = (dw, group_size, m, has_zero, parts)

    @property
    def tuner(self):
        return decode_tuner(*self.tuner_of)

    def args(self, ws: Any, arrived: Any) -> tuple:
        return self.head + (ws, arrived)

    def workspace(self, on_torch: bool) -> tuple[Any, Any]:
        """Split-K's workspace sized for any candidate: the smallest BN, split or not."""
        p = self.parts
        return _split_workspace(self.head[0], self.m, self.n, self.bm // p,
                                min(bn for bn, _ in _DECODE_TILES) // p,
                                max(DECODE_SPACE["SPLIT"]), on_torch)

    def grid(self, meta: dict) -> tuple[int]:
        return (self.tiles * tc.cdiv(self.n * self.parts, meta["BN"]) * meta["SPLIT"],)

    def tune(self, ws: tuple[Any, Any]) -> tc.Config:
        """The autotuner's configuration (its search on the first call of a key)."""
        return self.tuner.config(self.grid, *self.args(*ws), **self.call)

    def run(self, chosen: tc.Config, ws: Any, arrived: Any) -> None:
        quant_gemv_kernel[self.grid(chosen.kwargs)](*self.args(ws, arrived), **self.call,
                                                    **chosen.all())


def _contiguous(x: Any) -> bool:
    return x.is_contiguous() if _is_torch(x) else x.flags.c_contiguous


# From this many rows of A on (on the GPU), the weights are dequantized once into a K x N
# matrix of A's dtype that `tilec.lib.gemm` (tuned per shape) multiplies: the fused
# template's per-step dequantization and shared-memory round trip cost it 4x cuBLAS at
# M = 4096 (2.56 ms at 8192^2), while dequantizing 64M weights takes ~0.06 ms there and the
# GEMM runs at ~0.5x cuBLAS. Below, the dequantized matrix's write and read cost more than
# the fused template loses.
DEQUANT_MIN_M = 1024
_DEQUANT_TILE = (64, 128, 4)   # BN, BK (at most: BK divides the group size), warps


def _dequantize_then_gemm(a: Any, w_packed: tc.PackedTensor, scales: Any, zeros: Any,
                          group_size: int, out: Any) -> Any:
    from tilec.lib.gemm import gemm
    (n, k), dw = w_packed.shape, w_packed.dtype
    bn, bk, warps = _DEQUANT_TILE
    bk = math.gcd(bk, group_size)
    if bk * dw.bits % 32:
        bk = group_size
    w = _torch().empty((k, n), dtype=a.dtype, device=a.device)
    wl, _ = weight_layout(bn, bk, warps, dw.bits)
    dequant_kernel[(tc.cdiv(n, bn), tc.cdiv(k, bk))](
        _words(w_packed), scales, zeros if zeros is not None else scales, w, BN=bn, BK=bk,
        G=group_size, HAS_ZERO=zeros is not None, WDT=dw, WB=bk * dw.bits // 32, WL=wl,
        num_warps=warps)
    return gemm(a, w, out=out)


# Split-K workspaces on the GPU, per (device, stream): f32 slabs of partial sums (written
# before they are read in every launch) and per-tile counters that every launch leaves
# zeroed (`_add_split`), so they are cleared once, when made; a stream of its own keeps
# concurrent calls apart.
_WORKSPACES: dict[tuple[int, int], tuple[Any, Any]] = {}


def _split_workspace(a: Any, m: int, n: int, bm: int, bn: int, split: int,
                     on_torch: bool) -> tuple[Any, Any]:
    """(f32 workspace of `split` slabs of Mp x N, Mp = M rounded up to whole tiles of `bm`
    rows: split x Mp x N, and int32 counters, one per output tile) for a split-K launch;
    without a split, placeholders the kernel does not touch."""
    shape = (split, tc.cdiv(m, bm) * bm, n) if split > 1 else (1, 1, 1)
    need = math.prod(shape)
    tiles = tc.cdiv(m, bm) * tc.cdiv(n, bn) if split > 1 else 1
    if not on_torch:  # the interpreter: fresh zeros
        return np.zeros(shape, np.float32), np.zeros(tiles, np.int32)
    torch = _torch()
    dev = a.device.index
    key = (dev, torch._C._cuda_getCurrentRawStream(dev))
    ws, arrived = _WORKSPACES.get(key, (None, None))
    if ws is None or ws.numel() < need or arrived.numel() < tiles:
        size, count = need, tiles
        if ws is not None:
            size, count = max(size, ws.numel()), max(count, arrived.numel())
        ws = torch.empty(size, dtype=torch.float32, device=a.device)
        arrived = torch.zeros(count, dtype=torch.int32, device=a.device)
        _WORKSPACES[key] = ws, arrived
    return ws[:need].view(shape), arrived


def decode_config(cfg: QuantConfig, wdtype: Any, group_size: int, m: int,
                  zeros: bool) -> tc.Config:
    """The decode template's tuned constexprs and options for tile configuration `cfg`
    (BN, BK, warps, stages, split, steps a trip; BM follows from M), weights of `wdtype`,
    the group size, A's rows and whether there are zero points: the layouts that follow
    from the tile."""
    d = dt.dtype(wdtype)
    return _decode_config(cfg.BN, cfg.BK, cfg.num_warps, cfg.num_stages, cfg.split_k,
                          d.bits, _paired(d), group_size, decode_rows(m * cfg.parts), zeros,
                          cfg.unroll, cfg.parts)


def _paired(d: dt.DType) -> bool:
    """Whether casts of `d` from words make pairs (e_i, e_i+P) (`paired_fields_to_f16`,
    `paired_floats_to_f16`)."""
    return (d.is_int and d.bits in PAIRED_FIELDS) or has_paired_float(d)


# The decode template runs up to this many rows of A (a tile of 8, 16, 32 or 64 rows, all
# of them: the weights are read once). Above, the prefill template's square tiles reuse
# each dequantized weight across more rows for less shared-memory traffic a product.
DECODE_MAX_M = 64


def decode_rows(m: int) -> int:
    """The rows of the decode template's A tile for M rows (1: the one-row layout)."""
    if m == 1:
        return 1
    return next(r for r in (8, 16, 32, DECODE_MAX_M) if m <= r)


@functools.cache
def _decode_config(bn: int, bk: int, num_warps: int, stages: int, split: int, bits: int,
                   paired: bool, group_size: int, rows: int, zeros: bool,
                   unroll: int = 1, parts: int = 1) -> tc.Config:
    """Cached: working out the layouts takes ~0.4 ms, ten times a decode kernel's run."""
    bk = decode_bk(bk, group_size, bits)
    wl, el = decode_layouts(bn, bk, num_warps, bits)
    sg = max(1, bk // group_size)
    scale_acc = not zeros and sg == 1
    # K in the order of the cast's pairs: the mma (and before it the scales' multiply or
    # the zero points' fma, `elementwise.map_pairs`) takes its f16x2 registers as they come.
    pair = pair_distance(bits) if paired else 1
    return tc.Config(num_warps=num_warps, num_stages=stages, BN=bn, BK=bk, SPLIT=split,
                     WB=bk * bits // 32, WL=wl, EL=el, AL=decode_a_layout(rows, bk, num_warps),
                     SG=sg,
                     GE=min(bk, group_size), SL=scale_layout(el, bn, bk, group_size),
                     SCALE_ACC=scale_acc, PAIR=pair, UNROLL=unroll, PARTS=parts,
                     SLABS=slab_layout(split, max(8, rows) // parts, bn // parts,
                                       num_warps),
                     CHUNK=slab_chunk(split, max(8, rows) // parts, bn // parts, num_warps))


# The decode autotuner's space (per weight dtype, group size, rows of A, zero points and
# parts of K; key: the rows and length of the parts): the tiles that the H100 sweeps kept
# near the best (quant_gemm-notes.md), 32 weight rows a warp in programs of 4 warps (128
# rows) or 2 (64 rows: twice the programs; int2 and int3 a little faster at 8192^2); a
# trip of one or two 128-wide steps, or one 256-wide (two groups at G = 128: no scaling of
# the products, but half the trips); 2 or 3 stages; the splits that leave 512..2048 warps
# (128..512 programs of 4, 1..4 an SM) and at least two steps a slice.
_DECODE_TILES = ((128, 4), (64, 2))   # (BN, warps)
_DECODE_ROWS = 128                    # a program of `decode_parts`' and the wave's count
DECODE_SPACE = {"BK/UNROLL": [(128, 1), (128, 2), (256, 1)], "num_stages": [2, 3],
                "SPLIT": [1, 2, 4, 8, 16]}
# A tiles of 32 and 64 rows hold BM x BK/4 halves of A a thread for the whole step: shorter
# steps (64 at 64 rows: 168 registers; 128 spills there).
_DECODE_WIDE_BK = 64
DECODE_WIDE_STEPS = [(_DECODE_WIDE_BK, 1), (_DECODE_WIDE_BK, 2), (128, 1)]
DECODE_BUDGET = 24   # every candidate the prune keeps at 8192^2


def _prune_decode(configs: list, values: dict) -> list:
    n, k = values["W"].shape[0], values["A"].shape[1]    # with K's parts: rows of parts
    keep = [c for c in configs
            if 512 <= tc.cdiv(n, c.kwargs["BN"]) * c.kwargs["SPLIT"] * c.num_warps <= 2048
            and tc.cdiv(k, c.kwargs["BK"]) >= 2 * c.kwargs["UNROLL"] * c.kwargs["SPLIT"]]
    # Shapes too small for any split: the one-program-a-tile configurations.
    return keep or [c for c in configs if c.kwargs["SPLIT"] == 1]


def decode_tuner(wdtype: Any, group_size: int, m: int, zeros: bool, parts: int = 1):
    """The autotuner of the decode template for these weights, rows of A (M = 1, 2..8,
    9..16, 17..32 or 33..64 share one) and parts of K (`decode_parts`): `tc.autotune` over
    DECODE_SPACE (DECODE_WIDE_STEPS from 32 rows),
    keyed by the rows and the length of the parts."""
    d = dt.dtype(wdtype)
    return _decode_tuner(d, group_size, decode_rows(m * parts), zeros, parts)


@functools.cache
def _decode_tuner(d: dt.DType, group_size: int, rows: int, zeros: bool, parts: int):
    # One a dtype (not a width): an int and a float of one width cast at different costs.
    configs = list(dict.fromkeys(
        _decode_config(bn, bk, warps, stages, split, d.bits, _paired(d), group_size, rows,
                       zeros, unroll, parts)
        for bn, warps in _DECODE_TILES
        for bk, unroll in (DECODE_SPACE["BK/UNROLL"] if rows <= 16 else DECODE_WIDE_STEPS)
        for stages in DECODE_SPACE["num_stages"] for split in DECODE_SPACE["SPLIT"]))
    # The resource model counts whole weight tiles live (~300-550 registers); ptxas gives
    # these kernels 76-168, and its report still drops any that spill. Candidates are timed
    # back to back, as decode layers run (a graph of short launches), and as both kinds of
    # launch the host makes, which share one choice: calls that start early (the split-K
    # epilogue under the next call's stream: fewer slices look cheap) and calls that wait
    # (the epilogue's full cost). Measured at 8192^2, M = 16 (quant_gemm-notes.md, session
    # 18): the first kind alone would pick a tile 16% slower for the second.
    return tc.autotune(configs=configs, key=["W.shape[0]", "A.shape[1]"],
                       prune=_prune_decode, budget=DECODE_BUDGET, compare=(),
                       check_registers=False, back_to_back=True,
                       launch_kinds=[{"EARLY": True}, {"EARLY": False}])(quant_gemv_kernel)


def _words(p: tc.PackedTensor) -> Any:
    """The packed rows as 32-bit words (a view of the same bytes: rows are whole words)."""
    if isinstance(p.data, np.ndarray):
        return p.data.view(np.uint32)
    return p.data.view(_torch().int32)


def quantize(w: np.ndarray, dtype: Any, group_size: int = 128, zero_point: bool | None = None,
             act_dtype: Any = np.float16) -> tuple[tc.PackedTensor, np.ndarray, np.ndarray | None]:
    """Quantize a float NxK matrix per row and group of `group_size` columns into `dtype`:
    (packed weights, scales, zeros or None). Signed ints and floats are symmetric (scale =
    absmax / largest code); unsigned ints use a zero point by default (min..max onto
    0..2**bits-1). Scales (and zeros) are `act_dtype` (numpy float16 or ml_dtypes bfloat16)."""
    d = dt.dtype(dtype) if not isinstance(dtype, dt.DType) else dtype
    w = np.asarray(w, dtype=np.float64)
    n, k = w.shape
    if k % group_size:
        raise LaunchError(f"quantize: K = {k} is not a multiple of group_size = {group_size}")
    g = w.reshape(n, k // group_size, group_size)
    if zero_point is None:
        zero_point = d.is_int and d.kind == "uint"
    zeros = None
    if zero_point:
        if not d.is_int:
            raise LaunchError(f"quantize: zero points apply to integer dtypes, not {d}")
        lo, hi = g.min(axis=2), g.max(axis=2)
        levels = float(d.max) - float(d.min)
        scale = np.maximum(hi - lo, 1e-8) / levels
        scale = scale.astype(act_dtype).astype(np.float64)
        zero = np.clip(np.round(float(d.min) - lo / scale), d.min, d.max)
        q = np.clip(np.round(g / scale[..., None] + zero[..., None]), d.min, d.max)
        zeros = zero.astype(act_dtype)
    else:
        top = float(d.max) if d.is_float else float(max(d.max, -d.min))
        scale = np.maximum(np.abs(g).max(axis=2), 1e-8) / top
        scale = scale.astype(act_dtype).astype(np.float64)
        q = g / scale[..., None]
        q = np.clip(q, -top, top) if d.is_float else np.clip(np.round(q), d.min, d.max)
    return tc.pack(q.reshape(n, k), d), scale.astype(act_dtype), zeros


def dequantize(w_packed: tc.PackedTensor, scales: Any, zeros: Any = None,
               group_size: int = 128) -> np.ndarray:
    """The dequantized NxK weights as float64 (values exactly those the kernel uses, each
    rounded to the scales' dtype)."""
    s = np.asarray(scales)
    q = tc.unpack(w_packed).astype(np.float64)
    sc = np.repeat(s.astype(np.float64), group_size, axis=1)
    zs = np.zeros_like(sc)
    if zeros is not None:  # z * s rounded to the scales' dtype, as the kernel does
        zs = (np.asarray(zeros).astype(np.float64) * s.astype(np.float64)).astype(s.dtype)
        zs = np.repeat(zs.astype(np.float64), group_size, axis=1)
    # q * s - zs is exact in float64 (q has <= 8 significant bits, s and zs 11 or 8), so
    # one rounding to the scales' dtype is the fma's.
    return (q * sc - zs).astype(s.dtype).astype(np.float64)
