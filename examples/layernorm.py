"""Layer normalisation of each row: (x - mean) / sqrt(var + eps) * weight + bias."""
import numpy as np

import tilec as tc


@tc.kernel(signature="X: tensor<?x?xf32>, W: tensor<?xf32>, B: tensor<?xf32>, "
                     "Y: tensor<?x?xf32>, n_cols: i32, eps: f32, BLOCK=1024")
def layernorm(X: tc.Tensor, W: tc.Tensor, B: tc.Tensor, Y: tc.Tensor, n_cols: int, eps: float,
              BLOCK: tc.constexpr):
    row = tc.program_id(0)
    x = tc.load(X, (row, 0), (1, BLOCK))          # out-of-bounds columns read 0
    mean = tc.sum(x, axis=1, keep_dims=True) / n_cols
    cols = tc.expand_dims(tc.arange(0, BLOCK), 0)
    centered = tc.where(cols < n_cols, x - mean, 0.0)
    var = tc.sum(centered * centered, axis=1, keep_dims=True) / n_cols
    w = tc.expand_dims(tc.load(W, (0,), (BLOCK,)), 0)
    b = tc.expand_dims(tc.load(B, (0,), (BLOCK,)), 0)
    tc.store(Y, (row, 0), centered * tc.rsqrt(var + eps) * w + b)


def main(rows: int = 19, cols: int = 300) -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((rows, cols)) * 3 + 1).astype(np.float32)
    w = rng.standard_normal(cols).astype(np.float32)
    b = rng.standard_normal(cols).astype(np.float32)
    y = tc.to_device(np.full_like(x, np.nan))
    eps = 1e-5
    d = tc.to_device
    layernorm[(rows,)](d(x), d(w), d(b), y, cols, eps, BLOCK=512)
    y = tc.to_host(y)
    x64 = x.astype(np.float64)
    ref = (x64 - x64.mean(1, keepdims=True)) / np.sqrt(x64.var(1, keepdims=True) + eps) * w + b
    err = float(np.abs(y - ref).max())
    assert err < 1e-4, err
    print(f"layernorm: {rows}x{cols} float32 on {tc.device_name()}; max |error| {err:.2e}")


if __name__ == "__main__":
    main()
