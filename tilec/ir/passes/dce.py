"""Dead-code elimination: erase ops whose results are unused and that have no effect
beyond them, until nothing more goes; drop the carried values of `for` loops and the
results of `if` ops that nothing reads.

Which ops are removable is read from traits: pure ops, ops that only read memory (as in
MLIR, an unused read may go), and region ops (for, if, while) whose regions hold only such
ops. Writes, barriers and ops that declare nothing (calls) stay. A dead `while` goes even
if it might not terminate: a loop without effects is assumed to finish (as in C++ and LLVM).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from tilec.ir.core import Block, Module, Operation, Region, Trait, Value
from tilec.ir.rewrite import has_uses, replace_all_uses

if TYPE_CHECKING:
    from tilec.ir.passes.manager import PassOptions

NAME = "dce"


def run(module: Module, options: PassOptions) -> Module:
    for f in module.functions:
        while _block(f.body.block):
            pass
    return module


def has_no_effects(op: Operation) -> bool:
    """Whether erasing `op` (with its regions) changes nothing but the values it defines."""
    if op.has_trait(Trait.WRITES_MEMORY) or op.has_trait(Trait.BARRIER) \
            or op.attrs.get("volatile"):
        return False
    declared = op.traits & {Trait.PURE, Trait.READS_MEMORY, Trait.TERMINATOR}
    if not declared and not op.regions:
        return False  # nothing declared (e.g. a call): assume the worst
    return all(has_no_effects(inner) for r in op.regions for inner in r.walk())


def _block(block: Block) -> bool:
    """One sweep over a block, last op first (users before what they use)."""
    changed = False
    for op in reversed(list(block.ops)):
        for r in op.regions:
            changed |= _block(r.block)
        if op.has_trait(Trait.TERMINATOR):
            continue
        if not has_uses(op) and has_no_effects(op):
            op.erase()
            changed = True
        elif op.name == "for":
            changed |= _drop_dead_carried(op)
        elif op.name == "if":
            changed |= _drop_dead_if_results(op)
    return changed


def _drop_dead_carried(loop: Operation) -> bool:
    """`%r, %s = for ... %a, %b {^(%i, %x, %y): ...; yield %x2, %y2}` with %s unused and %y
    feeding nothing but %y2 => `%r = for ... %a {^(%i, %x): ...; yield %x2}`."""
    body = loop.regions[0].block
    term = body.terminator
    carried = body.args[1:]
    unused = {i for i, res in enumerate(loop.results) if not res.uses}
    if not unused:
        return False
    # A kept value's yield may read another's block argument (`a, b = b, next` rotations):
    # grow the kept set until it is closed.
    dead = set(unused)
    while True:
        live = _live_values(body, [v for i, v in enumerate(term.operands) if i not in dead])
        still = {i for i in dead if carried[i] not in live}
        if still == dead:
            break
        dead = still
    if not dead:
        return False
    keep = [i for i in range(len(carried)) if i not in dead]
    inits = [loop.inits[i] for i in keep]
    new_body = _move_block(body, [0] + [i + 1 for i in keep])
    _replace_terminator(new_body, [term.operands[i] for i in keep])
    new = type(loop)([loop.lb, loop.ub, loop.step, inits], [loop.results[i].type for i in keep],
                     dict(loop.attrs), [Region(new_body)], loop.loc,
                     [loop.results[i].name for i in keep])
    _swap(loop, new, keep)
    return True


def _live_values(block: Block, needed: list[Value]) -> set[Value]:
    """The values that `needed`, or an op of `block` with effects, depend on."""
    live = set(needed)
    for op in reversed(block.ops):
        if op.has_trait(Trait.TERMINATOR):
            continue
        if any(r in live for r in op.results) or not has_no_effects(op):
            for inner in op.walk():
                live.update(inner.operands)
    return live


def _drop_dead_if_results(op: Operation) -> bool:
    """`%r, %s = if %c {yield %a, %b} {yield %d, %e}` with %s unused
    => `%r = if %c {yield %a} {yield %d}`."""
    keep = [i for i, r in enumerate(op.results) if r.uses]
    if len(keep) == len(op.results):
        return False
    regions = []
    for r in op.regions:
        term = r.block.terminator
        block = _move_block(r.block, [])
        _replace_terminator(block, [term.operands[i] for i in keep])
        regions.append(Region(block))
    new = type(op)([op.cond], [op.results[i].type for i in keep], dict(op.attrs), regions,
                   op.loc, [op.results[i].name for i in keep])
    _swap(op, new, keep)
    return True


def _move_block(old: Block, kept_args: list[int]) -> Block:
    """A new block with the args `kept_args` of `old` (uses redirected) and all its ops."""
    block = Block([old.args[i].type for i in kept_args], [old.args[i].name for i in kept_args])
    for i, arg in zip(kept_args, block.args):
        replace_all_uses(old.args[i], arg)
    for op in old.ops:
        block.append(op)
    old.ops = []
    return block


def _replace_terminator(block: Block, values: list[Value]) -> None:
    term = block.ops[-1]
    new = type(term)([values], [], dict(term.attrs), None, term.loc)
    term.erase()
    block.append(new)


def _swap(old: Operation, new: Operation, keep: list[int]) -> None:
    """Put `new` where `old` is; result `keep[j]` of `old` becomes result `j` of `new`."""
    block = old.parent
    block.insert(block.ops.index(old), new)
    for j, i in enumerate(keep):
        replace_all_uses(old.results[i], new.results[j])
    old.erase()
