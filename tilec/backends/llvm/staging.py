"""Matrix-instruction operands through shared memory with ldmatrix.

`convert_layout` into a layout that ldmatrix(1) divides (the mma a and b layouts) stores
the source tile with vector stores into a swizzled shared tile and reads it back with
`Target.load_matrix`, the plan coming from `tilec.ir.mma.ldmatrix_plan` (conflict-free
stores and reads where the layouts allow). Two ways:

- eager (any such conversion): store, barrier, every ldmatrix, barrier;
- deferred, when the converted value is an operand of an mma `dot` that uses it alone and
  nothing between the conversion and the dot touches the scratch area: the conversion only
  stores (a at scratch byte 0, b after it) and hands the dot a `StagedOperand`; the dot
  puts one barrier after both stores and loads each group of matrices right before its
  first mma, so only the fragments of one k step are live (all of them at once spill a
  128x128 tile), then a barrier before the scratch area is reused.

  The other operand's conversion may lie between the deferred stores and the dot. When it
  is deferred too, a and b have their own parts of the scratch area. When it is not (no
  ldmatrix plan: the 8-bit and tf32 b fragments hold runs along k, which ldmatrix cannot
  give, so b goes through the generic `convert.move`; or it is converted eagerly), it
  writes the scratch area from byte 0 while the deferred a waits there, so a is then
  staged after b's bytes (`_operand_offset`), else b overwrites a before the ldmatrix.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from llvmlite import ir

from tilec.backends.llvm.lower import Lowering, tile_layout
from tilec.backends.llvm.shared import (SharedTile, container_bits, element_pointer,
                                        layout_offset, smem_type, store_vectors, tile_offset)
from tilec.backends.llvm.values import coord, i32
from tilec.ir import mma
from tilec.ir.core import Operation, OpResult, Trait
from tilec.ir.shared_layout import SharedLayout
from tilec.ir.types import REGISTER, PointerType, TileType, dtype_of

_ALIGN = 128


@dataclass
class StagedOperand:
    """A tile stored in shared memory for ldmatrix, loaded group by group on demand. In the
    scratch area (`tile` None: the dot brackets its reads with barriers), or in a shared
    tile that a `shared_load` reads (its program orders the accesses)."""

    plan: mma.LdmatrixPlan
    base: ir.Value
    t: TileType
    groups: dict[int, list[ir.Value]] = field(default_factory=dict)
    tile: SharedTile | None = None
    offsets: np.ndarray | None = None                            # see _group_offset
    bases: dict[int, ir.Value] = field(default_factory=dict)

    @property
    def in_scratch(self) -> bool:
        return self.tile is None

    @property
    def locals_per_group(self) -> int:
        return self.plan.num * self.plan.per_register

    def value(self, lw: Lowering, local: int) -> ir.Value:
        """Local element `local` of the destination layout (loads its group if needed)."""
        g = local // self.locals_per_group
        if g not in self.groups:
            self.groups[g] = _load_group(lw, self, g)
        return self.groups[g][local % self.locals_per_group]


def _plan(lw: Lowering, src_t: TileType, dst_t: TileType) -> mma.LdmatrixPlan | None:
    element = src_t.element
    if not lw.target.matrix_loads or isinstance(element, PointerType) or element.is_bool:
        return None
    bits = container_bits(element)
    if bits != element.itemsize_bits:
        return None
    return mma.ldmatrix_plan(tile_layout(src_t), tile_layout(dst_t), bits)


def _inner_layout(s: StagedOperand) -> SharedLayout | None:
    """The layout the group offsets are computed in, apart from a stage prefix: the
    scratch plan's, or a stage's when `tile_offset` can add the prefix separately."""
    if s.tile is None:
        return s.plan.shared
    layout, n = s.tile.layout, len(s.tile.prefix)
    periods = [1 << (z.bits + z.base + z.shift) for z in layout.swizzles]
    if n and (any(len(m) != 1 for m in layout.modes[:n])
              or any(st[0] % p for st in layout.strides[:n] for p in periods)):
        return None
    return SharedLayout(layout.modes[n:], layout.strides[n:], layout.swizzles)


def _group_offsets(s: StagedOperand, inner: SharedLayout) -> np.ndarray:
    """[num_threads, groups] element offsets of every thread's ldmatrix row in `inner`."""
    c = s.plan.address.coords()
    return np.asarray(inner._offsets_of([c[:, :, 0], c[:, :, 1] * s.plan.row_elems]),
                      dtype=np.int64)


