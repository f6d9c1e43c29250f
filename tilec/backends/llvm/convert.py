"""Moving elements between threads: convert_layout, reshape, permute, expand_dims,
broadcast and view; and the explicit level's shared-memory ops.

Every move is described by two linear *keys*: the element a source local holds goes to key
`coord . K_src`, and a destination local reads key `coord . K_dst` (a row-major index of
the destination, for a reshape the common row-major index, for a broadcast the source's
index). When, for every thread, each destination key is one the same thread already holds
at a fixed local index, the move is a renaming of registers (no code). When every key stays
inside its warp, it is a sequence of warp shuffles (`shuffle.py`). Otherwise the source is
written to the shared scratch area at its keys, a barrier, and read back.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from llvmlite import ir

from tilec.backends.abi import is_packed
from tilec.backends.llvm.lower import Lowering, lowers, tile_layout, truth
from tilec.backends.llvm.memory import (linear_index, offsets_i32, from_bits, masked_load,
                                        to_bits, vector_groups)
from tilec.backends.llvm.elementwise import memory_type
from tilec.backends.llvm.shared import (SharedTile, container_bits, from_container,
                                        layout_offset, linear_offsets, load_register_tile,
                                        load_vectors, row_major_strides, shared_coords_offsets,
                                        shared_layout_of, smem_type, store_register_tile,
                                        tile_offset, to_container, element_pointer)
from tilec.backends.llvm import shuffle, staging
from tilec.backends.llvm.values import I32, I64, i32
from tilec.errors import IRError
from tilec.ir.contiguity import last_dim_step, run_alignment
from tilec.ir.core import Operation
from tilec.ir.layout import RegisterLayout
from tilec.ir.layout_defaults import view_layout
from tilec.ir.shared_layout import SharedLayout, contiguous_vector
from tilec.ir.types import SHARED, PointerType, TileType, dtype_of


def register_map(src: RegisterLayout, k_src: Sequence[int], dst: RegisterLayout,
                 k_dst: Sequence[int]) -> list[int] | None:
    """For each destination local, the source local of the same thread holding its key, if
    that is one fixed local for every thread; else None."""
    if src.num_threads != dst.num_threads:
        return None
    ks = src.coords() @ np.asarray(k_src, np.int64)   # [threads, src locals]
    kd = dst.coords() @ np.asarray(k_dst, np.int64)   # [threads, dst locals]
    first = {int(k): i for i, k in reversed(list(enumerate(ks[0])))}
    picks = []
    for j, k in enumerate(kd[0]):
        i = first.get(int(k))
        if i is None:
            return None
        picks.append(i)
    if not np.array_equal(ks[:, picks], kd):
        return None
    return picks


def move_in_registers(lw: Lowering, src: RegisterLayout, k_src: Sequence[int],
                      dst: RegisterLayout, k_dst: Sequence[int],
                      values: list[ir.Value]) -> list[ir.Value] | None:
    """The move as a renaming of registers, or as warp shuffles; None if neither serves."""
    picks = register_map(src, k_src, dst, k_dst)
    if picks is not None:
        return [values[i] for i in picks]
    rounds = shuffle.plan(src, k_src, dst, k_dst, lw.target.warp_size)
    if rounds is None:
        return None
    lane = lw.b.and_(lw.thread_id, i32(lw.target.warp_size - 1))
    return shuffle.apply(lw.b, lw.target, lane, values, rounds)


def move(lw: Lowering, src_t: TileType, values: list[ir.Value], k_src: Sequence[int],
         dst_t: TileType, k_dst: Sequence[int], num_keys: int) -> list[ir.Value]:
    """The destination's elements (see the module doc)."""
    src, dst = tile_layout(src_t), tile_layout(dst_t)
    in_registers = move_in_registers(lw, src, k_src, dst, k_dst, values)
    if in_registers is not None:
        return in_registers
    b = lw.b
    staging = TileType((num_keys,), src_t.element)
    base = lw.smem.scratch(b, num_keys * container_bits(src_t.element) // 8)
    store_register_tile(lw, base, staging, values,
                        linear_offsets(b, lw.index(src), k_src, src.local_size))
    lw.target.barrier(b)
    out = load_register_tile(lw, base, staging,
                             linear_offsets(b, lw.index(dst), k_dst, dst.local_size))
    lw.target.barrier(b)  # the scratch area may be reused right after
    return out


@lowers("convert_layout")
def _convert_layout(lw: Lowering, op: Operation) -> list:
    t = op.x.type
    k = row_major_strides(t.shape)
    # Registers and shuffles first: they need no shared memory and no barrier.
    in_registers = move_in_registers(lw, tile_layout(t), k, tile_layout(op.results[0].type), k,
                                     lw.get(op.x))
    if in_registers is not None:
        return [in_registers]
    staged = staging.convert(lw, op)
    if staged is not None:
        return [staged]
    return [move(lw, t, lw.get(op.x), k, op.results[0].type, k, t.numel)]


@lowers("reshape")
def _reshape(lw: Lowering, op: Operation) -> list:
    src, dst = op.x.type, op.results[0].type
    return [move(lw, src, lw.get(op.x), row_major_strides(src.shape), dst,
                 row_major_strides(dst.shape), src.numel)]


@lowers("permute")
def _permute(lw: Lowering, op: Operation) -> list:
    src, dst = op.x.type, op.results[0].type
    if src.space == SHARED:  # a view: the same bytes, dims reordered
        tile: SharedTile = lw.get(op.x)
        n = len(tile.prefix)
        dims = list(range(n)) + [n + d for d in op.dims]
        return [SharedTile(tile.base, tile.layout.permute(dims), tile.prefix, tile.element)]
    k_dst = row_major_strides(dst.shape)
    k_src = [0] * src.rank
    for i, d in enumerate(op.dims):  # result dim i is operand dim dims[i]
        k_src[d] = k_dst[i]
    return [move(lw, src, lw.get(op.x), k_src, dst, k_dst, dst.numel)]


@lowers("expand_dims")
def _expand_dims(lw: Lowering, op: Operation) -> list:
    src, dst = op.x.type, op.results[0].type
    k_src = row_major_strides(src.shape)
    k_dst = list(k_src)
    k_dst.insert(op.axis, 0)
    return [move(lw, src, lw.get(op.x), k_src, dst, k_dst, src.numel)]


@lowers("take")
def _take(lw: Lowering, op: Operation) -> list:
    """A choice of registers: layout assignment keeps the axis within each thread."""
    return [[lw.get(op.x)[s] for s in take_slots(tile_layout(op.x.type), op.axis, op.index)]]


def take_slots(layout: RegisterLayout, axis: int, index: int) -> list[int]:
    """For each local element of `layout.reduce(axis).squeeze(axis)` (a scalar's one for
    rank 1), the local slot of `layout`, which holds `axis` in registers, at `index` along
    `axis`: the same slot in every thread, since the threads split only the other dims."""
    src = layout.coords()
    if not layout.is_local(axis):
        raise IRError(f"internal error: take along axis {axis} of {layout}, which threads "
                      "split")
    slots = [s for s in range(layout.local_size) if src[0, s, axis] == index]
    if layout.rank == 1:
        return slots[:1]
    rest = [d for d in range(layout.rank) if d != axis]
    dst = layout.reduce(axis).squeeze(axis).coords()
    by_coord = {tuple(src[0, s, rest]): s for s in slots}
    out = [by_coord[tuple(dst[0, j])] for j in range(dst.shape[1])]
    if not np.array_equal(src[:, out][:, :, rest], dst):
        raise IRError(f"internal error: take along axis {axis} of {layout} is not one "
                      "choice of registers in every thread")
    return out


@lowers("broadcast")
def _broadcast(lw: Lowering, op: Operation) -> list:
    src, dst = op.x.type, op.results[0].type
    k_src = row_major_strides(src.shape)
    k_dst = [0 if a == 1 and c != 1 else k for a, c, k in zip(src.shape, dst.shape, k_src)]
    return [move(lw, src, lw.get(op.x), k_src, dst, k_dst, src.numel)]


# -- view: reinterpret bits ------------------------------------------------------------------------
@lowers("view")
def _view(lw: Lowering, op: Operation) -> list:
    """The tile is one little-endian bit stream (rows hold the same bits before and after):
    source element f holds bits [f*wa, f*wa + wa); destination element g reads bits
    [g*wb, g*wb + wb) from the source elements they overlap, staged in shared memory."""
    src_t, dst_t = op.x.type, op.results[0].type
    a, d = dtype_of(src_t), dtype_of(dst_t)
    wa, wb = a.bits, d.bits
    b = lw.b
    src, dst = tile_layout(src_t), tile_layout(dst_t)
    # In registers where every bit stays in its thread; not on targets where LLVM turns the
    # sub-byte values that come out into vectors it legalizes through scratch (AMDGPU).
    if view_layout(src, wa, wb) == dst and (min(wa, wb) >= 8 or lw.target.narrow_int_vectors):
        return [_view_in_registers(b, lw.get(op.x), a, d)]
    et = smem_type(src_t.element, lw.llvm_type)
    base = lw.smem.scratch(b, src_t.numel * container_bits(src_t.element) // 8)
    patterns = [_pattern(b, to_bits(b, x, a), wa) for x in lw.get(op.x)]
    for p, off in zip(patterns, linear_offsets(b, lw.index(src), row_major_strides(src_t.shape),
                                               src.local_size)):
        b.store(to_container(b, p, et), element_pointer(b, base, et, off))
    lw.target.barrier(b)
    span = -(-(wa - 1 + wb) // wa) if wb % wa else wb // wa
    wide_t = ir.IntType(wa * span)
    out = []
    for g in linear_offsets(b, lw.index(dst), row_major_strides(dst_t.shape), dst.local_size):
        bit = b.mul(g, i32(wb))
        first = b.udiv(bit, i32(wa))
        shift = b.urem(bit, i32(wa))
        acc: ir.Value = ir.Constant(wide_t, 0)
        for i in range(span):
            f = b.add(first, i32(i))
            inside = b.icmp_unsigned("<", f, i32(src_t.numel))
            safe = b.select(inside, f, i32(0))
            word = from_container(b, b.load(element_pointer(b, base, et, safe), typ=et),
                                  ir.IntType(wa))
            word = b.select(inside, word, ir.Constant(ir.IntType(wa), 0))
            acc = b.or_(acc, b.shl(b.zext(word, wide_t) if span > 1 else word,
                                   ir.Constant(wide_t, wa * i)))
        if wb % wa:
            acc = b.lshr(acc, _resize(b, shift, wide_t))
        bits = b.trunc(acc, ir.IntType(wb)) if wide_t.width > wb else acc
        out.append(_from_pattern(b, bits, d))
    lw.target.barrier(b)
    return [out]


def _view_in_registers(b: ir.IRBuilder, values: list[ir.Value], a, d) -> list[ir.Value]:
    """`view` where every thread keeps its bits (`view_layout`): each run of g / wa source
    locals (g = lcm of the widths) is one g-bit integer, little-endian, cut into g / wb
    destination locals with constant shifts (LLVM splits them into word operations)."""
    wa, wb = a.bits, d.bits
    group = math.lcm(wa, wb)
    wide_t = ir.IntType(group)
    ns = group // wa
    out = []
    for start in range(0, len(values), ns):
        acc: ir.Value | None = None
        for i, x in enumerate(values[start:start + ns]):
            p = _pattern(b, to_bits(b, x, a), wa)
            p = b.zext(p, wide_t) if wa < group else p
            acc = b.or_(acc, b.shl(p, ir.Constant(wide_t, i * wa))) if i else p
        for j in range(group // wb):
            part = b.lshr(acc, ir.Constant(wide_t, j * wb)) if j else acc
            bits = b.trunc(part, ir.IntType(wb)) if wb < group else part
            out.append(_from_pattern(b, bits, d))
    return out


def _resize(b: ir.IRBuilder, v: ir.Value, t: ir.IntType) -> ir.Value:
    if v.type.width < t.width:
        return b.zext(v, t)
    return b.trunc(v, t) if v.type.width > t.width else v


def _pattern(b: ir.IRBuilder, v: ir.Value, bits: int) -> ir.Value:
    """The low `bits` bits of an element's memory image (bool's image is a byte)."""
    return b.trunc(v, ir.IntType(bits)) if v.type.width > bits else v


def _from_pattern(b: ir.IRBuilder, v: ir.Value, d) -> ir.Value:
    if d.is_bool:
        return b.icmp_unsigned("!=", v, ir.Constant(v.type, 0))
    return from_bits(b, v, d)


# -- the explicit level's shared memory -----------------------------------------------------------------
@lowers("shared_alloc")
def _shared_alloc(lw: Lowering, op: Operation) -> list:
    t = op.results[0].type
    return [SharedTile(lw.smem.alloc(lw.b, op), shared_layout_of(t), (), t.element)]


@lowers("shared_index")
def _shared_index(lw: Lowering, op: Operation) -> list:
    buf: SharedTile = lw.get(op.buffer)
    (index,) = lw.get(op.index)
    if index.type != I32:
        index = lw.b.trunc(index, I32) if index.type.width > 32 else lw.b.zext(index, I32)
    return [SharedTile(buf.base, buf.layout, buf.prefix + (index,), buf.element)]


@lowers("shared_load")
def _shared_load(lw: Lowering, op: Operation) -> list:
    matrices = staging.shared_load(lw, op)
    if matrices is not None:
        return [matrices]
    tile: SharedTile = lw.get(op.src)
    t = op.results[0].type
    n = len(tile.prefix)
    inner = SharedLayout(tile.layout.modes[n:], tile.layout.strides[n:], tile.layout.swizzles)
    bits = container_bits(t.element)
    vector = min(contiguous_vector(tile_layout(t), inner), max(1, 128 // bits))
    if vector > 1 and not isinstance(t.element, PointerType) and not t.element.is_bool:
        return [load_vectors(lw, tile, t, vector)]
    offsets = shared_coords_offsets(lw, tile, tile_layout(t))
    return [load_register_tile(lw, tile.base, t, offsets)]


@lowers("shared_store")
def _shared_store(lw: Lowering, op: Operation) -> list:
    tile: SharedTile = lw.get(op.dst)
    t = op.value.type
    offsets = shared_coords_offsets(lw, tile, tile_layout(t))
    store_register_tile(lw, tile.base, t, lw.get(op.value), offsets)
    return []


@lowers("copy_async")
def _copy_async(lw: Lowering, op: Operation) -> list:
    """With the target's asynchronous copies, 16-byte `cp.async`s straight into the shared
    layout when the tile allows them (`_copy_chunks`), at run time when the tensor's last
    dim is contiguous and every chunk is 16-byte aligned; otherwise (and on other targets) a
    synchronous element-by-element copy. One commit group per copy_async either way, so
    that `async_wait {pending}` counts copy_async ops."""
    vector = _copy_chunks(lw, op)
    if vector is None:
        _copy_elements(lw, op)
    else:
        b = lw.b
        chunks = _chunk_addresses(lw, op, vector)
        ok = _chunks_aligned(lw, op, vector)
        fast, slow, done = lw.block("copy.async"), lw.block("copy.sync"), lw.block("copy.done")
        b.cbranch(ok, fast, slow)
        b.position_at_end(fast)
        for src, dst, nbytes in chunks:
            lw.target.copy_async_16(b, dst, src, nbytes)
        b.branch(done)
        b.position_at_end(slow)
        _copy_elements(lw, op, vector)
        b.branch(done)
        b.position_at_end(done)
    if lw.target.async_copies:
        lw.target.commit_copies(lw.b)
    return []


def _chunks_aligned(lw: Lowering, op: Operation, vector: int) -> ir.Value:
    """Whether every chunk's source is 16 contiguous, 16-byte aligned bytes, from facts that
    do not depend on the chunk: a last dim of stride 1, rows that start 16-byte aligned (a
    16-byte aligned base and every other stride a multiple of 16 bytes) and the tile's
    offset along the last dim a multiple of the chunk (chunks start at multiples of `vector`
    inside the tile). The launch usually specialised on the first two (a constant stride,
    `rows_aligned`), and LLVM knows the offset's low bits (`k * BK`): then the check folds
    away with the synchronous path, leaving the copies in one block with the loop's mma
    instructions, for ptxas to interleave. Otherwise it is loop-invariant but for the
    offset, and implies the per-chunk alignment."""
    b = lw.b
    tensor = lw.get(op.tensor)
    elem_bytes = op.dst.type.element.itemsize_bits // 8
    zero = ir.Constant(I64, 0)
    ok = b.icmp_unsigned("==", tensor.strides[-1], ir.Constant(I64, 1))
    if not tensor.rows_aligned:
        base = b.and_(b.ptrtoint(tensor.ptr, I64), ir.Constant(I64, 15))
        ok = b.and_(ok, b.icmp_unsigned("==", base, zero))
        for stride in tensor.strides[:-1]:
            step = b.and_(b.mul(stride, ir.Constant(I64, elem_bytes)), ir.Constant(I64, 15))
            ok = b.and_(ok, b.icmp_unsigned("==", step, zero))
    last = offsets_i32(lw, op.offsets)[-1]
    ok = b.and_(ok, b.icmp_unsigned("==", b.and_(last, i32(vector - 1)), i32(0)))
    return ok


def _copy_chunks(lw: Lowering, op: Operation) -> int | None:
    """Elements per 16-byte chunk when `cp.async` can copy the tile: a target that has it,
    whole-byte elements, a last dim of whole chunks and a shared layout that keeps each
    chunk's elements at consecutive, chunk-aligned offsets."""
    t = op.dst.type
    tensor = op.tensor.type
    if not lw.target.async_copies or isinstance(t.element, PointerType) or t.element.is_bool:
        return None
    bits = t.element.itemsize_bits
    if is_packed(dtype_of(tensor)) or bits not in (8, 16, 32, 64) or container_bits(t.element) != bits:
        return None
    vector = 128 // bits
    if t.shape[-1] % vector or t.numel // vector % 1:
        return None
    tile: SharedTile = lw.get(op.dst)
    layout = tile.layout
    n = len(tile.prefix)
    inner = SharedLayout(layout.modes[n:], layout.strides[n:], layout.swizzles)
    offsets = inner.offsets().reshape(-1, vector)
    if not ((offsets[:, 0] % vector == 0).all() and (np.diff(offsets, axis=1) == 1).all()):
        return None
    return vector


def _chunk_addresses(lw: Lowering, op: Operation, vector: int) -> list:
    """(global source, shared destination, bytes to read) of each chunk this thread copies:
    chunk c (row-major over the tile) goes to thread c % T. Out-of-bounds chunks read 0
    bytes (cp.async fills the rest with zeros); a chunk that crosses the end of the last
    dim reads the elements inside."""
    b = lw.b
    tensor = lw.get(op.tensor)
    tile: SharedTile = lw.get(op.dst)
    t = op.dst.type
    offsets = offsets_i32(lw, op.offsets)
    et_mem = memory_type(t.element)
    et_smem = smem_type(t.element, lw.llvm_type)
    elem_bytes = t.element.itemsize_bits // 8
    shape = list(t.shape[:-1]) + [t.shape[-1] // vector]
    strides = row_major_strides(shape)
    threads = lw.num_threads
    out = []
    # The tile's corner once per copy, each chunk's offset from it (loop-invariant) apart:
    # one 64-bit product per copy instead of one per chunk.
    corner = b.gep(tensor.ptr, [linear_index(b, offsets, tensor.strides)], source_etype=et_mem)
    for k in range(-(-math.prod(shape) // threads)):
        flat = b.add(lw.thread_id, i32(k * threads))
        coords = [b.urem(b.udiv(flat, i32(s_)), i32(n)) if s_ > 1 else b.urem(flat, i32(n))
                  for s_, n in zip(strides, shape)]
        coords[-1] = b.mul(coords[-1], i32(vector))
        gcoords = [b.add(o, c) for o, c in zip(offsets, coords)]
        inside = _copy_mask(lw, op)
        for c, size in zip(gcoords[:-1], tensor.sizes[:-1]):
            inside = b.and_(inside, b.icmp_unsigned("<", c, size))
        # Elements left in the last dim from this chunk's start, clamped to 0..vector.
        left = b.sub(tensor.sizes[-1], gcoords[-1])
        left = b.select(b.icmp_signed("<", left, i32(0)), i32(0), left)
        left = b.select(b.icmp_signed(">", left, i32(vector)), i32(vector), left)
        left = b.select(inside, left, i32(0))
        src = b.gep(corner, [linear_index(b, coords, tensor.strides)], source_etype=et_mem)
        dst = element_pointer(b, tile.base, et_smem, tile_offset(b, tile, coords))
        out.append((src, dst, b.mul(left, i32(elem_bytes))))
    return out


def _copy_mask(lw: Lowering, op: Operation) -> ir.Value:
    """Whether the copy reads at all (its optional mask; out of it, zeros are written)."""
    if op.mask is None:
        return ir.Constant(ir.IntType(1), 1)
    (mask,) = lw.get(op.mask)
    return mask


def _copy_elements(lw: Lowering, op: Operation, vector: int = 1) -> None:
    """The synchronous copy: the tile cut into runs of `vector` elements along the last dim
    (row-major), thread t copies runs t, t + T, t + 2T, ... element by element, in a loop
    (not unrolled: it is the slow path of the asynchronous copy, and unrolled it would hold
    many addresses live next to a dot's accumulators). As the fallback of `cp.async` it
    takes the same runs as the 16-byte chunks: threads of one copy may go different ways,
    and each must write what the other way would have."""
    b = lw.b
    tensor = lw.get(op.tensor)
    tile: SharedTile = lw.get(op.dst)
    t = op.dst.type
    offsets = offsets_i32(lw, op.offsets)
    shape = list(t.shape[:-1]) + [t.shape[-1] // vector]
    strides = row_major_strides(shape)
    et_smem = smem_type(t.element, lw.llvm_type)
    et_mem = memory_type(t.element)
    bits = 8 if t.element.is_bool else t.element.bits
    if is_packed(tensor.dtype):
        raise op.error(f"copy_async of packed {tensor.dtype} is not supported yet")
    threads = lw.num_threads
    pre, header, body, end = b.block, lw.block("copy.loop"), lw.block("copy.body"), \
        lw.block("copy.exit")
    b.branch(header)
    b.position_at_end(header)
    flat = b.phi(I32)
    flat.add_incoming(lw.thread_id, pre)
    b.cbranch(b.icmp_unsigned("<", flat, i32(math.prod(shape))), body, end)
    b.position_at_end(body)
    runs = [b.urem(b.udiv(flat, i32(s)), i32(n)) for s, n in zip(strides, shape)]
    for e in range(vector):
        coords = runs[:-1] + [b.add(b.mul(runs[-1], i32(vector)), i32(e)) if vector > 1
                              else runs[-1]]
        gcoords = [b.add(o, c) for o, c in zip(offsets, coords)]
        inside = _copy_mask(lw, op)
        for c, size in zip(gcoords, tensor.sizes):
            inside = b.and_(inside, b.icmp_unsigned("<", c, size))
        ptr = b.gep(tensor.ptr, [linear_index(b, gcoords, tensor.strides)], source_etype=et_mem)
        raw = masked_load(lw, ptr, ir.IntType(bits), inside, ir.Constant(ir.IntType(bits), 0))
        value = from_bits(b, raw, t.element)
        off = layout_offset(b, tile.layout, list(tile.prefix) + coords)
        b.store(to_container(b, value, et_smem), element_pointer(b, tile.base, et_smem, off))
    flat.add_incoming(b.add(flat, i32(threads)), b.block)
    b.branch(header)
    b.position_at_end(end)


@lowers("gather_async")
def _gather_async(lw: Lowering, op: Operation) -> list:
    """Each thread copies its own elements of the pointer tile. With the target's
    asynchronous copies and a tile whose runs (`_gather_runs`) are contiguous and masked as
    a whole, one 16-byte `cp.async` per run, a masked-off run reading 0 bytes (zero fill),
    when every live run is 16-byte aligned at run time; otherwise, run by run, element by
    element (synchronously). Without such runs, or on other targets, a synchronous copy,
    element by element. One commit group either way."""
    b = lw.b
    t = op.ptr.type
    element = t.element.pointee
    ptrs = lw.get(op.ptr)
    preds = ([truth(b, m) for m in lw.get(op.mask)] if op.mask is not None
             else [ir.Constant(ir.IntType(1), 1)] * len(ptrs))
    tile: SharedTile = lw.get(op.dst)
    offsets = shared_coords_offsets(lw, tile, tile_layout(t))
    et_smem = smem_type(element, lw.llvm_type)
    bits = 8 if element.is_bool else element.bits

    def copy(ptr, pred, off):
        raw = masked_load(lw, ptr, ir.IntType(bits), pred, ir.Constant(ir.IntType(bits), 0))
        b.store(to_container(b, from_bits(b, raw, element), et_smem),
                element_pointer(b, tile.base, et_smem, off))

    v = _gather_runs(lw, op)
    if v is None:
        for ptr, pred, off in zip(ptrs, preds, offsets):
            copy(ptr, pred, off)
    else:
        # Runs are contiguous and masked as a whole (the ops say so): each is read through
        # its first pointer and predicate only.
        runs = range(0, len(ptrs), v)

        def copy_runs():
            for g in runs:
                dst = element_pointer(b, tile.base, et_smem, offsets[g])
                lw.target.copy_async_16(b, dst, ptrs[g],
                                        b.select(preds[g], i32(v * bits // 8), i32(0)))
        if run_alignment(op.ptr, v, lw.fn) >= 16:
            copy_runs()      # the launch's facts show every run aligned: no check
        else:
            ok = ir.Constant(ir.IntType(1), 1)
            for g in runs:
                low = b.and_(b.ptrtoint(ptrs[g], I64), ir.Constant(I64, 15))
                ok = b.and_(ok, b.or_(b.icmp_unsigned("==", low, ir.Constant(I64, 0)),
                                      b.not_(preds[g])))
            fast, slow, done = (lw.block("gather.async"), lw.block("gather.sync"),
                                lw.block("gather.done"))
            b.cbranch(ok, fast, slow)
            b.position_at_end(fast)
            copy_runs()
            b.branch(done)
            b.position_at_end(slow)
            et_mem = memory_type(element)
            for g in runs:
                for i in range(v):
                    copy(b.gep(ptrs[g], [ir.Constant(I64, i)], source_etype=et_mem),
                         preds[g], offsets[g + i])
            b.branch(done)
            b.position_at_end(done)
    if lw.target.async_copies:
        lw.target.commit_copies(lw.b)
    return []


def _gather_runs(lw: Lowering, op: Operation) -> int | None:
    """Elements per 16-byte run when `cp.async` can gather the tile: a target that has it,
    whole-byte elements, runs of the register layout (consecutive along the last dim) that
    the shared layout keeps at consecutive, run-aligned offsets, pointers that the ops
    show step by one element along the last dim and a mask that does not change along it."""
    t = op.ptr.type
    element = t.element.pointee
    if not lw.target.async_copies or element.is_bool or is_packed(element):
        return None
    bits = element.itemsize_bits
    if bits not in (8, 16, 32, 64) or container_bits(element) != bits:
        return None
    if last_dim_step(op.ptr) != 1 or op.mask is not None and last_dim_step(op.mask) != 0:
        return None
    v = 128 // bits
    layout = tile_layout(t)
    tile: SharedTile = lw.get(op.dst)
    n = len(tile.prefix)
    inner = SharedLayout(tile.layout.modes[n:], tile.layout.strides[n:], tile.layout.swizzles)
    if vector_groups(layout, bits) < v or contiguous_vector(layout, inner) < v:
        return None
    return v


@lowers("async_wait")
def _async_wait(lw: Lowering, op: Operation) -> list:
    if lw.target.async_copies:
        lw.target.wait_copies(lw.b, op.pending)
    if op.fence_async:
        lw.target.fence_async_shared(lw.b)
    return []  # else copy_async completed before it returned


@lowers("barrier")
def _barrier(lw: Lowering, op: Operation) -> list:
    lw.target.barrier(lw.b)
    return []


@lowers("grid_dependency")
def _grid_dependency(lw: Lowering, op: Operation) -> list:
    lw.target.grid_dependency(lw.b, op.action)
    return []

