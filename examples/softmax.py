"""Fused row softmax: one program per row, the row held in one tile (BLOCK >= columns)."""
import numpy as np

import tilec as tc


@tc.kernel(signature="X: tensor<?x?xf32>, Y: tensor<?x?xf32>, n_cols: i32, BLOCK=1024")
def softmax(X: tc.Tensor, Y: tc.Tensor, n_cols: int, BLOCK: tc.constexpr):
    row = tc.program_id(0)
    cols = tc.arange(0, BLOCK)
    mask = cols < n_cols
    x = tc.load(X.ptr + row * X.stride(0) + cols, mask=mask, other=-float("inf"))
    x = x - tc.max(x, axis=0)  # subtract the row max so exp cannot overflow
    e = tc.exp(x)
    tc.store(Y.ptr + row * Y.stride(0) + cols, e / tc.sum(e, axis=0), mask=mask)


def main(rows: int = 37, cols: int = 781) -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((rows, cols)) * 4).astype(np.float32)
    y = tc.to_device(np.full_like(x, np.nan))
    block = 1 << (cols - 1).bit_length()
    softmax[(rows,)](tc.to_device(x), y, cols, BLOCK=block)
    y = tc.to_host(y)
    ref = np.exp(x - x.max(axis=1, keepdims=True))
    ref /= ref.sum(axis=1, keepdims=True)
    err = float(np.abs(y - ref).max())
    assert err < 1e-6, err
    print(f"softmax: {rows}x{cols} float32 on {tc.device_name()}; max |error| {err:.2e}")


if __name__ == "__main__":
    main()
