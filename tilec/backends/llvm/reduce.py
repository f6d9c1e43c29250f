"""Reductions and scans: within a thread, then across lanes, then across warps.

`reduce`, `argreduce` and `reduce_custom` combine in three stages:
1. within the thread: the local elements that differ only along the axis;
2. across lanes: a butterfly of `shuffle_xor` over each lane bit the axis spans (when the
   layout's thread entries are powers of two, so that each entry owns whole thread bits);
3. across warps (and for axis entries that are not powers of two): each thread writes its
   partial to the shared scratch area at [group, result element], a barrier, and every
   thread combines the groups of the result elements it holds.
The result is computed in `operand.reduce(axis).squeeze(axis)`, the layout the contract
gives it; any other result layout is reached with a move (convert.py).

`scan` runs inside the thread when the axis is entirely local to each thread; otherwise the
tile is staged in shared memory and each thread walks the axis up to its elements.
"""
from __future__ import annotations

import math
from typing import Callable

from llvmlite import ir

from tilec.backends.llvm import dtypes as ltypes
from tilec.backends.llvm.convert import move
from tilec.backends.llvm.elementwise import _float_binary, _int_binary
from tilec.backends.llvm.lower import Lowering, lowers, tile_layout
from tilec.backends.llvm.shared import (element_pointer, from_container, linear_offsets,
                                        row_major_strides, to_container)
from tilec.backends.llvm.values import I32, coord, i32
from tilec.ir import dtypes as dt
from tilec.ir.core import Operation
from tilec.ir.dtypes import DType
from tilec.ir.layout import RegisterLayout
from tilec.ir.types import TileType, dtype_of

# A partial result: one or more LLVM values (argreduce carries value and index).
Partial = tuple
Combine = Callable[[Partial, Partial], Partial]


# -- shuffles of any type ---------------------------------------------------------------------
def shuffle_xor(lw: Lowering, value: ir.Value, mask: int) -> ir.Value:
    """`target.shuffle_xor` (i32) for a value of any type up to 64 bits."""
    b = lw.b
    t = value.type
    if isinstance(t, ir.PointerType):
        return b.inttoptr(shuffle_xor(lw, b.ptrtoint(value, ir.IntType(64)), mask), t)
    bits = t.width if isinstance(t, ir.IntType) else {ir.HalfType: 16, ir.FloatType: 32,
                                                       ir.DoubleType: 64}.get(type(t), 16)
    as_int = value if isinstance(t, ir.IntType) else b.bitcast(value, ir.IntType(bits))
    if bits == 64:
        lo = b.trunc(as_int, I32)
        hi = b.trunc(b.lshr(as_int, ir.Constant(as_int.type, 32)), I32)
        lo, hi = (lw.target.shuffle_xor(b, x, mask) for x in (lo, hi))
        wide = ir.IntType(64)
        out = b.or_(b.zext(lo, wide), b.shl(b.zext(hi, wide), ir.Constant(wide, 32)))
    elif bits == 32:
        out = lw.target.shuffle_xor(b, as_int, mask)
    else:
        out = b.trunc(lw.target.shuffle_xor(b, b.zext(as_int, I32), mask), ir.IntType(bits))
    return out if isinstance(t, ir.IntType) else b.bitcast(out, t)


# -- thread structure of a layout ---------------------------------------------------------------
def _dim_of_entry(layout: RegisterLayout) -> dict[int, int]:
    dims, m = {}, 0
    for d, sizes in enumerate(layout.modes):
        for _ in sizes:
            dims[m] = d
            m += 1
    return dims


def _entries(layout: RegisterLayout) -> list[tuple[int, int, int]]:
    """(entry, size, thread stride) of each spatial entry."""
    flat = [s for sizes in layout.modes for s in sizes]
    out, stride = [], 1
    for e in reversed(layout.spatial):
        size = -e if e < 0 else flat[e]
        out.append((e, size, stride))
        stride *= size
    return out[::-1]


def _pow2(n: int) -> bool:
    return n & (n - 1) == 0


def axis_plan(layout: RegisterLayout, axis: int, warp_size: int):
    """Lane masks to shuffle over, and the remaining axis digits (entry size, thread
    stride, low bits already shuffled) to combine through shared memory."""
    dim_of = _dim_of_entry(layout)
    entries = _entries(layout)
    all_pow2 = all(_pow2(size) for _, size, _ in entries)
    masks, rest = [], []
    for e, size, stride in entries:
        if e < 0 or dim_of[e] != axis:
            continue
        lane_bits = 0
        if all_pow2:
            while (1 << lane_bits) < size and stride << lane_bits < warp_size:
                masks.append(stride << lane_bits)
                lane_bits += 1
        if (1 << lane_bits) < size:
            rest.append((size, stride, lane_bits))
    return masks, rest


