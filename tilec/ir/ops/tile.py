"""Tile-shaped ops: index ranges, reshapes and permutations, broadcasts, bit views,
layout conversions, reductions, scans and the matrix product."""
from __future__ import annotations

from tilec.ir import dtypes as dt
from tilec.ir.core import Attr, Operation, Trait
from tilec.ir.ops.base import PURE, check_result, numeric_kinds

READS = Trait.READS_MEMORY
from tilec.ir.types import REGISTER, SHARED, ScalarType, TileType, dtype_of

REDUCE_KINDS = ("sum", "prod", "max", "min", "and", "or", "xor")
SCAN_KINDS = ("sum", "prod", "max", "min")


def _tile(op: Operation, t, what: str = "operand") -> TileType:
    if not isinstance(t, TileType):
        raise op.error(f"{what} must be a tile, got {t}")
    return t


def _axis(op: Operation, axis: int, rank: int) -> None:
    if not 0 <= axis < rank:
        raise op.error(f"axis {axis} is out of range for rank {rank}")


class Arange(Operation):
    """`[start, start+1, ..., end-1]` as a 1-D i32 tile."""
    name = "arange"
    attr_specs = {"start": Attr(int), "end": Attr(int)}
    num_results = 1
    traits = frozenset({PURE})

    def verify(self) -> None:
        n = self.end - self.start
        if n <= 0:
            raise self.error(f"empty range [{self.start}, {self.end})")
        check_result(self, TileType((n,), dt.int32))

    @classmethod
    def infer_types(cls, operand_types, attrs):
        return [TileType((attrs["end"] - attrs["start"],), dt.int32)]


class Reshape(Operation):
    """Same elements in row-major order, another shape."""
    name = "reshape"
    operand_specs = ("x",)
    num_results = 1
    traits = frozenset({PURE})

    def verify(self) -> None:
        src, out = _tile(self, self.x.type), _tile(self, self.results[0].type, "result")
        if src.numel != out.numel or src.element != out.element:
            raise self.error(f"cannot reshape {src} to {out}")


class Permute(Operation):
    """Transpose: result dim i is operand dim dims[i]. Of a shared tile, a view of the same
    memory (a wgmma operand read transposed)."""
    name = "permute"
    operand_specs = ("x",)
    attr_specs = {"dims": Attr(list)}
    num_results = 1
    traits = frozenset({PURE})

    def verify(self) -> None:
        src = _tile(self, self.x.type)
        if sorted(self.dims) != list(range(src.rank)):
            raise self.error(f"dims {self.dims} is not a permutation of 0..{src.rank - 1}")
        check_result(self, self.infer_types([src], self.attrs)[0])

    @classmethod
    def infer_types(cls, operand_types, attrs):
        t = operand_types[0]
        return [TileType(tuple(t.shape[d] for d in attrs["dims"]), t.element, None, t.space)]


class ExpandDims(Operation):
    """Insert a dimension of size 1 at `axis`."""
    name = "expand_dims"
    operand_specs = ("x",)
    attr_specs = {"axis": Attr(int)}
    num_results = 1
    traits = frozenset({PURE})

    def verify(self) -> None:
        src = _tile(self, self.x.type)
        _axis(self, self.axis, src.rank + 1)
        check_result(self, self.infer_types([src], self.attrs)[0])

    @classmethod
    def infer_types(cls, operand_types, attrs):
        t = operand_types[0]
        shape = list(t.shape)
        shape.insert(attrs["axis"], 1)
        return [TileType(tuple(shape), t.element)]


class Take(Operation):
    """The slice at `index` along `axis`, which disappears (numpy's `take` of one index; a
    scalar from a rank-1 tile). Layout assignment keeps `axis` in each thread's registers,
    so the slice is a choice of registers and moves nothing."""
    name = "take"
    operand_specs = ("x",)
    attr_specs = {"axis": Attr(int), "index": Attr(int)}
    num_results = 1
    traits = frozenset({PURE})

    def verify(self) -> None:
        src = _tile(self, self.x.type)
        _axis(self, self.axis, src.rank)
        if not 0 <= self.index < src.shape[self.axis]:
            raise self.error(f"index {self.index} is out of range for axis {self.axis} of "
                             f"size {src.shape[self.axis]}")
        if src.space != REGISTER:
            raise self.error(f"take reads a register tile, got {src}")
        check_result(self, self.infer_types([src], self.attrs)[0])

    @classmethod
    def infer_types(cls, operand_types, attrs):
        t = operand_types[0]
        shape = tuple(n for d, n in enumerate(t.shape) if d != attrs["axis"])
        return [TileType(shape, t.element) if shape else ScalarType(t.element)]


