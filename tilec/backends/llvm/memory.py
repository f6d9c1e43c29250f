"""Global memory: tensor views, pointer tiles, atomics.

Each access is planned per thread: the layout's local elements are cut into *groups* of v
consecutive local elements that sit at consecutive addresses (the last dim, stride 1) and
start at a multiple of v (`vector_groups`). With v > 1 the thread takes a fast path when,
at run time, every group is entirely active (mask / in bounds), contiguous and aligned to
its size: one plain vector access of up to 16 bytes per group. Otherwise (and for v = 1)
each element is accessed alone, predicated on its mask. Only replica 0 of replicated
elements stores; every replica loads.

Packed dtypes (widths that are not whole power-of-two bytes: i3, u5, f6e3m2, f4e2m1, ...)
live in memory as bit streams with byte-aligned rows and strides in bits (abi.py). Loads
read the bytes an element touches and extract its bits; stores clear and set the element's
bits with 32-bit atomic and/or, since neighbouring elements of other threads share bytes.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from llvmlite import ir

from tilec.backends.llvm import dtypes as ltypes
from tilec.backends.llvm.casts import call_intrinsic
from tilec.backends.llvm.elementwise import memory_type
from tilec.backends.abi import is_packed
from tilec.backends.target import MemoryHints
from tilec.backends.llvm.lower import Lowering, lowers, tile_layout, truth
from tilec.backends.llvm.shared import (load_register_tile, scratch_bytes, scratch_offsets,
                                        store_register_tile)
from tilec.backends.llvm.values import (I1, I8, I32, I64, TensorValue, coord, i32, i64,
                                        int_const)
from tilec.ir.core import Operation
from tilec.ir.dtypes import DType
from tilec.ir.layout import RegisterLayout
from tilec.ir.types import PointerType, TileType, dtype_of, element_of

MAX_VECTOR_BYTES = 16  # ld/st .v4.b32: PTX ISA 9.7.9.8 (ld), vectors of up to 128 bits


# -- element <-> bits -----------------------------------------------------------------------
def _bits_of(element) -> int:
    return 64 if isinstance(element, PointerType) else (8 if element.is_bool else element.bits)


def to_bits(b: ir.IRBuilder, v: ir.Value, element) -> ir.Value:
    """An element's memory image as an integer (bool -> i8, pointer -> i64, floats bitcast)."""
    if isinstance(element, PointerType):
        return b.ptrtoint(v, I64)
    if element.is_bool:
        return b.zext(v, I8)
    if isinstance(v.type, ir.IntType):
        return v
    return b.bitcast(v, ir.IntType(element.bits))


def from_bits(b: ir.IRBuilder, v: ir.Value, element) -> ir.Value:
    if isinstance(element, PointerType):
        return b.inttoptr(v, ir.PointerType(addrspace=1))
    if element.is_bool:
        return b.icmp_unsigned("!=", v, ir.Constant(v.type, 0))
    t = ltypes.llvm_type(element)
    return v if isinstance(t, ir.IntType) else b.bitcast(v, t)


# -- masked accesses (targets may provide predicated instructions) --------------------------
class _VolatileLoad(ir.LoadInstr):
    """LLVM's `load volatile` (llvmlite's builder has no flag for it)."""

    def descr(self, buf: list[str]) -> None:
        super().descr(buf)
        buf[-1] = buf[-1].replace("load ", "load volatile ", 1)


def plain_load(lw: Lowering, ptr: ir.Value, t: ir.Type, align: int,
               hints: MemoryHints | None = None) -> ir.Value:
    """An unconditional load of `t`; hints as LLVM IR has them (`volatile`,
    `!nontemporal`) where the target has no instruction of its own (`predicated_load`)."""
    b = lw.b
    if hints is None:
        return b.load(ptr, typ=t, align=align)
    hook = getattr(lw.target, "predicated_load", None)
    if hook is not None:
        return hook(b, ptr, t, None, None, hints)
    if hints.volatile or hints.cache == "cv":  # .cv: fetch again, as volatile does
        ld = _VolatileLoad(b.block, ptr, typ=t)
        ld.align = align
        b._insert(ld)
        return ld
    ld = b.load(ptr, typ=t, align=align)
    _mark_streaming(lw, ld, hints)
    return ld


def plain_store(lw: Lowering, value: ir.Value, ptr: ir.Value, align: int,
                hints: MemoryHints | None = None) -> None:
    b = lw.b
    if hints is None:
        b.store(value, ptr, align=align)
        return
    hook = getattr(lw.target, "predicated_store", None)
    if hook is not None:
        hook(b, ptr, value, None, hints)
        return
    st = b.store(value, ptr, align=align)
    _mark_streaming(lw, st, hints)


def _mark_streaming(lw: Lowering, instr: ir.Instruction, hints: MemoryHints) -> None:
    if hints.streaming:
        instr.set_metadata("nontemporal", lw.module.add_metadata([i32(1)]))


