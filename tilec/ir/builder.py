"""Build IR in program order: the frontend and the passes create ops through a Builder.

    b = Builder.at_end(func.body.block, loc)
    x = b.op("add", a, c)                       # result types inferred
    t = b.op("load_view", A, [r, c], types=[TileType((64, 64), f16)])
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from tilec.errors import IRError, Location
from tilec.ir import ops as _ops  # noqa: F401  (registers every op)
from tilec.ir.core import OPS, Block, Operation, Region, Value
from tilec.ir.types import Type


class Builder:
    """Inserts new ops into a block, at its end or before a given op."""

    def __init__(self, block: Block, index: int | None = None, loc: Location | None = None):
        self.block = block
        self.index = index  # None: append at the end
        self.loc = loc

    @classmethod
    def at_end(cls, block: Block, loc: Location | None = None) -> Builder:
        return cls(block, None, loc)

    @classmethod
    def before(cls, op: Operation) -> Builder:
        assert op.parent is not None
        return cls(op.parent, op.parent.ops.index(op), op.loc)

    def create(self, name: str, *operands: Any, types: list[Type] | None = None,
               attrs: dict[str, Any] | None = None, regions: list[Region] | None = None,
               names: list[str | None] | None = None, loc: Location | None = None,
               **keyword_operands: Any) -> Operation:
        """Create op `name`. Positional operands fill the declared groups in order; optional
        groups may also be passed by name (`mask=m`). Result types are inferred if omitted."""
        cls = OPS.get(name)
        if cls is None:
            raise IRError(f"unknown op '{name}'", loc or self.loc)
        groups: list[Any] = []
        pos = list(operands)
        for spec in cls._specs:
            if spec.name in keyword_operands:
                groups.append(keyword_operands.pop(spec.name))
            elif pos:
                groups.append(pos.pop(0))
            elif spec.kind in ("optional", "variadic"):
                groups.append(None if spec.kind == "optional" else [])
            else:
                raise IRError(f"'{name}' is missing operand '{spec.name}'", loc or self.loc)
        if pos or keyword_operands:
            raise IRError(f"too many operands for '{name}'", loc or self.loc)
        attrs = dict(attrs or {})
        if types is None:
            flat = [g for g in groups]
            operand_types = [None if g is None else ([v.type for v in g] if isinstance(g, list) else g.type)
                             for g in flat]
            full_attrs = {k: attrs.get(k, s.default) for k, s in cls.attr_specs.items()}
            try:
                types = cls.infer_types(operand_types, full_attrs)
            except IRError as e:
                raise IRError(e.message, e.loc or loc or self.loc, e.hint) from None
        op = cls(groups, list(types), attrs, regions, loc or self.loc, names)
        self.insert(op)
        return op

    def op(self, name: str, *operands: Any, **kw: Any) -> Value:
        """Create a single-result op and return its result."""
        return self.create(name, *operands, **kw).result

    def insert(self, op: Operation) -> Operation:
        if self.index is None:
            self.block.append(op)
        else:
            self.block.insert(self.index, op)
            self.index += 1
        return op

    @contextmanager
    def inside(self, block: Block) -> Iterator[Builder]:
        """Temporarily build at the end of another block (a region's body)."""
        saved = (self.block, self.index)
        self.block, self.index = block, None
        try:
            yield self
        finally:
            self.block, self.index = saved
