"""Matrix instructions in the layout algebra (tilec/ir/mma.py): instruction choice, warp
grids, the operand layouts and their schedule, and the ldmatrix plans (conflict-free)."""
from __future__ import annotations

import pytest

from tilec.ir import dtypes as dt
from tilec.ir import fragments as F
from tilec.ir import mma
from tilec.ir.layout import local, replicate, spatial
from tilec.ir.layout_defaults import default_layout
from tilec.ir.shared_layout import bank_conflicts


def test_select():
    assert mma.select("sm_80", dt.float16, dt.float32).k == 16
    assert mma.select("sm_80", dt.int8, dt.int32).k == 32
    assert mma.select("sm_80", dt.float32, dt.float32, "tf32").k == 8
    assert mma.select("sm_80", dt.float32, dt.float32, "ieee") is None
    assert mma.select("sm_80", dt.float8_e4m3, dt.float32) is None     # sm_89+
    assert mma.select("sm_89", dt.float8_e5m2, dt.float32).k == 32
    assert mma.select("sm_90a", dt.float8_e4m3, dt.float32).k == 32
    assert mma.select(None, dt.float16, dt.float32) is None
    assert mma.select("sm_80", dt.float64, dt.float64) is None


def test_select_mfma():
    """AMD's MFMA (tilec/ir/mma.py `_amd`): 32x32 shapes, the 8-bit ones per arch."""
    assert mma.select("gfx90a", dt.float16, dt.float32).name == "mfma.f32.32x32x8f16"
    assert mma.select("gfx942", dt.bfloat16, dt.float32).name == "mfma.f32.32x32x8bf16.1k"
    assert mma.select("gfx90a", dt.int8, dt.int32).k == 8
    assert mma.select("gfx942", dt.int8, dt.int32).k == 16
    assert mma.select("gfx90a", mma.FLOAT8_E4M3_FNUZ, dt.float32) is None
    assert mma.select("gfx942", mma.FLOAT8_E5M2_FNUZ, dt.float32).name.endswith("bf8.bf8")
    assert mma.select("gfx950", dt.float8_e5m2, dt.float32).name.endswith("bf8.bf8")
    assert mma.select("gfx942", dt.uint8, dt.int32) is None
    assert mma.select("gfx1100", dt.float16, dt.float32) is None
    # 32x32 first, 16x16 for tiles it does not divide
    assert [i.m for i in mma.candidates("gfx942", dt.int8, dt.int32)] == [32, 16]
    assert [i.k for i in mma.candidates("gfx90a", dt.int8, dt.int32)] == [8, 16]
    assert len(mma.candidates("sm_90a", dt.float16, dt.float32)) == 1


def test_mfma_dot_layouts_schedule():
    i = mma.select("gfx942", dt.int8, dt.int32)
    L = mma.dot_layouts((128, 64), (64, 128), i, 4)
    assert L.warps == (2, 2) and L.a.num_threads == 256
    assert L.a == spatial(2, 1) * replicate(2) * local(2, 4) * F.mfma_32x32x16_8bit_a()
    steps = mma.schedule(L.a, L.b, L.c, i)
    assert len(steps) == 2 * 2 * 4    # rm * rn * rk instructions per warp


@pytest.mark.parametrize("m,n,warps,grid", [
    (128, 128, 4, (2, 2)), (128, 128, 8, (4, 2)), (64, 64, 4, (2, 2)), (32, 32, 4, (2, 2)),
    (16, 128, 4, (1, 4)), (128, 8, 4, (4, 1)), (16, 8, 1, (1, 1)), (16, 8, 4, None)])
def test_warp_grid(m, n, warps, grid):
    assert mma.warp_grid(m, n, mma.select("sm_80", dt.float16, dt.float32), warps) == grid


@pytest.mark.parametrize("m,n,warps,warps_n,grid", [
    (128, 64, 8, 1, (8, 1)), (64, 128, 4, 1, (4, 1)), (128, 128, 8, 2, (4, 2)),
    (16, 64, 4, 1, None)])
def test_warp_grid_with_fixed_warps_n(m, n, warps, warps_n, grid):
    i = mma.select("sm_80", dt.float16, dt.float32)
    assert mma.warp_grid(m, n, i, warps, warps_n) == grid