# -- the three stages ------------------------------------------------------------------------
def _stage_registers(lw: Lowering, layout: RegisterLayout, axis: int, parts: list[Partial],
                     combine: Combine) -> tuple[list[Partial], list]:
    """Combine locals differing only along `axis`; the groups' keys (other local coords)."""
    local = layout.coords()[0]
    groups: dict[tuple, list[int]] = {}
    for l in range(layout.local_size):
        key = tuple(int(c) for d, c in enumerate(local[l]) if d != axis)
        groups.setdefault(key, []).append(l)
    out = []
    for members in groups.values():
        members.sort(key=lambda l: int(local[l, axis]))
        acc = parts[members[0]]
        for l in members[1:]:
            acc = combine(acc, parts[l])
        out.append(acc)
    return out, list(groups)


def _stage_lanes(lw: Lowering, parts: list[Partial], masks: list[int],
                 combine: Combine) -> list[Partial]:
    out = []
    for p in parts:
        for m in masks:
            other = tuple(shuffle_xor(lw, x, m) for x in p)
            p = combine(p, other)  # ties: argreduce compares indices, so order is harmless
        out.append(p)
    return out


def _stage_warps(lw: Lowering, layout: RegisterLayout, axis: int, parts: list[Partial],
                 keys: list, rest: list, combine: Combine, res_shape: tuple[int, ...]
                 ) -> list[Partial]:
    """Combine the remaining axis digits through shared memory."""
    b = lw.b
    groups = math.prod(size >> low for size, _, low in rest)
    numel = math.prod(res_shape)
    # group index of this thread: mixed radix over the unshuffled parts of the axis digits
    group: ir.Value = i32(0)
    for size, stride, low in rest:
        digit = b.urem(b.udiv(lw.thread_id, i32(stride << low)), i32(size >> low))
        group = b.add(b.mul(group, i32(size >> low)), digit)
    # result element (row-major over the result shape) of each partial
    index = lw.index(layout)
    strides = row_major_strides(res_shape)
    flat_parts = []
    for key in keys:
        terms: ir.Value = i32(0)
        dims = [d for d in range(layout.rank) if d != axis]
        for k, (d, s) in enumerate(zip(dims, strides)):
            c = b.add(index.thread_part[d], i32(key[k]))
            terms = b.add(terms, b.mul(c, i32(s)))
        flat_parts.append(terms)
    types = [x.type for x in parts[0]]
    ets = [x if not isinstance(x, ir.IntType) or x.width % 8 == 0 and x.width >= 8
           else ir.IntType(max(8, 1 << (x.width - 1).bit_length())) for x in types]
    sizes = [numel * groups * max(1, _type_bytes(t)) for t in ets]
    total = sum(-(-s // 16) * 16 for s in sizes)
    base = lw.smem.scratch(b, total)
    bases, off = [], 0
    for s in sizes:
        bases.append(b.gep(base, [i32(off)], source_etype=ir.IntType(8)))
        off += -(-s // 16) * 16
    for p, flat in zip(parts, flat_parts):
        slot = b.add(b.mul(group, i32(numel)), flat)
        for x, et, bb in zip(p, ets, bases):
            b.store(to_container(b, x, et), element_pointer(b, bb, et, slot))
    lw.target.barrier(b)
    out = []
    for flat in flat_parts:
        acc = None
        for g in range(groups):
            slot = b.add(flat, i32(g * numel))
            vals = tuple(from_container(b, b.load(element_pointer(b, bb, et, slot), typ=et), t)
                         for t, et, bb in zip(types, ets, bases))
            acc = vals if acc is None else combine(acc, vals)
        out.append(acc)
    lw.target.barrier(b)
    return out


def _type_bytes(t: ir.Type) -> int:
    if isinstance(t, ir.IntType):
        return t.width // 8
    if isinstance(t, ir.PointerType):
        return 8
    return {ir.HalfType: 2, ir.FloatType: 4, ir.DoubleType: 8}.get(type(t), 2)


def reduce_partials(lw: Lowering, op: Operation, parts: list[Partial],
                    combine: Combine) -> list[Partial]:
    """Reduce along op.axis; one partial per local element of the canonical result layout
    (`operand.reduce(axis).squeeze(axis)`), in its local order."""
    layout = tile_layout(op.x.type)
    axis = op.axis
    parts, keys = _stage_registers(lw, layout, axis, parts, combine)
    masks, rest = axis_plan(layout, axis, lw.target.warp_size)
    parts = _stage_lanes(lw, parts, masks, combine)
    res_shape = tuple(n for d, n in enumerate(op.x.type.shape) if d != axis)
    if rest:
        parts = _stage_warps(lw, layout, axis, parts, keys, rest, combine, res_shape)
    canonical = layout.reduce(axis).squeeze(axis)
    local = canonical.coords()[0] if canonical.rank else None
    order = {key: i for i, key in enumerate(keys)}
    if local is None:
        return [parts[0]]
    return [parts[order[tuple(int(c) for c in local[r])]] for r in range(canonical.local_size)]


def _finish(lw: Lowering, op: Operation, elements: list[ir.Value]) -> list:
    """Place the canonical-layout result in the result type's layout."""
    layout = tile_layout(op.x.type)
    res = op.results[0].type
    if not isinstance(res, TileType):
        return [elements]
    canonical = layout.reduce(op.axis).squeeze(op.axis)
    want = tile_layout(res)
    if want == canonical:
        return [elements]
    src_t = res.with_layout(canonical)
    k = row_major_strides(res.shape)
    return [move(lw, src_t, elements, k, res, k, res.numel)]


# -- combiners ---------------------------------------------------------------------------------
def accumulate_dtype(d: DType) -> DType:
    """Floats narrower than f32 accumulate in f32 (rounded once at the end)."""
    if d.is_float and d.bits < 32:
        return dt.float32
    return ltypes.compute_dtype(d)


def _widen(lw: Lowering, x: ir.Value, d: DType, acc: DType) -> ir.Value:
    if acc == d:
        return x
    from tilec.backends.llvm import casts
    return casts.cast(lw.b, x, d, acc, lw.target)


def _narrow(lw: Lowering, x: ir.Value, d: DType, acc: DType) -> ir.Value:
    if acc == d:
        return x
    from tilec.backends.llvm import casts
    return casts.cast(lw.b, x, acc, d, lw.target)


def binary_combiner(lw: Lowering, kind: str, d: DType) -> Callable[[ir.Value, ir.Value], ir.Value]:
    name = {"sum": "add", "prod": "mul"}.get(kind, kind)
    if d.is_float:
        return lambda a, c: _float_binary(lw, name, a, c)
    if d.is_bool:
        name = {"max": "or", "min": "and", "add": "or", "mul": "and"}.get(name, name)
    return lambda a, c: _int_binary(lw, name, d, a, c)


@lowers("reduce")
def _reduce(lw: Lowering, op: Operation) -> list:
    d = dtype_of(op.x.type)
    acc = accumulate_dtype(d)
    fn = binary_combiner(lw, op.kind, acc)
    parts = [(_widen(lw, x, d, acc),) for x in lw.get(op.x)]
    out = reduce_partials(lw, op, parts, lambda a, c: (fn(a[0], c[0]),))
    return _finish(lw, op, [_narrow(lw, p[0], d, acc) for p in out])


@lowers("argreduce")
def _argreduce(lw: Lowering, op: Operation) -> list:
    """First index of the max (min); NaN counts as larger than every number."""
    d = dtype_of(op.x.type)
    acc = ltypes.compute_dtype(d)
    b = lw.b
    layout = tile_layout(op.x.type)
    index = lw.index(layout)
    parts = [(_widen(lw, x, d, acc), coord(b, index, l, op.axis))
             for l, x in enumerate(lw.get(op.x))]
    is_max = op.kind == "max"

    def better(a: Partial, c: Partial) -> ir.Value:
        """Whether c beats a."""
        (x, i), (y, j) = a, c
        earlier = b.icmp_signed("<", j, i)
        if acc.is_float:
            x_nan = b.fcmp_unordered("uno", x, x)
            y_nan = b.fcmp_unordered("uno", y, y)
            strictly = b.fcmp_ordered(">" if is_max else "<", y, x)
            tie = b.and_(b.fcmp_ordered("==", y, x), earlier)
            both_nan = b.and_(b.and_(x_nan, y_nan), earlier)
            numbers = b.or_(strictly, tie)
            if is_max:  # NaN is the largest: a NaN beats any number
                return b.or_(b.or_(b.and_(y_nan, b.not_(x_nan)), both_nan),
                             b.and_(b.not_(b.or_(x_nan, y_nan)), numbers))
            # min: a number beats NaN; NaN only wins among NaNs
            return b.or_(b.or_(b.and_(x_nan, b.not_(y_nan)), both_nan),
                         b.and_(b.not_(b.or_(x_nan, y_nan)), numbers))
        cmp = b.icmp_signed if acc.kind == "int" else b.icmp_unsigned
        return b.or_(cmp(">" if is_max else "<", y, x), b.and_(b.icmp_unsigned("==", y, x),
                                                               earlier))

    def combine(a: Partial, c: Partial) -> Partial:
        take = better(a, c)
        return (b.select(take, c[0], a[0]), b.select(take, c[1], a[1]))
    out = reduce_partials(lw, op, parts, combine)
    return _finish(lw, op, [p[1] for p in out])


@lowers("reduce_custom")
def _reduce_custom(lw: Lowering, op: Operation) -> list:
    region = op.regions[0]

    def combine(a: Partial, c: Partial) -> Partial:
        lw.set(region.block.args[0], [a[0]])
        lw.set(region.block.args[1], [c[0]])
        term = lw.lower_block(region.block)
        (value,) = lw.get(term.operands[0])
        return (value,)
    out = reduce_partials(lw, op, [(x,) for x in lw.get(op.x)], combine)
    return _finish(lw, op, [p[0] for p in out])


# -- scan --------------------------------------------------------------------------------------------
@lowers("scan")
def _scan(lw: Lowering, op: Operation) -> list:
    t = op.x.type
    d = dtype_of(t)
    acc = accumulate_dtype(d)
    fn = binary_combiner(lw, op.kind, acc)
    layout = tile_layout(t)
    axis = op.axis
    values = [_widen(lw, x, d, acc) for x in lw.get(op.x)]
    dim_of = _dim_of_entry(layout)
    if all(e < 0 or dim_of[e] != axis for e in layout.spatial):
        out = _scan_in_thread(layout, axis, values, fn, op.reverse)
    else:
        out = _scan_shared(lw, t, axis, values, fn, op.reverse)
    return [[_narrow(lw, x, d, acc) for x in out]]


def _scan_in_thread(layout: RegisterLayout, axis: int, values: list, fn, reverse: bool) -> list:
    local = layout.coords()[0]
    groups: dict[tuple, list[int]] = {}
    for l in range(layout.local_size):
        key = tuple(int(c) for d, c in enumerate(local[l]) if d != axis)
        groups.setdefault(key, []).append(l)
    out = list(values)
    for members in groups.values():
        members.sort(key=lambda l: int(local[l, axis]), reverse=reverse)
        running = values[members[0]]
        for l in members[1:]:
            running = fn(running, values[l])
            out[l] = running
    return out


def _scan_shared(lw: Lowering, t: TileType, axis: int, values: list, fn, reverse: bool) -> list:
    b = lw.b
    layout = tile_layout(t)
    et = values[0].type
    st = et if not isinstance(et, ir.IntType) or et.width >= 8 else ir.IntType(8)
    base = lw.smem.scratch(b, t.numel * max(1, _type_bytes(st)))
    strides = row_major_strides(t.shape)
    offsets = linear_offsets(b, lw.index(layout), strides, layout.local_size)
    for x, off in zip(values, offsets):
        b.store(to_container(b, x, st), element_pointer(b, base, st, off))
    lw.target.barrier(b)
    index = lw.index(layout)
    n, step = t.shape[axis], strides[axis]
    out = []
    for local, off in enumerate(offsets):
        c = coord(b, index, local, axis)
        row = b.sub(off, b.mul(c, i32(step)))  # offset of the axis' first element
        # walk j from the end (reverse) or the start to c, combining in axis order
        start = i32(n - 1) if reverse else i32(0)
        first = _load(b, base, st, et, b.add(row, b.mul(start, i32(step))))
        pre = b.block
        header, body, done = lw.block("scan.header"), lw.block("scan.body"), lw.block("scan.end")
        b.branch(header)
        b.position_at_end(header)
        j = b.phi(I32)
        running = b.phi(et)
        j.add_incoming(start, pre)
        running.add_incoming(first, pre)
        more = b.icmp_signed(">", j, c) if reverse else b.icmp_signed("<", j, c)
        b.cbranch(more, body, done)
        b.position_at_end(body)
        j_next = b.sub(j, i32(1)) if reverse else b.add(j, i32(1))
        x = _load(b, base, st, et, b.add(row, b.mul(j_next, i32(step))))
        nxt = fn(running, x)
        j.add_incoming(j_next, b.block)
        running.add_incoming(nxt, b.block)
        b.branch(header)
        b.position_at_end(done)
        out.append(running)
    lw.target.barrier(b)
    return out


def _load(b: ir.IRBuilder, base, st, et, off) -> ir.Value:
    return from_container(b, b.load(element_pointer(b, base, st, off), typ=st), et)

