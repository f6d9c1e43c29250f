"""Common-subexpression elimination: a pure op without regions that repeats an earlier op
(same mnemonic, attributes, operands and result types) reuses that op's results.

Scoping follows dominance in structured control flow: an op inside a region may reuse an
op that came before it in an enclosing block, never one from a sibling region or from a
region nested elsewhere. Ops with memory effects (loads included) are never merged.

    %a = add %x, %y : i32
    %b = add %x, %y : i32        =>   %a = add %x, %y : i32
    %c = mul %a, %b : i32              %c = mul %a, %a : i32
"""
from __future__ import annotations

from collections import ChainMap
from typing import TYPE_CHECKING, Hashable

from tilec.ir.core import Module, Operation, Region, Trait
from tilec.ir.printer import format_attr_dict
from tilec.ir.rewrite import replace_op

if TYPE_CHECKING:
    from tilec.ir.passes.manager import PassOptions

NAME = "cse"


def run(module: Module, options: PassOptions) -> Module:
    for f in module.functions:
        _region(f.body, ChainMap())
    return module


def _key(op: Operation) -> Hashable:
    # Values compare by identity; attributes by their canonical text (lists don't hash).
    groups = tuple(len(values) for _, values in op.operand_groups())
    return (op.name, format_attr_dict(dict(sorted(op.attrs.items()))), groups,
            tuple(op.operands), tuple(r.type for r in op.results))


def _region(region: Region, seen: ChainMap) -> None:
    for op in list(region.block.ops):
        for r in op.regions:
            _region(r, seen.new_child())  # what a region defines stays inside it
        if op.regions or not op.results or not op.has_trait(Trait.PURE):
            continue
        key = _key(op)
        earlier = seen.get(key)
        if earlier is None:
            seen[key] = op
        else:
            replace_op(op, earlier.results)
