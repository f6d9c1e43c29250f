"""Decode attention over a paged KV cache with tilec.lib.paged_attention: sequences of
different lengths whose 16-token pages sit anywhere in the cache (a shuffled block table),
8 query heads per key/value head, checked against float64 numpy; on a GPU, the achieved
bandwidth on the KV bytes read, beside a device copy of the same bytes."""
import numpy as np

import tilec as tc
from tilec.lib import paged_attention


def reference(q, k_cache, v_cache, table, seq_lens):
    b, h, d = q.shape
    page, hk = k_cache.shape[1], k_cache.shape[2]
    out = np.zeros(q.shape)
    for i in range(b):
        pos = np.arange(seq_lens[i])
        k = k_cache[table[i, pos // page], pos % page].astype(np.float64)
        v = v_cache[table[i, pos // page], pos % page].astype(np.float64)
        for j in range(h):
            s = k[:, j // (h // hk)] @ q[i, j].astype(np.float64) / np.sqrt(d)
            p = np.exp(s - s.max())
            out[i, j] = p @ v[:, j // (h // hk)] / p.sum()
    return out


def main(lens=(1, 45, 130, 77), h: int = 16, hk: int = 2, d: int = 128, page: int = 16) -> None:
    rng = np.random.default_rng(0)
    per_seq = -(-max(lens) // page)
    blocks = len(lens) * per_seq + 5
    k_cache = rng.standard_normal((blocks, page, hk, d)).astype(np.float16)
    v_cache = rng.standard_normal((blocks, page, hk, d)).astype(np.float16)
    table = rng.permutation(blocks)[:len(lens) * per_seq].reshape(len(lens), per_seq)
    table = table.astype(np.int32)
    seq_lens = np.array(lens, np.int32)
    q = rng.standard_normal((len(lens), h, d)).astype(np.float16)
    out = tc.to_device(np.full(q.shape, np.nan, np.float16))
    paged_attention(*(tc.to_device(x) for x in (q, k_cache, v_cache, table, seq_lens)),
                    out=out)
    err = float(np.abs(tc.to_host(out) - reference(q, k_cache, v_cache, table, seq_lens)).max())
    assert err < 2e-3, err
    print(f"paged_decode: {len(lens)} sequences of {list(lens)} tokens, GQA {h}:{hk}, pages of "
          f"{page}, f16 on {tc.device_name()}; max |error| {err:.2e}")
    if tc.gpu_available():
        speed()


def speed(batch: int = 16, context: int = 8192, h: int = 32, hk: int = 4, d: int = 128,
          page: int = 16) -> None:
    """GB/s on the K and V bytes read, beside a device copy of as many bytes."""
    import torch
    per_seq = context // page
    blocks = batch * per_seq
    k_cache = torch.randn(blocks, page, hk, d, dtype=torch.bfloat16, device="cuda")
    v_cache = torch.randn_like(k_cache)
    table = torch.randperm(blocks, device="cuda").to(torch.int32).reshape(batch, per_seq)
    seq_lens = torch.full((batch,), context, dtype=torch.int32, device="cuda")
    q = torch.randn(batch, h, d, dtype=torch.bfloat16, device="cuda")
    out = torch.empty_like(q)
    nbytes = 2 * k_cache.numel() * 2                  # K and V, read once
    src = torch.empty(nbytes // 4, dtype=torch.bfloat16, device="cuda")
    dst = torch.empty_like(src)                        # the copy reads + writes nbytes
    for name, fn in (("tilec", lambda: paged_attention(q, k_cache, v_cache, table, seq_lens,
                                                       out=out)),
                     ("device copy", lambda: dst.copy_(src))):
        fn()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(20):
            fn()
        end.record()
        end.synchronize()
        ms = start.elapsed_time(end) / 20
        print(f"paged_decode: batch {batch}, context {context}, bf16 {name}: "
              f"{nbytes / ms / 1e6:.0f} GB/s")


if __name__ == "__main__":
    main()
