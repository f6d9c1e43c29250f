"""Matrix instructions as layouts: which instruction a `dot` can use on a target, how the
block's warps tile the MxN accumulator, and the operand layouts that follow, all in the
algebra of `tilec.ir.layout` with the fragments of `tilec.ir.fragments`.

For an instruction with fragments (FA, FB, FC) of shape (m x k, k x n, m x n) and a warp
grid wm x wn (thread = warp * W + lane, W the target's warp size: 32 on NVIDIA, 64 on AMD;
warp = i * wn + j), a dot of MxK by KxN gives

    acc  spatial(wm, wn)              * local(rm, rn) * FC     rm = M / (m wm), rn = N / (n wn)
    a    spatial(wm, 1) * replicate(wn) * local(rm, rk) * FA     rk = K / k
    b    replicate(wm) * spatial(1, wn) * local(rk, rn) * FB

so warp (i, j) holds a rm x rn block of accumulator fragments, the rows of a it needs (the
wn warps of a row of the grid hold copies) and the columns of b. `schedule` reads any three
layouts back: it divides each by its fragment and checks that, for every accumulator
fragment and every k step, the same local slot of every warp holds the matching a and b
fragments. The lowering asks `schedule`, not the printed form, whether a dot is an mma.

The table is keyed by the target name (`PassOptions.target`), so this layer needs nothing of
the backends; AMD's MFMA instructions (wave64) are listed beside NVIDIA's mma.
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from tilec.ir import dtypes as dt
from tilec.ir import fragments as F
from tilec.ir.dtypes import DType
from tilec.ir.layout import RegisterLayout, column_local, local, replicate, spatial
from tilec.ir.shared_layout import SharedLayout, best_swizzle, contiguous_vector, row_major

@dataclass(frozen=True)
class MatrixInstr:
    """One warp-level matrix multiply-accumulate: D (m x n) = A (m x k) @ B (k x n) + C."""

    name: str            # e.g. "mma.m16n8k16"; the target spells the instruction
    m: int
    n: int
    k: int
    operand: DType       # dtype of a and b
    acc: DType           # dtype of c and d
    precision: str       # the `dot` precision it implements ("ieee", or "tf32" for f32)
    fragments: tuple[Callable[[], RegisterLayout], ...]  # (a, b, c) constructors

    @property
    def a(self) -> RegisterLayout:
        return self.fragments[0]()

    @property
    def b(self) -> RegisterLayout:
        return self.fragments[1]()

    @property
    def c(self) -> RegisterLayout:
        return self.fragments[2]()


def _nvidia(sm: int) -> list[MatrixInstr]:
    """PTX ISA 9.7.14.5.14 "Multiply-and-Accumulate Instruction: mma": m16n8k16 for
    .f16/.bf16 and m16n8k8 for .tf32 (sm_80), m16n8k32 for .s8/.u8 (sm_80) and for
    .e4m3/.e5m2 (sm_89, PTX ISA 8.4)."""
    if sm < 80:
        return []
    k16 = (F.mma_m16n8k16_a, F.mma_m16n8k16_b, F.mma_m16n8_c)
    k32 = (F.mma_m16n8k32_a, F.mma_m16n8k32_b, F.mma_m16n8_c)
    k8 = (F.mma_m16n8k8_tf32_a, F.mma_m16n8k8_tf32_b, F.mma_m16n8_c)
    out = [
        MatrixInstr("mma.m16n8k16", 16, 8, 16, dt.float16, dt.float32, "ieee", k16),
        MatrixInstr("mma.m16n8k16", 16, 8, 16, dt.bfloat16, dt.float32, "ieee", k16),
        MatrixInstr("mma.m16n8k32", 16, 8, 32, dt.int8, dt.int32, "ieee", k32),
        MatrixInstr("mma.m16n8k32", 16, 8, 32, dt.uint8, dt.int32, "ieee", k32),
        MatrixInstr("mma.m16n8k8", 16, 8, 8, dt.float32, dt.float32, "tf32", k8),
    ]
    if sm >= 89:
        out += [MatrixInstr("mma.m16n8k32", 16, 8, 32, d, dt.float32, "ieee", k32)
                for d in (dt.float8_e4m3, dt.float8_e5m2)]
    return out


# gfx942's 8-bit floats are the FNUZ formats (bias 8 / 16, no inf; NaN is the bit pattern
# 0x80, which tilec's dtypes read as -0.0: the one value where the two disagree). gfx950's are
# OCP's E4M3 / E5M2, tilec's float8_e4m3 / float8_e5m2 (CDNA4 ISA; LLVM AMDGPUUsage).
FLOAT8_E4M3_FNUZ = dt.float_(4, 3, bias=8, nan="none")
FLOAT8_E5M2_FNUZ = dt.float_(5, 2, bias=16, nan="none")


def _amd(arch: str) -> list[MatrixInstr]:
    """CDNA MFMA through LLVM's `llvm.amdgcn.mfma.*` intrinsics (IntrinsicsAMDGPU.td), checked
    against LLVM 22's instruction selection per arch: 32x32x8 and 16x16x16 for f16 and bf16
    (`_1k`) on gfx90a, gfx942 and gfx950; 8-bit integers as 32x32x8 / 16x16x16 i8 on gfx90a,
    32x32x16 / 16x16x32 from gfx942 (the narrower forms are gone there); 8-bit floats
    32x32x16 / 16x16x32 fp8/bf8 from gfx942 (see FLOAT8_*_FNUZ). Per dtype the 32x32 shape
    comes first (fewer operand reads per product); 16x16 serves tiles it does not divide."""
    k8 = (F.mfma_32x32x8f16_a, F.mfma_32x32x8f16_b, F.mfma_32x32x8f16_c)
    k16 = (F.mfma_32x32x16_8bit_a, F.mfma_32x32x16_8bit_b, F.mfma_32x32x8f16_c)
    s16 = (F.mfma_16x16x16f16_a, F.mfma_16x16x16f16_b, F.mfma_16x16x16f16_c)
    s32 = (F.mfma_16x16x32_8bit_a, F.mfma_16x16x32_8bit_b, F.mfma_16x16x16f16_c)
    f32, i32 = dt.float32, dt.int32
    out = [MatrixInstr("mfma.f32.32x32x8f16", 32, 32, 8, dt.float16, f32, "ieee", k8),
           MatrixInstr("mfma.f32.16x16x16f16", 16, 16, 16, dt.float16, f32, "ieee", s16),
           MatrixInstr("mfma.f32.32x32x8bf16.1k", 32, 32, 8, dt.bfloat16, f32, "ieee", k8),
           MatrixInstr("mfma.f32.16x16x16bf16.1k", 16, 16, 16, dt.bfloat16, f32, "ieee", s16)]
    if arch == "gfx90a":
        return out + [MatrixInstr("mfma.i32.32x32x8i8", 32, 32, 8, dt.int8, i32, "ieee", k8),
                      MatrixInstr("mfma.i32.16x16x16i8", 16, 16, 16, dt.int8, i32, "ieee", s16)]
    e4m3, e5m2 = ((FLOAT8_E4M3_FNUZ, FLOAT8_E5M2_FNUZ) if arch == "gfx942"
                  else (dt.float8_e4m3, dt.float8_e5m2))
    return out + [
        MatrixInstr("mfma.i32.32x32x16.i8", 32, 32, 16, dt.int8, i32, "ieee", k16),
        MatrixInstr("mfma.i32.16x16x32.i8", 16, 16, 32, dt.int8, i32, "ieee", s32),
        MatrixInstr("mfma.f32.32x32x16.fp8.fp8", 32, 32, 16, e4m3, f32, "ieee", k16),
        MatrixInstr("mfma.f32.16x16x32.fp8.fp8", 16, 16, 32, e4m3, f32, "ieee", s32),
        MatrixInstr("mfma.f32.32x32x16.bf8.bf8", 32, 32, 16, e5m2, f32, "ieee", k16),
        MatrixInstr("mfma.f32.16x16x32.bf8.bf8", 16, 16, 32, e5m2, f32, "ieee", s32)]


AMD_ARCHS = ("gfx90a", "gfx942", "gfx950")


def instructions(target: str | None) -> list[MatrixInstr]:
    """The matrix instructions of a target ("sm_80", "sm_90a", "gfx942", ...); [] when
    unknown."""
    if target in AMD_ARCHS:
        return _amd(target)
    m = re.fullmatch(r"sm_(\d+)a?", target or "")
    return _nvidia(int(m.group(1))) if m else []


def candidates(target: str | None, operand: DType, acc: DType,
               precision: str = "ieee") -> list[MatrixInstr]:
    """The instructions for a dot of `operand` inputs into `acc` on `target`, preferred first.
    Precision matters only for f32 inputs ("tf32" uses tensor cores, "ieee" does not)."""
    return [instr for instr in instructions(target)
            if instr.operand == operand and instr.acc == acc
            and (operand != dt.float32 or instr.precision == precision)]


def select(target: str | None, operand: DType, acc: DType,
           precision: str = "ieee") -> MatrixInstr | None:
    """The preferred instruction for such a dot (`candidates`), if any."""
    found = candidates(target, operand, acc, precision)
    return found[0] if found else None


def warp_grid(m: int, n: int, instr: MatrixInstr, num_warps: int,
              warps_n: int = 0) -> tuple[int, int] | None:
    """wm x wn = num_warps warps over the M x N tile, each warp tile a whole number of
    instruction tiles; the squarest warp tile wins (it loads the fewest operand elements per
    product), then the one with more warps along M; `warps_n` > 0 fixes wn. None when no
    grid divides the tile."""
    best: tuple[tuple[float, int], tuple[int, int]] | None = None
    for wm in range(1, num_warps + 1):
        if num_warps % wm:
            continue
        wn = num_warps // wm
        if warps_n and wn != warps_n:
            continue
        if m % (instr.m * wm) or n % (instr.n * wn):
            continue
        score = (abs(math.log2((m / wm) / (n / wn))), -wm)
        if best is None or score < best[0]:
            best = (score, (wm, wn))
    return None if best is None else best[1]


@dataclass(frozen=True)
class DotLayouts:
    """The layouts `layout_assignment` gives a dot that runs on `instr`."""

    instr: MatrixInstr
    warps: tuple[int, int]
    a: RegisterLayout
    b: RegisterLayout
    c: RegisterLayout


def dot_layouts(shape_a: tuple[int, ...], shape_b: tuple[int, ...], instr: MatrixInstr,
                num_warps: int, warps_n: int = 0) -> DotLayouts | None:
    """The operand and accumulator layouts of the module doc, or None when the tile is not
    a whole number of instruction tiles per warp (the dot then keeps the FMA path: tiles
    are not padded). A batched dot (BxMxK by BxKxN) gives its B products to groups of
    warps first, `spatial(wb) * local(B / wb)` over the batch around the 2-D layouts of the
    num_warps / wb warps of a group (wb: the most warps that divide both)."""
    if len(shape_a) == 3:
        wb = math.gcd(shape_a[0], num_warps)
        inner = dot_layouts(shape_a[1:], shape_b[1:], instr, num_warps // wb, warps_n)
        if inner is None:
            return None
        outer = spatial(wb, 1, 1) * local(shape_a[0] // wb, 1, 1)
        a, b, c = (outer * x.expand_dims(0) for x in (inner.a, inner.b, inner.c))
        return DotLayouts(instr, inner.warps, a, b, c)
    (m, k), (_, n) = shape_a, shape_b
    if k % instr.k:
        return None
    grid = warp_grid(m, n, instr, num_warps, warps_n)
    if grid is None:
        return None
    wm, wn = grid
    rm, rn, rk = m // (instr.m * wm), n // (instr.n * wn), k // instr.k
    a = spatial(wm, 1) * replicate(wn) * local(rm, rk) * instr.a
    b = replicate(wm) * spatial(1, wn) * local(rk, rn) * instr.b
    c = spatial(wm, wn) * local(rm, rn) * instr.c
    return DotLayouts(instr, grid, a, b, c)


@dataclass(frozen=True)
class Step:
    """One instruction of a dot: fragment slots (quotient local indices) of c, a and b."""

    c: int
    a: int
    b: int


def schedule(a: RegisterLayout, b: RegisterLayout, c: RegisterLayout,
             instr: MatrixInstr) -> list[Step] | None:
    """The instructions computing `c += a @ b` fragment by fragment, k steps outermost; None
    when the layouts are not the instruction's fragments arranged consistently over warps.
    A batched dot's layouts (rank 3) divide by the fragments with a batch dim of 1: each
    accumulator fragment then also meets a and b fragments of its own product."""
    batch = a.rank - 2   # 0, or 1 for a batched dot
    fa, fb, fc = (f.expand_dims(0) if batch else f for f in (instr.a, instr.b, instr.c))
    qa, qb, qc = a.divide(fa), b.divide(fb), c.divide(fc)
    if qa is None or qb is None or qc is None:
        return None
    if not qa.num_threads == qb.num_threads == qc.num_threads:
        return None
    (tm, tk), (tk2, tn) = qa.shape[batch:], qb.shape[batch:]
    if tk != tk2 or qc.shape[batch:] != (tm, tn) or not \
            qa.shape[:batch] == qb.shape[:batch] == qc.shape[:batch]:
        return None
    ca, cb, cc = qa.coords(), qb.coords(), qc.coords()   # [warps, slots, rank]
    slot_a = {tuple(int(x) for x in ca[0, s]): s for s in range(qa.local_size)}
    slot_b = {tuple(int(x) for x in cb[0, s]): s for s in range(qb.local_size)}
    steps = []
    for kk in range(tk):
        for s in range(qc.local_size):
            *p, i, j = (int(x) for x in cc[0, s])
            sa, sb = slot_a.get((*p, i, kk)), slot_b.get((*p, kk, j))
            if sa is None or sb is None:
                return None
            # Every warp's slot sa holds a's fragment (its product and row of c, kk): the
            # same code serves all warps.
            if not (np.array_equal(ca[:, sa, :batch + 1], cc[:, s, :batch + 1])
                    and np.all(ca[:, sa, batch + 1] == kk)
                    and np.array_equal(cb[:, sb, :batch], cc[:, s, :batch])
                    and np.array_equal(cb[:, sb, batch + 1], cc[:, s, batch + 1])
                    and np.all(cb[:, sb, batch] == kk)):
                return None
            steps.append(Step(s, sa, sb))
    return steps


def match(target: str | None, a: RegisterLayout, b: RegisterLayout, c: RegisterLayout,
          operand: DType, acc: DType, precision: str) -> tuple[MatrixInstr, list[Step]] | None:
    """The instruction and steps when the layouts of a dot are those of a matrix
    instruction of `target` (see `schedule`), else None (the FMA path)."""
    for instr in candidates(target, operand, acc, precision):
        steps = schedule(a, b, c, instr)
        if steps is not None:
            return instr, steps
    return None


# -- warpgroup matrix instructions: wgmma (sm_90a) --------------------------------------------
# PTX ISA 9.7.15 "Asynchronous Warpgroup Level Matrix Multiply-Accumulate": four warps compute
# D (64 x N, N = 8..256 by 8) += A (64 x 16) @ B (16 x N) together; B is read from shared
# memory through a matrix descriptor, A from shared memory too or from registers
# (`fragments.wgmma_m64nNk16_a`). With `wg` warpgroups along M (all of them: `warps_n` 1,
# which keeps rows within a warp as flash attention wants, and descriptors need no per-
# warpgroup column offset), a dot of MxK by KxN gives
#
#    acc  spatial(wg, 1)              * local(rm, rn) * D(n)     rm = M / (64 wg), rn = N / n
#    a    spatial(wg, 1)              * local(rm, rk) * A        rk = K / 16   (from registers)
#
# and b stays where its producer put it: the pipeline pass streams a loaded b into a shared
# buffer in a Hopper layout, the lowering stages any other b there.

WGMMA_OPERANDS = (dt.float16, dt.bfloat16)
WGMMA_MAX_N = 256


def has_wgmma(target: str | None) -> bool:
    """wgmma exists on sm_90a only (the `a` features: PTX ISA "Target ISA notes")."""
    return target == "sm_90a"


@dataclass(frozen=True)
class WgmmaPlan:
    """How a dot runs on wgmma: `groups` warpgroups along M, each `rm` instructions of
    64 x `n` tall and `rn` wide per k step of 16; the layouts of a (from registers) and of
    the accumulator."""

    operand: DType
    groups: int
    rm: int
    rn: int
    n: int
    a: RegisterLayout
    c: RegisterLayout

    @property
    def k(self) -> int:
        return 16


def wgmma_plan(target: str | None, shape_a: tuple[int, int], shape_b: tuple[int, int],
               operand: DType, acc: DType, precision: str, num_warps: int,
               warps_n: int = 0) -> WgmmaPlan | None:
    """The wgmma plan of a dot (see above), or None when the target has no wgmma, the dtypes
    are not f16/bf16 into f32, the warps are not whole warpgroups, `warps_n` asks for warps
    along N, or the tile does not split into whole instructions."""
    if not has_wgmma(target) or operand not in WGMMA_OPERANDS or acc != dt.float32:
        return None
    if precision != "ieee" or num_warps % 4 or warps_n > 1 or len(shape_a) != 2:
        return None   # batched dots run on mma.sync
    (m, k), (_, n) = shape_a, shape_b
    groups = num_warps // 4
    if k % 16 or m % (64 * groups) or n % 8:
        return None
    width = max(w for w in range(8, min(n, WGMMA_MAX_N) + 1, 8) if n % w == 0)
    rm, rn, rk = m // (64 * groups), n // width, k // 16
    a = spatial(groups, 1) * local(rm, rk) * F.wgmma_m64nNk16_a()
    c = spatial(groups, 1) * local(rm, rn) * F.wgmma_m64nNk16_d(width)
    return WgmmaPlan(operand, groups, rm, rn, width, a, c)


@dataclass(frozen=True)
class WgmmaOperand:
    """A wgmma operand tile in shared memory as the matrix descriptor sees it (PTX ISA
    9.7.15.5.1.2 "Shared Memory Matrix Layout" and "Matrix Descriptor Format").

    The canonical layouts, in elements of the unswizzled offset (T elements per swizzle row:
    the swizzle's bytes / element bytes; `mn` the operand's M or N coordinate):
        K-major   start + (mn % 8) * T + (mn // 8) * SBO + k                  (k < 16 <= T)
        MN-major  start + mn % T + (mn // T) * LBO + (k % 8) * T + (k // 8) * SBO
    then the swizzle of `mode` on the byte address (so the allocation is aligned to the
    swizzle's period). `starts[(i, s)]` is the element offset of instruction block i along
    M/N and k step s, before the swizzle; the descriptor holds it and LBO, SBO in bytes."""

    mode: str               # "32B", "64B" or "128B"
    mn_major: bool          # the descriptor's transpose bit
    lbo: int                # bytes (K-major: unused, 1 as CUTLASS writes it)
    sbo: int                # bytes
    starts: dict[tuple[int, int], int]


def wgmma_operand(layout: SharedLayout, mn_dim: int, block: int,
                  elem_bits: int = 16) -> WgmmaOperand | None:
    """How wgmma reads a 2-D shared tile (`layout`: a's (M, K) with `mn_dim` 0, b's (K, N)
    with `mn_dim` 1) in instructions `block` wide along M/N and 16 deep along K, or None
    when the layout is not one of the canonical forms for every instruction."""
    from tilec.ir.shared_layout import HOPPER_SWIZZLE_BYTES, swizzle_mode
    if layout.rank != 2 or len(layout.swizzles) != 1:
        return None
    shape = layout.shape
    mn_total, k_total = shape[mn_dim], shape[1 - mn_dim]
    if mn_total % block or k_total % 16:
        return None
    mode = next((m for m in ("32B", "64B", "128B")
                 if swizzle_mode(m, elem_bits) == layout.swizzles[0]), None)
    if mode is None:
        return None
    row = HOPPER_SWIZZLE_BYTES[mode] * 8 // elem_bits      # T
    plain = SharedLayout(layout.modes, layout.strides)
    grid = plain.offsets()
    lin = grid if mn_dim == 0 else grid.T                  # [mn, k]
    mn, k = np.meshgrid(np.arange(block), np.arange(16), indexing="ij")
    elem_bytes = elem_bits // 8
    for mn_major in (False, True):
        if mn_major:
            if block % row and block > row:
                continue
            sbo = int(lin[0, 8] - lin[0, 0])
            lbo = int(lin[row, 0] - lin[0, 0]) if block > row else 0
            canon = mn % row + (mn // row) * lbo + (k % 8) * row + (k // 8) * sbo
        else:
            lbo = 0
            sbo = int(lin[8, 0] - lin[0, 0]) if block > 8 else 0
            canon = (mn % 8) * row + (mn // 8) * sbo + k
        starts = {}
        for i in range(mn_total // block):
            for st in range(k_total // 16):
                window = lin[i * block:(i + 1) * block, st * 16:(st + 1) * 16]
                start = int(window[0, 0])
                if not np.array_equal(window - start, canon):
                    break
                starts[(i, st)] = start
            else:
                continue
            break
        else:
            lbo_bytes = lbo * elem_bytes if mn_major else 16
            if min(lbo_bytes, sbo * elem_bytes) < 0 or max(lbo_bytes, sbo * elem_bytes) >= 1 << 18:
                continue
            return WgmmaOperand(mode, mn_major, lbo_bytes, sbo * elem_bytes, starts)
    return None


def wgmma_shared_layout(shape: tuple[int, int], contiguous_dim: int,
                        elem_bits: int = 16) -> SharedLayout:
    """The Hopper layout (`hopper_layout`, widest swizzle the contiguous extent allows) of a
    2-D tile whose `contiguous_dim` is contiguous in the tensor it is copied from, indexed
    like the tile."""
    from tilec.ir.shared_layout import HOPPER_SWIZZLE_BYTES, hopper_layout
    extent = shape[contiguous_dim]
    mode = next(m for m in ("128B", "64B", "32B", "none")
                if extent % (HOPPER_SWIZZLE_BYTES[m] * 8 // elem_bits) == 0)
    if contiguous_dim == 1:
        return hopper_layout(shape, elem_bits, mode)
    return hopper_layout((shape[1], shape[0]), elem_bits, mode).permute((1, 0))


# -- loading operand fragments from shared memory with ldmatrix --------------------------------


@dataclass(frozen=True)
class LdmatrixPlan:
    """How to convert a register tile of layout `src` into `dst` with ldmatrix: store it to
    `shared` (vectors of `vector` elements), then one `ldmatrix.x{num}{.trans}` per local of
    `address`, a layout of the tile's 16-byte matrix rows (shape rows x cols / `row_elems`):
    it says which row each lane addresses. Register j of load g holds dst locals
    (g * num + j) * per_register ...; ldmatrix(1) is dst's innermost factor."""

    shared: Any
    address: RegisterLayout
    num: int
    trans: bool
    row_elems: int
    per_register: int
    vector: int


def _matrix_groups(num: int) -> list[RegisterLayout]:
    """How `num` consecutive ldmatrix slots may sit in the tile (units of one matrix)."""
    if num == 4:
        return [local(4, 1), column_local(2, 2), local(2, 2), local(1, 4)]
    if num == 2:
        return [local(2, 1), local(1, 2)]
    return [local(1, 1)]


@functools.lru_cache(maxsize=256)
def ldmatrix_plan(src: RegisterLayout, dst: RegisterLayout,
                  elem_bits: int) -> LdmatrixPlan | None:
    """The ldmatrix route from `src` to `dst` (2-D, 8/16/32-bit elements), or None when
    ldmatrix(1) (or its .trans form, 16-bit only) does not divide `dst`.

    The shared tile is row-major (matrix rows are 16-byte runs of its last dim) with the XOR
    swizzle for which both the vector stores from `src` and the ldmatrix reads (eight lanes
    a phase, one 16-byte row each) have the fewest bank conflicts (`best_swizzle`)."""
    if dst.rank != 2 or elem_bits not in (8, 16, 32) or src.shape != dst.shape:
        return None
    rows, cols = dst.shape
    for trans in (False, True) if elem_bits == 16 else (False,):
        frag = F.ldmatrix(1, trans, elem_bits)
        q = dst.divide(frag)
        if q is None:
            continue
        row_elems = frag.shape[1]
        for num in (4, 2, 1):
            for group in _matrix_groups(num):
                q4 = q.divide(group)
                if q4 is None:
                    continue
                # Lane 8j + r addresses row r of matrix j of the group: the group's slots
                # become thread digits, in the same order as its local index.
                lanes = RegisterLayout(group.modes, group.local, ())
                address = q4 * lanes * spatial(8, 1)
                if address.num_threads != dst.num_threads:
                    continue
                reads = address * local(1, row_elems)
                base = row_major(rows, cols)
                v = min(contiguous_vector(src, base), max(1, 128 // elem_bits))
                shared = best_swizzle(base, [(src, v), (reads, row_elems)], elem_bits)
                return LdmatrixPlan(shared, address, num, trans, row_elems, frag.local_size,
                                    min(contiguous_vector(src, shared), v))
    return None
