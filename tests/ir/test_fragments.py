"""Each matrix-instruction fragment against the vendor's own table, written out by hand here."""
from __future__ import annotations

import pytest

from tilec.ir import fragments as F
from tilec.ir.layout import local, parse_layout


def check(layout, shape, threads, locals_, formula):
    """`formula(thread, local) -> (row, col)` is the vendor's table."""
    assert layout.shape == shape
    assert layout.num_threads == threads and layout.local_size == locals_
    assert layout.is_bijective()
    for t in range(threads):
        for i in range(locals_):
            assert layout.map(t, i) == formula(t, i), (t, i)
    assert parse_layout(str(layout)) == layout


# PTX ISA 9.7.14.5.8 "Matrix Fragments for mma.m16n8k16 with floating point type":
#   groupID = %laneid >> 2, threadID_in_group = %laneid % 4
def group(lane):
    return lane >> 2


def tig(lane):
    return lane % 4


def test_mma_m16n8k16_a():
    # row = groupID for ai where 0 <= i < 2 || 4 <= i < 6, groupID + 8 otherwise
    # col = (threadID_in_group * 2) + (i & 0x1) for ai where i < 4, ... + 8 for i >= 4
    def table(lane, i):
        row = group(lane) if (0 <= i < 2 or 4 <= i < 6) else group(lane) + 8
        col = tig(lane) * 2 + (i & 1) + (8 if i >= 4 else 0)
        return row, col

    check(F.mma_m16n8k16_a(), (16, 16), 32, 8, table)


def test_mma_m16n8k16_b():
    # row = (threadID_in_group * 2) + (i & 0x1) for bi where i < 2, ... + 8 for i >= 2
    # col = groupID
    def table(lane, i):
        return tig(lane) * 2 + (i & 1) + (8 if i >= 2 else 0), group(lane)

    check(F.mma_m16n8k16_b(), (16, 8), 32, 4, table)


def test_mma_m16n8k16_c():
    # row = groupID for ci where i < 2, groupID + 8 for i >= 2
    # col = (threadID_in_group * 2) + (i & 0x1)
    def table(lane, i):
        return group(lane) + (8 if i >= 2 else 0), tig(lane) * 2 + (i & 1)

    check(F.mma_m16n8k16_c(), (16, 8), 32, 4, table)


