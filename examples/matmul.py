"""Tiled matrix multiply C = A @ B: one program per BMxBN tile of C, a loop over K in BK steps,
f16 inputs accumulated in f32. M, N and K need not be multiples of the tile."""
import numpy as np

import tilec as tc


@tc.kernel(signature="A: tensor<?x?xf16>, B: tensor<?x?xf16>, C: tensor<?x?xf32>, "
                     "BM=64, BN=64, BK=32")
def matmul(A: tc.Tensor, B: tc.Tensor, C: tc.Tensor,
           BM: tc.constexpr, BN: tc.constexpr, BK: tc.constexpr):
    pm, pn = tc.program_id(0), tc.program_id(1)
    acc = tc.zeros((BM, BN), tc.float32)
    for k in range(tc.cdiv(A.shape[1], BK)):
        a = tc.load(A, (pm, k), (BM, BK))  # tile coordinates; out of bounds reads 0
        b = tc.load(B, (k, pn), (BK, BN))
        acc = tc.dot(a, b, acc)
    tc.store(C, (pm, pn), acc.to(C.dtype))  # out-of-bounds writes are dropped


# The same kernel with its tile shape, warps and pipeline depth chosen by the autotuner, per
# problem shape (the key) and GPU; the choice is kept on disk (`tilec tune --show`). On the
# CPU interpreter nothing is tuned: the first configuration runs.
tuned_matmul = tc.autotune(
    configs=[tc.Config(BM=64, BN=64, BK=32, num_warps=4, num_stages=3),
             tc.Config(BM=128, BN=128, BK=32, num_warps=4, num_stages=4),
             tc.Config(BM=128, BN=256, BK=32, num_warps=8, num_stages=3),
             tc.Config(BM=256, BN=128, BK=32, num_warps=8, num_stages=4)],
    key=["A.shape[0]", "B.shape[1]", "A.shape[1]"])(matmul)


def tiles(m: int, n: int):
    """The grid for an m x n C: one program per BM x BN tile of the chosen configuration."""
    return lambda meta: (tc.cdiv(m, meta["BM"]), tc.cdiv(n, meta["BN"]))


def main(m: int = 150, n: int = 97, k: int = 131) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((k, n)).astype(np.float16)
    c = tc.to_device(np.full((m, n), np.nan, dtype=np.float32))
    tuned_matmul[tiles(m, n)](tc.to_device(a), tc.to_device(b), c)
    c = tc.to_host(c)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    err = float(np.abs(c - ref).max() / np.abs(ref).max())
    assert err < 1e-5, err
    print(f"matmul: {m}x{k} @ {k}x{n} f16 -> f32 on {tc.device_name()}; max relative error {err:.2e}")
    if tc.gpu_available():
        speed()


def speed(size: int = 4096) -> None:
    """TFLOP/s of this kernel beside torch.matmul (cuBLAS) at size^3, timed with CUDA events."""
    import torch
    a = torch.randn(size, size, dtype=torch.float16, device="cuda")
    b = torch.randn(size, size, dtype=torch.float16, device="cuda")
    c = torch.empty(size, size, dtype=torch.float32, device="cuda")
    ours = lambda: tuned_matmul[tiles(size, size)](a, b, c)  # noqa: E731
    ours()  # tunes (or reads the stored choice) before timing
    (chosen,) = [cfg for key, cfg in tuned_matmul.chosen.items() if key[0] == size]
    print(f"matmul: {size}^3 autotuned configuration: {chosen.short()}")
    theirs = lambda: torch.matmul(a, b)  # noqa: E731
    for name, fn in (("tilec", ours), ("torch", theirs)):
        fn()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(10):
            fn()
        end.record()
        end.synchronize()
        ms = start.elapsed_time(end) / 10
        print(f"matmul: {size}^3 f16 {name}: {2 * size ** 3 / ms / 1e9:.0f} TFLOP/s")


if __name__ == "__main__":
    main()
