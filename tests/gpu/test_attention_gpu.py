"""tilec.lib.attention and tilec.lib.paged_attention on the GPU (torch CUDA tensors), against
a float32 torch reference on the GPU with explicit masks. Inputs are random; outputs are
poisoned with NaN first, so a row the kernels did not write cannot pass. Shapes are ragged
(multiples of no block) and cover the option grid of the CPU tests at realistic sizes:
causal, sliding windows, GQA/MQA, varlen, [B, S, H, D] strides, LSE, D = 64/128/256;
paged decode with shuffled block tables, pages of 16..128, several query tokens, split-KV
and fp8 e4m3 caches.

Run with `pytest -m gpu tests/gpu/test_attention_gpu.py` on a machine with an NVIDIA GPU.
"""
from __future__ import annotations

import math

import pytest

import tilec as tc
from tilec.lib import attention, paged_attention
from tilec.lib.paged_attention import PagedConfig

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16}
# One rounding of the output plus the rounding of p to the input dtype before P @ V.
TOL = {torch.float16: 4e-3, torch.bfloat16: 2.5e-2}


def _visible(sq, sk, causal, left, right, device):
    i = torch.arange(sq, device=device)[:, None] + sk - sq
    j = torch.arange(sk, device=device)[None, :]
    if causal:
        right = 0 if right < 0 else min(right, 0)
    ok = torch.ones(sq, sk, dtype=torch.bool, device=device)
    if left >= 0:
        ok &= j >= i - left
    if right >= 0:
        ok &= j <= i + right
    return ok


def _attend(q, k, v, mask, scale):
    """q [..., sq, d], k, v [..., sk, d] in float32: (out, natural-log lse)."""
    s = (q.float() @ k.float().transpose(-1, -2)) * scale
    s = s.masked_fill(~mask, -math.inf)
    m = s.amax(dim=-1, keepdim=True)
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    p = torch.exp(s - m)
    l = p.sum(dim=-1, keepdim=True)
    out = (p @ v.float()) / torch.where(l == 0, torch.ones_like(l), l)
    lse = torch.where(l[..., 0] == 0, torch.full_like(l[..., 0], -math.inf),
                      m[..., 0] + torch.log(l[..., 0]))
    return out, lse


def _window(window, causal):
    if window is None:
        return -1, (0 if causal else -1)
    left, right = (window, window) if isinstance(window, int) else window
    return left, (min(right, 0) if causal else right)


def _check(got, want, dtype):
    assert not torch.isnan(got).any(), "unwritten (NaN) outputs"
    err = (got.float() - want).abs().max().item()
    assert err <= TOL[dtype] * max(1.0, want.abs().max().item()), err


@pytest.mark.parametrize("dtype, d, causal, window, b, h, hk, sq, sk", [
    ("bf16", 128, False, None, 2, 8, 8, 1000, 1000),
    ("f16", 64, True, None, 2, 8, 2, 777, 777),
    ("bf16", 128, True, None, 1, 16, 2, 300, 1333),     # sq < sk, bottom-right causal
    ("bf16", 64, True, None, 1, 4, 1, 500, 200),        # sq > sk: rows with no key
    ("f16", 128, True, 256, 2, 4, 4, 1100, 1100),       # sliding window
    ("bf16", 64, False, (100, 30), 1, 6, 3, 613, 700),  # two-sided window
    ("bf16", 256, False, None, 1, 2, 1, 333, 333),      # D = 256
    ("f16", 128, False, None, 3, 4, 2, 1, 1),           # sequence length 1
    ("bf16", 128, True, None, 4, 8, 1, 1, 4097),        # one query token
])
def test_attention(dtype, d, causal, window, b, h, hk, sq, sk):
    dt = DTYPES[dtype]
    gen = torch.Generator(device="cuda").manual_seed(sq + sk + d)
    q = torch.randn(b, h, sq, d, device="cuda", dtype=dt, generator=gen)
    k = torch.randn(b, hk, sk, d, device="cuda", dtype=dt, generator=gen)
    v = torch.randn(b, hk, sk, d, device="cuda", dtype=dt, generator=gen)
    out = torch.full_like(q, math.nan)
    got, lse = attention(q, k, v, causal=causal, window=window, out=out, return_lse=True)
    left, right = _window(window, causal)
    mask = _visible(sq, sk, causal, left, right, "cuda")
    g = h // hk
    want, want_lse = _attend(q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1), mask,
                             1 / math.sqrt(d))
    _check(got, want, dt)
    fin = torch.isfinite(want_lse)
    assert torch.equal(torch.isfinite(lse), fin)
    torch.testing.assert_close(lse[fin], want_lse[fin], rtol=1e-3, atol=1e-3)


def test_attention_bshd_strides():
    """[B, S, H, D] tensors (slices of one fused qkv tensor) as .transpose(1, 2) views, and
    an [B, S, H, D] output: no copies, the same answer."""
    qkv = torch.randn(2, 517, 3, 8, 128, device="cuda", dtype=torch.bfloat16)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
    out = torch.full((2, 517, 8, 128), math.nan, device="cuda", dtype=torch.bfloat16)
    attention(q, k, v, causal=True, out=out.transpose(1, 2))
    want, _ = _attend(q, k, v, _visible(517, 517, True, -1, 0, "cuda"), 1 / math.sqrt(128))
    _check(out.transpose(1, 2), want, torch.bfloat16)


