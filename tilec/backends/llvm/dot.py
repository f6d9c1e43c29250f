"""`dot`: on matrix instructions when the layouts say so, else FMAs.

Matrix instructions: when a, b and the accumulator are laid out as a matrix instruction's
fragments (`tilec.ir.mma.match`, which reads the layouts with `divide`; layout_assignment
chooses such layouts, contract rule 6), each thread already holds its fragments, so the dot
is, for each step of `mma.schedule` (k outermost), one `Target.mma` on the fragment slots:

    acc[slot c] = mma(a[slot a], b[slot b], acc[slot c])

(a fragment slot s is locals s*F .. s*F + F - 1, F the fragment's local size). f32 inputs
with precision "tf32" are rounded to tf32 first (nearest even, as `semantics` does).

FMA fallback: a (MxK) and b (KxN) are staged row-major in the shared scratch area; after a barrier each
thread runs a loop over k, accumulating its own accumulator elements:

    acc[m, n] += a[m, k] * b[k, n]      for each local element (m, n) of the thread

Floats multiply-add in f32 (f64 for f64 accumulators) and round into the accumulator's
dtype at the end; `precision = "tf32"` first rounds f32 inputs to tf32 (e8m10, nearest even,
as `semantics` does). Integers multiply-add in the accumulator's width (wrapping, as the
int64 reference does modulo 2**bits).
"""
from __future__ import annotations

from llvmlite import ir

from tilec.backends.llvm import casts
from tilec.backends.llvm.lower import Lowering, lowers, tile_layout
from tilec.backends.llvm.staging import StagedOperand
from tilec.backends.llvm.shared import (SharedTile, container_bits, element_pointer,
                                        from_container, linear_offsets, row_major_strides,
                                        smem_type, store_register_tile, store_vectors)
from tilec.backends.llvm.values import I32, I64, coord, i32
from tilec.ir import dtypes as dt
from tilec.ir import mma
from tilec.ir.core import Operation
from tilec.ir.dtypes import DType
from tilec.ir.shared_layout import SharedLayout, contiguous_vector
from tilec.ir.types import REGISTER, SHARED, TileType, dtype_of


def _compute_dtype(acc: DType) -> DType:
    if acc.is_float:
        return dt.float64 if acc.bits > 32 else dt.float32
    return acc


def _to_compute(lw: Lowering, x: ir.Value, src: DType, dst: DType) -> ir.Value:
    if src == dst:
        return x
    if src.is_int and dst.is_int:  # widen with the source's signedness
        t = ir.IntType(dst.bits)
        if x.type.width == dst.bits:
            return x
        if x.type.width > dst.bits:
            return lw.b.trunc(x, t)
        return lw.b.sext(x, t) if src.kind == "int" else lw.b.zext(x, t)
    return casts.cast(lw.b, x, src, dst, lw.target)


def round_tf32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """f32 -> the nearest tf32 value (ties to even), kept in f32; inf and NaN unchanged."""
    bits = b.bitcast(x, I32)
    lsb = b.and_(b.lshr(bits, i32(13)), i32(1))
    rounded = b.and_(b.add(bits, b.add(i32(0xFFF), lsb)), i32(~0x1FFF & 0xFFFFFFFF))
    special = b.icmp_unsigned("==", b.and_(bits, i32(0x7F800000)), i32(0x7F800000))
    return b.bitcast(b.select(special, bits, rounded), x.type)


def _stage(lw: Lowering, base: ir.Value, t: TileType, values: list[ir.Value]) -> None:
    layout = tile_layout(t)
    staging = TileType((t.numel,), t.element)
    offsets = linear_offsets(lw.b, lw.index(layout), row_major_strides(t.shape),
                             layout.local_size)
    store_register_tile(lw, base, staging, values, offsets)


