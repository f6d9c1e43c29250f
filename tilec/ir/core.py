"""The IR's structure: values, operations, blocks, regions, functions and modules.

An op class is declared once: its mnemonic, operands, attributes, result count, regions and
traits are class attributes, and the printer, parser, verifier and builder all read them.

    class Add(ElementwiseBinary):
        name = "add"
        traits = frozenset({Trait.PURE, Trait.COMMUTATIVE, Trait.ELEMENTWISE})

Operand specs are strings: "x" (exactly one), "mask?" (optional), "coords*" (variadic).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

from tilec.errors import IRError, Location
from tilec.ir.types import Type


class Trait(enum.Enum):
    """Facts about an op that passes ask instead of keeping lists of op names."""

    PURE = "pure"                      # no side effects: CSE may merge, DCE may drop
    COMMUTATIVE = "commutative"        # operands 0 and 1 may be swapped
    ELEMENTWISE = "elementwise"        # result[i] depends only on operands[i]
    READS_MEMORY = "reads_memory"
    WRITES_MEMORY = "writes_memory"
    BARRIER = "barrier"                # orders memory across the block
    TERMINATOR = "terminator"          # ends a block
    SAME_OPERAND_LAYOUT = "same_operand_layout"
    CONSTANT = "constant"              # result is a compile-time constant (attr `value`)


# ---------------------------------------------------------------------------------------
# Values


class Value:
    """An SSA value. `name` is a hint for printing (the frontend passes variable names)."""

    __slots__ = ("type", "name", "uses")

    def __init__(self, type: Type, name: str | None = None):
        self.type = type
        self.name = name
        self.uses: list[Operation] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} %{self.name or '?'}: {self.type}>"


class OpResult(Value):
    __slots__ = ("owner", "index")

    def __init__(self, type: Type, owner: Operation, index: int, name: str | None = None):
        super().__init__(type, name)
        self.owner = owner
        self.index = index


class BlockArgument(Value):
    __slots__ = ("block", "index")

    def __init__(self, type: Type, block: Block, index: int, name: str | None = None):
        super().__init__(type, name)
        self.block = block
        self.index = index


# ---------------------------------------------------------------------------------------
# Op declarations


@dataclass(frozen=True)
class OperandSpec:
    name: str
    kind: str  # "one" | "optional" | "variadic"

    @staticmethod
    def parse(text: str) -> OperandSpec:
        if text.endswith("?"):
            return OperandSpec(text[:-1], "optional")
        if text.endswith("*"):
            return OperandSpec(text[:-1], "variadic")
        return OperandSpec(text, "one")


_REQUIRED = object()


@dataclass(frozen=True)
class SymbolRef:
    """A reference to a function by name (`@name` in text), e.g. a call's callee."""

    name: str

    def __str__(self) -> str:
        return "@" + self.name


@dataclass(frozen=True)
class Attr:
    """An attribute declaration: its Python type(s) and default (required if none)."""

    kind: type | tuple[type, ...]
    default: Any = _REQUIRED
    choices: tuple | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


OPS: dict[str, type[Operation]] = {}


