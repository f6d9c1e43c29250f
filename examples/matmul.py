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


def main(m: int = 150, n: int = 97, k: int = 131) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((k, n)).astype(np.float16)
    c = tc.to_device(np.full((m, n), np.nan, dtype=np.float32))
    matmul[(tc.cdiv(m, 64), tc.cdiv(n, 64))](tc.to_device(a), tc.to_device(b), c,
                                             BM=64, BN=64, BK=32)
    c = tc.to_host(c)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    err = float(np.abs(c - ref).max() / np.abs(ref).max())
    assert err < 1e-5, err
    print(f"matmul: {m}x{k} @ {k}x{n} f16 -> f32 on {tc.device_name()}; max relative error {err:.2e}")


if __name__ == "__main__":
    main()