def _mma_dot(lw: Lowering, op: Operation) -> list | None:
    a_t, b_t, c_t = op.a.type, op.b.type, op.acc.type
    found = mma.match(lw.target.arch, tile_layout(a_t), tile_layout(b_t), tile_layout(c_t),
                      dtype_of(a_t), dtype_of(c_t), op.precision)
    if found is None:
        return None
    instr, steps = found
    a_in, b_in, acc = lw.get(op.a), lw.get(op.b), list(lw.get(op.acc))
    staged = [x for x in (a_in, b_in) if isinstance(x, StagedOperand) and x.in_scratch]
    if staged:
        lw.target.barrier(lw.b)  # after the stores of staging.convert

    def fragment(operand, slot: int, size: int) -> list[ir.Value]:
        if isinstance(operand, StagedOperand):
            values = [operand.value(lw, slot * size + i) for i in range(size)]
        else:
            values = operand[slot * size:(slot + 1) * size]
        if instr.precision == "tf32":
            values = [round_tf32(lw.b, x) for x in values]
        return values
    na, nb, nc = instr.a.local_size, instr.b.local_size, instr.c.local_size
    for st in steps:
        acc[st.c * nc:(st.c + 1) * nc] = lw.target.mma(
            lw.b, instr, fragment(a_in, st.a, na), fragment(b_in, st.b, nb),
            acc[st.c * nc:(st.c + 1) * nc])
    if staged:
        lw.target.barrier(lw.b)  # the scratch area may be reused right after
    return [acc]


# -- wgmma (sm_90a) ---------------------------------------------------------------------------
_DESCRIPTOR_MODE = {"128B": 1, "64B": 2, "32B": 3}   # bits 62-63 of the matrix descriptor


def _pack_pairs(b: ir.IRBuilder, pair: list[ir.Value]) -> ir.Value:
    """Two 16-bit elements in one i32, the first in the low half (wgmma's A registers)."""
    vec: ir.Value = ir.Constant(ir.VectorType(pair[0].type, 2), ir.Undefined)
    for i, v in enumerate(pair):
        vec = b.insert_element(vec, v, i32(i))
    return b.bitcast(vec, I32)


def _staging_layout(t: TileType, n: int) -> tuple[SharedLayout, int] | None:
    """The Hopper layout to stage a register b in, N or K contiguous, and the locals a
    store writes: of those wgmma reads in instructions `n` wide, the one where each thread's
    registers make the longest runs (16 bytes: one st.shared.v4; dequantized weights run
    along K). None when neither is one wgmma reads."""
    reg = tile_layout(t)
    widest = 128 // container_bits(t.element)
    found = [(min(contiguous_vector(reg, s), widest), s)
             for s in (mma.wgmma_shared_layout(t.shape, d) for d in (1, 0))
             if mma.wgmma_operand(s, 1, n) is not None]
    if not found:
        return None
    vector, layout = max(found, key=lambda x: x[0])
    return layout, vector


def _staged_tile(lw: Lowering, t: TileType, values: list, layout: SharedLayout,
                 vector: int) -> SharedTile:
    """A register b stored into the scratch area in `layout`, `vector` locals a store."""
    tile = SharedTile(lw.smem.scratch(lw.b, layout.size * 2), layout, (), t.element)
    store_vectors(lw, tile.base, layout, t, values, tile_layout(t), vector)
    return tile


def _inner(tile: SharedTile) -> SharedLayout:
    n = len(tile.prefix)
    return SharedLayout(tile.layout.modes[n:], tile.layout.strides[n:], tile.layout.swizzles)


class _Descriptors:
    """The matrix descriptors of one shared operand: per (block along M/N, k step) the
    descriptor of the tile's base plus that block's start (`mma.WgmmaOperand`)."""

    def __init__(self, lw: Lowering, tile: SharedTile, form: mma.WgmmaOperand):
        b = lw.b
        self.lw, self.form = lw, form
        address = b.ptrtoint(tile.base, I32)
        for c, st in zip(tile.prefix, tile.layout.strides[:len(tile.prefix)]):
            address = b.add(address, b.mul(c, i32(st[0] * 2)))
        fixed = (((form.lbo >> 4) & 0x3FFF) << 16 | ((form.sbo >> 4) & 0x3FFF) << 32
                 | _DESCRIPTOR_MODE[form.mode] << 62)
        field = b.zext(b.and_(b.lshr(address, i32(4)), i32(0x3FFF)), I64)
        self.base = b.or_(field, ir.Constant(I64, fixed))

    def __call__(self, block: int, step: int) -> ir.Value:
        start = self.form.starts[(block, step)] * 2 >> 4
        return self.lw.b.add(self.base, ir.Constant(I64, start)) if start else self.base


