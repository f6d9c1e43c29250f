"""Quick sweep for GEMM tuning: f16 4096^3, the given tilec configs checked against
torch.matmul (relative Frobenius error) and timed twice with events (medians), beside
cuBLAS. Usage: gemm_sweep.py CFG [CFG ...], CFG as BM,BN,BK,warps,stages."""
from __future__ import annotations

import sys

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import median, time_ms  # noqa: E402
from gemm import run_tilec, tflops  # noqa: E402


def main() -> None:
    m = n = k = 4096
    torch.manual_seed(0)
    a = torch.randn(m, k, dtype=torch.float16, device="cuda")
    b = torch.randn(k, n, dtype=torch.float16, device="cuda")
    c = torch.full((m, n), float("nan"), dtype=torch.float16, device="cuda")
    ref = torch.matmul(a.float(), b.float())
    cublas = median(time_ms(lambda: torch.matmul(a, b)))
    print(f"cublas {tflops(m, n, k, cublas):.1f} TFLOP/s", flush=True)
    for arg in sys.argv[1:]:
        cfg = tuple(int(x) for x in arg.split(","))
        c.fill_(float("nan"))
        fn = run_tilec(a, b, c, cfg)
        fn()
        torch.cuda.synchronize()
        err = ((c.float() - ref).norm() / ref.norm()).item()
        ms = median(time_ms(fn))
        ms2 = median(time_ms(fn))
        print(f"cfg={cfg} {tflops(m, n, k, ms):.1f} / {tflops(m, n, k, ms2):.1f}"
              f" TFLOP/s ({tflops(m, n, k, ms) / tflops(m, n, k, cublas):.3f}x) rel_err={err:.2e}",
              flush=True)


if __name__ == "__main__":
    main()