def test_mma_a_is_ldmatrix_x4_in_the_usual_order():
    # The usual A load: ldmatrix.x4 with matrices (rows 0-7, cols 0-7), (rows 8-15, cols 0-7),
    # (rows 0-7, cols 8-15), (rows 8-15, cols 8-15) gives registers a0a1, a2a3, a4a5, a6a7.
    x4 = F.ldmatrix(4)
    a = F.mma_m16n8k16_a()
    for lane in range(32):
        for i in range(8):
            row, col = x4.map(lane, i)  # row = 8 * matrix + row within it
            matrix, r = divmod(row, 8)
            assert a.map(lane, i) == (r + 8 * (matrix % 2), col + 8 * (matrix // 2))


@pytest.mark.parametrize("num", [1, 2, 4])
def test_ldmatrix(num):
    # PTX ISA 9.7.14.5.15 ldmatrix, Figure "ldmatrix fragment layout for one 8x8 Matrix with
    # 16-bit elements": a group of four consecutive threads loads a row; thread 0 gets the first
    # fragment (2 elements); matrix j lands in destination register j.
    def table(lane, i):
        matrix, half = divmod(i, 2)
        return 8 * matrix + lane // 4, (lane % 4) * 2 + half

    check(F.ldmatrix(num), (8 * num, 8), 32, 2 * num, table)


def test_ldmatrix_trans():
    # With .trans each matrix is delivered transposed: lane l gets column l//4, rows 2*(l%4)+h.
    def table(lane, i):
        matrix, half = divmod(i, 2)
        return 8 * matrix + (lane % 4) * 2 + half, lane // 4

    check(F.ldmatrix(4, trans=True), (32, 8), 32, 8, table)


@pytest.mark.parametrize("n", [8, 16, 64, 256])
def test_wgmma_m64nNk16_d(n):
    # PTX ISA 9.7.15.5.1.1.1, Figure "WGMMA .m64nNk16 register fragment layout for accumulator
    # matrix D": rows 16*warp + groupID (+8 for d2,d3 of each group of four), columns
    # 8*(i//4) + 2*threadID_in_group + (i & 1). CUTLASS writes the same as
    # CLayout_64xN = ((4,8,4),(2,2,N/8)) : ((128,1,16),(64,8,512)) over a column-major 64xN tile.
    def table(thread, i):
        warp, lane = divmod(thread, 32)
        return 16 * warp + group(lane) + 8 * ((i // 2) % 2), 8 * (i // 4) + 2 * tig(lane) + (i & 1)

    check(F.wgmma_m64nNk16_d(n), (64, n), 128, n // 2, table)

    def cutlass(thread, i):
        t0, t1, t2 = thread % 4, (thread // 4) % 8, thread // 32
        v0, v1, v2 = i % 2, (i // 2) % 2, i // 4
        index = 128 * t0 + t1 + 16 * t2 + 64 * v0 + 8 * v1 + 512 * v2
        return index % 64, index // 64

    check(F.wgmma_m64nNk16_d(n), (64, n), 128, n // 2, cutlass)


def test_wgmma_m64nNk16_a():
    # PTX ISA 9.7.15.5.1.1.1, Figure "WGMMA .m64nNk16 register fragment layout for matrix A":
    # rows 16*warp + groupID (+8 for a2, a3, a6, a7), columns 2*threadID_in_group + (i & 1)
    # (+8 for a4..a7).
    def table(thread, i):
        warp, lane = divmod(thread, 32)
        row = 16 * warp + group(lane) + (8 if i in (2, 3, 6, 7) else 0)
        return row, 2 * tig(lane) + (i & 1) + (8 if i >= 4 else 0)

    check(F.wgmma_m64nNk16_a(), (64, 16), 128, 8, table)


# AMD Matrix Instruction Calculator, `matrix_calculator.py --architecture cdna3 --instruction
# <op> --matrix-layout --{A,B,C}-matrix`: a row per lane, a column per register (and 16-bit
# half for f16 inputs). The formulas restate its tables; the literal rows are copied from them.


def test_mfma_32x32x8f16():
    check(F.mfma_32x32x8f16_a(), (32, 8), 64, 4, lambda l, v: (l % 32, 4 * (l // 32) + v))
    check(F.mfma_32x32x8f16_b(), (8, 32), 64, 4, lambda l, v: (4 * (l // 32) + v, l % 32))
    check(F.mfma_32x32x8f16_c(), (32, 32), 64, 16,
          lambda l, v: (8 * (v // 4) + 4 * (l // 32) + v % 4, l % 32))
    # lane 33: A[1][4],A[1][5],A[1][6],A[1][7] / B[4][1],B[5][1],B[6][1],B[7][1] /
    # C[4][1],C[5][1],C[6][1],C[7][1],C[12][1],C[13][1],C[14][1],C[15][1],C[20][1],...,C[31][1]
    assert [F.mfma_32x32x8f16_a().map(33, v) for v in range(4)] == [(1, 4), (1, 5), (1, 6), (1, 7)]
    assert [F.mfma_32x32x8f16_b().map(33, v) for v in range(4)] == [(4, 1), (5, 1), (6, 1), (7, 1)]
    rows = [4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31]
    assert [F.mfma_32x32x8f16_c().map(33, v) for v in range(16)] == [(r, 1) for r in rows]
    # calculator --matrix-entry: v5{40} = C[13][8]
    assert F.mfma_32x32x8f16_c().map(40, 5) == (13, 8)


def test_mfma_32x32x16_8bit():
    # v_mfma_i32_32x32x16_i8 / v_mfma_f32_32x32x16_fp8_fp8 (CDNA3): eight 8-bit values per
    # lane in a register pair, A[i][k] in lane i + 32 * (k // 8), byte k % 8.
    check(F.mfma_32x32x16_8bit_a(), (32, 16), 64, 8, lambda l, v: (l % 32, 8 * (l // 32) + v))
    check(F.mfma_32x32x16_8bit_b(), (16, 32), 64, 8, lambda l, v: (8 * (l // 32) + v, l % 32))
    assert [F.mfma_32x32x16_8bit_a().map(33, v) for v in range(8)] == [(1, c) for c in range(8, 16)]


def test_mfma_16x16x32_8bit():
    # v_mfma_i32_16x16x32_i8 / v_mfma_f32_16x16x32_fp8_fp8 (CDNA3): A[i][k] in lane
    # i + 16 * (k // 8), byte k % 8 of the register pair.
    check(F.mfma_16x16x32_8bit_a(), (16, 32), 64, 8, lambda l, v: (l % 16, 8 * (l // 16) + v))
    check(F.mfma_16x16x32_8bit_b(), (32, 16), 64, 8, lambda l, v: (8 * (l // 16) + v, l % 16))


def test_mfma_16x16x16f16():
    check(F.mfma_16x16x16f16_a(), (16, 16), 64, 4, lambda l, v: (l % 16, 4 * (l // 16) + v))
    check(F.mfma_16x16x16f16_b(), (16, 16), 64, 4, lambda l, v: (4 * (l // 16) + v, l % 16))
    check(F.mfma_16x16x16f16_c(), (16, 16), 64, 4, lambda l, v: (4 * (l // 16) + v, l % 16))
    # lane 50: A[2][12..15], B[12..15][2], C[12..15][2]
    assert [F.mfma_16x16x16f16_a().map(50, v) for v in range(4)] == [(2, c) for c in range(12, 16)]
    assert [F.mfma_16x16x16f16_b().map(50, v) for v in range(4)] == [(r, 2) for r in range(12, 16)]
    assert [F.mfma_16x16x16f16_c().map(50, v) for v in range(4)] == [(r, 2) for r in range(12, 16)]


def test_fragments_print_as_products():
    assert str(F.mma_m16n8k16_a()) == "column_local(2,2)*spatial(8,4)*local(1,2)"
    assert str(F.mma_m16n8k16_c()) == "local(2,1)*spatial(8,4)*local(1,2)"
    assert str(F.mfma_32x32x8f16_c()) == "local(4,1)*spatial(2,32)*local(4,1)"


def test_mma_c_divides_a_warp_tile():
    # A 64x32 warp tile built from 4x4 mma C tiles: the instruction layout is its inner factor.
    tile = local(4, 4) * F.mma_m16n8k16_c()
    assert tile.divide(F.mma_m16n8k16_c()) is not None
    assert tile / F.mma_m16n8k16_c() * F.mma_m16n8k16_c() == tile
    assert tile.divide(F.mma_m16n8k16_b()) is None


# PTX ISA 9.7.14.5.10 "Matrix Fragments for mma.m16n8k32" (.s8/.u8 and .e4m3/.e5m2 alike):
#   A: row = groupID for ai where 0 <= i < 4 || 8 <= i < 12, groupID + 8 otherwise
#      col = (threadID_in_group * 4) + (i & 0x3) for ai where i < 8, ... + 16 for i >= 8
#   B: row = (threadID_in_group * 4) + (i & 0x3) for bi where i < 4, ... + 16 for i >= 4
#      col = groupID
#   C: as m16n8k16 (row = groupID (+8 for i >= 2), col = threadID_in_group * 2 + (i & 0x1))
def test_mma_m16n8k32():
    def a(lane, i):
        row = group(lane) if (0 <= i < 4 or 8 <= i < 12) else group(lane) + 8
        return row, tig(lane) * 4 + (i & 3) + (16 if i >= 8 else 0)

    def b(lane, i):
        return tig(lane) * 4 + (i & 3) + (16 if i >= 4 else 0), group(lane)

    def c(lane, i):
        return group(lane) + (8 if i >= 2 else 0), tig(lane) * 2 + (i & 1)

    check(F.mma_m16n8k32_a(), (16, 32), 32, 16, a)
    check(F.mma_m16n8k32_b(), (32, 8), 32, 8, b)
    check(F.mma_m16n8_c(), (16, 8), 32, 4, c)
    # CUTLASS SM80_16x8x32_S32S8S8S32_TN ALayout ((4,8),(4,2,2)):((64,1),(16,8,256)) over a
    # column-major 16x32 tile: the same function.
    def cutlass_a(t, v):
        index = 64 * (t % 4) + (t // 4) + 16 * (v % 4) + 8 * ((v // 4) % 2) + 256 * (v // 8)
        return index % 16, index // 16

    check(F.mma_m16n8k32_a(), (16, 32), 32, 16, cutlass_a)


# PTX ISA 9.7.14.5.7 "Matrix Fragments for mma.m16n8k8", .tf32:
#   A: row = groupID for a0 and a2, groupID + 8 for a1 and a3
#      col = threadID_in_group for a0 and a1, threadID_in_group + 4 for a2 and a3
#   B: row = threadID_in_group for b0, threadID_in_group + 4 for b1; col = groupID
def test_mma_m16n8k8_tf32():
    def a(lane, i):
        return group(lane) + (8 if i in (1, 3) else 0), tig(lane) + (4 if i >= 2 else 0)

    def b(lane, i):
        return tig(lane) + 4 * i, group(lane)

    check(F.mma_m16n8k8_tf32_a(), (16, 8), 32, 4, a)
    check(F.mma_m16n8k8_tf32_b(), (8, 8), 32, 2, b)


@pytest.mark.parametrize("bits", [8, 32])
def test_ldmatrix_other_widths(bits):
    # ldmatrix moves 16-byte rows: lane l gets row l//4, bytes 4*(l%4) .. 4*(l%4)+3 of each
    # matrix, i.e. 32/bits elements.
    per = 32 // bits

    def table(lane, i):
        matrix, e = divmod(i, per)
        return 8 * matrix + lane // 4, (lane % 4) * per + e

    check(F.ldmatrix(2, elem_bits=bits), (16, 4 * per), 32, 2 * per, table)
    with pytest.raises(Exception):
        F.ldmatrix(4, trans=True, elem_bits=bits)
