"""Weight-only quantized GEMM: tilec.lib.quant_gemm against cuBLAS (torch f16 matmul on the
dequantized weights) and a Triton W4A16 kernel of the usual form (two 4-bit weights a byte,
read along K and unpacked with shift/mask and tl.interleave, group scales, tl.dot, split-K with
atomic adds for decode; checked against torch before timing), in one run.

Shapes (N x K): 4096x4096, 8192x8192, 14336x4096; M in {1, 16, 64, 128, 4096} (64: the
widest A tile of the decode template). Weight formats: signed ints of 2..8 bits and
float4_e2m1 / float6_e3m2, group size 128, f16 activations. To keep the run under ~5
minutes, M = 64, 128 and 4096 time the formats int3, int4, int8 and float4 only (M = 1 and
16, the bandwidth-bound decode rows, time every format).

`weight GB/s` is the packed weight bytes (plus scales) over the time; `vs copy` divides it
by the GB/s of a device-to-device copy of 256 MiB (bytes read + written) measured in the
same run. Every row is printed and written to benchmarks/results/quant_gemm-<date>.json,
including those that miss the bars (M = 1, 4-bit: >= 0.70 of copy; >= 3x cuBLAS at M = 1
and 16; time falling with the width).

Two timings of the decode rows (M <= 16), tilec and its peers alike:
- `single`: one launch between two CUDA events after a read that flushes L2 (`device_ms`).
  It includes the launch's own latency: an empty kernel measures ~4 us between the events.
- `graph`: a CUDA graph of back-to-back launches, each on its own copy of the weights (so
  many copies that each launch reads its weights from DRAM), replayed; the time a launch
  (`graph_ms`). It is how a decode step runs its layers (one graph, a layer's weights cold
  in L2) and the device tool's METHOD.md timing for short kernels: an empty kernel
  measures ~1.4 us a launch. The calls are independent (one A, other weights: a layer's Q,
  K and V projections), so tilec's decode launches overlap their neighbours through
  programmatic dependent launch; a chain (each call's A the previous output) does not
  overlap (benchmarks/quant_gemm-notes.md, session 16).
The bars are judged under `graph`, the timing the device tool's METHOD.md asks of many small
launches; `single` is reported beside it (its ~4 us of launch latency between the events
puts the M = 1 bars at the speed of a kernel that only reads the weights: notes, session 18).

`--shapes 8192x8192 --merge` runs one shape and keeps the others' rows from today's file:
with a fresh tuning database the decode searches take ~10 s each (both launch kinds), so
the whole run takes longer than one device call may.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time

import numpy as np
import torch
import triton
import triton.language as tl

import tilec as tc
from tilec.ir import dtypes as dt
from tilec.lib.quant_gemm import (DECODE_MAX_M, DEQUANT_MIN_M, decode_parts,
                                   decode_tuned_parts, decode_tuner, prefill_tuner, quant_gemm)

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import RESULTS, median, time_ms, write_result  # noqa: E402

GROUP = 128
CHECK_ROWS = 256
SHAPES = [(4096, 4096), (8192, 8192), (14336, 4096)]
MS = [1, 16, 64, 128, 4096]
ALL_FORMATS = [dt.int_(b) for b in range(2, 9)] + [dt.float4_e2m1, dt.float6_e3m2]
BIG_M_FORMATS = [dt.int3, dt.int4, dt.int8, dt.float4_e2m1]


@triton.jit
def triton_w4a16(a_ptr, w_ptr, s_ptr, c_ptr, M, N, K, G: tl.constexpr,
                 BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, SPLIT: tl.constexpr):
    """C (f32, zeroed) += A @ dequant(W).T; W is N x K/2 bytes, element k of a row in the
    low (k even) or high nibble of byte k // 2, value (q - 8) * scale[n, k // G]. Bytes are
    read along K (coalesced) and unpacked with tl.interleave; program axis 1 splits K
    SPLIT ways (atomic adds), as split-K W4A16 kernels for decode do."""
    pid = tl.program_id(0)
    part = tl.program_id(1)
    num_n = tl.cdiv(N, BN)
    pm, pn = pid // num_n, pid % num_n
    rm = pm * BM + tl.arange(0, BM)
    rn = pn * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    rb = tl.arange(0, BK // 2)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    per = K // SPLIT
    for k0 in range(part * per, part * per + per, BK):
        a = tl.load(a_ptr + rm[:, None] * K + (k0 + rk)[None, :], mask=rm[:, None] < M,
                    other=0.0)
        byte = tl.load(w_ptr + rn[:, None] * (K // 2) + (k0 // 2 + rb)[None, :],
                       mask=rn[:, None] < N, other=0)
        q = tl.interleave(byte & 0xF, byte >> 4)                     # BN x BK
        s = tl.load(s_ptr + rn * (K // G) + k0 // G, mask=rn < N, other=0.0)
        w = (q.to(tl.float16) - 8.0) * s[:, None]
        acc += tl.dot(a, tl.trans(w))
    tl.atomic_add(c_ptr + rm[:, None] * N + rn[None, :], acc,
                  mask=(rm[:, None] < M) & (rn[None, :] < N))


_FLUSH = None


def device_ms(fn, repeats: int = 20) -> float:
    """Median device time of `fn` in ms: each call between two CUDA events, after reading a
    256 MiB buffer (so the weights come from DRAM, not from the 50 MiB L2), every call queued
    behind a sleep kernel so that the GPU never waits for the host (a decode GEMV takes
    ~10 us, less than a Python launch; 20 ms covers 20 calls of up to ~0.5 ms of host work
    each). The flush reads rather than writes: zeroing the buffer left up to 50 MiB of dirty
    lines in L2 whose write-back the timed call then paid for (4-10 us on every
    bandwidth-bound row, cuBLAS's included; benchmarks/quant_gemm-notes.md)."""
    global _FLUSH
    if _FLUSH is None:
        _FLUSH = torch.empty(64 * 2**20, dtype=torch.float32, device="cuda")
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    torch.cuda._sleep(40_000_000)  # ~20 ms of cycles: the host queues all 20 meanwhile
    for s, e in zip(starts, ends):
        _FLUSH.sum()
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return median([s.elapsed_time(e) for s, e in zip(starts, ends)])


# Bytes of weights a graph's launches read between two reads of the same copy: 4x the L2.
_ROTATE_BYTES = 200 * 2**20


def copies_for(nbytes: int) -> int:
    """Weight copies a graph rotates through (4..64) so that each launch reads from DRAM."""
    return max(4, min(64, -(-_ROTATE_BYTES // nbytes)))


def graph_ms(calls: list, replays: int = 7) -> float:
    """Median device time of one call in ms, the calls (each on its own copy of the inputs)
    captured back to back into one CUDA graph and replayed after an L2-flushing read."""
    global _FLUSH
    if _FLUSH is None:
        _FLUSH = torch.empty(64 * 2**20, dtype=torch.float32, device="cuda")
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):   # warm up (tuning, workspaces) on the capture stream
        for fn in calls:
            fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        for fn in calls:
            fn()
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(replays):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        _FLUSH.sum()
        start.record()
        graph.replay()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / len(calls))
    return median(times)


def triton_config(m: int, n: int, k: int) -> tuple[int, int, int, int, int]:
    """(BM, BN, BK, warps, split): split-K for decode, up to ~1024 programs."""
    if m <= 16:
        bm, bn, bk, nw = 16, 64, 128, 4
        split = 1
        while (n // bn) * split * 2 <= 1024 and k % (bk * split * 2) == 0:
            split *= 2
        return bm, bn, bk, nw, split
    return (64, 128, 64, 4, 1) if m <= 256 else (128, 128, 64, 8, 1)


def triton_run(a, w4_bytes, s4, c32, m, n, k):
    bm, bn, bk, nw, split = triton_config(m, n, k)
    grid = (triton.cdiv(m, bm) * triton.cdiv(n, bn), split)

    def run():
        c32.zero_()  # part of the cost: the atomic adds need a zeroed output
        triton_w4a16[grid](a, w4_bytes, s4, c32, m, n, k, G=GROUP, BM=bm, BN=bn, BK=bk,
                           SPLIT=split, num_warps=nw)
    return run


def triton_reference(w4_bytes, s4, k):
    """The f32 weights the Triton baseline computes with: (q - 8) * scale, nibble order."""
    lo, hi = (w4_bytes & 0xF).float(), (w4_bytes >> 4).float()
    q = torch.stack([lo, hi], dim=-1).reshape(w4_bytes.shape[0], k)
    return ((q - 8.0).view(-1, k // GROUP, GROUP) * s4.float()[..., None]).view(-1, k)


def packed_copies(d: dt.DType, n: int, k: int, count: int, gen: torch.Generator) -> list:
    """`count` random (packed weights, scales) of `d`, each in memory of its own."""
    row_bytes = (k * d.bits + 7) // 8
    return [(tc.PackedTensor(torch.randint(0, 256, (n, row_bytes), dtype=torch.uint8,
                                           device="cuda", generator=gen), d, (n, k)),
             (torch.rand(n, k // GROUP, device="cuda", generator=gen) * 0.01 + 0.001).half())
            for _ in range(count)]


def quantized(d: dt.DType, n: int, k: int, gen: torch.Generator):
    """Random packed weights of `d` on the GPU (bytes drawn directly: every pattern is a
    finite value of these formats), their scales, and the f16 dequantized first 256 rows
    (for the error check)."""
    ((p, scales),) = packed_copies(d, n, k, 1, gen)
    head = tc.PackedTensor(p.data[:CHECK_ROWS].contiguous(), d, (CHECK_ROWS, k))
    q = torch.from_numpy(np.asarray(tc.unpack(head), dtype=np.float32)).cuda()
    s = scales[:CHECK_ROWS].float()[..., None]
    w = (q.view(CHECK_ROWS, k // GROUP, GROUP) * s).view(CHECK_ROWS, k).half()
    return p, scales, w


def chosen_config(d: dt.DType, a: torch.Tensor, p: tc.PackedTensor) -> dict:
    """The tiles the call ran with: the decode autotuner's choice at M <= DECODE_MAX_M, the
    prefill autotuner's below DEQUANT_MIN_M, else the dequantizing path's GEMM."""
    (m, k), n = a.shape, p.shape[0]
    names = ("BM", "BN", "BK", "SPLIT", "UNROLL", "PARTS", "num_warps", "num_stages")
    if m <= DECODE_MAX_M:
        parts = decode_tuned_parts(a, p, False, GROUP) or decode_parts(m, n, k, GROUP)
        for key, cfg in decode_tuner(d, GROUP, m, False, parts).chosen.items():
            if key[:2] == (n * parts, k // parts):
                return {name: v for name, v in cfg.all().items() if name in names}
    elif m < DEQUANT_MIN_M:
        for key, cfg in prefill_tuner(d, GROUP, False).chosen.items():
            if key[:3] == (m, n, k):
                return {name: v for name, v in cfg.all().items() if name in names}
    return {"path": "dequantize, then tilec.lib.gemm"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", help="only these N x K, e.g. 8192x8192,4096x4096")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other shapes' rows of today's result file (a run split "
                             "over several calls: decode searches take ~10 s each)")
    opts = parser.parse_args()
    shapes = SHAPES if not opts.shapes else [
        tuple(int(x) for x in s.split("x")) for s in opts.shapes.split(",")]
    t0 = time.time()
    torch.manual_seed(0)
    gen = torch.Generator(device="cuda").manual_seed(0)
    src = torch.empty(64 * 2**20, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    copy_ms = median(time_ms(lambda: dst.copy_(src)))  # long enough to be host-independent
    copy_gbs = 2 * src.numel() * 4 / copy_ms / 1e6
    src = dst = None  # free the copy buffers
    rows = []
    for n, k in shapes:
        a_full = torch.randn(max(MS), k, device="cuda").half()
        # Triton's W4A16 operands: the same bytes layout as tc.pack(., uint4).
        w4_bytes = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8, device="cuda",
                                 generator=gen)
        s4 = (torch.rand(n, k // GROUP, device="cuda", generator=gen) * 0.01).half()
        cache = {}
        for m in MS:
            a = a_full[:m].contiguous()
            formats = ALL_FORMATS if m <= 16 else BIG_M_FORMATS
            # cuBLAS on f16 weights (any dequantized matrix of this shape times the same).
            w16 = torch.randn(n, k, device="cuda").half()
            cublas_ms = device_ms(lambda: a @ w16.T)
            cublas_graph = None
            if m <= 16:
                ws = [w16] + [torch.randn(n, k, device="cuda").half()
                              for _ in range(copies_for(2 * n * k) - 1)]
                cublas_graph = graph_ms([lambda w=w: a @ w.T for w in ws])
                ws = None
            w16 = None
            c_tr = torch.empty(m, n, device="cuda", dtype=torch.float32)
            run_triton = triton_run(a, w4_bytes, s4, c_tr, m, n, k)
            run_triton()
            w_ref = triton_reference(w4_bytes[:CHECK_ROWS], s4[:CHECK_ROWS], k)
            ref_tr = a.float() @ w_ref.T
            triton_err = ((c_tr[:, :CHECK_ROWS] - ref_tr).abs().max()
                          / ref_tr.abs().max().clamp_min(1e-6)).item()
            assert triton_err < 1e-2, f"the Triton W4A16 baseline is wrong: {triton_err:.2e}"
            triton_ms = device_ms(run_triton)
            triton_graph = None
            if m <= 16:
                sets = [(w4_bytes, s4)] + [
                    (torch.randint(0, 256, (n, k // 2), dtype=torch.uint8, device="cuda",
                                   generator=gen), s4.clone())
                    for _ in range(copies_for(n * k // 2) - 1)]
                triton_graph = graph_ms([triton_run(a, w, s_, c_tr, m, n, k)
                                         for w, s_ in sets])
                sets = None
            for d in formats:
                if d not in cache:
                    cache[d] = quantized(d, n, k, gen)
                p, scales, w = cache[d]
                out = torch.empty(m, n, device="cuda", dtype=torch.float16)
                quant_gemm(a, p, scales, None, GROUP, out=out)
                ref = a.float() @ w.float().T
                got = out[:, :CHECK_ROWS].float()
                err = ((got - ref).abs().max() / ref.abs().max().clamp_min(1e-6)).item()
                # The first call may have tuned; right after a search the host's launches
                # can lag for a while (a 25 us row once read 180-260 us): a timing thrown away.
                device_ms(lambda: quant_gemm(a, p, scales, None, GROUP, out=out), repeats=5)
                ms = device_ms(lambda: quant_gemm(a, p, scales, None, GROUP, out=out))
                wbytes = n * k * d.bits / 8 + scales.numel() * 2
                gbs = wbytes / ms / 1e6
                rows.append({"N": n, "K": k, "M": m, "format": str(d), "bits": d.bits,
                             "tilec_us": ms * 1e3, "cublas_f16_us": cublas_ms * 1e3,
                             "triton_w4a16_us": triton_ms * 1e3,
                             "speedup_vs_cublas": cublas_ms / ms,
                             "weight_gbs": gbs, "vs_copy": gbs / copy_gbs,
                             "tflops": 2 * m * n * k / ms / 1e9, "rel_err": err,
                             "config": chosen_config(d, a, p)})
                r = rows[-1]
                line = (f"{n:>5}x{k:<5} M={m:<5} {str(d):>7} tilec {r['tilec_us']:7.1f} us  "
                        f"cuBLAS {r['cublas_f16_us']:7.1f}  triton-w4 {r['triton_w4a16_us']:7.1f}  "
                        f"x{r['speedup_vs_cublas']:5.2f}  {r['vs_copy']:.2f} copy")
                if m <= 16:
                    sets = [(p, scales)] + packed_copies(d, n, k, copies_for(int(wbytes)) - 1, gen)
                    outs = [torch.empty(m, n, device="cuda", dtype=torch.float16)
                            for _ in sets]
                    g = graph_ms([lambda p=p_, s=s_, o=o: quant_gemm(a, p, s, None, GROUP, out=o)
                                  for (p_, s_), o in zip(sets, outs)])
                    # The graph's launches computed what an eager call does.
                    diff = (outs[0].float() - out.float()).abs().max().item()
                    assert diff <= 1e-2 * out.float().abs().max().item(), "graph launch differs"
                    sets = outs = None
                    r.update(tilec_graph_us=g * 1e3, cublas_graph_us=cublas_graph * 1e3,
                             triton_graph_us=triton_graph * 1e3,
                             speedup_vs_cublas_graph=cublas_graph / g,
                             vs_copy_graph=wbytes / g / 1e6 / copy_gbs)
                    line += (f" | graph {g * 1e3:6.1f} cuBLAS {cublas_graph * 1e3:6.1f} "
                             f"triton {triton_graph * 1e3:6.1f} x{r['speedup_vs_cublas_graph']:5.2f}"
                             f" {r['vs_copy_graph']:.2f} copy")
                print(line + f"  err {err:.1e}", flush=True)
            cache_keys = list(cache)
            if m == 16:  # the decode formats are done with for this shape
                for key in cache_keys:
                    if key not in BIG_M_FORMATS:
                        del cache[key]
        a_full = w4_bytes = s4 = cache = None
        torch.cuda.empty_cache()
    kept = []
    old = RESULTS / f"quant_gemm-{datetime.date.today().isoformat()}.json"
    if opts.merge and old.exists():
        kept = [r for r in json.loads(old.read_text())["rows"]
                if (r["N"], r["K"]) not in shapes]
    order = {s: i for i, s in enumerate(SHAPES)}   # others after, in their run order
    rows = sorted(kept + rows, key=lambda r: order.get((r["N"], r["K"]), len(order)))
    bars = {}
    m1 = [r for r in rows if r["M"] == 1 and r["N"] == 8192 and r["K"] == 8192]
    by_bits = {r["format"]: r for r in m1}
    m16 = {r["format"]: r for r in rows if r["M"] == 16 and r["N"] == 8192 and r["K"] == 8192}
    for timing, suffix in (("single", ""), ("graph", "_graph")):
        b = bars.setdefault(timing, {})
        if "i4" in by_bits:
            b["m1_4bit_vs_copy"] = by_bits["i4"]["vs_copy" + suffix]
            b["m1_4bit_speedup_vs_cublas"] = by_bits["i4"]["speedup_vs_cublas" + suffix]
        if "i4" in m16:
            b["m16_4bit_speedup_vs_cublas"] = m16["i4"]["speedup_vs_cublas" + suffix]
        ints = sorted((r["bits"], r[f"tilec{suffix}_us"]) for r in m1
                      if r["format"].startswith("i"))
        b["m1_time_falls_with_width"] = all(x[1] <= y[1] for x, y in zip(ints, ints[1:]))
        times = dict(ints)
        if {3, 4, 6} <= times.keys():   # the bar: 3-bit < 4-bit < 6-bit
            b["m1_3_4_6_bits_in_order"] = times[3] < times[4] < times[6]
    path = write_result("quant_gemm", {"copy_gbs": copy_gbs, "group_size": GROUP,
                                       "rows": rows, "bars": bars,
                                       "seconds": time.time() - t0})
    print(f"\ncopy {copy_gbs:.0f} GB/s; bars at 8192x8192: {bars}")
    print(f"wrote {path} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
