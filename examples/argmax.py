"""Index of the largest element of each row (the first one on ties)."""
import numpy as np

import tilec as tc


@tc.kernel(signature="X: tensor<?x?xf32>, out: tensor<?xi32>, n_cols: i32, BLOCK=256")
def argmax(X: tc.Tensor, out: tc.Tensor, n_cols: int, BLOCK: tc.constexpr):
    row = tc.program_id(0)
    cols = tc.arange(0, BLOCK)
    x = tc.load(X.ptr + row * X.stride(0) + cols, mask=cols < n_cols, other=-float("inf"))
    tc.store(out.ptr + row, tc.argmax(x, axis=0))


def main(rows: int = 50, cols: int = 200) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    x[3, 17] = x[3, 150] = 100.0  # a tie: the first index wins
    out = tc.to_device(np.full(rows, -1, dtype=np.int32))
    argmax[(rows,)](tc.to_device(x), out, cols, BLOCK=256)
    np.testing.assert_array_equal(tc.to_host(out), x.argmax(axis=1))
    print(f"argmax: {rows} rows of {cols} on {tc.device_name()}; all {rows} indices match numpy")


if __name__ == "__main__":
    main()