def _group_offset(lw: Lowering, s: StagedOperand, g: int) -> ir.Value:
    """The element offset of this thread's row of ldmatrix group `g`. A group whose offsets
    are another group's plus one constant for every thread (the XOR swizzle leaves all but a
    few column bits alone) reuses that group's value: LLVM folds the constant into the
    ld.shared address, so a block of 32 ldmatrix keeps a few address registers live across
    a loop instead of 32."""
    b, plan = lw.b, s.plan
    inner = _inner_layout(s)
    if inner is not None:
        if s.offsets is None:
            s.offsets = _group_offsets(s, inner)
        col = s.offsets[:, g]
        for h, value in s.bases.items():
            delta = col - s.offsets[:, h]
            if (delta == delta[0]).all():
                offset = b.add(value, i32(int(delta[0]))) if delta[0] else value
                return _with_prefix(b, s, offset)
    index = lw.index(plan.address)
    row = coord(b, index, g, 0)
    column = b.mul(coord(b, index, g, 1), i32(plan.row_elems))
    if inner is None:
        return tile_offset(b, s.tile, [row, column])
    value = layout_offset(b, inner, [row, column])
    s.bases[g] = value
    return _with_prefix(b, s, value)


def _with_prefix(b: ir.IRBuilder, s: StagedOperand, inner: ir.Value) -> ir.Value:
    if s.tile is None:
        return inner
    total = inner
    for c, st in zip(s.tile.prefix, s.tile.layout.strides[:len(s.tile.prefix)]):
        total = b.add(b.mul(c, i32(st[0])), total)
    return total


def _load_group(lw: Lowering, s: StagedOperand, g: int) -> list[ir.Value]:
    b, plan = lw.b, s.plan
    et = smem_type(s.t.element, lw.llvm_type)
    reg = lw.llvm_type(s.t.element)
    offset = _group_offset(lw, s, g)
    ptr = element_pointer(b, s.base, et, offset)
    out: list[ir.Value] = []
    for word in lw.target.load_matrix(b, ptr, plan.num, plan.trans):
        if plan.per_register == 1:
            out.append(word if word.type == reg else b.bitcast(word, reg))
            continue
        vec = b.bitcast(word, ir.VectorType(reg, plan.per_register))
        out.extend(b.extract_element(vec, i32(i)) for i in range(plan.per_register))
    return out


