"""float64 numpy references for tilec.lib.attention and tilec.lib.paged_attention (shared by
the CPU tests; the GPU tests have their own torch ones)."""
from __future__ import annotations

import numpy as np


def visible(sq: int, sk: int, causal: bool, left: int = -1, right: int = -1) -> np.ndarray:
    """[sq, sk] mask: query i (at key position i + sk - sq) sees key j."""
    i = np.arange(sq)[:, None] + sk - sq
    j = np.arange(sk)[None, :]
    if causal:
        right = 0 if right < 0 else min(right, 0)
    ok = np.ones((sq, sk), bool)
    if left >= 0:
        ok &= j >= i - left
    if right >= 0:
        ok &= j <= i + right
    return ok


def attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray,
           scale: float) -> tuple[np.ndarray, np.ndarray]:
    """One head: (out [sq, d], natural-log LSE [sq]); rows that see nothing give 0, -inf."""
    s = (q.astype(np.float64) @ k.astype(np.float64).T) * scale
    s = np.where(mask, s, -np.inf)
    m = s.max(axis=1, keepdims=True)
    m = np.where(np.isinf(m), 0.0, m)
    p = np.exp(s - m)
    l = p.sum(axis=1, keepdims=True)
    out = (p @ v.astype(np.float64)) / np.where(l == 0, 1.0, l)
    with np.errstate(divide="ignore"):
        lse = np.where(l[:, 0] == 0, -np.inf, m[:, 0] + np.log(l[:, 0]))
    return out, lse


def dense(q, k, v, causal=False, scale=None, left=-1, right=-1):
    """[B, H, Sq, D] q and [B, Hk, Sk, D] k, v: (out, lse [B, H, Sq])."""
    b, h, sq, d = q.shape
    hk, sk = k.shape[1], k.shape[2]
    scale = scale if scale is not None else 1 / np.sqrt(d)
    mask = visible(sq, sk, causal, left, right)
    out = np.zeros(q.shape)
    lse = np.zeros((b, h, sq))
    for bi in range(b):
        for hi in range(h):
            kv = hi // (h // hk)
            out[bi, hi], lse[bi, hi] = attend(q[bi, hi], k[bi, kv], v[bi, kv], mask, scale)
    return out, lse


def varlen(q, k, v, cu_q, cu_k, causal=False, scale=None, left=-1, right=-1):
    """[Tq, H, D] q, [Tk, Hk, D] k, v: (out [Tq, H, D], lse [H, Tq])."""
    tq, h, d = q.shape
    hk = k.shape[1]
    scale = scale if scale is not None else 1 / np.sqrt(d)
    out = np.zeros(q.shape)
    lse = np.zeros((h, tq))
    for bi in range(len(cu_q) - 1):
        qs, qe, ks, ke = cu_q[bi], cu_q[bi + 1], cu_k[bi], cu_k[bi + 1]
        mask = visible(qe - qs, ke - ks, causal, left, right)
        for hi in range(h):
            kv = hi // (h // hk)
            o, l_ = attend(q[qs:qe, hi], k[ks:ke, kv], v[ks:ke, kv], mask, scale)
            out[qs:qe, hi], lse[hi, qs:qe] = o, l_
    return out, lse


def paged(q, k_cache, v_cache, block_table, seq_lens, scale=None, k_scale=1.0, v_scale=1.0):
    """[B, T, H, D] q over [NB, P, Hk, D] caches: out [B, T, H, D] (token t of T sees the
    keys up to position seq_len - T + t)."""
    b, t, h, d = q.shape
    page, hk = k_cache.shape[1], k_cache.shape[2]
    scale = scale if scale is not None else 1 / np.sqrt(d)
    out = np.zeros(q.shape)
    for bi in range(b):
        n = int(seq_lens[bi])
        pos = np.arange(n)
        rows = block_table[bi, pos // page], pos % page
        k = k_cache[rows].astype(np.float64) * k_scale
        v = v_cache[rows].astype(np.float64) * v_scale
        mask = visible(t, n, True)
        for hi in range(h):
            kv = hi // (h // hk)
            out[bi, :, hi], _ = attend(q[bi, :, hi], k[:, kv], v[:, kv], mask, scale)
    return out
