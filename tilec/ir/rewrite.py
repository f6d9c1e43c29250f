"""IR surgery shared by the passes: replacing uses, cloning, inlining regions, and a small
driver that applies rewrite patterns until nothing changes.

A pattern is a function `pattern(op) -> bool` that rewrites around `op` (through a Builder
and the helpers below) and returns True if it changed anything. Its docstring shows the
rewrite as `before => after` in tile-IR text.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

from tilec.errors import IRError
from tilec.ir.core import Block, Function, Module, Operation, Region, Value

Pattern = Callable[[Operation], bool]


def replace_all_uses(old: Value, new: Value) -> None:
    """Make every op that reads `old` read `new` instead."""
    if old is new:
        return
    users: list[Operation] = []
    for op in old.uses:
        if not any(u is op for u in users):
            users.append(op)
    for op in users:
        for i, v in enumerate(op.operands):
            if v is old:
                op.set_operand(i, new)


def replace_op(op: Operation, values: Sequence[Value]) -> None:
    """Replace `op`'s results by `values` and erase it."""
    if len(values) != len(op.results):
        raise IRError(f"replacing '{op.name}' ({len(op.results)} results) with "
                      f"{len(values)} values (internal error in a pass)", op.loc)
    for r, v in zip(op.results, values):
        replace_all_uses(r, v)
    op.erase()


def has_uses(op: Operation) -> bool:
    return any(r.uses for r in op.results)


def _operand_groups(op: Operation, mapping: dict[Value, Value]) -> list:
    groups: list = []
    for spec, values in op.operand_groups():
        mapped = [mapping.get(v, v) for v in values]
        if spec.kind == "one":
            groups.append(mapped[0])
        elif spec.kind == "optional":
            groups.append(mapped[0] if mapped else None)
        else:
            groups.append(mapped)
    return groups


def _copy_attr(value):
    return [_copy_attr(v) for v in value] if isinstance(value, list) else value


def clone_op(op: Operation, mapping: dict[Value, Value]) -> Operation:
    """A deep copy of `op` (regions included) reading `mapping[v]` for each operand `v` that
    the map holds; the copy's results are added to `mapping`. The copy is not inserted."""
    regions = [clone_region(r, mapping) for r in op.regions]
    attrs = {k: _copy_attr(v) for k, v in op.attrs.items()}
    new = type(op)(_operand_groups(op, mapping), [r.type for r in op.results], attrs, regions,
                   op.loc, [r.name for r in op.results])
    for old, r in zip(op.results, new.results):
        mapping[old] = r
    return new


def clone_region(region: Region, mapping: dict[Value, Value]) -> Region:
    """A deep copy of `region`; its block arguments and results are added to `mapping`."""
    old = region.block
    block = Block([a.type for a in old.args], [a.name for a in old.args])
    for a, b in zip(old.args, block.args):
        mapping[a] = b
    for op in old.ops:
        block.append(clone_op(op, mapping))
    return Region(block)


def clone_module(module: Module) -> Module:
    """A deep copy of `module` (passes rewrite in place: runs that start from one module each
    take a copy)."""
    return Module([replace(f, body=clone_region(f.body, {}), result_types=list(f.result_types),
                           attrs={k: _copy_attr(v) for k, v in f.attrs.items()},
                           arg_attrs=[{k: _copy_attr(v) for k, v in a.items()}
                                      for a in f.arg_attrs])
                   for f in module.functions], source=module.source)


def inline_region_before(region: Region, op: Operation, args: Sequence[Value]) -> list[Value]:
    """Copy the ops of `region` (whose block arguments become `args`) in front of `op`, all
    but its terminator; return the values the terminator yields (or returns)."""
    block = region.block
    if len(args) != len(block.args):
        raise IRError(f"inlining a region of {len(block.args)} arguments with {len(args)} "
                      f"values (internal error in a pass)", op.loc)
    term = block.terminator
    if term is None:
        raise IRError("cannot inline a region without a terminator", op.loc)
    mapping: dict[Value, Value] = dict(zip(block.args, args))
    target = op.parent
    assert target is not None, "inline_region_before: op is not in a block"
    index = target.ops.index(op)
    for inner in block.ops[:-1]:
        target.insert(index, clone_op(inner, mapping))
        index += 1
    return [mapping.get(v, v) for v in term.operands]


def is_attached(op: Operation, root: Region) -> bool:
    """Whether `op` is still (transitively) inside `root`: erased ops and their insides
    are not."""
    while True:
        block = op.parent
        if block is None or block.parent is None:
            return False
        region = block.parent
        if region is root:
            return True
        if region.parent is None:
            return False
        op = region.parent


def apply_patterns(module: Module, patterns: Sequence[Pattern], max_sweeps: int = 100,
                   what: str = "rewrite") -> bool:
    """Apply `patterns` to every op of every function, in order, until a sweep changes
    nothing. Return whether anything changed."""
    changed_any = False
    for f in module.functions:
        for _ in range(max_sweeps):
            if not _sweep(f, patterns):
                break
            changed_any = True
        else:
            raise IRError(f"{what} patterns did not converge in @{f.name} after {max_sweeps} "
                          f"sweeps (a pattern undoes another: internal error)", f.loc)
    return changed_any


def _sweep(f: Function, patterns: Sequence[Pattern]) -> bool:
    changed = False
    for op in list(f.walk()):
        if not is_attached(op, f.body):
            continue
        for pattern in patterns:
            if pattern(op):
                changed = True
                break
    return changed
