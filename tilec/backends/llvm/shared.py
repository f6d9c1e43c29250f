"""Shared memory: a simple planner, shared tiles, and staging register tiles through it.

One dynamic `extern` shared array holds everything. The plan has two parts:
- persistent buffers (`shared_alloc`), each at its own offset, fixed before lowering starts;
- one transient scratch area after them, shared by every data movement the lowering makes
  (layout conversions, cross-warp reductions, scans, dot operands). Each such use is
  bracketed by barriers (write, barrier, read, barrier), so they can all start at the same
  offset: its size is the largest one.

`SharedPlan.total_bytes` is the dynamic shared memory the launch must request.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from llvmlite import ir

from tilec.backends.llvm.values import I8, LayoutIndex, coord, i32
from tilec.ir.core import Block, Function, Operation
from tilec.ir.dtypes import DType
from tilec.ir.layout import RegisterLayout
from tilec.ir.shared_layout import SharedLayout, row_major
from tilec.ir.types import PointerType, TileType

if TYPE_CHECKING:
    from tilec.backends.llvm.lower import Lowering

SMEM_SYMBOL = "tilec_smem"
_ALIGN = 128     # every allocation and the scratch area start on 128 bytes
# The wgmma hardware swizzles absolute shared addresses: a tile in a Hopper layout starts on
# its swizzle's period (1024 bytes for 128B), and so does the shared array.
_ARRAY_ALIGN = 1024


def _alignment(t: TileType) -> int:
    """The byte alignment of a shared buffer: 128, or its swizzle's period if larger."""
    bits = container_bits(t.element)
    periods = [(1 << (z.bits + z.base + z.shift)) * bits // 8
               for z in shared_layout_of(t).swizzles]
    return max([_ALIGN] + [p for p in periods if p <= _ARRAY_ALIGN])


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def container_bits(element: DType | PointerType) -> int:
    """Bits one element takes in shared memory: a whole 1, 2, 4 or 8 bytes."""
    if isinstance(element, PointerType):
        return 64
    bits = max(8, element.itemsize_bits)
    return 1 << (bits - 1).bit_length()


def smem_type(element: DType | PointerType, llvm_type) -> ir.Type:
    """The LLVM type of one element in shared memory."""
    if isinstance(element, PointerType):
        return ir.PointerType(addrspace=1)
    reg = llvm_type(element)
    bits = container_bits(element)
    if isinstance(reg, ir.IntType) and reg.width != bits:
        return ir.IntType(bits)
    return reg


def to_container(b: ir.IRBuilder, v: ir.Value, t: ir.Type) -> ir.Value:
    if v.type == t:
        return v
    return b.zext(v, t)


def from_container(b: ir.IRBuilder, v: ir.Value, t: ir.Type) -> ir.Value:
    if v.type == t:
        return v
    return b.trunc(v, t)


def shared_layout_of(t: TileType) -> SharedLayout:
    layout = t.layout
    return layout if isinstance(layout, SharedLayout) else row_major(*t.shape)


@dataclass(frozen=True)
class SharedTile:
    """A shared-memory tile: the allocation's base (i8 pointer in addrspace 3), the
    allocation's layout, and the leading indices `shared_index` fixed."""

    base: ir.Value
    layout: SharedLayout
    prefix: tuple[ir.Value, ...]
    element: DType | PointerType


