"""tilec.lib.attention and tilec.lib.paged_attention on the CPU interpreter against float64
numpy (attention_ref.py), at small shapes with lengths that are multiples of no block;
outputs poisoned with NaN first. Small tile configurations make every loop (fully visible
blocks, partly visible ones, several splits) run more than once."""
from __future__ import annotations

import importlib

import ml_dtypes
import numpy as np
import pytest

import tilec as tc
from tilec.lib import attention, paged_attention
from tilec.lib.attention import AttentionConfig
from tilec.lib.paged_attention import PagedConfig

import attention_ref as ref

attn_mod = importlib.import_module("tilec.lib.attention")
paged_mod = importlib.import_module("tilec.lib.paged_attention")

BF16, F8 = ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn
SMALL = AttentionConfig(16, 16, 4, 2)
TOL = {np.float16: 2e-3, BF16: 1.6e-2}


def randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def close(got, want, dtype):
    got = np.asarray(got).astype(np.float64)
    assert not np.isnan(got).any(), "unwritten (NaN) outputs"
    err = np.abs(got - want).max()
    assert err <= TOL[dtype] * max(1.0, np.abs(want).max()), err


# ---------------------------------------------------------------------------------------
# flash attention forward

@pytest.mark.parametrize("dtype, causal, window, h, hk, sq, sk", [
    (np.float16, False, None, 2, 2, 37, 45),
    (BF16, False, None, 4, 1, 20, 33),           # MQA
    (np.float16, True, None, 4, 2, 37, 45),      # GQA; causal bottom-right, sq < sk
    (np.float16, True, None, 2, 1, 45, 30),      # sq > sk: leading rows see no key
    (BF16, True, 7, 2, 2, 40, 40),               # sliding window (7, 0)
    (np.float16, False, (5, 9), 2, 1, 29, 41),   # two-sided window
    (np.float16, False, None, 2, 2, 1, 1),       # sequence length 1
    (np.float16, True, None, 2, 2, 1, 19),       # one query token (decode-like)
])
def test_dense(dtype, causal, window, h, hk, sq, sk):
    rng = np.random.default_rng(sq * 100 + sk)
    q = randn(rng, (2, h, sq, 64), dtype)
    k = randn(rng, (2, hk, sk, 64), dtype)
    v = randn(rng, (2, hk, sk, 64), dtype)
    out = np.full(q.shape, np.nan, dtype)
    got, lse = attention(q, k, v, causal=causal, window=window, return_lse=True, out=out,
                         config=SMALL)
    assert got is out
    left, right = attn_mod._window(window, causal)
    want, want_lse = ref.dense(q, k, v, causal, None, left, right)
    close(got, want, dtype)
    np.testing.assert_allclose(lse, want_lse, rtol=1e-4, atol=1e-4)


def test_default_config_and_scale():
    """pick_config's blocks (BM 64, BN 64 for D = 64) and an explicit sm_scale."""
    rng = np.random.default_rng(3)
    q, k, v = (randn(rng, (1, 2, 70, 64), np.float16) for _ in range(3))
    got = attention(q, k, v, causal=True, sm_scale=0.3)
    close(got, ref.dense(q, k, v, True, 0.3)[0], np.float16)


def test_bshd_strides_and_fused_qkv():
    """[B, S, H, D] tensors as .transpose(1, 2) views, q/k/v slices of one [B, S, 3, H, D]
    tensor, and a strided `out`: read and written in place through the 2-D views."""
    rng = np.random.default_rng(4)
    qkv = randn(rng, (2, 27, 3, 2, 128), BF16)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    out_bshd = np.full((2, 27, 2, 128), np.nan, BF16)
    attention(q, k, v, causal=True, out=out_bshd.transpose(0, 2, 1, 3), config=SMALL)
    want = ref.dense(q, k, v, True)[0]
    close(out_bshd.transpose(0, 2, 1, 3), want, BF16)
    for x in (q, k, v):
        assert not attn_mod._host.rows_view(x, False, "t").copied


def test_strides_that_need_a_copy():
    """A head dim that is not contiguous cannot be viewed: the call copies, still right."""
    rng = np.random.default_rng(5)
    base = randn(rng, (1, 2, 9, 64, 2), np.float16)
    q = base[..., 0]
    assert attn_mod._host.rows_view(q, False, "t").copied
    got = attention(q, q, q, config=SMALL)
    close(got, ref.dense(q, q, q)[0], np.float16)


@pytest.mark.parametrize("causal, window", [(False, None), (True, None), (True, 6)])
def test_varlen(causal, window):
    rng = np.random.default_rng(6)
    lq, lk = [5, 1, 23, 17], [9, 14, 23, 30]
    cu_q = np.concatenate([[0], np.cumsum(lq)]).astype(np.int32)
    cu_k = np.concatenate([[0], np.cumsum(lk)]).astype(np.int32)
    q = randn(rng, (cu_q[-1], 4, 64), np.float16)
    k = randn(rng, (cu_k[-1], 2, 64), np.float16)
    v = randn(rng, (cu_k[-1], 2, 64), np.float16)
    out = np.full(q.shape, np.nan, np.float16)
    got, lse = attention(q, k, v, causal=causal, window=window, out=out, return_lse=True,
                         cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, config=SMALL)
    left, right = attn_mod._window(window, causal)
    want, want_lse = ref.varlen(q, k, v, cu_q, cu_k, causal, None, left, right)
    close(got, want, np.float16)
    np.testing.assert_allclose(lse, want_lse, rtol=1e-4, atol=1e-4)