def _wgmma_dot(lw: Lowering, op: Operation) -> list | None:
    """The dot on wgmma when layout assignment gave it the warpgroup layouts: a from
    registers (its layout is `plan.a`), b from shared memory (a pipeline stage, or staged
    here), one fence before the products and one wait after them."""
    a_t, b_t, c_t = op.a.type, op.b.type, op.acc.type
    operand = dtype_of(a_t)
    plan = mma.wgmma_plan(lw.target.arch, a_t.shape, b_t.shape, operand, dtype_of(c_t),
                          op.precision, lw.num_warps, op.warps_n)
    if plan is None or tile_layout(c_t) != plan.c or a_t.space != REGISTER \
            or tile_layout(a_t) != plan.a:
        return None
    b = lw.b
    staged = b_t.space != SHARED
    # A register b of 8 columns (the decode template's at 16 weight rows a warp) stays on
    # mma.sync, whose warp layouts these are: it ran 1.7x faster there (quant_gemm-notes.md,
    # session 12), and only a K-major layout would hold it.
    staging = _staging_layout(b_t, plan.n) if staged and plan.n >= 16 else None
    if staged and staging is None:
        return None
    if staged:
        b_tile = _staged_tile(lw, b_t, lw.get(op.b), *staging)
        lw.target.fence_async_shared(b)
        lw.target.barrier(b)
    else:
        b_tile = lw.get(op.b)
    form = mma.wgmma_operand(_inner(b_tile), 1, plan.n)
    if form is None:
        raise op.error(f"internal error: b's shared layout {_inner(b_tile)} is not one wgmma "
                       "reads")
    descriptor = _Descriptors(lw, b_tile, form)
    values = lw.get(op.a)
    a_regs = [_pack_pairs(b, values[g:g + 2]) for g in range(0, len(values), 2)]
    acc = list(lw.get(op.acc))
    fenced = lw.target.wgmma_fence(b, acc + a_regs)
    acc, a_regs = fenced[:len(acc)], fenced[len(acc):]
    nd, rk = plan.n // 2, a_t.shape[1] // 16
    for kk in range(rk):
        for i in range(plan.rm):
            a_in = a_regs[(i * rk + kk) * 4:(i * rk + kk + 1) * 4]  # local(rm, rk) * A
            for j in range(plan.rn):
                blk = (i * plan.rn + j) * nd
                acc[blk:blk + nd] = lw.target.wgmma(b, plan.n, operand.name, a_in,
                                                    descriptor(j, kk), acc[blk:blk + nd],
                                                    form.mn_major)
    acc = lw.target.wgmma_wait(b, acc)
    if staged:
        lw.target.barrier(b)  # the scratch area may be reused right after
    return [acc]


