"""Program orderings."""
from __future__ import annotations

import tilec as tc


@tc.func
def swizzle2d(pid, grid_m, grid_n, group: tc.constexpr):
    """The (row, column) tile of program `pid` in a grid_m x grid_n grid of output tiles,
    walked in column-major groups of `group` rows (Triton's matmul tutorial, "L2 cache
    optimizations"): consecutive programs share the A rows of their group and the B columns
    of nearby programs, so the tiles in flight at once read fewer distinct bytes and more
    of them hit in L2."""
    in_group = group * grid_n
    first_m = (pid // in_group) * group
    size_m = tc.minimum(grid_m - first_m, group)
    pm = first_m + (pid % in_group) % size_m
    pn = (pid % in_group) // size_m
    return pm, pn
