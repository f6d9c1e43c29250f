"""Register fragments of matrix instructions, written in the layout algebra.

Each function returns the `RegisterLayout` of one operand over the threads of one instruction
(a warp of 32 for NVIDIA mma/ldmatrix, a warpgroup of 128 for wgmma, a wavefront of 64 for AMD
MFMA); the shape is the instruction's tile, indexed [row][col] as in the vendor's table (B is
[k][n]). The local index is the element index within the thread's registers, low to high (a0,
a1, ... in PTX; register then half-register on AMD). tests/ir/test_fragments.py checks each one
against the vendor's formulas.
"""
from __future__ import annotations

from tilec.errors import LayoutError
from tilec.ir.layout import RegisterLayout, column_local, column_spatial, local, spatial

# -- NVIDIA mma.sync.m16n8k16, f16/bf16 operands, f32 (or f16) accumulators ---------------------
# PTX ISA 9.7.14.5.8 "Matrix Fragments for mma.m16n8k16 with floating point type". In all three
# the lanes form an 8x4 grid: groupID = lane >> 2 picks the row, threadID_in_group = lane % 4
# the pair of columns; the rest of the local index walks 8x8 blocks.


def mma_m16n8k16_a() -> RegisterLayout:
    """A, 16x16: a0..a7; a[i] at row groupID + 8*(i//2 % 2), col 2*tig + i%2 + 8*(i//4)."""
    return column_local(2, 2) * spatial(8, 4) * local(1, 2)


def mma_m16n8k16_b() -> RegisterLayout:
    """B, 16x8 [k][n]: b0..b3; b[i] at row 2*tig + i%2 + 8*(i//2), col groupID."""
    return local(2, 1) * column_spatial(4, 8) * local(2, 1)


def mma_m16n8k16_c() -> RegisterLayout:
    """C/D, 16x8: c0..c3; c[i] at row groupID + 8*(i//2), col 2*tig + i%2."""
    return local(2, 1) * spatial(8, 4) * local(1, 2)


def mma_m16n8_c() -> RegisterLayout:
    """C/D of every m16n8 shape (k8, k16, k32; f32 or s32 accumulators): the same 16x8
    pattern as `mma_m16n8k16_c` (PTX ISA 9.7.14.5.x, the C/D tables of each shape)."""
    return mma_m16n8k16_c()


# -- NVIDIA mma.sync.m16n8k32, 8-bit operands (.s8/.u8 -> .s32; .e4m3/.e5m2 -> .f32) ----------
# PTX ISA 9.7.14.5.10 "Matrix Fragments for mma.m16n8k32": each 32-bit register holds four
# consecutive k; the pattern is the m16n8k16 one with 4-element instead of 2-element runs
# (also CUTLASS SM80_16x8x32_S32S8S8S32_TN, SM89_16x8x32_F32E4M3E4M3F32_TN).


def mma_m16n8k32_a() -> RegisterLayout:
    """A, 16x32: a0..a15; a[i] at row groupID + 8*(i//4 % 2), col 4*tig + i%4 + 16*(i//8)."""
    return column_local(2, 2) * spatial(8, 4) * local(1, 4)


def mma_m16n8k32_b() -> RegisterLayout:
    """B, 32x8 [k][n]: b0..b7; b[i] at row 4*tig + i%4 + 16*(i//4), col groupID."""
    return local(2, 1) * column_spatial(4, 8) * local(4, 1)


# -- NVIDIA mma.sync.m16n8k8 with .tf32 operands, f32 accumulators -----------------------------
# PTX ISA 9.7.14.5.7 "Matrix Fragments for mma.m16n8k8", .tf32: one element per register.


def mma_m16n8k8_tf32_a() -> RegisterLayout:
    """A, 16x8: a0..a3; row groupID (+8 for a1, a3), col tig (+4 for a2, a3)."""
    return column_local(2, 2) * spatial(8, 4)


def mma_m16n8k8_tf32_b() -> RegisterLayout:
    """B, 8x8 [k][n]: b0, b1; row tig (+4 for b1), col groupID."""
    return local(2, 1) * column_spatial(4, 8)


# -- NVIDIA ldmatrix ----------------------------------------------------------------------------
# PTX ISA 9.7.14.5.15 "Warp-level matrix load instruction: ldmatrix", m8n8 .b16: four
# consecutive threads load one 16-byte row, so lane l receives row l//4, columns 2*(l%4) and
# 2*(l%4)+1 of each matrix, in one 32-bit register per matrix (matrix j in register j).
# Lanes 8j..8j+7 give the addresses of the eight 16-byte rows of matrix j.