class Broadcast(Operation):
    """Repeat size-1 dimensions to the result's shape (ranks are equal)."""
    name = "broadcast"
    operand_specs = ("x",)
    num_results = 1
    traits = frozenset({PURE})

    def verify(self) -> None:
        src, out = _tile(self, self.x.type), _tile(self, self.results[0].type, "result")
        ok = src.rank == out.rank and src.element == out.element and all(
            a == b or a == 1 for a, b in zip(src.shape, out.shape))
        if not ok:
            raise self.error(f"cannot broadcast {src} to {out}",
                             hint="dimensions must be equal or 1 (use expand_dims to add one)")


class View(Operation):
    """Reinterpret the bits of a tile as another dtype; the last dimension scales so the
    bits per row are unchanged (`tile<64xu8>` viewed as `tile<128xu4>`)."""
    name = "view"
    operand_specs = ("x",)
    num_results = 1
    traits = frozenset({PURE})

    def verify(self) -> None:
        src, out = _tile(self, self.x.type), _tile(self, self.results[0].type, "result")
        a, b = dtype_of(src), dtype_of(out)
        if a is None or b is None:
            raise self.error("view needs numeric tiles")
        ok = (src.rank == out.rank and src.shape[:-1] == out.shape[:-1]
              and src.shape[-1] * a.bits == out.shape[-1] * b.bits)
        if not ok:
            raise self.error(f"cannot view {src} as {out}: the bits of each row must match",
                             hint=f"a row of {src.shape[-1]} x {a.bits} bits holds "
                                  f"{src.shape[-1] * a.bits / b.bits:g} elements of {b}")


class ConvertLayout(Operation):
    """Move a tile's elements to another layout (or between registers and shared memory
    is NOT this op's job: see shared_load/shared_store)."""
    name = "convert_layout"
    operand_specs = ("x",)
    num_results = 1
    traits = frozenset({PURE})

    def verify(self) -> None:
        src, out = _tile(self, self.x.type), _tile(self, self.results[0].type, "result")
        if src.shape != out.shape or src.element != out.element or out.space != REGISTER:
            raise self.error(f"convert_layout keeps shape and dtype: {src} -> {out}")


class Reduce(Operation):
    """Reduce `axis` away with a built-in combiner."""
    name = "reduce"
    operand_specs = ("x",)
    attr_specs = {"axis": Attr(int), "kind": Attr(str, choices=REDUCE_KINDS)}
    num_results = 1
    traits = frozenset({PURE})

    def verify(self) -> None:
        src = _tile(self, self.x.type)
        _axis(self, self.axis, src.rank)
        numeric_kinds(self, src, "ib" if self.kind in ("and", "or", "xor") else "fi")
        check_result(self, self.infer_types([src], self.attrs)[0])

    @classmethod
    def infer_types(cls, operand_types, attrs):
        return [_reduced(operand_types[0], attrs["axis"], operand_types[0].element)]


def _reduced(t: TileType, axis: int, element):
    shape = t.shape[:axis] + t.shape[axis + 1:]
    return TileType(shape, element) if shape else ScalarType(element)


class ArgReduce(Operation):
    """Index (i32) of the max/min along `axis`; the first one on ties; NaN counts as largest."""
    name = "argreduce"
    operand_specs = ("x",)
    attr_specs = {"axis": Attr(int), "kind": Attr(str, choices=("max", "min"))}
    num_results = 1
    traits = frozenset({PURE})

    def verify(self) -> None:
        src = _tile(self, self.x.type)
        _axis(self, self.axis, src.rank)
        numeric_kinds(self, src, "fi")
        check_result(self, self.infer_types([src], self.attrs)[0])

    @classmethod
    def infer_types(cls, operand_types, attrs):
        return [_reduced(operand_types[0], attrs["axis"], dt.int32)]


