"""Flash attention forward with tilec.lib.attention: causal, grouped-query (4 query heads
share each key/value head), checked against float64 numpy; on a GPU, also timed beside
torch's scaled_dot_product_attention (FlashAttention-2)."""
import numpy as np

import tilec as tc
from tilec.lib import attention


def reference(q, k, v, causal):
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
    sq, sk = s.shape[-2:]
    if causal:  # bottom-right aligned: query i sees keys j <= i + sk - sq
        s = np.where(np.arange(sk)[None, :] <= np.arange(sq)[:, None] + sk - sq, s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    return (p / p.sum(axis=-1, keepdims=True)) @ v


def main(b: int = 2, h: int = 8, hk: int = 2, s: int = 77, d: int = 64) -> None:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((b, h, s, d)).astype(np.float16)
    k = rng.standard_normal((b, hk, s, d)).astype(np.float16)
    v = rng.standard_normal((b, hk, s, d)).astype(np.float16)
    out = tc.to_device(np.full(q.shape, np.nan, np.float16))
    attention(tc.to_device(q), tc.to_device(k), tc.to_device(v), causal=True, out=out)
    err = float(np.abs(tc.to_host(out).astype(np.float64) - reference(q, k, v, True)).max())
    assert err < 2e-3, err
    print(f"attention: causal GQA {h}:{hk}, {b}x{h}x{s}x{d} f16 on {tc.device_name()}; "
          f"max |error| {err:.2e}")
    if tc.gpu_available():
        speed()


def speed(b: int = 4, h: int = 16, s: int = 4096, d: int = 128) -> None:
    """TFLOP/s beside torch SDPA (flash backend), bf16, non-causal, CUDA events."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    q, k, v = (torch.randn(b, h, s, d, dtype=torch.bfloat16, device="cuda") for _ in range(3))
    out = torch.empty_like(q)

    def theirs():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)

    flops = 4 * b * h * s * s * d
    for name, fn in (("tilec", lambda: attention(q, k, v, out=out)), ("torch sdpa", theirs)):
        fn()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(10):
            fn()
        end.record()
        end.synchronize()
        ms = start.elapsed_time(end) / 10
        print(f"attention: {b}x{h}x{s}x{d} bf16 {name}: {flops / ms / 1e9:.0f} TFLOP/s")


if __name__ == "__main__":
    main()