f16 = np.float16


def z(*shape, dtype=f16):
    return np.zeros(shape, dtype)


@pytest.mark.parametrize("args, kwargs, match", [
    ((z(1, 4, 8, 64), z(1, 3, 8, 64), z(1, 3, 8, 64)), {},
     r"the 3 key/value heads must divide the 4 query heads"),
    ((z(1, 2, 8, 48), z(1, 2, 8, 48), z(1, 2, 8, 48)), {}, r"head dim 48 is not supported"),
    ((z(1, 2, 8, 64), z(1, 2, 8, 64, dtype=BF16), z(1, 2, 8, 64)), {},
     r"q, k and v must have one dtype, got f16, bf16, f16"),
    ((z(1, 2, 8, 64, dtype=np.float32),) * 3, {}, r"'q' has dtype f32; supported: f16, bf16"),
    ((z(1, 2, 8, 64), z(1, 2, 8, 128), z(1, 2, 8, 128)), {}, r"one head dim"),
    ((z(1, 2, 8, 64), z(1, 2, 9, 64), z(1, 2, 8, 64)), {}, r"one sequence length"),
    ((z(2, 8, 64), z(2, 8, 64), z(2, 8, 64)), {}, r"'q' must be 4-D"),
    ((z(1, 2, 8, 64),) * 3, {"window": 1.5}, r"'window' must be None, an int"),
    ((z(1, 2, 8, 64),) * 3, {"window": (-3, 2)}, r"window sizes must be >= 0"),
    ((z(1, 2, 8, 64),) * 3, {"sm_scale": -1.0}, r"'sm_scale' must be positive"),
    ((z(1, 2, 8, 64),) * 3, {"out": z(1, 2, 8, 32)}, r"'out' must have shape"),
    ((z(8, 2, 64),) * 3, {"cu_seqlens_q": np.array([0, 8], np.int32)},
     r"varlen needs both"),
    ((z(8, 2, 64),) * 3, {"cu_seqlens_q": np.array([0, 9], np.int32),
                          "cu_seqlens_k": np.array([0, 8], np.int32)},
     r"'cu_seqlens_q' must start at 0, never decrease and end at most at the 8 tokens"),
])
def test_attention_errors(args, kwargs, match):
    with pytest.raises(tc.LaunchError, match=match) as info:
        attention(*args, **kwargs)
    assert info.value.loc is not None and info.value.loc.file == __file__


# ---------------------------------------------------------------------------------------
# paged decode

def _cache(rng, num_blocks, page, hk, d, dtype):
    return randn(rng, (num_blocks, page, hk, d), dtype)


