"""Flash attention forward: ``softmax(sm_scale * Q K^T + mask) V``, one pass over K and V.

One `@tc.kernel` template (`attention_kernel`) serves every option; the mask kind (causal,
sliding window, neither), variable lengths and the log-sum-exp output are constexpr
switches. Each program owns BM query rows of one (batch, head) and walks the key blocks
that can be visible to them with the online softmax in base 2 (FlashAttention-2):

    s = q @ k^T (f32)          m' = max(m, rowmax(s) * c)       c = sm_scale * log2(e)
    p = exp2(s * c - m')       l  = l * exp2(m - m') + rowsum(p)
    acc = acc * exp2(m - m') + p @ v                              out = acc / l

Both products keep all warps along the query rows (`tc.dot(..., warps_n=1)`), so the row
max and sum stay within a warp, and p goes from the first product's accumulator to the
second's a operand as a renaming of registers (the two mma fragments hold the same
elements per thread). K and V stream through shared memory with cp.async (`num_stages`).
Key blocks are walked in two loops: the fully visible run without any mask, then the partly
visible blocks (before the run: a sliding window's edge; after it: the causal diagonal, the
end of the keys).

Tensors are read through 2-D views (rows are positions, columns head-major features) that
the host builds without copying from any strides describing [B, H, S, D] or [B, S, H, D]
(or [T, H, D] packed sequences for varlen): row = start(b) + h * row_h + s, column =
b * col_b + h * col_h. Rows past a sequence's end may read the neighbouring sequence or
head; their scores are masked and their output rows are not written.

Configurations per shape bucket come from `pick_config` (the autotuner will replace it).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

import tilec as tc
from tilec.errors import LaunchError
from tilec.ir import dtypes as dt
from tilec.lib import _host

__all__ = ["AttentionConfig", "attention", "attention_kernel", "pick_config"]

LOG2E = 1.4426950408889634


@tc.func
def _block(q, K, V, acc, m_i, l_i, n0, k_row, k_col, v_row, v_col, qk_scale,
           rows, seqlen_k, left, right,
           BN: tc.constexpr, D: tc.constexpr, MASK: tc.constexpr, LEFT: tc.constexpr,
           RIGHT: tc.constexpr):
    """One key block of the online softmax: keys n0 .. n0 + BN."""
    k = tc.load(K, offsets=(k_row + n0, k_col), shape=(BN, D))
    s = tc.dot(q, tc.trans(k), warps_n=1)
    if MASK:
        cols = n0 + tc.arange(0, BN)
        visible = tc.expand_dims(cols < seqlen_k, 0)
        if LEFT:
            visible = visible & (tc.expand_dims(cols, 0) >= tc.expand_dims(rows - left, 1))
        if RIGHT:
            visible = visible & (tc.expand_dims(cols, 0) <= tc.expand_dims(rows + right, 1))
        s = tc.where(visible, s, -float("inf"))
    m_new = tc.maximum(m_i, tc.max(s, axis=1) * qk_scale)
    # A row that has seen no key yet keeps m = -inf: subtract 0 instead (exp2(-inf) = 0).
    m_use = tc.where(m_new == -float("inf"), 0.0, m_new)
    p = tc.exp2(tc.fma(s, qk_scale, -tc.expand_dims(m_use, 1)))
    alpha = tc.exp2(m_i - m_use)
    l_i = l_i * alpha + tc.sum(p, axis=1)
    v = tc.load(V, offsets=(v_row + n0, v_col), shape=(BN, D))
    acc = tc.dot(p.to(v.dtype), v, acc * tc.expand_dims(alpha, 1), warps_n=1)
    return acc, m_new, l_i


@tc.kernel(fast_math=True)  # exp2 as one ex2.approx: the scores' rounding dominates
def attention_kernel(Q: tc.Tensor, K: tc.Tensor, V: tc.Tensor, O: tc.Tensor, Lse: tc.Tensor,
                     CuQ: tc.Tensor, CuK: tc.Tensor,
                     seqlen_q: int, seqlen_k: int, group: int,
                     q_rb: int, q_rh: int, q_cb: int, q_ch: int,
                     k_rb: int, k_rh: int, k_cb: int, k_ch: int,
                     v_rb: int, v_rh: int, v_cb: int, v_ch: int,
                     o_rb: int, o_rh: int, o_cb: int, o_ch: int,
                     lse_rb: int, qk_scale: float, left: int, right: int,
                     BM: tc.constexpr, BN: tc.constexpr, D: tc.constexpr,
                     LEFT: tc.constexpr, RIGHT: tc.constexpr, VARLEN: tc.constexpr,
                     RETURN_LSE: tc.constexpr):
    h = tc.program_id(1)   # grid (query blocks, heads, batch): y and z allow 65535 each
    b = tc.program_id(2)
    hk = h // group
    # Heaviest query blocks first (causal): they start while the light ones fill the tail.
    mb = tc.num_programs(0) - 1 - tc.program_id(0)
    m0 = mb * BM
    q_start = b * q_rb
    k_start = b * k_rb
    v_start = b * v_rb
    o_start = b * o_rb
    lq = seqlen_q
    lk = seqlen_k
    if VARLEN:
        q_start = tc.load(CuQ.ptr + b)
        k_start = tc.load(CuK.ptr + b)
        v_start = k_start
        o_start = q_start
        lq = tc.load(CuQ.ptr + b + 1) - q_start
        lk = tc.load(CuK.ptr + b + 1) - k_start
    if m0 < lq:
        # Query row i sits at key position i + lk - lq (bottom-right aligned, as FA2).
        shift = lk - lq
        q_lo = m0 + shift
        q_hi = tc.minimum(m0 + BM, lq) - 1 + shift
        k_lo = 0
        k_hi = lk
        full_lo = 0
        full_hi = lk
        if LEFT:
            k_lo = tc.maximum(q_lo - left, 0)
            full_lo = tc.maximum(q_hi - left, k_lo)
        if RIGHT:
            k_hi = tc.maximum(tc.minimum(q_hi + right + 1, lk), 0)
            full_hi = tc.minimum(q_lo + right + 1, k_hi)
        b_lo = k_lo // BN
        b_hi = tc.cdiv(k_hi, BN)
        f_lo = tc.minimum(tc.maximum(tc.cdiv(full_lo, BN), b_lo), b_hi)
        f_hi = tc.maximum(tc.minimum(full_hi // BN, b_hi), f_lo)

        q = tc.load(Q, offsets=(q_start + h * q_rh + m0, b * q_cb + h * q_ch), shape=(BM, D))
        rows = m0 + tc.arange(0, BM) + shift
        acc = tc.zeros((BM, D), tc.float32)
        m_i = tc.full((BM,), -float("inf"), tc.float32)
        l_i = tc.zeros((BM,), tc.float32)
        k_row = k_start + hk * k_rh
        k_col = b * k_cb + hk * k_ch
        v_row = v_start + hk * v_rh
        v_col = b * v_cb + hk * v_ch
        for j in range(f_lo, f_hi):
            acc, m_i, l_i = _block(q, K, V, acc, m_i, l_i, j * BN, k_row, k_col,
                                   v_row, v_col, qk_scale, rows, lk, left, right,
                                   BN, D, False, LEFT, RIGHT)
        # The partly visible blocks, [b_lo, f_lo) then [f_hi, b_hi), in one loop: one
        # set of pipeline buffers for both.
        before = f_lo - b_lo
        for j in range(0, before + b_hi - f_hi):
            n0 = tc.where(j < before, b_lo + j, f_hi + j - before) * BN
            acc, m_i, l_i = _block(q, K, V, acc, m_i, l_i, n0, k_row, k_col,
                                   v_row, v_col, qk_scale, rows, lk, left, right,
                                   BN, D, True, LEFT, RIGHT)
        # A row that sees no key (a window or causal mask past the keys) writes zeros.
        l_safe = tc.where(l_i == 0.0, 1.0, l_i)
        out = acc / tc.expand_dims(l_safe, 1)
        r = m0 + tc.arange(0, BM)
        d = tc.arange(0, D)
        o_rows = o_start + h * o_rh + r
        # 64-bit row offsets: B * S * H * D passes 2^31 in large batches.
        ptrs = O.ptr + tc.expand_dims(o_rows.to(tc.int64) * O.stride(0), 1) + tc.expand_dims(
            b * o_cb + h * o_ch + d, 0)
        tc.store(ptrs, out.to(O.dtype), mask=tc.expand_dims(r < lq, 1))
        if RETURN_LSE:
            # natural-log LSE of the scaled scores: (m + log2(l)) / log2(e)
            lse = (m_i + tc.log2(l_safe)) * 0.6931471805599453
            lse = tc.where(l_i == 0.0, -float("inf"), lse)
            lse_col = r
            if VARLEN:
                lse_col = q_start + r
            lse_ptrs = Lse.ptr + (b * lse_rb + h) * Lse.stride(0) + lse_col
            tc.store(lse_ptrs, lse, mask=r < lq)


class AttentionConfig(NamedTuple):
    BM: int
    BN: int
    num_warps: int
    num_stages: int


def pick_config(head_dim: int, seqlen_q: int, seqlen_k: int,
                wgmma: bool = False) -> AttentionConfig:
    """The tile configuration by shape bucket (the autotuner will replace this table).

    mma.sync (sm_80, sm_89, the interpreter): FA2's shape, 16 query rows a warp (128 over 8
    warps, or 64 over 4 for short queries, where 128-row blocks would leave SMs idle) and
    64 keys a block, 3 stages of K and V (96 KiB for D = 128, plus 32 KiB to stage q once:
    under sm_80's 163 KiB). D = 256 takes 64 x 16 blocks over 4 warps, and still spills
    (its accumulator alone is 128 registers a thread).

    wgmma (sm_90a), from a sweep on the H100 (benchmarks/attention-notes.md, session 6):
    D = 128 takes 128 x 128 blocks over two warpgroups and 2 stages once there are 2048
    queries, D = 64 takes 64 x 128 over one; short queries 64 x 64 over one warpgroup."""
    if head_dim > 128:
        return AttentionConfig(64, 16, 4, 2)
    if wgmma:
        if seqlen_q < 2048:
            return AttentionConfig(64, 64, 4, 2)
        return AttentionConfig(128, 128, 8, 2) if head_dim == 128 else AttentionConfig(
            64, 128, 4, 2)
    if seqlen_q <= 64:
        return AttentionConfig(64, 64, 4, 3)
    return AttentionConfig(128, 64, 8, 3)


HEAD_DIMS = (64, 128, 256)
_DTYPES = (dt.float16, dt.bfloat16)


def _window(window: Any, causal: bool) -> tuple[int, int]:
    """(left, right) key distances a query sees; -1 is unbounded."""
    if window is None:
        left, right = -1, -1
    elif isinstance(window, (int, np.integer)) and not isinstance(window, bool):
        left = right = int(window)
    elif (isinstance(window, (tuple, list)) and len(window) == 2
          and all(isinstance(w, (int, np.integer)) and not isinstance(w, bool) for w in window)):
        left, right = int(window[0]), int(window[1])
    else:
        raise LaunchError(f"attention: 'window' must be None, an int or a (left, right) pair "
                          f"of ints, got {window!r}")
    if left < -1 or right < -1:
        raise LaunchError(f"attention: window sizes must be >= 0 (or -1: unbounded), got "
                          f"{window!r}")
    if causal:
        right = 0 if right == -1 else min(right, 0)
    return left, right


# cu_seqlens already checked, by (identity, version) of the torch tensors (see
# paged_attention's _CHECKED): repeated calls skip the device-to-host copy.
_CHECKED: dict[tuple, tuple[int, int]] = {}


def _checked_cu_seqlens(cu_q: Any, cu_k: Any, tq: int, tk: int) -> tuple[int, int]:
    """(longest query length, longest key length) of valid cumulative-length arrays."""
    key = (_host.version_key(cu_q), _host.version_key(cu_k), tq, tk)
    if None not in key[:2] and key in _CHECKED:
        return _CHECKED[key]
    hq, hk = _host.host_ints(cu_q), _host.host_ints(cu_k)
    for name, c, total in (("cu_seqlens_q", hq, tq), ("cu_seqlens_k", hk, tk)):
        if c[0] != 0 or np.any(np.diff(c) < 0) or c[-1] > total:
            raise LaunchError(f"attention: '{name}' must start at 0, never decrease and end "
                              f"at most at the {total} tokens given, got {list(c)}")
    found = (int(np.max(np.diff(hq))), int(np.max(np.diff(hk))))
    if None not in key[:2]:
        if len(_CHECKED) > 256:
            _CHECKED.clear()
        _CHECKED[key] = found
    return found


@_host.located
def attention(q: Any, k: Any, v: Any, causal: bool = False, sm_scale: float | None = None,
              window: Any = None, return_lse: bool = False, out: Any = None, *,
              cu_seqlens_q: Any = None, cu_seqlens_k: Any = None,
              max_seqlen_q: int | None = None, config: AttentionConfig | None = None) -> Any:
    """Attention forward, ``softmax(sm_scale * q k^T + mask) v``; returns `out` (and the
    natural-log log-sum-exp of each query row's scaled scores, f32, with `return_lse`).

    q: [B, H, Sq, D]; k, v: [B, Hk, Sk, D] with Hk dividing H (GQA/MQA), f16 or bf16, D in
    64, 128, 256, any strides (a [B, S, H, D] tensor's `.transpose(1, 2)` works without a
    copy). numpy arrays run on the CPU interpreter, torch CUDA tensors on the GPU.
    causal: query i sees keys j <= i + Sk - Sq (aligned bottom-right, as FlashAttention-2).
    window: (left, right) or w for (w, w): query i sees keys i' - left <= j <= i' + right,
    i' = i + Sk - Sq, -1 meaning unbounded (with causal, right is 0).
    Varlen: q [Tq, H, D], k/v [Tk, Hk, D] holding B sequences back to back, with
    `cu_seqlens_q`/`cu_seqlens_k` int32 [B + 1] cumulative lengths (FlashAttention's varlen
    API); `max_seqlen_q` sizes the grid (computed from cu_seqlens_q when not given).
    Rows that see no key get zeros (and LSE -inf). LSE: [B, H, Sq], or [H, Tq] for varlen."""
    varlen = cu_seqlens_q is not None or cu_seqlens_k is not None
    rank = 3 if varlen else 4
    dq, sq_ = _host.info(q, "q", "attention")
    dk, sk_ = _host.info(k, "k", "attention")
    dv, sv_ = _host.info(v, "v", "attention")
    for name, s in (("q", sq_), ("k", sk_), ("v", sv_)):
        if len(s) != rank:
            want = "[T, H, D] (varlen)" if varlen else "[B, H, S, D]"
            raise LaunchError(f"attention: '{name}' must be {rank}-D {want}, got shape {s}")
    if dq not in _DTYPES:
        raise LaunchError(f"attention: 'q' has dtype {dq}; supported: f16, bf16")
    if dk != dq or dv != dq:
        raise LaunchError(f"attention: q, k and v must have one dtype, got {dq}, {dk}, {dv}",
                          hint="cast them to one of f16 / bf16 first")
    _host.same_device("attention", q, ("k", k), ("v", v))
    if varlen:
        (tq, nh, hd), (tk, nhk, hdk), (tv, nhv, hdv) = sq_, sk_, sv_
        batch = None
    else:
        (batch, nh, lq, hd), (bk, nhk, lk, hdk), (bv, nhv, lv, hdv) = sq_, sk_, sv_
        if bk != batch or bv != batch:
            raise LaunchError(f"attention: batch sizes differ: q {batch}, k {bk}, v {bv}")
        if lv != lk:
            raise LaunchError(f"attention: k and v must have one sequence length, got {lk} "
                              f"and {lv}")
    if varlen and tv != tk:
        raise LaunchError(f"attention: k and v must have one number of tokens, got {tk} "
                          f"and {tv}")
    if hdk != hd or hdv != hd:
        raise LaunchError(f"attention: q, k and v must have one head dim, got {hd}, {hdk}, "
                          f"{hdv}")
    if hd not in HEAD_DIMS:
        raise LaunchError(f"attention: head dim {hd} is not supported",
                          hint="supported head dims: 64, 128, 256")
    if nhv != nhk:
        raise LaunchError(f"attention: k and v must have one number of heads, got {nhk} and "
                          f"{nhv}")
    if nhk == 0 or nh % nhk:
        raise LaunchError(f"attention: the {nhk} key/value heads must divide the {nh} query "
                          "heads (GQA/MQA)")
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(hd)
    sm_scale = _host.number(sm_scale, "sm_scale", "attention")
    if not sm_scale > 0:
        raise LaunchError(f"attention: 'sm_scale' must be positive, got {sm_scale}")
    left, right = _window(window, bool(causal))

    if varlen:
        if cu_seqlens_q is None or cu_seqlens_k is None:
            raise LaunchError("attention: varlen needs both 'cu_seqlens_q' and 'cu_seqlens_k'")
        cq = _host.int_vector(cu_seqlens_q, "cu_seqlens_q", "attention", q)
        ck = _host.int_vector(cu_seqlens_k, "cu_seqlens_k", "attention", q)
        if len(cq) != len(ck) or len(cq) < 2:
            raise LaunchError(f"attention: cu_seqlens_q and cu_seqlens_k must both have B + 1 "
                              f">= 2 entries, got {len(cq)} and {len(ck)}")
        batch = len(cq) - 1
        lq_max, lk = _checked_cu_seqlens(cu_seqlens_q, cu_seqlens_k, tq, tk)
        if max_seqlen_q is not None:
            if int(max_seqlen_q) < lq_max:
                raise LaunchError(f"attention: max_seqlen_q = {max_seqlen_q} but a sequence "
                                  f"has {lq_max} query tokens")
            lq_max = int(max_seqlen_q)
        lq = lq_max
        out_shape = (tq, nh, hd)
        lse_shape = (nh, tq)
    else:
        out_shape = (batch, nh, lq, hd)
        lse_shape = (batch, nh, lq)

    if out is not None:
        do, so = _host.info(out, "out", "attention")
        if tuple(so) != out_shape:
            raise LaunchError(f"attention: 'out' must have shape {out_shape}, got {tuple(so)}")
        if do != dq:
            raise LaunchError(f"attention: 'out' must have q's dtype {dq}, got {do}")
        _host.same_device("attention", q, ("out", out))
    else:
        out = _host.empty(q, out_shape, dq)
    lse = _host.empty(q, lse_shape, dt.float32) if return_lse else None
    if batch == 0 or nh == 0 or lq == 0:
        return (out, lse) if return_lse else out

    # The 2-D views: (view, row_b, row_h, col_b, col_h) per tensor.
    qv = _host.rows_view(q, varlen, "attention")
    kv = _host.rows_view(k, varlen, "attention")
    vv = _host.rows_view(v, varlen, "attention")
    ov = _host.rows_view(out, varlen, "attention")
    if batch > 65535 or nh > 65535:
        raise LaunchError(f"attention: at most 65535 sequences and 65535 heads, got {batch} "
                          f"and {nh}")
    cfg = config or pick_config(hd, lq, lk, _host.on_wgmma_gpu(q))
    dummy = _host.dummy_ints(q)
    lse2 = (_host.reshape(lse, (batch * nh if not varlen else nh, -1))
            if return_lse else _host.dummy_f32(q))
    cu_q = _host.as_int32(cu_seqlens_q, q) if varlen else dummy
    cu_k = _host.as_int32(cu_seqlens_k, q) if varlen else dummy
    grid = (tc.cdiv(lq, cfg.BM), nh, batch)  # x fastest: a head's blocks share K/V in L2
    attention_kernel[grid](
        qv.view, kv.view, vv.view, ov.view, lse2, cu_q, cu_k,
        lq, lk, nh // nhk,
        qv.rb, qv.rh, qv.cb, qv.ch, kv.rb, kv.rh, kv.cb, kv.ch,
        vv.rb, vv.rh, vv.cb, vv.ch, ov.rb, ov.rh, ov.cb, ov.ch,
        0 if varlen else nh, float(sm_scale * LOG2E), left, right,
        BM=cfg.BM, BN=cfg.BN, D=hd, LEFT=left >= 0, RIGHT=right >= 0, VARLEN=varlen,
        RETURN_LSE=bool(return_lse), num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    if ov.copied:
        _host.copy_into(out, ov.source)
    return (out, lse) if return_lse else out