class SharedPlan:
    def __init__(self, lowering: Lowering, offsets: dict[Operation, int], persistent: int):
        self.lowering = lowering
        self.offsets = offsets
        self.persistent_bytes = persistent
        self.scratch_base = _round_up(persistent, _ARRAY_ALIGN)  # wgmma operands staged
        self.scratch_bytes = 0
        self._array: ir.GlobalVariable | None = None

    @property
    def array(self) -> ir.GlobalVariable:
        if self._array is None:
            module = self.lowering.module
            arr = ir.GlobalVariable(module, ir.ArrayType(I8, 0), SMEM_SYMBOL,
                                    addrspace=self.lowering.target.shared_addrspace)
            arr.linkage = "external"
            arr.align = _ARRAY_ALIGN
            self._array = arr
        return self._array

    def pointer(self, b: ir.IRBuilder, byte_offset: int | ir.Value) -> ir.Value:
        off = i32(byte_offset) if isinstance(byte_offset, int) else byte_offset
        # llvmlite gives globals typed pointers; an opaque `ptr addrspace(3)` lets us index
        # with any element type (LLVM folds the ptrtoint/inttoptr pair away).
        opaque = ir.PointerType(addrspace=self.lowering.target.shared_addrspace)
        base = b.inttoptr(b.ptrtoint(self.array, ir.IntType(64)), opaque)
        return b.gep(base, [off], inbounds=True, source_etype=I8)

    def alloc(self, b: ir.IRBuilder, op: Operation) -> ir.Value:
        return self.pointer(b, self.offsets[op])

    def scratch(self, b: ir.IRBuilder, nbytes: int, at: int = 0) -> ir.Value:
        """The transient area (see the module doc), at least `at + nbytes` long; the
        pointer is to byte `at` of it (two tiles staged for one op use two parts)."""
        self.scratch_bytes = max(self.scratch_bytes, _round_up(at + nbytes, 16))
        return self.pointer(b, self.scratch_base + at)

    @property
    def total_bytes(self) -> int:
        if self.scratch_bytes == 0:
            return self.persistent_bytes
        return self.scratch_base + self.scratch_bytes

    def finish(self) -> None:
        total, limit = self.total_bytes, self.lowering.target.max_shared_bytes
        if total > limit:
            from tilec.errors import IRError
            raise IRError(f"@{self.lowering.fn.name} needs {total} bytes of shared memory; "
                          f"{self.lowering.target.arch} has {limit}",
                          hint="use smaller tiles or fewer pipeline stages")


def plan_shared(lowering: Lowering, fn: Function) -> SharedPlan:
    """Give every `shared_alloc` of `fn` its offset. Two allocations in one block share
    bytes when a `barrier` lies between the last use of the first and the second (the
    pipeline's buffers of consecutive loops: their last reads are over before anyone writes
    the next loop's); all others get bytes of their own."""
    offsets: dict[Operation, int] = {}
    placed: list[tuple[Operation, int, int, int]] = []   # (alloc, offset, bytes, last use)
    top = 0
    for op in fn.walk():
        if op.name != "shared_alloc":
            continue
        t = op.results[0].type
        nbytes = shared_layout_of(t).size * container_bits(t.element) // 8
        block = op.parent
        here = block.ops.index(op)
        busy = sorted((off, size) for other, off, size, last in placed
                      if other.parent is not block or not _barrier_between(block, last, here))
        offset = 0
        align = _alignment(t)
        for off, size in busy:
            if offset + nbytes <= off:
                break
            offset = max(offset, _round_up(off + size, align))
        offsets[op] = offset
        placed.append((op, offset, nbytes, _last_use(op, block)))
        top = max(top, offset + nbytes)
    return SharedPlan(lowering, offsets, top)


def _last_use(alloc: Operation, block: Block) -> int:
    """The index in `block` of the last op that uses the buffer (through `shared_index`
    views, inside nested regions)."""
    last = block.ops.index(alloc)
    values = list(alloc.results)
    while values:
        for user in values.pop().uses:
            if user.name == "shared_index":
                values.extend(user.results)
            top = user
            while top.parent is not block and top.parent is not None:
                top = top.parent.parent.parent   # block -> region -> op
            if top.parent is block:
                last = max(last, block.ops.index(top))
            else:
                return len(block.ops)  # used outside this block: never free
    return last


def _barrier_between(block: Block, first: int, second: int) -> bool:
    return any(op.name == "barrier" for op in block.ops[first + 1:second])