def masked_load(lw: Lowering, ptr: ir.Value, t: ir.IntType, pred: ir.Value,
                other: ir.Value, hints: MemoryHints | None = None) -> ir.Value:
    """Load an integer of type `t` at `ptr` if `pred`, else give `other`."""
    if isinstance(pred, ir.Constant) and pred.constant == 1:
        return plain_load(lw, ptr, t, t.width // 8, hints)
    hook = getattr(lw.target, "predicated_load", None)
    if hook is not None:
        return hook(lw.b, ptr, t, pred, other, hints)
    b = lw.b
    start, then_bb, done = b.block, lw.block("load.then"), lw.block("load.end")
    b.cbranch(pred, then_bb, done)
    b.position_at_end(then_bb)
    loaded = plain_load(lw, ptr, t, t.width // 8, hints)
    b.branch(done)
    b.position_at_end(done)
    phi = b.phi(t)
    phi.add_incoming(other, start)
    phi.add_incoming(loaded, then_bb)
    return phi


def masked_store(lw: Lowering, ptr: ir.Value, value: ir.Value, pred: ir.Value,
                 hints: MemoryHints | None = None) -> None:
    """Store integer `value` at `ptr` if `pred`."""
    if isinstance(pred, ir.Constant) and pred.constant == 1:
        plain_store(lw, value, ptr, value.type.width // 8, hints)
        return
    hook = getattr(lw.target, "predicated_store", None)
    if hook is not None:
        hook(lw.b, ptr, value, pred, hints)
        return
    b = lw.b
    then_bb, done = lw.block("store.then"), lw.block("store.end")
    b.cbranch(pred, then_bb, done)
    b.position_at_end(then_bb)
    plain_store(lw, value, ptr, value.type.width // 8, hints)
    b.branch(done)
    b.position_at_end(done)


# -- planning ---------------------------------------------------------------------------------
def _contiguous_groups(layout: RegisterLayout, max_bits: int, elem_bits: int):
    """Each v (2, 4, 8, ... while v * elem_bits <= max_bits) such that every thread's local
    elements k*v .. k*v+v-1 are consecutive along the last dim and start at a last-dim
    coordinate that is a multiple of v; stops at the first v that is not."""
    coords = layout.coords()
    v = 2
    while v <= layout.local_size and layout.local_size % v == 0 and v * elem_bits <= max_bits:
        groups = coords.reshape(coords.shape[0], -1, v, coords.shape[2])
        step = groups - groups[:, :, :1, :]
        want = np.zeros_like(step)
        want[..., -1] = np.arange(v)[None, None, :]
        if not (np.array_equal(step, want) and np.all(groups[:, :, 0, -1] % v == 0)):
            return
        yield v
        v *= 2


def vector_groups(layout: RegisterLayout, elem_bits: int) -> int:
    """The widest v (a power of two, v * elem_bits <= 128) of `_contiguous_groups`: aligned
    data then gives aligned vectors of v elements."""
    if elem_bits % 8 or layout.rank == 0:
        return 1
    return max(_contiguous_groups(layout, MAX_VECTOR_BYTES * 8, elem_bits), default=1)


def _vector_type(v: int, elem_bits: int) -> tuple[ir.Type, int]:
    """The integer vector an access of v elements uses (words of 32 bits where they fit)."""
    total = v * elem_bits
    word = 64 if elem_bits == 64 else (32 if total >= 32 else total)
    count = total // word
    t = ir.IntType(word)
    return (t if count == 1 else ir.VectorType(t, count)), total // 8


def _pack(b: ir.IRBuilder, words: list[ir.Value], vt: ir.Type) -> ir.Value:
    """Elements (iN each) -> the vector type `vt` holding them, little-endian."""
    n = len(words)
    vec = ir.VectorType(words[0].type, n)
    acc = ir.Constant(vec, None)
    for i, w in enumerate(words):
        acc = b.insert_element(acc, w, i32(i))
    return b.bitcast(acc, vt) if vt != vec else acc


def _unpack(b: ir.IRBuilder, value: ir.Value, n: int, elem_t: ir.IntType) -> list[ir.Value]:
    vec = ir.VectorType(elem_t, n)
    v = b.bitcast(value, vec) if value.type != vec else value
    return [b.extract_element(v, i32(i)) for i in range(n)]


def _aligned(b: ir.IRBuilder, ptr: ir.Value, nbytes: int) -> ir.Value:
    addr = b.ptrtoint(ptr, I64)
    return b.icmp_unsigned("==", b.and_(addr, i64(nbytes - 1)), i64(0))


def _merge(b: ir.IRBuilder, fast: list[ir.Value], fast_end: ir.Block, slow: list[ir.Value],
           slow_end: ir.Block) -> list[ir.Value]:
    """At the join of a fast and a slow path: each value from whichever path ran."""
    merged = []
    for f, s in zip(fast, slow):
        phi = b.phi(f.type)
        phi.add_incoming(f, fast_end)
        phi.add_incoming(s, slow_end)
        merged.append(phi)
    return merged


def _all(b: ir.IRBuilder, conds: Sequence[ir.Value]) -> ir.Value:
    acc: ir.Value = ir.Constant(I1, 1)
    for c in conds:
        if isinstance(c, ir.Constant) and c.constant == 1:
            continue
        acc = c if isinstance(acc, ir.Constant) else b.and_(acc, c)
    return acc


class Access:
    """One thread's accesses to a tile: element pointers and per-element predicates (given
    as lists, or as functions of the local index, computed only where each access is
    emitted, so that a large tile never holds all of them live at once), the vector width,
    and the run-time condition under which vectors are valid (`fast`; computed from the
    pointers when not given)."""

    def __init__(self, lw: Lowering, element, ptrs, preds, v: int,
                 vector_ok: ir.Value | None = None, count: int | None = None,
                 fast: ir.Value | None = None, hints: MemoryHints | None = None):
        self.lw, self.element, self.hints = lw, element, hints
        self.ptr_of = ptrs if callable(ptrs) else ptrs.__getitem__
        self.pred_of = preds if callable(preds) else preds.__getitem__
        self.count = len(ptrs) if count is None else count
        self.v = v
        self.bits = _bits_of(element)
        self.int_t = ir.IntType(self.bits)
        self.fast: ir.Value | None = fast
        if v > 1 and fast is None:
            b = lw.b
            _, nbytes = _vector_type(v, self.bits)
            conds = [] if vector_ok is None else [vector_ok]
            conds += [p for p in preds if not (isinstance(p, ir.Constant) and p.constant == 1)]
            for g in range(0, len(ptrs), v):
                conds.append(_aligned(b, ptrs[g], nbytes))
            self.fast = _all(b, conds)

    def _versioned(self, fast_fn, slow_fn) -> list[ir.Value] | None:
        """Emit `fast_fn()` under the fast condition and `slow_fn()` otherwise; merge."""
        lw, b = self.lw, self.lw.b
        if self.fast is None or self.v == 1:
            return slow_fn()
        fast_bb, slow_bb, done = lw.block("vec.fast"), lw.block("vec.slow"), lw.block("vec.end")
        b.cbranch(self.fast, fast_bb, slow_bb)
        b.position_at_end(fast_bb)
        fast_values = fast_fn()
        fast_end = b.block
        b.branch(done)
        b.position_at_end(slow_bb)
        slow_values = slow_fn()
        slow_end = b.block
        b.branch(done)
        b.position_at_end(done)
        if fast_values is None:
            return None
        return _merge(b, fast_values, fast_end, slow_values, slow_end)

    def load(self, others: list[ir.Value] | None) -> list[ir.Value]:
        b, v = self.lw.b, self.v
        zero = ir.Constant(self.int_t, 0)
        other_bits = [zero] * self.count if others is None else \
            [to_bits(b, o, self.element) for o in others]

        vt, nbytes = _vector_type(v, self.bits)

        def fast():
            return [plain_load(self.lw, self.ptr_of(g), vt, nbytes, self.hints)
                    for g in range(0, self.count, v)]

        def slow():
            return [masked_load(self.lw, self.ptr_of(i), self.int_t, self.pred_of(i), o,
                                self.hints)
                    for i, o in enumerate(other_bits)]

        def slow_vectors():
            # The paths join in the vectors' registers (one phi per 32-bit word): a join of
            # 8- or 16-bit elements would cost a byte move per element on the fast path.
            raw = slow()
            return [_pack(b, raw[g:g + v], vt) for g in range(0, self.count, v)]
        if self.fast is None or v == 1:
            raw = slow()
        else:
            raw = [x for word in self._versioned(fast, slow_vectors)
                   for x in _unpack(b, word, v, self.int_t)]
        return [from_bits(b, x, self.element) for x in raw]

    def store(self, values: list[ir.Value]) -> None:
        b, v = self.lw.b, self.v
        bits = [to_bits(b, x, self.element) for x in values]

        def fast():
            vt, nbytes = _vector_type(v, self.bits)
            for g in range(0, self.count, v):
                plain_store(self.lw, _pack(b, bits[g:g + v], vt), self.ptr_of(g), nbytes,
                            self.hints)
            return None

        def slow():
            for i, x in enumerate(bits):
                masked_store(self.lw, self.ptr_of(i), x, self.pred_of(i), self.hints)
            return []
        self._versioned(fast, slow)


# -- tensor views -------------------------------------------------------------------------------
def _view_elements(lw: Lowering, t: TensorValue, offsets: list, layout: RegisterLayout):
    """Per local element: the i32 coordinates in the tensor and the in-bounds predicate."""
    b = lw.b
    index = lw.index(layout)
    coords, inside = [], []
    for local in range(layout.local_size):
        cs, ok = [], []
        for d in range(layout.rank):
            c = b.add(offsets[d], coord(b, index, local, d))
            cs.append(c)
            ok.append(b.icmp_unsigned("<", c, t.sizes[d]))  # negative: huge unsigned
        coords.append(cs)
        inside.append(_all(b, ok))
    return coords, inside


def offsets_i32(lw: Lowering, values) -> list[ir.Value]:
    b = lw.b
    out = []
    for v in values:
        (x,) = lw.get(v)
        d = dtype_of(v.type)
        if x.type.width > 32:
            x = b.trunc(x, I32)
        elif x.type.width < 32:
            x = b.sext(x, I32) if d.kind == "int" else b.zext(x, I32)
        out.append(x)
    return out


def linear_index(b: ir.IRBuilder, coords: list[ir.Value], strides: Sequence[ir.Value]) -> ir.Value:
    total: ir.Value = i64(0)
    for c, s in zip(coords, strides):
        total = b.add(total, b.mul(b.sext(c, I64), s))
    return total


# Up to this many elements per thread, a view access computes every pointer and predicate
# up front; beyond (a 128x128 tile over 128 threads has 128), each path computes its own
# where it uses them, else they all stay live at once and spill next to a dot's accumulators.
# Vector accesses to aligned rows always take the second form: their fast path then tests
# the thread's coordinate box (O(rank) compares) and computes no per-element predicate.
_EAGER_LOCALS = 32


def _view_access(lw: Lowering, op: Operation, t: TensorValue, tile: TileType,
                 extra_pred: ir.Value | None) -> tuple[Access, list, list]:
    layout = tile_layout(tile)
    b = lw.b
    offsets = offsets_i32(lw, op.offsets)
    if is_packed(t.dtype):
        coords, inside = _view_elements(lw, t, offsets, layout)
        preds = inside if extra_pred is None else [b.and_(p, extra_pred) for p in inside]
        return None, coords, preds
    et = memory_type(t.dtype)
    index = lw.index(layout)

    def coords_of(local: int) -> list[ir.Value]:
        return [b.add(offsets[d], coord(b, index, local, d)) for d in range(layout.rank)]

    def ptr_of(local: int) -> ir.Value:
        return b.gep(t.ptr, [linear_index(b, coords_of(local), t.strides)], source_etype=et)

    def pred_of(local: int) -> ir.Value:
        ok = [b.icmp_unsigned("<", c, size)  # negative: huge unsigned
              for c, size in zip(coords_of(local), t.sizes)]
        if extra_pred is not None:
            ok.append(extra_pred)
        return _all(b, ok)
    v = vector_groups(layout, _bits_of(t.dtype))
    if layout.local_size <= _EAGER_LOCALS and not (v > 1 and t.rows_aligned):
        # Few elements: pointers and predicates up front, shared by both paths.
        ptrs = [ptr_of(i) for i in range(layout.local_size)]
        preds = [pred_of(i) for i in range(layout.local_size)]
        stride1 = fast = None
        if v > 1:
            stride1 = b.icmp_unsigned("==", t.strides[-1], i64(1))
            if extra_pred is not None:
                stride1 = b.and_(stride1, extra_pred)
            if t.rows_aligned:
                # Alignment from each group's column, whose low bits LLVM often knows.
                fast = _all(b, [stride1, *preds] + [
                    _column_aligned(b, coords_of(g)[-1], v)
                    for g in range(0, layout.local_size, v)])
        return Access(lw, t.dtype, ptrs, preds, v, stride1, fast=fast,
                      hints=MemoryHints.of(op.attrs)), None, None
    fast = None
    if v > 1:
        fast = _view_fast(lw, t, offsets, index, v, extra_pred, ptr_of(0))
    access = Access(lw, t.dtype, ptr_of, pred_of, v, count=layout.local_size, fast=fast,
                    hints=MemoryHints.of(op.attrs))
    return access, None, None


def _view_fast(lw: Lowering, t: TensorValue, offsets: list[ir.Value], index, v: int,
               extra_pred: ir.Value | None, first: ir.Value) -> ir.Value:
    """When every vector group of the thread is valid, from O(rank) facts rather than per
    element: the last dim is contiguous, the thread's whole coordinate box (thread part plus
    the smallest and largest local part, per dim) lies inside the tensor, its first group is
    aligned and every other stride keeps groups aligned (groups start at multiples of v along
    the last dim: `vector_groups`)."""
    b = lw.b
    _, nbytes = _vector_type(v, _bits_of(t.dtype))
    elem_bytes = nbytes // v
    conds = [b.icmp_unsigned("==", t.strides[-1], i64(1))]
    if extra_pred is not None:
        conds.append(extra_pred)
    local = index.local_part
    for d, (o, size) in enumerate(zip(offsets, t.sizes)):
        start = b.add(o, index.thread_part[d])
        lo = b.add(start, i32(int(local[:, d].min())))
        hi = b.add(start, i32(int(local[:, d].max())))
        conds.append(b.icmp_signed(">=", lo, i32(0)))
        conds.append(b.icmp_unsigned("<", hi, size))
        if d < len(offsets) - 1 and not t.rows_aligned:
            step = b.mul(t.strides[d], i64(elem_bytes))
            conds.append(b.icmp_unsigned("==", b.and_(step, i64(nbytes - 1)), i64(0)))
    if t.rows_aligned:
        column = b.add(b.add(offsets[-1], index.thread_part[-1]), i32(int(local[0, -1])))
        conds.append(_column_aligned(b, column, v))
    else:
        conds.append(_aligned(b, first, nbytes))
    return _all(b, conds)


def _column_aligned(b: ir.IRBuilder, column: ir.Value, v: int) -> ir.Value:
    """Whether a group of v elements starting at `column` of a row is aligned to its size,
    in a tensor whose rows start 16-byte aligned (v elements: at most 16 bytes)."""
    return b.icmp_unsigned("==", b.and_(column, i32(v - 1)), i32(0))


@lowers("load_view")
def _load_view(lw: Lowering, op: Operation) -> list:
    t: TensorValue = lw.get(op.tensor)
    tile = op.results[0].type
    if is_packed(t.dtype):
        return [packed_view_load(lw, t, offsets_i32(lw, op.offsets), tile_layout(tile),
                                 MemoryHints.of(op.attrs))]
    access, coords, preds = _view_access(lw, op, t, tile, None)
    return [access.load(None)]


@lowers("store_view")
def _store_view(lw: Lowering, op: Operation) -> list:
    t: TensorValue = lw.get(op.tensor)
    tile = op.value.type
    replica0 = lw.index(tile_layout(tile)).replica0
    access, coords, preds = _view_access(lw, op, t, tile, replica0)
    values = lw.get(op.value)
    if access is None:
        if MemoryHints.of(op.attrs) is not None:
            raise op.error(f"stores of packed {t.dtype} elements take no cache hints",
                           hint="they are 32-bit atomics, which have no cache operators")
        for cs, p, x in zip(coords, preds, values):
            _packed_store(lw, t, cs, p, x)
    else:
        access.store(values)
    return []


# -- packed (sub-byte) elements --------------------------------------------------------------------
def _bit_address(lw: Lowering, t: TensorValue, coords: list[ir.Value]) -> tuple[ir.Value, ir.Value]:
    """(byte address as i64, bit within the byte as i64) of an element of a packed tensor."""
    b = lw.b
    bit = linear_index(b, coords, t.strides)
    base = b.ptrtoint(t.ptr, I64)
    return b.add(base, b.ashr(bit, i64(3))), b.and_(bit, i64(7))


def _resize(b: ir.IRBuilder, v: ir.Value, t: ir.IntType) -> ir.Value:
    if v.type.width < t.width:
        return b.zext(v, t)
    return b.trunc(v, t) if v.type.width > t.width else v


def _packed_load(lw: Lowering, t: TensorValue, coords: list[ir.Value], pred: ir.Value,
                 hints: MemoryHints | None) -> ir.Value:
    b = lw.b
    w = t.dtype.itemsize_bits
    nbytes = (7 + w + 7) // 8
    addr, shift = _bit_address(lw, t, coords)
    wide_t = ir.IntType(8 * nbytes)
    acc: ir.Value = ir.Constant(wide_t, 0)
    for k in range(nbytes):
        # Only bytes holding some of the element's bits: later ones may lie past the row.
        needed = b.icmp_unsigned("<", i64(8 * k), b.add(shift, i64(w)))
        p = b.inttoptr(b.add(addr, i64(k)), ir.PointerType(addrspace=1))
        byte = masked_load(lw, p, I8, b.and_(pred, needed), ir.Constant(I8, 0), hints)
        acc = b.or_(acc, b.shl(b.zext(byte, wide_t), ir.Constant(wide_t, 8 * k)))
    value = b.lshr(acc, _resize(b, shift, wide_t))
    bits = b.trunc(value, ir.IntType(w))
    return from_bits(b, bits, t.dtype)


def _packed_store(lw: Lowering, t: TensorValue, coords: list[ir.Value], pred: ir.Value,
                  x: ir.Value) -> None:
    b = lw.b
    w = t.dtype.itemsize_bits
    then_bb, done = lw.block("packed.store"), lw.block("packed.end")
    b.cbranch(pred, then_bb, done)
    b.position_at_end(then_bb)
    addr, shift = _bit_address(lw, t, coords)
    word_addr = b.and_(addr, i64(~3))
    pos = b.add(b.shl(b.and_(addr, i64(3)), i64(3)), shift)  # bit position in the word
    nwords = (31 + w + 31) // 32
    wide_t = ir.IntType(32 * nwords)
    bits = b.zext(to_bits(b, x, t.dtype), wide_t)
    mask = ir.Constant(wide_t, (1 << w) - 1)
    pos_w = _resize(b, pos, wide_t)
    set_bits = b.shl(bits, pos_w)
    keep = b.xor(b.shl(mask, pos_w), int_const(wide_t, -1))
    for k in range(nwords):
        p = b.inttoptr(b.add(word_addr, i64(4 * k)), ir.PointerType(addrspace=1))
        part_keep = b.trunc(b.lshr(keep, ir.Constant(wide_t, 32 * k)), I32)
        part_set = b.trunc(b.lshr(set_bits, ir.Constant(wide_t, 32 * k)), I32)
        b.atomic_rmw("and", p, part_keep, "monotonic")
        b.atomic_rmw("or", p, part_set, "monotonic")
    b.branch(done)
    b.position_at_end(done)


MAX_PACKED_GROUP_BITS = 512  # a thread loads at most 64 bytes of packed elements at once


def packed_vector_groups(layout: RegisterLayout, elem_bits: int) -> int:
    """For a packed dtype: the widest v (a power of two) such that every thread's local
    elements k*v .. k*v+v-1 are consecutive along the last dim starting at a multiple of v,
    and a group is whole 32-bit words (v * elem_bits % 32 == 0, at most 512 bits). 1 when
    no such v exists. The layout over elements, seen as a layout over bits, then says which
    words each thread reads: group k starts at bit coordinate (k*v)*elem_bits of its row."""
    if layout.rank == 0:
        return 1
    return max((v for v in _contiguous_groups(layout, MAX_PACKED_GROUP_BITS, elem_bits)
                if v * elem_bits % 32 == 0), default=1)


def _packed_vector_bytes(v: int, elem_bits: int) -> int:
    """The access size of a group of v packed elements: the largest power of two dividing
    its byte count, at most 16 (ld.global.v4.b32)."""
    nbytes = v * elem_bits // 8
    return min(MAX_VECTOR_BYTES, nbytes & -nbytes)


def packed_view_load(lw: Lowering, t: TensorValue, offsets: list[ir.Value],
                     layout: RegisterLayout, hints: MemoryHints | None = None) -> list[ir.Value]:
    """Load a tile of packed elements. Where the layout gives each thread runs of elements
    that fill whole words (`packed_vector_groups`) and, at run time, the thread's box is in
    bounds, contiguous and aligned, each run is read as 16-byte (or the widest aligned)
    vectors and its elements are cut out of the words with shifts (a funnel shift for one
    that straddles two words); otherwise each element reads the bytes it touches."""
    b = lw.b
    w = t.dtype.itemsize_bits
    # Word reads cut sub-byte values out in registers; AMDGPU would put them in scratch.
    v = packed_vector_groups(layout, w) if lw.target.narrow_int_vectors else 1
    if v == 1:
        coords, inside = _view_elements(lw, t, offsets, layout)
        return [_packed_load(lw, t, cs, p, hints) for cs, p in zip(coords, inside)]
    access = _packed_vector_bytes(v, w)
    group_bytes = v * w // 8
    index = lw.index(layout)
    conds = [b.icmp_unsigned("==", t.strides[-1], i64(w))]
    for d, (o, size) in enumerate(zip(offsets, t.sizes)):
        start = b.add(o, index.thread_part[d])
        lo = b.add(start, i32(int(index.local_part[:, d].min())))
        hi = b.add(start, i32(int(index.local_part[:, d].max())))
        conds.append(b.icmp_signed(">=", lo, i32(0)))
        conds.append(b.icmp_unsigned("<", hi, size))
        if d < layout.rank - 1:  # other rows keep the groups aligned
            conds.append(b.icmp_unsigned("==", b.and_(t.strides[d], i64(8 * access - 1)),
                                         i64(0)))

    def coords_of(local: int) -> list[ir.Value]:
        return [b.add(offsets[d], coord(b, index, local, d)) for d in range(layout.rank)]

    first = linear_index(b, coords_of(0), t.strides)
    conds.append(b.icmp_unsigned("==", b.and_(first, i64(8 * access - 1)), i64(0)))
    base = b.ptrtoint(t.ptr, I64)
    conds.append(b.icmp_unsigned("==", b.and_(base, i64(access - 1)), i64(0)))
    fast = _all(b, conds)

    fast_bb, slow_bb, done = lw.block("packed.fast"), lw.block("packed.slow"), \
        lw.block("packed.end")
    b.cbranch(fast, fast_bb, slow_bb)
    b.position_at_end(fast_bb)
    word_t = ir.VectorType(I32, access // 4)
    hook = getattr(lw.target, "load_words", None)  # one instruction per vector, unsplit
    fast_values = []
    for g in range(0, layout.local_size, v):
        addr = b.add(base, b.ashr(linear_index(b, coords_of(g), t.strides), i64(3)))
        words: list[ir.Value] = []
        for k in range(group_bytes // access):
            p = b.inttoptr(b.add(addr, i64(k * access)), ir.PointerType(addrspace=1))
            if hook is not None:
                words += hook(b, p, access // 4, hints)
            else:
                vec = plain_load(lw, p, word_t, access, hints)
                words += [b.extract_element(vec, i32(j)) for j in range(access // 4)]
        fast_values += [_extract_bits(b, words, j * w, w, t.dtype) for j in range(v)]
    fast_end = b.block
    b.branch(done)
    b.position_at_end(slow_bb)  # per element: only here, so the fast path holds none of it
    coords, inside = _view_elements(lw, t, offsets, layout)
    slow_values = [_packed_load(lw, t, cs, p, hints) for cs, p in zip(coords, inside)]
    slow_end = b.block
    b.branch(done)
    b.position_at_end(done)
    return _merge(b, fast_values, fast_end, slow_values, slow_end)


def _extract_bits(b: ir.IRBuilder, words: list[ir.Value], bit: int, w: int,
                  dtype: DType) -> ir.Value:
    """Bits bit .. bit+w-1 of little-endian 32-bit `words`, as an element of `dtype`."""
    i, s = divmod(bit, 32)
    if s + w <= 32:
        x = b.lshr(words[i], i32(s)) if s else words[i]
    else:  # straddles two words: shf.r.wrap on NVIDIA
        x = call_intrinsic(b, "llvm.fshr.i32", I32, [words[i + 1], words[i], i32(s)])
    return from_bits(b, b.trunc(x, ir.IntType(w)), dtype)


# -- pointer tiles ----------------------------------------------------------------------------------
def _pointee(t) -> DType:
    e = element_of(t)
    return e.pointee if isinstance(e, PointerType) else e


def _contiguity(lw: Lowering, ptrs: list[ir.Value], v: int, elem_bytes: int) -> ir.Value | None:
    """Run-time check that each group's pointers are consecutive elements."""
    if v == 1:
        return None
    b = lw.b
    conds = []
    for g in range(0, len(ptrs), v):
        first = b.ptrtoint(ptrs[g], I64)
        for i in range(1, v):
            conds.append(b.icmp_unsigned("==", b.ptrtoint(ptrs[g + i], I64),
                                         b.add(first, i64(i * elem_bytes))))
    return _all(b, conds)


def _pointer_access(lw: Lowering, op: Operation, pred_extra: ir.Value | None) -> Access:
    b = lw.b
    t = op.ptr.type
    pointee = _pointee(t)
    if is_packed(pointee):
        raise op.error(f"pointer access to packed {pointee} elements is not supported",
                       hint="use load_view/store_view on a tensor of packed data")
    ptrs = lw.get(op.ptr)
    mask = op.mask
    preds = [truth(b, m) for m in lw.get(mask)] if mask is not None else \
        [ir.Constant(I1, 1)] * len(ptrs)
    if pred_extra is not None:
        preds = [b.and_(p, pred_extra) for p in preds]
    layout = tile_layout(t)
    v = 1 if layout is None else vector_groups(layout, _bits_of(pointee))
    ok = _contiguity(lw, ptrs, v, _bits_of(pointee) // 8)
    if ok is not None and pred_extra is not None:
        ok = b.and_(ok, pred_extra)
    return Access(lw, pointee, ptrs, preds, v, ok, hints=MemoryHints.of(op.attrs))


def _replica0(lw: Lowering, t) -> ir.Value:
    """Whether this thread is the one that performs side effects for a value of type `t`."""
    layout = tile_layout(t)
    if layout is None:  # a uniform scalar: thread 0 acts for the block
        return lw.entry.icmp_unsigned("==", lw.thread_id, i32(0))
    return lw.index(layout).replica0


@lowers("load")
def _load(lw: Lowering, op: Operation) -> list:
    access = _pointer_access(lw, op, None)
    others = lw.get(op.other) if op.other is not None else None
    return [access.load(others)]


@lowers("store")
def _store(lw: Lowering, op: Operation) -> list:
    access = _pointer_access(lw, op, _replica0(lw, op.ptr.type))
    access.store(lw.get(op.value))
    return []


# -- atomics ------------------------------------------------------------------------------------------
_RMW = {"add": ("add", "add", "fadd"), "max": ("max", "umax", "fmax"),
        "min": ("min", "umin", "fmin"), "and": ("and", "and", None), "or": ("or", "or", None),
        "xor": ("xor", "xor", None), "xchg": ("xchg", "xchg", "xchg")}


def _rmw_name(kind: str, d: DType) -> str:
    signed, unsigned, floating = _RMW[kind]
    if d.is_float:
        if floating is None:
            raise ValueError(f"atomic {kind} on floats")
        return floating
    return signed if d.kind == "int" else unsigned


def _predicated(lw: Lowering, pred: ir.Value, t: ir.Type, emit) -> ir.Value:
    """`emit()` if pred, else zero of type t (masked-off lanes return 0)."""
    b = lw.b
    start, then_bb, done = b.block, lw.block("atomic.then"), lw.block("atomic.end")
    b.cbranch(pred, then_bb, done)
    b.position_at_end(then_bb)
    value = emit()
    end = b.block
    b.branch(done)
    b.position_at_end(done)
    phi = b.phi(t)
    phi.add_incoming(ir.Constant(t, None), start)
    phi.add_incoming(value, end)
    return phi


def _share_results(lw: Lowering, result, values: list[ir.Value]) -> list[ir.Value]:
    """Give every replica the value replica 0 computed for `result` (through shared
    memory), unless nothing reads it."""
    t = result.type
    layout = tile_layout(t)
    if (layout is not None and layout.replication == 1) or not result.uses:
        return values
    if layout is None:  # a scalar: thread 0's value to everyone
        tile = TileType((1,), element_of(t))
        base = lw.smem.scratch(lw.b, scratch_bytes(tile))
        store_from = lw.b.icmp_unsigned("==", lw.thread_id, i32(0))
        offs = [i32(0)]
    else:
        tile = TileType(t.shape, element_of(t))
        base = lw.smem.scratch(lw.b, scratch_bytes(tile))
        store_from = lw.index(layout).replica0
        offs = scratch_offsets(lw, layout, t.shape)
    b = lw.b
    then_bb, done = lw.block("share.store"), lw.block("share.end")
    b.cbranch(store_from, then_bb, done)
    b.position_at_end(then_bb)
    store_register_tile(lw, base, tile, values, offs)
    b.branch(done)
    b.position_at_end(done)
    lw.target.barrier(b)
    out = load_register_tile(lw, base, tile, offs)
    lw.target.barrier(b)
    return out


class _Ordering:
    """How an atomic op is ordered (its `sem` at its `scope`). The atomic instruction itself
    is relaxed and the order comes from fences around it in the acting thread: a release
    fence before, an acquire fence after (the PTX memory model's release and acquire
    patterns). Explicit, because LLVM 22's NVPTX backend emits every `atomicrmw` as a
    relaxed `atom` whatever ordering the IR gives it (AMDGPU lowers the fences as it would
    the orderings). A replicated atomic (one thread acts for the program) with release
    semantics starts with a barrier, so that every thread's earlier accesses come before the
    acting thread's release (release is cumulative through the barrier: CUTLASS's split-K
    semaphore); its acquire reaches the other threads through the barrier that shares its
    result. So the other threads wait for nothing of their own."""

    def __init__(self, lw: Lowering, op: Operation, t) -> None:
        self.lw = lw
        scope = lw.target.sync_scopes[op.scope]
        self.scope = scope
        self.llvm = "monotonic" if scope is None else f'syncscope("{scope}") monotonic'
        self.release = op.sem in ("release", "acq_rel")
        self.acquire = op.sem in ("acquire", "acq_rel")
        layout = tile_layout(t)
        if self.release and (layout is None or layout.replication > 1):
            lw.target.barrier(lw.b)

    def around(self, emit):
        """`emit()` between the fences its ordering needs; its value."""
        b = self.lw.b
        if self.release:
            b.fence("release", self.scope)
        value = emit()
        if self.acquire:
            b.fence("acquire", self.scope)
        return value


@lowers("atomic_rmw")
def _atomic_rmw(lw: Lowering, op: Operation) -> list:
    b = lw.b
    t = op.ptr.type
    d = _pointee(t)
    name = _rmw_name(op.kind, d)
    ptrs, values = lw.get(op.ptr), lw.get(op.value)
    masks = lw.get(op.mask) if op.mask is not None else [ir.Constant(I1, 1)] * len(ptrs)
    me = _replica0(lw, t)
    order = _Ordering(lw, op, t)
    out = []
    for p, x, m in zip(ptrs, values, masks):
        xv = b.zext(x, I8) if d.is_bool else x
        old = _predicated(lw, b.and_(truth(b, m), me), xv.type, lambda: order.around(
            lambda: b.atomic_rmw(name, p, xv, order.llvm)))
        out.append(b.icmp_unsigned("!=", old, ir.Constant(I8, 0)) if d.is_bool else old)
    return [_share_results(lw, op.results[0], out)]


@lowers("atomic_cas")
def _atomic_cas(lw: Lowering, op: Operation) -> list:
    b = lw.b
    t = op.ptr.type
    d = _pointee(t)
    me = _replica0(lw, t)
    order = _Ordering(lw, op, t)
    out = []
    for p, c, x in zip(lw.get(op.ptr), lw.get(op.cmp), lw.get(op.value)):
        cb, xb = to_bits(b, c, d), to_bits(b, x, d)

        def emit(p=p, cb=cb, xb=xb):
            pair = b.cmpxchg(p, cb, xb, order.llvm, "monotonic")
            return b.extract_value(pair, 0)
        old = _predicated(lw, me, cb.type, lambda: order.around(emit))
        out.append(from_bits(b, old, d))
    return [_share_results(lw, op.results[0], out)]


@lowers("cluster_reduce")
def _cluster_reduce(lw: Lowering, op: Operation) -> list:
    """Each thread stores its values in the shared scratch area, 16-byte chunk c of thread
    t at chunk c * threads + t (a warp's accesses to one chunk are 512 contiguous bytes), a
    cluster barrier, then reads the same places of every program of the cluster (rank
    order, so all get the same result) through distributed shared memory, and a second
    barrier keeps each program's values (and the program) there until all have read them.
    Floats narrower than f32 are combined in f32, as `reduce` does."""
    values = lw.get(op.x)
    if lw.cluster == 1:
        return [values]
    from tilec.backends.llvm.casts import cast
    from tilec.backends.llvm.reduce import accumulate_dtype, binary_combiner
    b, target = lw.b, lw.target
    d = dtype_of(op.x.type)
    acc = accumulate_dtype(d)
    combine = binary_combiner(lw, op.kind, acc)
    size = d.bits // 8
    per_chunk = 16 // size
    chunks = -(-len(values) // per_chunk)
    target.barrier(b)   # earlier users of the scratch area are done with it
    base = lw.smem.scratch(b, chunks * lw.num_threads * 16)
    mine = b.gep(base, [b.mul(lw.thread_id, i32(16))], inbounds=True, source_etype=I8)

    def at(ptr: ir.Value, j: int) -> tuple[ir.Value, int]:
        c, e = divmod(j, per_chunk)
        offset = c * lw.num_threads * 16 + e * size
        return (b.gep(ptr, [i32(offset)], inbounds=True, source_etype=I8),
                16 if e == 0 else (e * size) & -(e * size))
    for j, v in enumerate(values):
        p, align = at(mine, j)
        b.store(v, p, align=align)
    target.cluster_barrier(b)
    total: list[ir.Value] = []
    for rank in range(lw.cluster):
        there = target.cluster_address(b, mine, rank)
        for j, v in enumerate(values):
            p, align = at(there, j)
            x = cast(b, b.load(p, typ=v.type, align=align), d, acc, target)
            if rank == 0:
                total.append(x)
            else:
                total[j] = combine(total[j], x)
    target.cluster_barrier(b)
    return [[cast(b, x, acc, d, target) for x in total]]


__all__ = ["Access", "vector_groups", "masked_load", "masked_store", "to_bits", "from_bits"]
