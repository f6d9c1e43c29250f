"""Matrix instructions in the layout algebra (tilec/ir/mma.py): instruction choice, warp
grids, the operand layouts and their schedule, and the ldmatrix plans (conflict-free)."""
from __future__ import annotations

import numpy as np
import pytest

from tilec.ir import dtypes as dt
from tilec.ir import fragments as F
from tilec.ir import mma
from tilec.ir.layout import local, replicate, spatial
from tilec.ir.layout_defaults import default_layout
from tilec.ir.shared_layout import bank_conflicts, row_major


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


@pytest.mark.parametrize("target,batch,shape,warps", [
    ("sm_90a", 4, (32, 16, 64), 8), ("sm_90a", 8, (16, 16, 32), 4), ("sm_80", 2, (64, 32, 32), 4),
    ("gfx942", 4, (32, 32, 32), 4)])
def test_schedule_of_a_batched_dot(target, batch, shape, warps):
    """A batch of products: the warps split the batch first (each a product or more), and
    every step meets a and b fragments of its accumulator's own product."""
    m, n, k = shape
    i = mma.select(target, dt.float16, dt.float32)
    L = mma.dot_layouts((batch, m, k), (batch, k, n), i, warps)
    steps = mma.schedule(L.a, L.b, L.c, i)
    assert len(steps) == batch * (m // i.m) * (n // i.n) * (k // i.k) // warps
    lift = lambda f: f.expand_dims(0)  # noqa: E731
    qa, qb, qc = L.a / lift(i.a), L.b / lift(i.b), L.c / lift(i.c)
    products = set()
    for w in range(warps):
        seen = set()
        for st in steps:
            cp, ci, cj = qc.map(w, st.c)
            ap, ai, ak = qa.map(w, st.a)
            bp, bk, bj = qb.map(w, st.b)
            assert (ap, ai, bp, bj) == (cp, ci, cp, cj) and ak == bk
            seen.add((cp, ci, cj, ak))
            products.add(cp)
        assert len(seen) == len(steps)
    assert products == set(range(batch))
    # The 2-D layouts of one product do not serve a batch.
    flat = mma.dot_layouts((m, k), (k, n), i, warps)
    assert flat is None or mma.schedule(flat.a.expand_dims(0), L.b, L.c, i) is None


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


# -- wgmma ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape_a,shape_b,warps,expect", [
    ((128, 64), (64, 256), 8, (2, 1, 1, 256)),
    ((128, 64), (64, 128), 4, (1, 2, 1, 128)),
    ((64, 32), (32, 64), 4, (1, 1, 1, 64)),
    ((64, 16), (16, 384), 4, (1, 1, 2, 192)),     # N over 256: the widest n dividing it
    ((64, 16), (16, 40), 4, (1, 1, 1, 40))])
def test_wgmma_plan(shape_a, shape_b, warps, expect):
    p = mma.wgmma_plan("sm_90a", shape_a, shape_b, dt.float16, dt.float32, "ieee", warps)
    assert (p.groups, p.rm, p.rn, p.n) == expect
    m, k = shape_a
    # The accumulator rows of warp w are 16 rows of its warpgroup's blocks; a's rows are
    # the accumulator's (p feeds the next product's a as a renaming of registers).
    assert p.c.shape == (m, shape_b[1]) and p.a.shape == (m, k)
    for t in range(0, 32 * warps, 32):
        rows_c = {p.c.map(t + lane, i)[0] for lane in range(32) for i in range(p.c.local_size)}
        rows_a = {p.a.map(t + lane, i)[0] for lane in range(32) for i in range(p.a.local_size)}
        assert rows_c == rows_a and len(rows_c) == 16 * p.rm


@pytest.mark.parametrize("target,operand,acc,precision,shape_a,warps,warps_n", [
    ("sm_80", dt.float16, dt.float32, "ieee", (128, 64), 8, 0),       # no wgmma
    ("sm_90", dt.float16, dt.float32, "ieee", (128, 64), 8, 0),       # only sm_90a has it
    ("sm_90a", dt.float8_e4m3, dt.float32, "ieee", (128, 64), 8, 0),  # mma.sync's for now
    ("sm_90a", dt.float16, dt.float16, "ieee", (128, 64), 8, 0),      # f32 accumulators only
    ("sm_90a", dt.float32, dt.float32, "tf32", (128, 64), 8, 0),
    ("sm_90a", dt.float16, dt.float32, "ieee", (128, 64), 2, 0),      # not a warpgroup
    ("sm_90a", dt.float16, dt.float32, "ieee", (128, 64), 8, 2),      # warps along N
    ("sm_90a", dt.float16, dt.float32, "ieee", (64, 64), 8, 0),       # 32 rows a warpgroup
    ("sm_90a", dt.float16, dt.float32, "ieee", (64, 8), 4, 0)])       # K under 16
def test_wgmma_plan_none(target, operand, acc, precision, shape_a, warps, warps_n):
    assert mma.wgmma_plan(target, shape_a, (shape_a[1], 128), operand, acc, precision, warps,
                          warps_n) is None


@pytest.mark.parametrize("shape,contiguous,mode", [
    ((64, 128), 1, "128B"), ((64, 64), 1, "128B"), ((32, 32), 1, "64B"), ((16, 16), 1, "32B"),
    ((128, 64), 0, "128B"), ((32, 64), 0, "64B")])
def test_wgmma_shared_layouts(shape, contiguous, mode):
    """The staging layout keeps 16-byte runs of the contiguous dim together (cp.async
    chunks), is a bijection, and wgmma reads it as b: N-major when N is contiguous."""
    L = mma.wgmma_shared_layout(shape, contiguous)
    assert L.shape == shape and L.is_bijective()
    runs = (L.offsets() if contiguous == 1 else L.offsets().T).reshape(-1, 8)
    assert (runs[:, 0] % 8 == 0).all() and (np.diff(runs, axis=1) == 1).all()
    k, n = shape
    form = mma.wgmma_operand(L, 1, min(n, 256))
    assert form is not None and form.mode == mode and form.mn_major == (contiguous == 1)
    assert len(form.starts) == k // 16 * (n // min(n, 256))


def test_wgmma_descriptor_strides():
    """128B swizzle: K-major b steps 32 bytes along K inside a 128-byte row; N-major b has
    8 k-rows of 128 bytes per 1024-byte group (SBO) and 64 columns per atom (LBO: the next
    64 columns, one atom column of all K rows later)."""
    k_major = mma.wgmma_operand(mma.wgmma_shared_layout((128, 64), 0), 1, 64)
    assert (k_major.lbo, k_major.sbo) == (16, 1024)
    assert [k_major.starts[(0, s)] for s in range(8)] == [0, 16, 32, 48, 4096, 4112, 4128,
                                                          4144]
    n_major = mma.wgmma_operand(mma.wgmma_shared_layout((64, 128), 1), 1, 128)
    assert (n_major.lbo, n_major.sbo) == (64 * 64 * 2, 1024)
    assert [n_major.starts[(0, s)] for s in range(4)] == [0, 1024, 2048, 3072]
    # A row-major tile without the swizzle is not a layout wgmma reads.
    assert mma.wgmma_operand(row_major(64, 128), 1, 128) is None