def _store(lw: Lowering, op: Operation, plan: mma.LdmatrixPlan, at: int) -> StagedOperand:
    src_t = op.x.type
    base = lw.smem.scratch(lw.b, src_t.numel * container_bits(src_t.element) // 8, at)
    store_vectors(lw, base, plan.shared, src_t, lw.get(op.x), tile_layout(src_t), plan.vector)
    return StagedOperand(plan, base, op.results[0].type)


def _deferred_dot(op: Operation) -> tuple[Operation, int] | None:
    """The mma dot that alone uses `op`'s result as operand 0 or 1, when only ops that do
    not touch shared memory (elementwise ops, global loads, the other operand's
    conversion) lie between them in one block."""
    r = op.results[0]
    if len(r.uses) != 1:
        return None
    dot = r.uses[0]
    if dot.name != "dot" or dot.parent is not op.parent:
        return None
    which = [i for i, v in enumerate(dot.operands) if v is r]
    if which not in ([0], [1]):
        return None
    ops = op.parent.ops
    for mid in ops[ops.index(op) + 1:ops.index(dot)]:
        other = dot.operands[1 - which[0]]
        if mid.has_trait(Trait.ELEMENTWISE) or mid.name in ("load", "load_view", "constant"):
            continue
        if isinstance(other, OpResult) and mid is other.owner and mid.name == "convert_layout":
            continue
        return None
    return dot, which[0]


def _bytes_aligned(t: TileType) -> int:
    """The scratch bytes of tile `t`, rounded up to 128."""
    return -(-t.numel * container_bits(t.element) // 8 // _ALIGN) * _ALIGN


def _defers(lw: Lowering, op: Operation) -> tuple[Operation, int] | None:
    """(dot, operand index) when `convert` lowers convert_layout `op` deferred: it has an
    ldmatrix plan and `_deferred_dot` finds an mma dot."""
    if _plan(lw, op.x.type, op.results[0].type) is None:
        return None
    found = _deferred_dot(op)
    if found is None:
        return None
    return found if _on_mma_sync(lw, found[0]) else None


def _on_mma_sync(lw: Lowering, dot: Operation) -> bool:
    """Whether `dot` lowers to warp-level mma (not wgmma: it takes its a whole, see dot.py)."""
    if any(v.type.space != REGISTER for v in dot.operands):
        return False
    layouts = [tile_layout(v.type) for v in dot.operands]
    return mma.match(lw.target.arch, *layouts, dtype_of(dot.a.type), dtype_of(dot.acc.type),
                     dot.precision) is not None


def _operand_offset(lw: Lowering, op: Operation, dot: Operation, which: int) -> int:
    """Where deferred operand `which` of `dot` is staged: a at byte 0 and b after a (each
    rounded up to 128 bytes), except that a goes after b when b's conversion comes later
    and is not deferred (it writes from byte 0; see the module doc). Any conversion of a
    that is not deferred writes at most a's bytes from byte 0, below b."""
    if which == 1:
        return _bytes_aligned(dot.a.type)
    other = dot.operands[1]
    ops = op.parent.ops
    if (isinstance(other, OpResult) and other.owner.name == "convert_layout"
            and other.owner.parent is op.parent
            and ops.index(op) < ops.index(other.owner) < ops.index(dot)
            and _defers(lw, other.owner) != (dot, 1)):
        return _bytes_aligned(other.owner.x.type)
    return 0


def convert(lw: Lowering, op: Operation) -> list[ir.Value] | StagedOperand | None:
    """Lower `convert_layout` through ldmatrix when the plan exists (see the module doc)."""
    src_t, dst_t = op.x.type, op.results[0].type
    plan = _plan(lw, src_t, dst_t)
    if plan is None:
        return None
    found = _defers(lw, op)
    if found is not None:
        dot, which = found
        return _store(lw, op, plan, _operand_offset(lw, op, dot, which))
    staged = _store(lw, op, plan, 0)
    lw.target.barrier(lw.b)
    out = [staged.value(lw, l) for l in range(tile_layout(dst_t).local_size)]
    lw.target.barrier(lw.b)  # the scratch area may be reused right after
    return out


def _reads_rows(tile: SharedTile, plan: mma.LdmatrixPlan, bits: int) -> bool:
    """Whether every ldmatrix row of the plan (`row_elems` elements from a column that is a
    multiple of it) is 16 contiguous, 16-byte aligned bytes of `tile`."""
    inner = SharedLayout(tile.layout.modes[len(tile.prefix):],
                         tile.layout.strides[len(tile.prefix):], tile.layout.swizzles)
    offsets = inner.offsets().reshape(-1, plan.row_elems)
    return bool((offsets[:, 0] % plan.row_elems == 0).all()
                and (np.diff(offsets, axis=1) == 1).all())


def shared_load(lw: Lowering, op: Operation) -> list[ir.Value] | StagedOperand | None:
    """Lower `shared_load` into a layout that ldmatrix divides: ldmatrix straight from the
    shared tile. When the result's only uses are mma dots later in the block with nothing
    that writes memory in between, the groups load on demand at the dot (as for the deferred
    staging above, only one k step's fragments are live)."""
    tile: SharedTile = lw.get(op.src)
    t = op.results[0].type
    element = t.element
    if (not lw.target.matrix_loads or isinstance(element, PointerType) or element.is_bool
            or container_bits(element) != element.itemsize_bits):
        return None
    bits = element.itemsize_bits
    plan = mma.ldmatrix_plan(tile_layout(t), tile_layout(t), bits)
    if plan is None or not _reads_rows(tile, plan, bits):
        return None
    staged = StagedOperand(plan, tile.base, t, tile=tile)
    if _read_at_dot(lw, op):
        return staged
    return [staged.value(lw, l) for l in range(tile_layout(t).local_size)]


def _read_at_dot(lw: Lowering, op: Operation) -> bool:
    uses = op.results[0].uses
    if not uses or any(u.name != "dot" or u.parent is not op.parent for u in uses):
        return False
    if not all(_on_mma_sync(lw, dot) for dot in uses):
        return False
    ops = op.parent.ops
    last = max(ops.index(u) for u in uses)
    return all(not mid.has_trait(Trait.WRITES_MEMORY) or mid.name == "dot"
               for mid in ops[ops.index(op) + 1:last])
