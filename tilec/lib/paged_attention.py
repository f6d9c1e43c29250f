"""Decode attention over a paged KV cache (vLLM-style block tables), with split-KV.

Each program owns one (sequence, KV head) and, with split-KV (flash-decoding), one slice of
the context: its query tile holds the G = H / Hk query heads of that KV head for each of
the T query tokens (rows t * G + g, padded to the matrix instruction's 16), so K and V are
read once for the whole group. Keys are gathered page by page through the block table
(`tok // block_size` picks the page, `tok % block_size` the row in it), BN keys a step, with
the online softmax of `tilec.lib.attention` in base 2. fp8 caches are cast to the query's
dtype after the load, their scales folded into the score scale (k) and the output (v).

With S > 1 splits, each program writes its normalised partial output (f32) and the base-2
log-sum-exp of its slice, and `merge_kernel` combines the S partials of each output row:
out = sum_s 2^(lse_s - max) o_s / sum_s 2^(lse_s - max); one split needs no merge step.

On the GPU the autotuner chooses BN, S and the pipeline's stages per shape bucket
(`tuned_paged_kernel`: batch and longest sequence rounded up to powers of two, heads, query
tokens, head dim, page size, dtypes), once per device; the host reads its choice to size
the partials and launch the merge. `pick_config` (a table: enough programs to fill the
device once, slices of at least four key blocks) serves the interpreter and is what the
benchmark compares against.
"""
from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

import tilec as tc
from tilec.errors import LaunchError
from tilec.ir import dtypes as dt
from tilec.lib import _host

__all__ = ["PagedConfig", "merge_kernel", "paged_attention", "paged_kernel", "pick_config"]

LOG2E = 1.4426950408889634