# -- addressing ---------------------------------------------------------------------------------
def layout_offset(b: ir.IRBuilder, layout: SharedLayout, coords: Sequence[ir.Value]) -> ir.Value:
    """The i32 element offset of tile coordinate `coords` (i32 values) in `layout`: the
    strided part, then the XOR swizzles (shared_layout.py)."""
    total: ir.Value = i32(0)
    for c, sizes, strides in zip(coords, layout.modes, layout.strides):
        rest = c
        for k, (size, stride) in enumerate(zip(reversed(sizes), reversed(strides))):
            last = k == len(sizes) - 1
            digit = rest if last else b.urem(rest, i32(size))
            if stride:
                total = b.add(total, b.mul(digit, i32(stride)))
            if not last:
                rest = b.udiv(rest, i32(size))
    for z in layout.swizzles:
        mask = ((1 << z.bits) - 1) << z.base
        total = b.xor(total, b.and_(b.lshr(total, i32(z.shift)), i32(mask)))
    return total


def tile_offset(b: ir.IRBuilder, tile: SharedTile, coords: Sequence[ir.Value]) -> ir.Value:
    """The element offset of `coords` in shared tile `tile` (its `shared_index` prefix
    first). When each prefix dim is one mode whose stride is a whole number of every
    swizzle's period (the pipeline's stage buffers), the swizzles cannot see the prefix, so
    the offset is prefix * stride plus the swizzled offset within the stage: the latter
    does not change from one stage to the next and LLVM hoists it out of the loop."""
    layout, n = tile.layout, len(tile.prefix)
    periods = [1 << (z.bits + z.base + z.shift) for z in layout.swizzles]
    if n == 0 or any(len(m) != 1 for m in layout.modes[:n]) or any(
            st[0] % p for st in layout.strides[:n] for p in periods):
        return layout_offset(b, layout, list(tile.prefix) + list(coords))
    inner = SharedLayout(layout.modes[n:], layout.strides[n:], layout.swizzles)
    total = layout_offset(b, inner, coords)
    for c, st in zip(tile.prefix, layout.strides[:n]):
        total = b.add(b.mul(c, i32(st[0])), total)
    return total


def element_pointer(b: ir.IRBuilder, base: ir.Value, elem_type: ir.Type,
                    offset: ir.Value) -> ir.Value:
    return b.gep(base, [offset], inbounds=True, source_etype=elem_type)


def linear_offsets(b: ir.IRBuilder, index: LayoutIndex, strides: Sequence[int],
                   local_size: int) -> list[ir.Value]:
    """sum_d coord[d] * strides[d] for each local element of a register tile."""
    thread: ir.Value = i32(0)
    for d, s in enumerate(strides):
        part = index.thread_part[d]
        if s and not (isinstance(part, ir.Constant) and part.constant == 0):
            term = part if s == 1 else b.mul(part, i32(s))
            thread = term if isinstance(thread, ir.Constant) and thread.constant == 0 else \
                b.add(thread, term)
    out = []
    for local in range(local_size):
        c = sum(int(index.local_part[local, d]) * s for d, s in enumerate(strides))
        out.append(b.add(thread, i32(c)) if c else thread)
    return out


def row_major_strides(shape: Sequence[int]) -> list[int]:
    return [math.prod(shape[d + 1:]) for d in range(len(shape))]


def store_register_tile(lowering: Lowering, base: ir.Value, t: TileType,
                        values: list[ir.Value], offsets: list[ir.Value]) -> None:
    """Write each element of a register tile at its element offset in shared memory."""
    b = lowering.b
    et = smem_type(t.element, lowering.llvm_type)
    for v, off in zip(values, offsets):
        b.store(to_container(b, v, et), element_pointer(b, base, et, off))


def load_register_tile(lowering: Lowering, base: ir.Value, t: TileType,
                       offsets: list[ir.Value]) -> list[ir.Value]:
    b = lowering.b
    et = smem_type(t.element, lowering.llvm_type)
    reg = lowering.llvm_type(t.element)
    return [from_container(b, b.load(element_pointer(b, base, et, off), typ=et), reg)
            for off in offsets]