def ldmatrix(num: int = 4, trans: bool = False, elem_bits: int = 16) -> RegisterLayout:
    """`ldmatrix.sync.aligned.m8n8.x{num}{.trans}.b16`: `num` 8x8 matrices stacked along the
    rows (matrix j is rows 8j..8j+7, provided by the addresses of lanes 8j..8j+7); local index
    2*j + half. With .trans lane l receives column l//4, rows 2*(l%4) and 2*(l%4)+1.

    `elem_bits` reads the same 16-byte rows as elements of another width (the instruction
    moves bits): 8-bit elements make each matrix 8x16 with four per register, 32-bit ones
    8x4 with one. `.trans` swaps 16-bit halves, so it exists only for 16-bit elements."""
    if num not in (1, 2, 4):
        raise LayoutError(f"ldmatrix loads 1, 2 or 4 matrices, not {num}")
    if elem_bits not in (8, 16, 32) or (trans and elem_bits != 16):
        raise LayoutError(f"ldmatrix{'.trans' if trans else ''} does not load {elem_bits}-bit "
                          "elements", hint="8, 16 or 32 bits; .trans only 16")
    if trans:
        per_matrix = column_spatial(4, 8) * local(2, 1)
    else:
        per_matrix = spatial(8, 4) * local(1, 32 // elem_bits)
    return local(num, 1) * per_matrix


# -- NVIDIA wgmma (sm_90a) ----------------------------------------------------------------------


def wgmma_m64nNk16_d(n: int) -> RegisterLayout:
    """Accumulator D of `wgmma.mma_async.m64nNk16` (f32), 64xN over a warpgroup of 128 threads.

    PTX ISA 9.7.15.5.1.1.1, Figure "WGMMA .m64nNk16 register fragment layout for accumulator
    matrix D": warp w of the warpgroup owns rows 16w..16w+15 in the mma.m16n8 C pattern,
    repeated every 8 columns: d[i] at row 16w + groupID + 8*(i//2 % 2),
    col 8*(i//4) + 2*tig + i%2 (also CUTLASS CLayout_64xN in mma_traits_sm90_gmma.hpp).
    """
    if n % 8 or not 8 <= n <= 256:
        raise LayoutError(f"wgmma N must be a multiple of 8 in 8..256, not {n}")
    return spatial(4, 1) * column_local(2, n // 8) * spatial(8, 4) * local(1, 2)


def wgmma_m64nNk16_a() -> RegisterLayout:
    """A of `wgmma.mma_async.m64nNk16` from registers (f16/bf16), 64x16 over a warpgroup.

    PTX ISA 9.7.15.5.1.1.1, Figure "WGMMA .m64nNk16 register fragment layout for matrix A":
    warp w of the warpgroup holds rows 16w..16w+15 in the `mma.m16n8k16` A pattern, a0..a7.
    """
    return spatial(4, 1) * mma_m16n8k16_a()


# -- AMD MFMA (CDNA2/CDNA3, wave64) -------------------------------------------------------------
# AMD Matrix Instruction Calculator (github.com/ROCm/amd_matrix_instruction_calculator),
# `--architecture cdna3 --matrix-layout`, and the CDNA3 ISA guide section 7.1 "Matrix fused
# multiply-add". A is MxK, B is KxN, C/D is MxN; f16 inputs pack 2 per register, the local
# index runs over registers then halves.


def mfma_32x32x8f16_a() -> RegisterLayout:
    """`v_mfma_f32_32x32x8f16` A, 32x8: lane l holds A[l%32][4*(l//32) + v], v in 0..3."""
    return column_spatial(32, 2) * local(1, 4)


def mfma_32x32x8f16_b() -> RegisterLayout:
    """B, 8x32: lane l holds B[4*(l//32) + v][l%32], v in 0..3."""
    return spatial(2, 32) * local(4, 1)


def mfma_32x32x8f16_c() -> RegisterLayout:
    """C/D, 32x32 f32: register v of lane l is C[8*(v//4) + 4*(l//32) + v%4][l%32]."""
    return local(4, 1) * spatial(2, 32) * local(4, 1)


def mfma_32x32x16_8bit_a() -> RegisterLayout:
    """`v_mfma_i32_32x32x16_i8`, `v_mfma_f32_32x32x16_fp8_fp8` / `_bf8_bf8` (gfx942+) A, 32x16:
    eight 8-bit values in a register pair, lane l holds A[l%32][8*(l//32) + v], v in 0..7."""
    return column_spatial(32, 2) * local(1, 8)


def mfma_32x32x16_8bit_b() -> RegisterLayout:
    """B, 16x32: lane l holds B[8*(l//32) + v][l%32], v in 0..7. C/D: `mfma_32x32x8f16_c`
    (every 32x32 MFMA with 16 accumulator registers, f32 or i32)."""
    return spatial(2, 32) * local(8, 1)


def mfma_16x16x16f16_a() -> RegisterLayout:
    """`v_mfma_f32_16x16x16f16` A, 16x16: lane l holds A[l%16][4*(l//16) + v], v in 0..3."""
    return column_spatial(16, 4) * local(1, 4)


def mfma_16x16x16f16_b() -> RegisterLayout:
    """B, 16x16: lane l holds B[4*(l//16) + v][l%16], v in 0..3."""
    return spatial(4, 16) * local(4, 1)


def mfma_16x16x16f16_c() -> RegisterLayout:
    """C/D, 16x16 f32: register v of lane l is C[4*(l//16) + v][l%16]."""
    return spatial(4, 16) * local(4, 1)


def mfma_16x16x32_8bit_a() -> RegisterLayout:
    """`v_mfma_i32_16x16x32_i8`, `v_mfma_f32_16x16x32_fp8_fp8` / `_bf8_bf8` (gfx942+) A, 16x32:
    lane l holds A[l%16][8*(l//16) + v], v in 0..7 (a register pair). C/D: as 16x16x16."""
    return column_spatial(16, 4) * local(1, 8)


def mfma_16x16x32_8bit_b() -> RegisterLayout:
    """B, 32x16: lane l holds B[8*(l//16) + v][l%16], v in 0..7."""
    return spatial(4, 16) * local(8, 1)