@tc.kernel(fast_math=True)
def paged_kernel(Q: tc.Tensor, Kc: tc.Tensor, Vc: tc.Tensor, BT: tc.Tensor, SL: tc.Tensor,
                 O: tc.Tensor, PartO: tc.Tensor, PartL: tc.Tensor,
                 num_kv_heads: int, group: int, tokens: int, max_len: int,
                 batch_bucket: int, len_bucket: int, qk_scale: float, v_scale: float,
                 MP: tc.constexpr, BN: tc.constexpr, D: tc.constexpr, PAGE: tc.constexpr,
                 SPLITS: tc.constexpr):
    # (batch_bucket, len_bucket: the autotuner's key, the batch and the longest sequence
    # rounded up to powers of two)
    bh = tc.program_id(0)
    b = bh // num_kv_heads
    hk = bh % num_kv_heads
    split = tc.program_id(1)
    seqlen = tc.load(SL.ptr + b)
    chunk = tc.cdiv(tc.cdiv(max_len, SPLITS), BN) * BN   # whole key blocks a split
    start = split * chunk
    end = tc.minimum(start + chunk, seqlen)

    r = tc.arange(0, MP)
    t = r // group
    g = r % group
    d = tc.arange(0, D)
    row_ok = r < group * tokens
    q_rows = b * Q.stride(0) + t * Q.stride(1) + (hk * group + g) * Q.stride(2)
    q = tc.load(Q.ptr + tc.expand_dims(q_rows, 1) + tc.expand_dims(d, 0),
                mask=tc.expand_dims(row_ok, 1), other=0.0)
    # Query token t sits at position seqlen - tokens + t and sees the keys up to it.
    last = seqlen - tokens + t
    acc = tc.zeros((MP, D), tc.float32)
    m_i = tc.full((MP,), -float("inf"), tc.float32)
    l_i = tc.zeros((MP,), tc.float32)
    for n0 in range(start, end, BN):
        tok = n0 + tc.arange(0, BN)
        live = tok < end
        # The gathers of K and V (and the page ids they go through) are the pipeline's:
        # cp.async copies into shared memory, num_stages - 1 blocks ahead.
        page = tc.load(BT.ptr + b * BT.stride(0) + tok // PAGE, mask=live, other=0)
        rows = page.to(tc.int64)
        k_rows = rows * Kc.stride(0) + (tok % PAGE) * Kc.stride(1) + hk * Kc.stride(2)
        k = tc.load(Kc.ptr + tc.expand_dims(k_rows, 1) + tc.expand_dims(d, 0),
                    mask=tc.expand_dims(live, 1), other=0.0)
        v_rows = rows * Vc.stride(0) + (tok % PAGE) * Vc.stride(1) + hk * Vc.stride(2)
        v = tc.load(Vc.ptr + tc.expand_dims(v_rows, 1) + tc.expand_dims(d, 0),
                    mask=tc.expand_dims(live, 1), other=0.0)
        s = tc.dot(q, tc.trans(k.to(Q.dtype)))
        visible = tc.expand_dims(live, 0) & (tc.expand_dims(tok, 0) <= tc.expand_dims(last, 1))
        s = tc.where(visible, s, -float("inf"))
        m_new = tc.maximum(m_i, tc.max(s, axis=1) * qk_scale)
        m_use = tc.where(m_new == -float("inf"), 0.0, m_new)
        p = tc.exp2(tc.fma(s, qk_scale, -tc.expand_dims(m_use, 1)))
        alpha = tc.exp2(m_i - m_use)
        l_i = l_i * alpha + tc.sum(p, axis=1)
        acc = tc.dot(p.to(Q.dtype), v.to(Q.dtype), acc * tc.expand_dims(alpha, 1))
        m_i = m_new
    l_safe = tc.where(l_i == 0.0, 1.0, l_i)
    out = acc * tc.expand_dims(v_scale / l_safe, 1)
    if SPLITS > 1:
        prow = bh * SPLITS + split
        po = PartO.ptr + (prow * MP + tc.expand_dims(r, 1)) * D + tc.expand_dims(d, 0)
        tc.store(po, out)
        lse = tc.where(l_i == 0.0, -float("inf"), m_i + tc.log2(l_safe))
        tc.store(PartL.ptr + prow * MP + r, lse)
    else:
        o_rows = b * O.stride(0) + t * O.stride(1) + (hk * group + g) * O.stride(2)
        tc.store(O.ptr + tc.expand_dims(o_rows, 1) + tc.expand_dims(d, 0), out.to(O.dtype),
                 mask=tc.expand_dims(row_ok, 1))


@tc.kernel
def merge_kernel(PartO: tc.Tensor, PartL: tc.Tensor, O: tc.Tensor, num_kv_heads: int,
                 group: int, splits: int, MP: tc.constexpr, SP: tc.constexpr, D: tc.constexpr):
    """Row r of (sequence, KV head) bh: the log-sum-exp weighted sum of its split partials."""
    bh = tc.program_id(0)
    r = tc.program_id(1)
    b = bh // num_kv_heads
    hk = bh % num_kv_heads
    s = tc.arange(0, SP)
    d = tc.arange(0, D)
    ok = s < splits
    prow = bh * splits + s
    lse = tc.load(PartL.ptr + prow * MP + r, mask=ok, other=-float("inf"))
    top = tc.max(lse, axis=0)
    top = tc.where(top == -float("inf"), 0.0, top)
    w = tc.exp2(lse - top)
    part = tc.load(PartO.ptr + tc.expand_dims((prow * MP + r) * D, 1) + tc.expand_dims(d, 0),
                   mask=tc.expand_dims(ok, 1), other=0.0)
    total = tc.sum(w, axis=0)
    out = tc.sum(part * tc.expand_dims(w, 1), axis=0) / tc.where(total == 0.0, 1.0, total)
    t = r // group
    g = r % group
    o_row = b * O.stride(0) + t * O.stride(1) + (hk * group + g) * O.stride(2)
    tc.store(O.ptr + o_row + d, out.to(O.dtype))


class PagedConfig(NamedTuple):
    BN: int
    splits: int
    num_warps: int
    num_stages: int = 3


def pick_config(batch: int, kv_heads: int, max_seqlen: int, num_sms: int = 132) -> PagedConfig:
    """Keys a step and the number of context splits by shape bucket, where the autotuner
    does not choose (the interpreter): split until the programs fill the device once (two a
    SM: each holds 3 stages of 64 keys' K and V, 96 KiB of shared memory), keeping at least
    4 key blocks (256 keys) per split."""
    bn = 64
    programs = max(1, batch * kv_heads)
    want = max(1, (2 * num_sms) // programs)
    most = max(1, max_seqlen // (4 * bn))
    return PagedConfig(bn, min(want, most, 64), 4)


# The autotuner's space (on the GPU, per key: batch and longest sequence in power-of-two
# buckets, heads, query tokens, head dim, page size, dtypes). Splits are kept to those that
# leave every split two key blocks of the bucket's shortest sequence and at most
# _MOST_PROGRAMS programs (the partial outputs are sized for the largest kept).
TUNING_SPACE = {"BN": [32, 64, 128], "SPLITS": [1, 2, 4, 8, 16, 32, 64], "num_warps": [4],
                "num_stages": [2, 3]}
TUNING_BUDGET = 16
_MOST_PROGRAMS = 1024


def _splits_ok(splits: int, bn: int, programs: int, len_bucket: int) -> bool:
    return splits == 1 or (splits * programs <= _MOST_PROGRAMS
                           and splits * 2 * bn <= max(1, len_bucket // 2))


def _prune(configs: list, values: dict) -> list:
    # By the key's batch bucket, not the batch: every batch of the bucket takes the choice,
    # and the host sizes the partials by the same rule.
    programs = values["batch_bucket"] * values["num_kv_heads"]
    return [c for c in configs
            if _splits_ok(c.kwargs["SPLITS"], c.kwargs["BN"], programs, values["len_bucket"])]


@functools.lru_cache(maxsize=None)
def _most_splits(programs: int, len_bucket: int) -> int:
    """The most splits `_prune` may keep for `programs` (by the batch bucket)."""
    return max(sp for sp in TUNING_SPACE["SPLITS"]
               if _splits_ok(sp, min(TUNING_SPACE["BN"]), programs, len_bucket))


def _bucket(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


tuned_paged_kernel = tc.autotune(
    space=TUNING_SPACE, budget=TUNING_BUDGET, prune=_prune, compare=(),
    key=["batch_bucket", "len_bucket", "Q.shape[1]", "Q.shape[2]", "Q.shape[3]",
         "Kc.shape[1]", "Kc.shape[2]"])(paged_kernel)


_DTYPES = (dt.float16, dt.bfloat16)
_CACHE_DTYPES = (dt.float16, dt.bfloat16, dt.float8_e4m3)


def _num_sms(x: Any) -> int:
    if _host.is_torch(x) and x.device.type == "cuda":
        return int(_host.torch().cuda.get_device_properties(x.device).multi_processor_count)
    return 132


# Tables and lengths already checked, by (identity, version) of the torch tensors: a decode
# loop that calls again with unchanged tensors skips the device-to-host copy and the check.
_CHECKED: dict[tuple, int] = {}


def _partials(q: Any, rows: int, hd: int) -> tuple[Any, Any]:
    """Split-KV partial outputs (f32, rows x hd) and their log-sum-exps."""
    return _host.empty(q, (rows, hd), dt.float32), _host.empty(q, (rows,), dt.float32)


def _checked_lengths(fn: str, block_table: Any, seq_lens: Any, bt_shape: tuple[int, int],
                     page: int, num_blocks: int, tokens: int) -> int:
    """Check that every sequence length is in 1 .. the table's cover (and at least the
    query tokens) and that the table entries a sequence uses point into the cache; the
    longest length. Reads both to the host (a device sync) unless the same unchanged
    tensors passed before."""
    key = (_host.version_key(block_table), _host.version_key(seq_lens), page, num_blocks,
           tokens)
    if None not in key[:2] and key in _CHECKED:
        return _CHECKED[key]
    lens = _host.host_ints(seq_lens)
    table = _host.host_ints(block_table)
    cover = bt_shape[1] * page
    short = np.nonzero((lens < max(tokens, 1)) | (lens > cover))[0]
    if short.size:
        b = int(short[0])
        raise LaunchError(f"{fn}: seq_lens[{b}] = {int(lens[b])} is outside 1 .. {cover} (the "
                          f"{bt_shape[1]} table entries of {page} tokens) or below the "
                          f"{tokens} query tokens")
    used = np.arange(bt_shape[1])[None, :] < (-(-lens // page))[:, None]
    bad = np.argwhere(used & ((table < 0) | (table >= num_blocks)))
    if bad.size:
        b, j = (int(x) for x in bad[0])
        raise LaunchError(f"{fn}: block_table[{b}, {j}] = {int(table[b, j])} points outside "
                          f"the cache's {num_blocks} blocks")
    max_len = int(lens.max())
    if None not in key[:2]:
        if len(_CHECKED) > 256:
            _CHECKED.clear()
        _CHECKED[key] = max_len
    return max_len


@_host.located
def paged_attention(q: Any, k_cache: Any, v_cache: Any, block_table: Any, seq_lens: Any,
                    sm_scale: float | None = None, out: Any = None, *, k_scale: float = 1.0,
                    v_scale: float = 1.0, config: PagedConfig | None = None) -> Any:
    """Decode attention of the last T tokens of each sequence against its paged KV cache;
    returns `out` (q's shape and dtype).

    q: [B, H, D] (one token) or [B, T, H, D] (T tokens, e.g. speculative decoding; token t
    sees the keys up to position seq_len - T + t), f16 or bf16. k_cache, v_cache:
    [num_blocks, block_size, Hk, D] with Hk dividing H, of q's dtype or fp8 e4m3 (then
    `k_scale`/`v_scale` multiply the stored values). block_table: int32 [B, max_blocks],
    page j of sequence b is block_table[b, j]; seq_lens: int [B], each in 1 ..
    max_blocks * block_size and at least T. Both are checked on the host before the launch
    (a device sync), except when the same torch tensors, unchanged since (their version
    counter), were checked by an earlier call."""
    fn = "paged_attention"
    dq, sq_ = _host.info(q, "q", fn)
    dk, sk_ = _host.info(k_cache, "k_cache", fn)
    dv, sv_ = _host.info(v_cache, "v_cache", fn)
    if len(sq_) not in (3, 4):
        raise LaunchError(f"{fn}: 'q' must be [B, H, D] or [B, T, H, D], got shape {sq_}")
    q4 = q if len(sq_) == 4 else q.reshape(sq_[0], 1, sq_[1], sq_[2])
    batch, tokens, nh, hd = (int(x) for x in q4.shape)
    if dq not in _DTYPES:
        raise LaunchError(f"{fn}: 'q' has dtype {dq}; supported: f16, bf16")
    for name, d, s in (("k_cache", dk, sk_), ("v_cache", dv, sv_)):
        if len(s) != 4:
            raise LaunchError(f"{fn}: '{name}' must be [num_blocks, block_size, Hk, D], got "
                              f"shape {s}")
        if d not in (dq, dt.float8_e4m3):
            raise LaunchError(f"{fn}: '{name}' has dtype {d}; it must be q's dtype {dq} or "
                              "fp8 e4m3", hint="cast the cache, or q, to match")
    if dk != dv:
        raise LaunchError(f"{fn}: k_cache and v_cache must have one dtype, got {dk} and {dv}")
    if tuple(sk_) != tuple(sv_):
        raise LaunchError(f"{fn}: k_cache and v_cache must have one shape, got {sk_} and {sv_}")
    num_blocks, page, nhk, hdk = sk_
    if hdk != hd:
        raise LaunchError(f"{fn}: the caches' head dim {hdk} differs from q's {hd}")
    if hd not in (64, 128, 256):
        raise LaunchError(f"{fn}: head dim {hd} is not supported",
                          hint="supported head dims: 64, 128, 256")
    if nhk == 0 or nh % nhk:
        raise LaunchError(f"{fn}: the {nhk} key/value heads must divide the {nh} query heads")
    if not 1 <= page <= 1024:
        raise LaunchError(f"{fn}: block size {page} is not supported (1 .. 1024)")
    _host.same_device(fn, q, ("k_cache", k_cache), ("v_cache", v_cache),
                      ("block_table", block_table), ("seq_lens", seq_lens))
    _host.int_vector(block_table, "block_table", fn, q, rank=2)
    _host.int_vector(seq_lens, "seq_lens", fn, q)
    bt_shape = tuple(int(x) for x in block_table.shape)
    if bt_shape[0] != batch or int(seq_lens.shape[0]) != batch:
        raise LaunchError(f"{fn}: block_table and seq_lens must have B = {batch} rows, got "
                          f"{bt_shape[0]} and {int(seq_lens.shape[0])}")
    max_len = _checked_lengths(fn, block_table, seq_lens, bt_shape, page, num_blocks, tokens)
    sm_scale = 1.0 / math.sqrt(hd) if sm_scale is None else _host.number(sm_scale, "sm_scale",
                                                                          fn)
    k_scale = _host.number(k_scale, "k_scale", fn)
    v_scale = _host.number(v_scale, "v_scale", fn)
    if not sm_scale > 0 or not k_scale > 0:
        raise LaunchError(f"{fn}: sm_scale and k_scale must be positive")
    if out is not None:
        do, so = _host.info(out, "out", fn)
        if tuple(so) != tuple(sq_) or do != dq:
            raise LaunchError(f"{fn}: 'out' must be {dq} of shape {tuple(sq_)}, got {do} "
                              f"{tuple(so)}")
        _host.same_device(fn, q, ("out", out))
    else:
        out = _host.empty(q, tuple(sq_), dq)
    if batch == 0:
        return out
    o4 = out if len(sq_) == 4 else out.reshape(batch, 1, nh, hd)
    group = nh // nhk
    mp = max(16, 1 << (group * tokens - 1).bit_length())
    programs = batch * nhk
    bt = _host.as_int32(block_table, q)
    sl = _host.as_int32(seq_lens, q)
    head = (q4, k_cache, v_cache, bt, sl, o4)
    batch_bucket, len_bucket = _bucket(batch), _bucket(max_len)
    tail = (nhk, group, tokens, max_len, batch_bucket, len_bucket,
            float(sm_scale * k_scale * LOG2E), float(v_scale))
    consts = dict(MP=mp, D=hd, PAGE=int(page))
    if config is None and _host.on_gpu(q):
        # The autotuner picks BN, SPLITS and stages per key; partials sized for the most
        # splits it may pick. The launch takes the choice itself (one key lookup a call).
        most = _most_splits(batch_bucket * nhk, len_bucket)
        part_o, part_l = _partials(q, programs * most * mp, hd)
        args = head + (part_o, part_l) + tail
        cfg = tuned_paged_kernel.config(lambda meta: (programs, meta["SPLITS"]), *args,
                                        **consts)
        splits = cfg.kwargs["SPLITS"]
        paged_kernel[(programs, splits)](*args, **consts, **cfg.all())
    else:
        cfg = config or pick_config(batch, nhk, max_len, _num_sms(q))
        chunk = -(-max_len // max(1, cfg.splits))
        chunk = -(-chunk // cfg.BN) * cfg.BN
        splits = -(-max_len // chunk)       # no split left without keys
        part_o, part_l = _partials(q, programs * splits * mp, hd) if splits > 1 else \
            (_host.dummy_f32(q),) * 2
        paged_kernel[(programs, splits)](
            *head, part_o, part_l, *tail, **consts, BN=cfg.BN, SPLITS=splits,
            num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    if splits > 1:
        merge_kernel[(batch * nhk, group * tokens)](
            part_o, part_l, o4, nhk, group, splits, MP=mp,
            SP=max(2, 1 << (splits - 1).bit_length()), D=hd, num_warps=4)
    return out