@pytest.mark.parametrize("page, tokens, h, hk, lens, cfg", [
    (16, 1, 4, 1, [1, 37, 70], None),                     # seq len 1, GQA 4:1, one split
    (16, 1, 8, 2, [5, 90, 33], PagedConfig(16, 3, 4)),    # split-KV with merge
    (32, 3, 4, 2, [3, 64, 75], PagedConfig(16, 4, 4)),    # 3 query tokens (speculative)
    (128, 1, 2, 2, [129, 7], PagedConfig(64, 2, 4)),      # big pages, a split past the end
])
def test_paged(page, tokens, h, hk, lens, cfg):
    rng = np.random.default_rng(page + tokens)
    d, b = 64, len(lens)
    per_seq = -(-max(lens) // page) + 1
    nb = b * per_seq + 3
    kc, vc = _cache(rng, nb, page, hk, d, np.float16), _cache(rng, nb, page, hk, d, np.float16)
    table = rng.permutation(nb)[:b * per_seq].reshape(b, per_seq).astype(np.int32)
    seq_lens = np.array(lens, np.int32)
    q = randn(rng, (b, tokens, h, d), np.float16)
    out = np.full(q.shape, np.nan, np.float16)
    got = paged_attention(q, kc, vc, table, seq_lens, out=out, config=cfg)
    close(got, ref.paged(q, kc, vc, table, seq_lens), np.float16)


def test_paged_3d_query_bf16():
    rng = np.random.default_rng(9)
    kc, vc = _cache(rng, 12, 16, 2, 128, BF16), _cache(rng, 12, 16, 2, 128, BF16)
    table = rng.permutation(12)[:8].reshape(2, 4).astype(np.int32)
    q = randn(rng, (2, 4, 128), BF16)
    seq_lens = np.array([50, 17], np.int32)
    got = paged_attention(q, kc, vc, table, seq_lens, sm_scale=0.1)
    want = ref.paged(q[:, None], kc, vc, table, seq_lens, scale=0.1)[:, 0]
    close(got, want, BF16)


def test_paged_fp8_cache():
    """An e4m3 cache with scales: the kernel casts after the load and folds the scales."""
    rng = np.random.default_rng(10)
    kc = (rng.standard_normal((10, 16, 1, 64)) * 4).astype(F8)
    vc = (rng.standard_normal((10, 16, 1, 64)) * 4).astype(F8)
    table = rng.permutation(10)[:8].reshape(2, 4).astype(np.int32)
    q = randn(rng, (2, 1, 4, 64), BF16)
    seq_lens = np.array([61, 20], np.int32)
    got = paged_attention(q, kc, vc, table, seq_lens, k_scale=0.25, v_scale=0.5,
                          config=PagedConfig(16, 2, 4))
    close(got, ref.paged(q, kc, vc, table, seq_lens, k_scale=0.25, v_scale=0.5), BF16)


def _paged_args(**over):
    args = dict(q=z(2, 4, 64), k_cache=z(6, 16, 2, 64), v_cache=z(6, 16, 2, 64),
                block_table=np.array([[0, 1], [2, 3]], np.int32),
                seq_lens=np.array([20, 32], np.int32))
    args.update(over)
    return args


@pytest.mark.parametrize("over, match", [
    ({"k_cache": z(6, 16, 3, 64), "v_cache": z(6, 16, 3, 64)},
     r"the 3 key/value heads must divide the 4 query heads"),
    ({"q": z(2, 4, 96), "k_cache": z(6, 16, 2, 96), "v_cache": z(6, 16, 2, 96)},
     r"head dim 96 is not supported"),
    ({"block_table": np.array([[0, 1], [2, 6]], np.int32)},
     r"block_table\[1, 1\] = 6 points outside the cache's 6 blocks"),
    ({"seq_lens": np.array([20, 33], np.int32)}, r"seq_lens\[1\] = 33 is outside 1 .. 32"),
    ({"seq_lens": np.array([0, 3], np.int32)}, r"seq_lens\[0\] = 0 is outside"),
    ({"k_cache": z(6, 16, 2, 64, dtype=BF16)}, r"'k_cache' has dtype bf16; it must be q's"),
    ({"k_cache": z(6, 16, 2, 64, dtype=F8)}, r"k_cache and v_cache must have one dtype"),
    ({"v_cache": z(6, 8, 2, 64)}, r"k_cache and v_cache must have one shape"),
    ({"block_table": np.zeros((2, 2), np.float32)}, r"'block_table' must hold integers"),
    ({"seq_lens": np.array([20], np.int32)}, r"must have B = 2 rows"),
])
def test_paged_errors(over, match):
    with pytest.raises(tc.LaunchError, match=match) as info:
        paged_attention(**_paged_args(**over))
    assert info.value.loc is not None and info.value.loc.file == __file__


def test_split_choice():
    """Small batches and long contexts split; large batches or short contexts do not."""
    assert paged_mod.pick_config(1, 8, 32768).splits > 1
    assert paged_mod.pick_config(64, 8, 1024).splits == 1
    assert paged_mod.pick_config(1, 8, 200).splits == 1


@pytest.mark.torch
def test_paged_check_is_cached_until_the_table_changes():
    """Unchanged torch tensors are checked once; an in-place write to the table bumps its
    version, so the next call checks again and catches the bad entry."""
    import torch
    rng = np.random.default_rng(11)
    kc = torch.from_numpy(_cache(rng, 6, 16, 1, 64, np.float16))
    q = torch.from_numpy(randn(rng, (2, 2, 64), np.float16))
    table = torch.tensor([[0, 1], [2, 3]], dtype=torch.int32)
    lens = torch.tensor([20, 32], dtype=torch.int32)
    before = len(paged_mod._CHECKED)
    paged_attention(q, kc, kc, table, lens)
    paged_attention(q, kc, kc, table, lens)
    assert len(paged_mod._CHECKED) == before + 1
    table[1, 1] = 6
    with pytest.raises(tc.LaunchError, match=r"block_table\[1, 1\] = 6 points outside"):
        paged_attention(q, kc, kc, table, lens)


@pytest.mark.torch
def test_paged_inference_mode_tensors_are_checked_every_time():
    """Inference-mode tensors keep no version counter: nothing is cached, nothing breaks."""
    import torch
    rng = np.random.default_rng(12)
    with torch.inference_mode():
        kc = torch.from_numpy(_cache(rng, 4, 16, 1, 64, np.float16)).clone()
        q = torch.from_numpy(randn(rng, (1, 2, 64), np.float16)).clone()
        table = torch.tensor([[2, 0]], dtype=torch.int32)
        lens = torch.tensor([30], dtype=torch.int32)
        got = paged_attention(q, kc, kc, table, lens)
        want = ref.paged(q.numpy()[:, None], kc.numpy(), kc.numpy(), table.numpy(),
                         lens.numpy())[:, 0]
        close(got.numpy(), want, np.float16)
        table[0, 1] = 4
        with pytest.raises(tc.LaunchError, match=r"block_table\[0, 1\] = 4 points outside"):
            paged_attention(q, kc, kc, table, lens)
