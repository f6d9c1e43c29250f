"""Dequantize uint4 weights with one float16 scale per group of G columns:
W[r, c] = (q[r, c] - 8) * scale[r, c // G]. The weights travel packed, two per byte."""
import numpy as np

import tilec as tc


@tc.kernel(signature="Q: tensor<?x?xu4>, S: tensor<?x?xf16>, W: tensor<?x?xf16>, "
                     "BR=16, G=32")
def dequant(Q: tc.Tensor, S: tc.Tensor, W: tc.Tensor, BR: tc.constexpr, G: tc.constexpr):
    pr, pg = tc.program_id(0), tc.program_id(1)
    q = tc.load(Q, (pr, pg), (BR, G))                 # u4 tile, unpacked from bytes
    scale = tc.load(S, (pr, pg), (BR, 1))             # one scale per row of this group
    w = (q.to(tc.int8) - 8).to(tc.float16) * scale
    tc.store(W, (pr, pg), w)


def main(rows: int = 40, cols: int = 96, group: int = 32) -> None:
    rng = np.random.default_rng(0)
    q = rng.integers(0, 16, size=(rows, cols))
    scales = (rng.random((rows, cols // group)) * 0.1 + 0.01).astype(np.float16)
    packed = tc.pack(q, tc.uint4)                     # rows x cols/2 bytes
    w = tc.to_device(np.full((rows, cols), np.nan, dtype=np.float16))
    d = tc.to_device
    dequant[(tc.cdiv(rows, 16), cols // group)](d(packed), d(scales), w, BR=16, G=group)
    w = tc.to_host(w)
    ref = ((q - 8).astype(np.float16) * np.repeat(scales, group, axis=1)).astype(np.float16)
    np.testing.assert_array_equal(w, ref)
    print(f"dequant: {rows}x{cols} uint4 ({packed.data.nbytes} bytes packed) -> float16 on "
          f"{tc.device_name()}; matches numpy exactly")


if __name__ == "__main__":
    main()
