"""Layout conversions on the GPU: in registers, through warp shuffles and through shared
memory, each checked against the interpreter (and the input itself) on random data."""
from __future__ import annotations

import numpy as np
import pytest

import tilec as tc

torch = pytest.importorskip("torch")

# (source layout, destination layout, shape, num_warps): the first two stay in each warp.
CASES = [
    ("spatial(4,8)", "column_spatial(4,8)", (4, 8), 1),
    ("spatial(4,1)*spatial(4,8)*local(1,2)", "spatial(4,1)*column_spatial(4,8)*local(1,2)",
     (16, 16), 4),
    ("spatial(1,32)*local(1,2)", "local(1,2)*spatial(1,32)", (1, 64), 1),       # via shared
    ("spatial(2,1)*spatial(4,8)", "spatial(1,2)*column_spatial(8,4)", (8, 8), 2),  # across warps
]


@tc.kernel
def relayout(X: tc.Tensor, Y: tc.Tensor, Z: tc.Tensor, R: tc.constexpr, C: tc.constexpr,
             SRC: tc.constexpr, DST: tc.constexpr):
    x = tc.load(X, (0, 0), (R, C)).with_layout(SRC)
    tc.store(Y, (0, 0), (x * 2).with_layout(DST))  # the product is made in SRC, then moved
    tc.store(Z, (0, 0), x)


@pytest.mark.gpu
@pytest.mark.parametrize("src,dst,shape,warps", CASES)
def test_relayout_matches(src, dst, shape, warps):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y = torch.full(shape, float("nan"), device="cuda")
    z = torch.full(shape, float("nan"), device="cuda")
    relayout[(1,)](torch.from_numpy(x).cuda(), y, z, R=shape[0], C=shape[1], SRC=src, DST=dst,
                   num_warps=warps)
    np.testing.assert_array_equal(y.cpu().numpy(), x * 2)
    np.testing.assert_array_equal(z.cpu().numpy(), x)
