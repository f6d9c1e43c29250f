"""Add two vectors, BLOCK elements per program; the tail block is ragged (out of bounds is
masked by the tensor view)."""
import numpy as np

import tilec as tc


@tc.kernel(signature="x: tensor<?xf32>, y: tensor<?xf32>, out: tensor<?xf32>, BLOCK=1024")
def vector_add(x: tc.Tensor, y: tc.Tensor, out: tc.Tensor, BLOCK: tc.constexpr):
    pid = tc.program_id(0)
    a = tc.load(x, (pid,), (BLOCK,))
    b = tc.load(y, (pid,), (BLOCK,))
    tc.store(out, (pid,), a + b)


def main(n: int = 10_000) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n, dtype=np.float32)
    y = rng.standard_normal(n, dtype=np.float32)
    out = tc.to_device(np.full(n, np.nan, dtype=np.float32))  # poisoned: unwritten fails
    vector_add[(tc.cdiv(n, 1024),)](tc.to_device(x), tc.to_device(y), out, BLOCK=1024)
    np.testing.assert_array_equal(tc.to_host(out), x + y)
    print(f"vector_add: {n} float32 elements on {tc.device_name()}; matches numpy exactly")


if __name__ == "__main__":
    main()
