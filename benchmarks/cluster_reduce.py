"""What thread-block clusters cost a bandwidth-bound kernel: the cluster launch itself
(`num_ctas`), and `tc.cluster_reduce` over the cluster (quant_gemm-notes.md, session 11).

264 programs (two per SM on an H100) each sum 512 KiB of f32 (64 steps of 2048 values,
8 warps, 3 stages) and store 2048 sums; with `REDUCE`, the programs of a cluster first add
theirs up (every program gets the total: 2048 values, 8 KiB a program through distributed
shared memory). The peer is torch's f32 sum of the same 138 MB.

    python benchmarks/cluster_reduce.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

import tilec as tc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, time_ms, write_result  # noqa: E402

PROGRAMS, BLOCK, STEPS = 264, 2048, 64


@tc.kernel
def stream_sum(X: tc.Tensor, Y: tc.Tensor, STEPS: tc.constexpr, BLOCK: tc.constexpr,
               REDUCE: tc.constexpr):
    pid = tc.program_id(0)
    acc = tc.zeros((BLOCK,), tc.float32)
    for i in range(STEPS):
        acc += tc.load(X, (pid * STEPS + i,), (BLOCK,))
    if REDUCE:
        acc = tc.cluster_reduce(acc)
    tc.store(Y, (pid,), acc)


def main() -> None:
    x = torch.randn(PROGRAMS * STEPS * BLOCK, device="cuda")
    y = torch.empty(PROGRAMS * BLOCK, device="cuda")
    nbytes = x.numel() * 4
    rows = []
    peer = median(time_ms(lambda: x.sum()))
    print(f"torch f32 sum of {nbytes / 1e6:.0f} MB: {peer * 1e3:.1f} us "
          f"({nbytes / peer / 1e6:.0f} GB/s)")
    for ctas in (1, 2, 4, 8):
        for reduce in (False, True):
            if ctas == 1 and reduce:
                continue
            opts = {"num_ctas": ctas} if ctas > 1 else {}
            ms = median(time_ms(lambda: stream_sum[(PROGRAMS,)](
                x, y, STEPS=STEPS, BLOCK=BLOCK, REDUCE=reduce, num_warps=8, num_stages=3,
                **opts)))
            got = y.view(-1, ctas, BLOCK)
            want = x.view(-1, ctas, STEPS * BLOCK).view(-1, ctas, STEPS, BLOCK).sum(2)
            if reduce:
                want = want.sum(1, keepdim=True).expand(-1, ctas, -1)
            err = (got - want).abs().max().item()
            rows.append({"num_ctas": ctas, "cluster_reduce": reduce, "us": ms * 1e3,
                         "gbs": nbytes / ms / 1e6, "vs_torch_sum": peer / ms, "max_err": err})
            print(f"num_ctas {ctas}  cluster_reduce {reduce!s:5}  {ms * 1e3:6.1f} us  "
                  f"{nbytes / ms / 1e6:5.0f} GB/s  x{peer / ms:.2f} of torch  err {err:.1e}",
                  flush=True)
    path = write_result("cluster_reduce", {"torch_sum_us": peer * 1e3, "bytes": nbytes,
                                           "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