@pytest.mark.parametrize("causal, window", [(False, None), (True, None), (True, 64)])
def test_attention_varlen(causal, window):
    lq, lk = [1, 300, 77, 513], [128, 300, 900, 600]
    cu_q = torch.tensor([0] + list(torch.tensor(lq).cumsum(0)), dtype=torch.int32,
                        device="cuda")
    cu_k = torch.tensor([0] + list(torch.tensor(lk).cumsum(0)), dtype=torch.int32,
                        device="cuda")
    q = torch.randn(sum(lq), 8, 128, device="cuda", dtype=torch.float16)
    k = torch.randn(sum(lk), 2, 128, device="cuda", dtype=torch.float16)
    v = torch.randn(sum(lk), 2, 128, device="cuda", dtype=torch.float16)
    out = torch.full_like(q, math.nan)
    got, lse = attention(q, k, v, causal=causal, window=window, out=out, return_lse=True,
                         cu_seqlens_q=cu_q, cu_seqlens_k=cu_k)
    left, right = _window(window, causal)
    for i in range(len(lq)):
        qs, qe, ks, ke = int(cu_q[i]), int(cu_q[i + 1]), int(cu_k[i]), int(cu_k[i + 1])
        mask = _visible(qe - qs, ke - ks, causal, left, right, "cuda")
        want, want_lse = _attend(q[qs:qe].transpose(0, 1),
                                 k[ks:ke].repeat_interleave(4, 1).transpose(0, 1),
                                 v[ks:ke].repeat_interleave(4, 1).transpose(0, 1), mask,
                                 1 / math.sqrt(128))
        _check(got[qs:qe].transpose(0, 1), want, torch.float16)
        torch.testing.assert_close(lse[:, qs:qe], want_lse, rtol=1e-3, atol=1e-3)


def _paged_ref(q, k_cache, v_cache, table, seq_lens, k_scale=1.0, v_scale=1.0):
    b, t, h, d = q.shape
    page, hk = k_cache.shape[1], k_cache.shape[2]
    out = torch.zeros(q.shape, device=q.device)
    for i in range(b):
        n = int(seq_lens[i])
        pos = torch.arange(n, device=q.device)
        rows = table[i, pos // page].long(), pos % page
        k = (k_cache[rows].float() * k_scale).repeat_interleave(h // hk, 1).transpose(0, 1)
        v = (v_cache[rows].float() * v_scale).repeat_interleave(h // hk, 1).transpose(0, 1)
        mask = _visible(t, n, True, -1, 0, q.device)
        out[i] = _attend(q[i].transpose(0, 1), k, v, mask, 1 / math.sqrt(d))[0].transpose(0, 1)
    return out


@pytest.mark.parametrize("cache, page, tokens, lens, h, hk, cfg", [
    ("bf16", 16, 1, [1, 4000, 8192, 333], 32, 4, None),          # auto split choice
    ("f16", 32, 1, [17, 2049], 16, 2, PagedConfig(64, 1, 4)),     # no split
    ("bf16", 64, 4, [100, 5000, 31], 8, 1, PagedConfig(64, 8, 4)),  # 4 query tokens, split
    ("bf16", 128, 1, [32768], 64, 8, None),                       # long context, batch 1
    ("fp8", 16, 1, [999, 3000], 32, 4, None),                     # e4m3 cache with scales
])
def test_paged(cache, page, tokens, lens, h, hk, cfg):
    gen = torch.Generator(device="cuda").manual_seed(page * 7 + tokens)
    d, b = 128, len(lens)
    per_seq = -(-max(lens) // page) + 1
    nb = b * per_seq + 7
    store = torch.bfloat16 if cache != "f16" else torch.float16
    kc = torch.randn(nb, page, hk, d, device="cuda", dtype=store, generator=gen)
    vc = torch.randn(nb, page, hk, d, device="cuda", dtype=store, generator=gen)
    k_scale = v_scale = 1.0
    if cache == "fp8":
        kc, vc = (kc * 4).to(torch.float8_e4m3fn), (vc * 4).to(torch.float8_e4m3fn)
        k_scale, v_scale = 0.25, 0.5
    table = torch.randperm(nb, device="cuda", generator=gen)[:b * per_seq]
    table = table.reshape(b, per_seq).to(torch.int32)
    seq_lens = torch.tensor(lens, dtype=torch.int32, device="cuda")
    q = torch.randn(b, tokens, h, d, device="cuda", dtype=store, generator=gen)
    out = torch.full_like(q, math.nan)
    paged_attention(q, kc, vc, table, seq_lens, out=out, k_scale=k_scale, v_scale=v_scale,
                    config=cfg)
    _check(out, _paged_ref(q, kc, vc, table, seq_lens, k_scale, v_scale), store)


def test_paged_bad_table_is_caught_before_launch():
    kc = torch.zeros(4, 16, 1, 64, device="cuda", dtype=torch.float16)
    q = torch.zeros(1, 2, 64, device="cuda", dtype=torch.float16)
    table = torch.tensor([[0, 9]], dtype=torch.int32, device="cuda")
    with pytest.raises(tc.LaunchError, match=r"block_table\[0, 1\] = 9 points outside"):
        paged_attention(q, kc, kc, table, torch.tensor([20], dtype=torch.int32, device="cuda"))