@lowers("dot")
def _dot(lw: Lowering, op: Operation) -> list:
    on_wgmma = _wgmma_dot(lw, op) if mma.has_wgmma(lw.target.arch) else None
    if on_wgmma is not None:
        return on_wgmma
    on_mma = _mma_dot(lw, op)
    if on_mma is not None:
        return on_mma
    b = lw.b
    a_t, b_t, c_t = op.a.type, op.b.type, op.acc.type
    (m, k), (_, n) = a_t.shape[-2:], b_t.shape[-2:]
    batch = a_t.rank - 2   # a batched dot: products p of a[p] and b[p], staged one after another
    d_in, d_acc = dtype_of(a_t), dtype_of(c_t)
    d_cmp = _compute_dtype(d_acc)
    in_bytes = container_bits(a_t.element) // 8
    a_bytes = -(-a_t.numel * in_bytes // 16) * 16
    base = lw.smem.scratch(b, a_bytes + b_t.numel * in_bytes)
    a_base = base
    b_base = b.gep(base, [i32(a_bytes)], source_etype=ir.IntType(8))
    _stage(lw, a_base, a_t, lw.get(op.a))
    _stage(lw, b_base, b_t, lw.get(op.b))
    lw.target.barrier(b)

    layout = tile_layout(c_t)
    index = lw.index(layout)
    acc0 = [_to_compute(lw, x, d_acc, d_cmp) for x in lw.get(op.acc)]
    local = index.local_part
    # Each accumulator register's row of a and column of b, keyed with its product p (a
    # batched dot): a's element (p, row, kk) sits at m_of[key] + kk, b's (p, kk, col) at
    # n_of[key] + kk * n.
    row_key = [tuple(int(x) for x in local[l, :batch + 1]) for l in range(layout.local_size)]
    col_key = [tuple(int(x) for x in local[l, :batch]) + (int(local[l, batch + 1]),)
               for l in range(layout.local_size)]

    def offset(l: int, dims: tuple[int, ...], sizes: tuple[int, ...]) -> ir.Value:
        at = i32(0)
        for d, size in zip(dims, sizes):
            at = b.add(b.mul(at, i32(size)), coord(b, index, l, d))
        return at
    product = tuple(range(batch))
    first_row: dict[tuple, int] = {}
    first_col: dict[tuple, int] = {}
    for l in range(layout.local_size):
        first_row.setdefault(row_key[l], l)
        first_col.setdefault(col_key[l], l)
    m_of = {key: b.mul(offset(l, product + (batch,), c_t.shape[:batch + 1]), i32(k))
            for key, l in first_row.items()}
    n_of = {key: b.add(b.mul(offset(l, product, c_t.shape[:batch]), i32(k * n)),
                       coord(b, index, l, batch + 1)) for key, l in first_col.items()}
    et = smem_type(a_t.element, lw.llvm_type)
    reg = lw.llvm_type(a_t.element)

    pre = b.block
    header, body, done = lw.block("dot.header"), lw.block("dot.body"), lw.block("dot.end")
    b.branch(header)
    b.position_at_end(header)
    kk = b.phi(I32)
    kk.add_incoming(i32(0), pre)
    accs = []
    for x in acc0:
        phi = b.phi(x.type)
        phi.add_incoming(x, pre)
        accs.append(phi)
    b.cbranch(b.icmp_signed("<", kk, i32(k)), body, done)
    b.position_at_end(body)

    def operand(base_ptr, offset):
        raw = from_container(b, b.load(element_pointer(b, base_ptr, et, offset), typ=et), reg)
        value = _to_compute(lw, raw, d_in, d_cmp if d_cmp.is_float else d_acc)
        if op.precision == "tf32" and d_in == dt.float32:
            value = round_tf32(b, value)
        return value
    a_vals = {r: operand(a_base, b.add(mv, kk)) for r, mv in m_of.items()}
    b_vals = {c: operand(b_base, b.add(b.mul(kk, i32(n)), nv)) for c, nv in n_of.items()}
    nxt = []
    for l, acc in enumerate(accs):
        x, y = a_vals[row_key[l]], b_vals[col_key[l]]
        if d_cmp.is_float:
            fma = lw.module.globals.get(f"llvm.fma.{'f64' if d_cmp.bits == 64 else 'f32'}")
            if fma is None:
                fma = ir.Function(lw.module, ir.FunctionType(acc.type, [acc.type] * 3),
                                  f"llvm.fma.{'f64' if d_cmp.bits == 64 else 'f32'}")
            nxt.append(b.call(fma, [x, y, acc]))
        else:
            nxt.append(b.add(acc, b.mul(x, y)))
    latch = b.block
    kk.add_incoming(b.add(kk, i32(1)), latch)
    for phi, v in zip(accs, nxt):
        phi.add_incoming(v, latch)
    b.branch(header)
    b.position_at_end(done)
    lw.target.barrier(b)
    return [[_to_compute(lw, x, d_cmp, d_acc) if d_cmp != d_acc else x for x in accs]]