def test_dot_layouts_are_products_of_the_fragments():
    i = mma.select("sm_80", dt.float16, dt.float32)
    L = mma.dot_layouts((128, 32), (32, 128), i, 4)
    assert L.warps == (2, 2)
    assert L.a == spatial(2, 1) * replicate(2) * local(4, 2) * F.mma_m16n8k16_a()
    assert L.b == replicate(2) * spatial(1, 2) * local(2, 8) * F.mma_m16n8k16_b()
    assert L.c == spatial(2, 2) * local(4, 8) * F.mma_m16n8_c()
    # thread = warp * 32 + lane, warp = i * wn + j: warp 1 holds columns 64.., warp 2 rows 64..
    assert L.c.map(32, 0) == (0, 64) and L.c.map(64, 0) == (64, 0)
    assert L.a.map(32, 0) == (0, 0) and L.a.map(64, 0) == (64, 0)
    assert L.b.map(32, 0) == (0, 64) and L.b.map(64, 0) == (0, 0)
    assert mma.dot_layouts((128, 24), (24, 128), i, 4) is None     # K not a multiple of 16


@pytest.mark.parametrize("operand,acc,precision,shape,warps", [
    (dt.float16, dt.float32, "ieee", (128, 128, 32), 4),
    (dt.bfloat16, dt.float32, "ieee", (128, 128, 32), 8),
    (dt.int8, dt.int32, "ieee", (64, 64, 64), 4),
    (dt.float8_e4m3, dt.float32, "ieee", (64, 128, 64), 4),
    (dt.float32, dt.float32, "tf32", (64, 64, 16), 2)])
def test_schedule_computes_the_product(operand, acc, precision, shape, warps):
    """Every (c fragment, k step) once, and each step's a and b fragments are the right
    sub-tiles of a and b in every warp."""
    m, n, k = shape
    i = mma.select("sm_90a", operand, acc, precision)
    L = mma.dot_layouts((m, k), (k, n), i, warps)
    steps = mma.schedule(L.a, L.b, L.c, i)
    assert len(steps) == (m // i.m) * (n // i.n) * (k // i.k) // warps
    qa, qb, qc = L.a / i.a, L.b / i.b, L.c / i.c
    for w in range(warps):
        seen = set()
        for st in steps:
            ci, cj = qc.map(w, st.c)
            ai, ak = qa.map(w, st.a)
            bk, bj = qb.map(w, st.b)
            assert (ai, bj) == (ci, cj) and ak == bk
            seen.add((ci, cj, ak))
        assert len(seen) == len(steps)
    # Layouts that do not fit: the FMA path.
    assert mma.schedule(default_layout((m, k), operand.bits, 32 * warps), L.b, L.c, i) is None


@pytest.mark.parametrize("operand,shape,warps", [
    (dt.float16, (128, 128, 32), 4), (dt.float16, (128, 128, 32), 8),
    (dt.bfloat16, (64, 64, 64), 4), (dt.int8, (64, 64, 64), 4), (dt.float32, (64, 64, 32), 4)])
def test_ldmatrix_plans_are_conflict_free(operand, shape, warps):
    m, n, k = shape
    acc = dt.int32 if operand.is_int else dt.float32
    i = mma.select("sm_90a", operand, acc, "tf32")
    L = mma.dot_layouts((m, k), (k, n), i, warps)
    for name, tile, dst in (("a", (m, k), L.a), ("b", (k, n), L.b)):
        src = default_layout(tile, operand.bits, 32 * warps)
        plan = mma.ldmatrix_plan(src, dst, operand.bits)
        if name == "b" and operand.bits != 16:
            assert plan is None  # .trans moves 16-bit halves only: the generic path
            continue
        assert plan is not None and plan.trans == (name == "b")
        assert plan.vector * operand.bits == 128               # st.shared.v4.b32
        assert plan.shared.is_bijective() and plan.shared.swizzles
        reads = plan.address * local(1, plan.row_elems)
        assert bank_conflicts(src, plan.shared, operand.bits, vector=plan.vector) == 0
        assert bank_conflicts(reads, plan.shared, operand.bits, vector=plan.row_elems) == 0
        # The address layout times the matrix fragment is the destination, regrouped.
        assert plan.address.local_size * plan.num * plan.per_register == dst.local_size
