"""Warp-shuffle layout conversions: the plan (checked by simulating it on keys) and the PTX."""
from __future__ import annotations

import numpy as np
import pytest

from tilec.backends.llvm.shuffle import affine_gf2, plan
from tilec.backends.nvidia import compile_kernel
from tilec.ir.layout import column_spatial, local, parse_layout, replicate, spatial
from tilec.ir.parser import parse_module


def simulate(src, dst, rounds, warp=32):
    """What each destination (thread, local) receives when the rounds run, as row-major keys."""
    k = [1] if src.rank == 1 else [src.shape[1], 1]
    ks = src.coords() @ np.asarray(k)
    out = np.zeros((dst.num_threads, dst.local_size), np.int64)
    for t in range(dst.num_threads):
        lane, base = t % warp, t - t % warp
        for j, r in enumerate(rounds):
            sender = r.c
            for bit, col in enumerate(r.cols):
                sender ^= ((lane >> bit) & 1) * col
            out[t, j] = ks[base + sender, r.send]
    return out, dst.coords() @ np.asarray(k)


def test_affine_fit():
    assert affine_gf2(list(range(32))) == (0, (1, 2, 4, 8, 16))
    assert affine_gf2([lane ^ 5 for lane in range(32)]) == (5, (1, 2, 4, 8, 16))
    assert affine_gf2([(lane % 4) * 8 + lane // 4 for lane in range(32)]) is not None
    assert affine_gf2([(lane * 3) % 32 for lane in range(32)]) is None


PAIRS = [
    ("transpose in a warp", spatial(4, 8), column_spatial(4, 8)),
    ("4 warps, 2 per thread", spatial(4, 1) * spatial(4, 8) * local(1, 2),
     spatial(4, 1) * column_spatial(4, 8) * local(1, 2)),
    ("from replicated", replicate(2) * spatial(16) * local(2), spatial(16) * local(2) * replicate(2)),
]


@pytest.mark.parametrize("name,src,dst", PAIRS, ids=[p[0] for p in PAIRS])
def test_plans_move_every_element(name, src, dst):
    k = [1] if src.rank == 1 else [src.shape[1], 1]
    rounds = plan(src, k, dst, k, 32)
    assert rounds is not None, name
    got, want = simulate(src, dst, rounds)
    np.testing.assert_array_equal(got, want)


def test_no_plan_when_the_sender_local_differs_between_lanes():
    # Lane t needs column t, which lane t // 2 holds at local t % 2: senders would need a
    # per-lane choice of register; shared memory serves this one.
    src, dst = spatial(1, 32) * local(1, 2), local(1, 2) * spatial(1, 32)
    assert plan(src, [64, 1], dst, [64, 1], 32) is None


def test_no_plan_across_warps():
    src = spatial(2, 1) * spatial(4, 8)       # warp w holds rows 4w..4w+3
    dst = spatial(1, 2) * column_spatial(8, 4)  # warp w needs columns 4w..4w+3 of all rows
    assert plan(src, [8, 1], dst, [8, 1], 32) is None


TILE = """func @k(%x: tensor<?x?xf16>, %y: tensor<?x?xf16>,
    %z: tensor<?x?xf16>) attrs {{num_warps = 1}} {{
  %c0 = constant {{value = 0}} : i32
  %a = load_view %x, %c0, %c0 : tile<4x8xf16, {src}>
  %b = convert_layout %a : tile<4x8xf16, {dst}>
  store_view %y, [%c0, %c0], %b
  store_view %z, [%c0, %c0], %a
  return
}}"""


def test_conversion_in_a_warp_is_shuffles_without_barriers():
    text = TILE.format(src="spatial(4,8)", dst="column_spatial(4,8)")
    k = compile_kernel(parse_module(text), "k", "sm_90a", num_warps=1)
    assert "shfl.sync.idx.b32" in k.ptx
    assert "bar.sync" not in k.ptx and k.shared_bytes == 0
    assert k.cubin  # ptxas took it
    assert str(parse_layout("column_spatial(4,8)")) == "column_spatial(4,8)"