class Operation:
    """Base of every op. Subclasses set the class attributes below; see the module doc."""

    name: ClassVar[str] = ""
    operand_specs: ClassVar[tuple[str, ...]] = ()
    attr_specs: ClassVar[dict[str, Attr]] = {}
    num_results: ClassVar[int | None] = 0     # None: any number
    num_regions: ClassVar[int] = 0
    traits: ClassVar[frozenset[Trait]] = frozenset()
    # Filled in by __init_subclass__ from operand_specs.
    _specs: ClassVar[tuple[OperandSpec, ...]] = ()

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls._specs = tuple(OperandSpec.parse(s) for s in cls.operand_specs)
        if sum(s.kind == "variadic" for s in cls._specs) > 1:
            raise TypeError(f"{cls.__name__}: at most one variadic operand group")
        if cls.name:
            if cls.name in OPS and OPS[cls.name] is not cls:
                raise TypeError(f"op name {cls.name!r} declared twice")
            OPS[cls.name] = cls

    def __init__(
        self,
        operands: list[Value | None | list[Value]],
        result_types: list[Type],
        attrs: dict[str, Any] | None = None,
        regions: list[Region] | None = None,
        loc: Location | None = None,
        result_names: list[str | None] | None = None,
    ):
        # `operands` has one entry per operand spec: a Value, None (absent optional) or a
        # list (variadic). They are stored flat, with the group sizes kept for the accessors.
        if len(operands) != len(self._specs):
            raise IRError(
                f"'{self.name}' takes {len(self._specs)} operand groups "
                f"({', '.join(self.operand_specs)}), got {len(operands)}", loc)
        flat: list[Value] = []
        sizes: list[int] = []
        for spec, v in zip(self._specs, operands):
            group = list(v) if isinstance(v, (list, tuple)) else ([] if v is None else [v])
            if spec.kind == "one" and len(group) != 1:
                raise IRError(f"'{self.name}' needs exactly one '{spec.name}' operand", loc)
            if spec.kind == "optional" and len(group) > 1:
                raise IRError(f"'{self.name}' takes at most one '{spec.name}' operand", loc)
            flat.extend(group)
            sizes.append(len(group))
        self.operands: list[Value] = flat
        self._group_sizes = sizes
        for v in flat:
            if not isinstance(v, Value):
                raise IRError(f"'{self.name}' operand is not an IR value: {v!r}", loc)
            v.uses.append(self)
        names = result_names or [None] * len(result_types)
        self.results = [OpResult(t, self, i, n) for i, (t, n) in enumerate(zip(result_types, names))]
        self.attrs: dict[str, Any] = dict(attrs or {})
        for key, spec in self.attr_specs.items():
            if key not in self.attrs and not spec.required:
                self.attrs[key] = spec.default
        self.regions: list[Region] = list(regions or [])
        for r in self.regions:
            r.parent = self
        self.loc = loc
        self.parent: Block | None = None

    # -- accessors -------------------------------------------------------------------
    def group(self, name: str) -> list[Value]:
        """The operands of the group declared as `name` (any kind)."""
        start = 0
        for spec, size in zip(self._specs, self._group_sizes):
            if spec.name == name:
                return self.operands[start:start + size]
            start += size
        raise AttributeError(f"'{self.name}' has no operand '{name}'")

    def __getattr__(self, key: str) -> Any:
        # Named operand groups and attributes read like fields: `op.lhs`, `op.axis`.
        if key.startswith("_") or key in ("operands", "attrs", "results", "regions"):
            raise AttributeError(key)
        for spec in type(self)._specs:
            if spec.name == key:
                g = self.group(key)
                if spec.kind == "variadic":
                    return g
                return g[0] if g else None
        attrs = self.__dict__.get("attrs")
        if attrs is not None and key in type(self).attr_specs:
            return attrs.get(key)
        raise AttributeError(f"'{type(self).__name__}' has no field '{key}'")

    @property
    def result(self) -> OpResult:
        if len(self.results) != 1:
            raise IRError(f"'{self.name}' has {len(self.results)} results, not one", self.loc)
        return self.results[0]

    def operand_groups(self) -> list[tuple[OperandSpec, list[Value]]]:
        out, start = [], 0
        for spec, size in zip(self._specs, self._group_sizes):
            out.append((spec, self.operands[start:start + size]))
            start += size
        return out

    def has_trait(self, trait: Trait) -> bool:
        return trait in self.traits

    # -- mutation ----------------------------------------------------------------------
    def set_operand(self, index: int, value: Value) -> None:
        old = self.operands[index]
        old.uses.remove(self)
        self.operands[index] = value
        value.uses.append(self)

    def drop_operand_uses(self) -> None:
        for v in self.operands:
            if self in v.uses:
                v.uses.remove(self)
        for r in self.regions:
            for op in r.walk():
                op.drop_operand_uses()

    def erase(self) -> None:
        """Remove this op from its block (its results must be unused)."""
        self.drop_operand_uses()
        if self.parent is not None:
            self.parent.ops.remove(self)
            self.parent = None

    def walk(self) -> Iterator[Operation]:
        """This op and every op nested in its regions, in order."""
        yield self
        for r in self.regions:
            yield from r.walk()

    # -- verification ------------------------------------------------------------------
    def error(self, message: str, hint: str | None = None) -> IRError:
        return IRError(f"'{self.name}': {message}", self.loc, hint)

    def verify_structure(self) -> None:
        """Checks common to every op: result and region counts, attribute presence/types."""
        if self.num_results is not None and len(self.results) != self.num_results:
            raise self.error(f"expected {self.num_results} result(s), got {len(self.results)}")
        if len(self.regions) != self.num_regions:
            raise self.error(f"expected {self.num_regions} region(s), got {len(self.regions)}")
        for key, spec in self.attr_specs.items():
            if key not in self.attrs:
                raise self.error(f"missing attribute '{key}'")
            value = self.attrs[key]
            kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
            ok = isinstance(value, kinds) and not (
                isinstance(value, bool) and bool not in kinds and int in kinds)
            if float in kinds and isinstance(value, int) and not isinstance(value, bool):
                ok = True
            if not ok and value is not None:
                raise self.error(f"attribute '{key}' must be {'/'.join(k.__name__ for k in kinds)}, "
                                 f"got {value!r}")
            if spec.choices is not None and value not in spec.choices:
                raise self.error(f"attribute '{key}' must be one of "
                                 f"{', '.join(map(str, spec.choices))}; got {value!r}")
        for key in self.attrs:
            if key not in self.attr_specs:
                raise self.error(f"unknown attribute '{key}'")

    def verify(self) -> None:
        """Op-specific checks (types, shapes, dtype rules). Subclasses override."""

    @classmethod
    def infer_types(cls, operand_types: list, attrs: dict[str, Any]) -> list[Type]:
        """Result types from operand types and attributes, for ops where they follow."""
        if cls.num_results == 0:
            return []
        raise IRError(f"'{cls.name}' needs explicit result types")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# ---------------------------------------------------------------------------------------
