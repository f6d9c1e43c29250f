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
from tilec.backends.llvm.shared import (container_bits, element_pointer, from_container,
                                        linear_offsets, row_major_strides, smem_type,
                                        store_register_tile)
from tilec.backends.llvm.values import I32, coord, i32
from tilec.ir import dtypes as dt
from tilec.ir import mma
from tilec.ir.core import Operation
from tilec.ir.dtypes import DType
from tilec.ir.types import TileType, dtype_of


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


@lowers("dot")
def _dot(lw: Lowering, op: Operation) -> list:
    on_mma = _mma_dot(lw, op)
    if on_mma is not None:
        return on_mma
    b = lw.b
    a_t, b_t, c_t = op.a.type, op.b.type, op.acc.type
    (m, k), (_, n) = a_t.shape, b_t.shape
    d_in, d_acc = dtype_of(a_t), dtype_of(c_t)
    d_cmp = _compute_dtype(d_acc)
    in_bytes = container_bits(a_t.element) // 8
    a_bytes = -(-m * k * in_bytes // 16) * 16
    base = lw.smem.scratch(b, a_bytes + k * n * in_bytes)
    a_base = base
    b_base = b.gep(base, [i32(a_bytes)], source_etype=ir.IntType(8))
    _stage(lw, a_base, a_t, lw.get(op.a))
    _stage(lw, b_base, b_t, lw.get(op.b))
    lw.target.barrier(b)

    layout = tile_layout(c_t)
    index = lw.index(layout)
    acc0 = [_to_compute(lw, x, d_acc, d_cmp) for x in lw.get(op.acc)]
    local = index.local_part
    rows = sorted({int(local[l, 0]) for l in range(layout.local_size)})
    cols = sorted({int(local[l, 1]) for l in range(layout.local_size)})
    first_with_row = {r: next(l for l in range(layout.local_size) if int(local[l, 0]) == r)
                      for r in rows}
    first_with_col = {c: next(l for l in range(layout.local_size) if int(local[l, 1]) == c)
                      for c in cols}
    m_of = {r: coord(b, index, l, 0) for r, l in first_with_row.items()}
    n_of = {c: coord(b, index, l, 1) for c, l in first_with_col.items()}
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
    a_vals = {r: operand(a_base, b.add(b.mul(mv, i32(k)), kk)) for r, mv in m_of.items()}
    b_vals = {c: operand(b_base, b.add(b.mul(kk, i32(n)), nv)) for c, nv in n_of.items()}
    nxt = []
    for l, acc in enumerate(accs):
        x, y = a_vals[int(local[l, 0])], b_vals[int(local[l, 1])]
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