def load_vectors(lowering: Lowering, tile: SharedTile, t: TileType, vector: int) -> list[ir.Value]:
    """Read a register tile of `t`'s layout from shared tile `tile`, `vector` consecutive
    locals per load (at consecutive, vector-aligned offsets: `contiguous_vector`), as 32-bit
    words where they fill them: 16 bytes are one `ld.shared.v4.b32`."""
    b = lowering.b
    layout = t.layout
    index = lowering.index(layout)
    et = smem_type(t.element, lowering.llvm_type)
    reg = lowering.llvm_type(t.element)
    bits = container_bits(t.element)
    total = vector * bits
    words = total // 32 if total >= 32 and total % 32 == 0 else 0
    vt = ir.VectorType(et, vector)
    wide = vt if not words else ir.IntType(32) if words == 1 else \
        ir.VectorType(ir.IntType(32), words)
    out = []
    for g in range(0, layout.local_size, vector):
        off = tile_offset(b, tile, [coord(b, index, g, d) for d in range(layout.rank)])
        raw = b.load(element_pointer(b, tile.base, et, off), typ=wide, align=total // 8)
        vec = b.bitcast(raw, vt) if words else raw
        out.extend(from_container(b, b.extract_element(vec, i32(i)), reg)
                   for i in range(vector))
    return out


def tile_coords(lowering: Lowering, layout: RegisterLayout) -> list[list[ir.Value]]:
    """[local][dim] i32 coordinates of this thread's elements."""
    index = lowering.index(layout)
    b = lowering.b
    return [[coord(b, index, local, d) for d in range(layout.rank)]
            for local in range(layout.local_size)]


def shared_coords_offsets(lowering: Lowering, tile: SharedTile,
                          layout: RegisterLayout) -> list[ir.Value]:
    """Element offsets, in the shared allocation, of this thread's elements of a register
    tile of `layout` read from / written to shared tile `tile`."""
    b = lowering.b
    return [layout_offset(b, tile.layout, list(tile.prefix) + c)
            for c in tile_coords(lowering, layout)]


def scratch_offsets(lowering: Lowering, layout: RegisterLayout,
                    shape: Sequence[int]) -> list[ir.Value]:
    """Row-major offsets of this thread's elements, for staging through scratch."""
    return linear_offsets(lowering.b, lowering.index(layout), row_major_strides(shape),
                          layout.local_size)


def scratch_bytes(t: TileType, numel: int | None = None) -> int:
    n = t.numel if numel is None else numel
    return n * container_bits(t.element) // 8


def store_vectors(lowering: Lowering, base: ir.Value, shared: SharedLayout, t: TileType,
                  values: list[ir.Value], layout: RegisterLayout, vector: int) -> None:
    """Write a register tile of `layout` into shared tile `shared`, `vector` consecutive
    locals per store (they must sit at consecutive offsets, `contiguous_vector`): packed into
    32-bit words, so that 16 bytes become one `st.shared.v4.b32`."""
    b = lowering.b
    index = lowering.index(layout)
    et = smem_type(t.element, lowering.llvm_type)
    bits = container_bits(t.element)
    for g in range(0, len(values), vector):
        off = layout_offset(b, shared, [coord(b, index, g, d) for d in range(layout.rank)])
        ptr = element_pointer(b, base, et, off)
        chunk = [to_container(b, v, et) for v in values[g:g + vector]]
        if vector == 1:
            b.store(chunk[0], ptr)
            continue
        vec: ir.Value = ir.Constant(ir.VectorType(et, vector), ir.Undefined)
        for i, v in enumerate(chunk):
            vec = b.insert_element(vec, v, i32(i))
        total = vector * bits
        if total >= 32 and total % 32 == 0:
            words = total // 32
            vec = b.bitcast(vec, ir.IntType(32) if words == 1 else ir.VectorType(ir.IntType(32),
                                                                                 words))
        b.store(vec, ptr, align=total // 8)