# Blocks, regions, functions, modules


class Block:
    """A list of ops with typed arguments (loop induction variables and carried values)."""

    def __init__(self, arg_types: list[Type] | None = None, arg_names: list[str | None] | None = None):
        names = arg_names or [None] * len(arg_types or [])
        self.args = [BlockArgument(t, self, i, n) for i, (t, n) in enumerate(zip(arg_types or [], names))]
        self.ops: list[Operation] = []
        self.parent: Region | None = None

    def append(self, op: Operation) -> Operation:
        op.parent = self
        self.ops.append(op)
        return op

    def insert(self, index: int, op: Operation) -> Operation:
        op.parent = self
        self.ops.insert(index, op)
        return op

    @property
    def terminator(self) -> Operation | None:
        if self.ops and self.ops[-1].has_trait(Trait.TERMINATOR):
            return self.ops[-1]
        return None


class Region:
    """A region holds one block (structured control flow needs no more)."""

    def __init__(self, block: Block | None = None):
        self.block = block or Block()
        self.block.parent = self
        self.parent: Operation | None = None

    def walk(self) -> Iterator[Operation]:
        for op in list(self.block.ops):
            yield from op.walk()


@dataclass
class Function:
    """A kernel or device function. `attrs` holds constexpr values and specialisation facts."""

    name: str
    body: Region
    result_types: list[Type] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    arg_attrs: list[dict[str, Any]] = field(default_factory=list)
    loc: Location | None = None

    @property
    def args(self) -> list[BlockArgument]:
        return self.body.block.args

    def walk(self) -> Iterator[Operation]:
        return self.body.walk()

    def __eq__(self, other: object) -> bool:
        from tilec.ir.printer import print_function
        return isinstance(other, Function) and print_function(self, canonical=True) == print_function(
            other, canonical=True)

    __hash__ = None  # mutable


@dataclass
class Module:
    """A set of functions; kernels and the device functions they call."""

    functions: list[Function] = field(default_factory=list)
    source: str | None = None  # the file the module came from, for messages

    def get(self, name: str) -> Function:
        for f in self.functions:
            if f.name == name:
                return f
        raise KeyError(name)

    def walk(self) -> Iterator[Operation]:
        for f in self.functions:
            yield from f.walk()

    def __eq__(self, other: object) -> bool:
        """Structural equality: same ops, attributes, types and wiring (names ignored)."""
        from tilec.ir.printer import print_module
        return isinstance(other, Module) and print_module(self, canonical=True) == print_module(
            other, canonical=True)

    __hash__ = None

    def __str__(self) -> str:
        from tilec.ir.printer import print_module
        return print_module(self)