class ReduceCustom(Operation):
    """Reduce `axis` with a combiner region `^(%a: T, %b: T): ... yield %c` (associative)."""
    name = "reduce_custom"
    operand_specs = ("x",)
    attr_specs = {"axis": Attr(int)}
    num_results = 1
    num_regions = 1
    traits = frozenset({PURE})

    def verify(self) -> None:
        src = _tile(self, self.x.type)
        _axis(self, self.axis, src.rank)
        elem = ScalarType(src.element)
        block = self.regions[0].block
        if [a.type for a in block.args] != [elem, elem]:
            raise self.error(f"combiner takes two {elem} arguments")
        term = block.ops[-1] if block.ops else None
        if term is None or term.name != "yield" or [v.type for v in term.operands] != [elem]:
            raise self.error(f"combiner must end with 'yield' of one {elem}")
        check_result(self, _reduced(src, self.axis, src.element))


class Scan(Operation):
    """Inclusive prefix combine along `axis` (cumsum, cumprod, running max/min)."""
    name = "scan"
    operand_specs = ("x",)
    attr_specs = {"axis": Attr(int), "kind": Attr(str, choices=SCAN_KINDS),
                  "reverse": Attr(bool, False)}
    num_results = 1
    traits = frozenset({PURE})

    def verify(self) -> None:
        src = _tile(self, self.x.type)
        _axis(self, self.axis, src.rank)
        numeric_kinds(self, src, "fi")
        check_result(self, src)

    @classmethod
    def infer_types(cls, operand_types, attrs):
        return [operand_types[0]]


DOT_PRECISIONS = ("ieee", "tf32")


class _DotTraits:
    """`Dot.traits`: pure as declared (on the class), reading memory for an instance whose a
    or b is a shared tile."""

    def __get__(self, op: Operation | None, cls: type) -> frozenset:
        if op is not None and any(isinstance(v.type, TileType) and v.type.space == SHARED
                                  for v in op.operands[:2]):
            return frozenset({READS})
        return frozenset({PURE})


class Dot(Operation):
    """`acc + a @ b` for a: MxK, b: KxN, acc: MxN; products accumulate in acc's dtype.
    Batched: a: BxMxK, b: BxKxN, acc: BxMxN, B independent products (numpy's matmul) that
    layout assignment gives to groups of warps first; K cut in B parts and a sum over the
    batch afterwards is split-K across the warps of a program.

    `precision` picks how f32 inputs are multiplied: "ieee" (exact f32 FMA) or "tf32".
    `warps_n` (0: the compiler chooses) fixes how many warps split N on a matrix
    instruction; 1 keeps every row of the result within one warp (flash attention's row
    softmax then needs no shared memory, and a dot result feeds the next dot's a in
    registers).

    a and b may be shared tiles (the pipeline pass streams wgmma operands so, for the
    instruction to read them where they are); such a dot reads memory instead of being pure.
    """
    name = "dot"
    operand_specs = ("a", "b", "acc")
    attr_specs = {"precision": Attr(str, "ieee", choices=DOT_PRECISIONS),
                  "warps_n": Attr(int, 0)}
    num_results = 1
    traits = _DotTraits()  # type: ignore[assignment]

    def verify(self) -> None:
        a, b, c = (_tile(self, v.type) for v in (self.a, self.b, self.acc))
        if not a.rank == b.rank == c.rank or a.rank not in (2, 3):
            raise self.error("dot takes 2-D tiles, or 3-D ones (a batch of products)")
        if c.space != REGISTER:
            raise self.error(f"the accumulator must be a register tile, got {c}")
        (m, k), (k2, n) = a.shape[-2:], b.shape[-2:]
        if k != k2 or c.shape[-2:] != (m, n) or not a.shape[:-2] == b.shape[:-2] == \
                c.shape[:-2]:
            raise self.error(f"shapes do not chain: {a.shape} @ {b.shape} -> {c.shape}",
                             hint="a is MxK, b is KxN and the accumulator MxN (a batch: BxMxK, "
                                  "BxKxN and BxMxN)")
        if a.element != b.element:
            raise self.error(f"a and b must have one dtype: {a.element} vs {b.element}")
        da, dc = numeric_kinds(self, a, "fi"), numeric_kinds(self, c, "fi", "accumulator")
        if da.is_float != dc.is_float:
            raise self.error(f"{da} products cannot accumulate in {dc}")
        check_result(self, c)

    @classmethod
    def infer_types(cls, operand_types, attrs):
        return [operand_types[2]]
