"""Structured control flow in the style of MLIR's scf: for, if and while with regions
that end in `yield`; `return` ends a function; `call` invokes a device function."""
from __future__ import annotations

from tilec.ir import dtypes as dt
from tilec.ir.core import Attr, Operation, SymbolRef, Trait
from tilec.ir.types import ScalarType, TileType


def _types(values) -> list:
    return [v.type for v in values]


def _terminator(op: Operation, region_index: int, name: str) -> Operation:
    block = op.regions[region_index].block
    term = block.ops[-1] if block.ops else None
    if term is None or term.name != name:
        raise op.error(f"region {region_index} must end with '{name}'")
    return term


def _same(a, b) -> bool:
    # Types agree up to layout (layouts may be assigned to one side first).
    strip = lambda t: t.with_layout(None) if isinstance(t, TileType) else t  # noqa: E731
    return len(a) == len(b) and all(strip(x) == strip(y) for x, y in zip(a, b))


class For(Operation):
    """`for iv in range(lb, ub, step)` carrying `inits` through the body's block arguments
    `^(%iv, %carried...)`; the body yields the next carried values, which are the results."""
    name = "for"
    operand_specs = ("lb", "ub", "step", "inits*")
    num_results = None
    num_regions = 1

    def verify(self) -> None:
        t = self.lb.type
        if not (isinstance(t, ScalarType) and t.dtype.is_int) or self.ub.type != t or self.step.type != t:
            raise self.error(f"bounds and step must be integer scalars of one type, got "
                             f"{self.lb.type}, {self.ub.type}, {self.step.type}")
        args = _types(self.regions[0].block.args)
        inits = _types(self.inits)
        if not _same(args, [t] + inits):
            raise self.error(f"body arguments {list(map(str, args))} must be the induction "
                             f"variable ({t}) then the carried values {list(map(str, inits))}")
        if not _same(_types(_terminator(self, 0, "yield").operands), inits):
            raise self.error("body must yield values of the carried types")
        if not _same(_types(self.results), inits):
            raise self.error("results must have the carried types")


class If(Operation):
    """Run the then- or the else-region; each yields the results."""
    name = "if"
    operand_specs = ("cond",)
    num_results = None
    num_regions = 2

    def verify(self) -> None:
        if self.cond.type != ScalarType(dt.bool_):
            raise self.error(f"condition must be a bool scalar, got {self.cond.type}")
        for i in (0, 1):
            if self.regions[i].block.args:
                raise self.error("if regions take no arguments")
            if not _same(_types(_terminator(self, i, "yield").operands), _types(self.results)):
                raise self.error(f"region {i} must yield the result types")


class While(Operation):
    """Loop: the `before` region gets the carried values and ends in `condition %c, %v...`;
    if %c holds, the `after` region runs on %v... and yields the next carried values;
    otherwise %v... are the results."""
    name = "while"
    operand_specs = ("inits*",)
    num_results = None
    num_regions = 2

    def verify(self) -> None:
        inits = _types(self.inits)
        before, after = self.regions[0].block, self.regions[1].block
        if not _same(_types(before.args), inits):
            raise self.error("before-region arguments must have the carried types")
        cond = _terminator(self, 0, "condition")
        forwarded = _types(cond.values)
        if not _same(_types(after.args), forwarded) or not _same(_types(self.results), forwarded):
            raise self.error("after-region arguments and results must match the condition's values")
        if not _same(_types(_terminator(self, 1, "yield").operands), inits):
            raise self.error("after-region must yield values of the carried types")


class Yield(Operation):
    """Ends a region of for/if/while/reduce_custom, passing `values` to the parent op."""
    name = "yield"
    operand_specs = ("values*",)
    traits = frozenset({Trait.TERMINATOR})


class Condition(Operation):
    """Ends a while's before-region: continue if `cond`, forwarding `values`."""
    name = "condition"
    operand_specs = ("cond", "values*")
    traits = frozenset({Trait.TERMINATOR})

    def verify(self) -> None:
        if self.cond.type != ScalarType(dt.bool_):
            raise self.error(f"condition must be a bool scalar, got {self.cond.type}")


class Return(Operation):
    """Ends a function, returning `values` (of the function's declared result types)."""
    name = "return"
    operand_specs = ("values*",)
    traits = frozenset({Trait.TERMINATOR})


class Call(Operation):
    """Call a device function of the same module (the inline pass removes calls)."""
    name = "call"
    operand_specs = ("args*",)
    attr_specs = {"callee": Attr(SymbolRef)}
    num_results = None
