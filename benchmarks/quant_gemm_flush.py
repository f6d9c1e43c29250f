"""What the L2 flush in front of each timed call does to bandwidth-bound times, and the
ceiling of a load-only tilec kernel over the packed weights (quant_gemm-notes.md, session 5).

Each call is timed after a write flush (zeroing 256 MiB: up to 50 MiB of dirty lines stay in
L2 and the timed call pays for their write-back), after a read flush (what quant_gemm.py
does now), and with no flush at all over four rotating copies of the operands (each call's
weights were evicted by the three calls before it). 8192 x 8192 int4 weights, M = 1.

    python benchmarks/quant_gemm_flush.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

import tilec as tc
import tilec.lib.quant_gemm as qg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, write_result  # noqa: E402
from quant_gemm import GROUP, quantized  # noqa: E402

N = K = 8192
COPIES = 4


@tc.kernel
def stream(W: tc.Tensor, C: tc.Tensor, split_k: int, BN: tc.constexpr, WB: tc.constexpr,
           WL: tc.constexpr):
    """Every word of this program's BN rows x slice of K, two steps in flight, XORed
    together (so no load is dead) and summed per row: a decode kernel's loads, no math."""
    tiles = tc.cdiv(W.shape[0], BN)
    tile = tc.program_id(0) % tiles
    part = tc.program_id(0) // tiles
    steps = tc.cdiv(W.shape[1], WB) // split_k
    first = part * steps
    acc = tc.with_layout(tc.zeros((BN, WB), W.dtype), WL)
    cur = tc.with_layout(tc.load(W, (tile, first), (BN, WB)), WL)
    for i in range(0, steps, 2):
        k = first + i
        ahead = tc.with_layout(tc.load(W, (tile, k + 1), (BN, WB)), WL)
        acc = acc ^ cur
        cur = tc.with_layout(tc.load(W, (tile, tc.minimum(k + 2, first + steps - 1)),
                                     (BN, WB)), WL)
        acc = acc ^ ahead
    tc.store(C, (part, tile), tc.expand_dims(tc.sum(acc, axis=1), 0))


_FLUSH = torch.empty(64 * 2**20, dtype=torch.float32, device="cuda")


def device_us(calls: list, flush: str | None, repeats: int = 24) -> float:
    """Median microseconds of the calls (used in turn), each between two events, queued
    behind a sleep so that the GPU never waits for the host."""
    for call in calls:
        call()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    torch.cuda._sleep(60_000_000)
    for i, (s, e) in enumerate(zip(starts, ends)):
        if flush == "write":
            _FLUSH.zero_()
        elif flush == "read":
            _FLUSH.sum()
        s.record()
        calls[i % len(calls)]()
        e.record()
    torch.cuda.synchronize()
    return median([s.elapsed_time(e) for s, e in zip(starts, ends)]) * 1e3


def stream_calls(words: list, bn: int, wb: int, warps: int, split: int, layout: str) -> list:
    c = torch.empty((split, N), device="cuda", dtype=torch.int32)
    grid = ((N // bn) * split,)
    return [lambda w=w: stream[grid](w, c, split, BN=bn, WB=wb, WL=layout, num_warps=warps)
            for w in words]


def main() -> None:
    gen = torch.Generator(device="cuda").manual_seed(0)
    src = torch.empty(64 * 2**20, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    copy_gbs = 2 * src.numel() * 4 / device_us([lambda: dst.copy_(src)], None) / 1e3
    src = dst = None
    packed = [quantized(tc.int4, N, K, gen)[:2] for _ in range(COPIES)]
    words = [qg._words(p) for p, _ in packed]
    a = torch.randn(1, K, device="cuda").half()
    out = torch.empty(1, N, device="cuda", dtype=torch.float16)
    w16 = torch.randn(N, K, device="cuda").half()           # 128 MiB: no rotation needed
    sums = [torch.empty(N * K // 8, device="cuda") for _ in range(COPIES)]
    tiny = words[0][:32, :128]
    tiny_out = torch.empty((1, 32), device="cuda", dtype=torch.int32)
    rows = "spatial({w},1)*local({r},1)*spatial(1,32)*local(1,4)"
    cases = {
        "empty launch (one program)": [lambda: stream[(1,)](
            tiny, tiny_out, 1, BN=32, WB=128, WL=rows.format(w=4, r=8), num_warps=4)],
        "torch f32 sum of 33.5 MB": [lambda x=x: x.sum() for x in sums],
        "stream, 512 B of a row a warp (32x128 words, 4 warps, split 4)":
            stream_calls(words, 32, 128, 4, 4, rows.format(w=4, r=8)),
        "stream, the decode layout (128 rows x 256 weights, split 4)":
            stream_calls(words, 128, 32, 4, 4, qg.decode_layouts(128, 256, 4, 4)[0]),
        "quant_gemm, whole call (default config)":
            [lambda p=p, s=s: qg.quant_gemm(a, p, s, None, GROUP, out=out) for p, s in packed],
        "cuBLAS f16 (a @ W.T)": [lambda: a @ w16.T],
    }
    weight_bytes = N * K / 2
    rows_out = []
    print(f"copy {copy_gbs:.0f} GB/s; us (fraction of copy on the int4 weight bytes)")
    for name, calls in cases.items():
        us = {str(f): device_us(calls, f) for f in ("write", "read", None)}
        rows_out.append({"case": name, "us": us})
        print(f"{name:64} " + "  ".join(
            f"{f}: {t:6.1f} ({weight_bytes / t / 1e3 / copy_gbs:.2f})" for f, t in us.items()),
            flush=True)
    path = write_result("quant_gemm_flush", {"copy_gbs": copy_gbs, "rows": rows_out})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
