"""Check a module's invariants: every op's own rules, SSA dominance, terminators, calls.

Run after the frontend, after parsing and (in tests, or with TILEC_VERIFY=1) after every
pass, so a broken pass is caught where it broke.
"""
from __future__ import annotations

from tilec.errors import IRError, TilecError
from tilec.ir.core import Function, Module, Operation, Region, Trait, Value


def verify(module: Module) -> Module:
    """Raise IRError (with the op's source location) at the first broken rule."""
    functions = {f.name: f for f in module.functions}
    for f in module.functions:
        _verify_function(f, functions)
    return module


def _verify_function(f: Function, functions: dict[str, Function]) -> None:
    scope: set[Value] = set(f.args)
    _verify_region(f.body, scope, functions)
    term = f.body.block.terminator
    if term is None or term.name != "return":
        raise IRError(f"function @{f.name} must end with 'return'", f.loc)
    for op in f.walk():
        if op.name == "return":
            got = [v.type for v in op.operands]
            if got != list(f.result_types):
                raise op.error(f"returns {', '.join(map(str, got)) or 'nothing'} but @{f.name} "
                               f"declares {', '.join(map(str, f.result_types)) or 'nothing'}")


def _verify_region(region: Region, scope: set[Value], functions: dict[str, Function]) -> None:
    block = region.block
    inner = set(scope)
    inner.update(block.args)
    for i, op in enumerate(block.ops):
        if op.parent is not block:
            raise op.error("op's parent link is broken (internal error in a pass)")
        for v in op.operands:
            if v not in inner:
                raise op.error(f"operand {_describe(v)} does not dominate this use")
        if op.has_trait(Trait.TERMINATOR) and i != len(block.ops) - 1:
            raise op.error("a terminator must be the last op of its block")
        for r in op.regions:
            _verify_region(r, inner, functions)
        _verify_op(op, functions)
        inner.update(op.results)


def _verify_op(op: Operation, functions: dict[str, Function]) -> None:
    try:
        op.verify_structure()
        op.verify()
    except TilecError:
        raise
    except Exception as e:  # a verifier that trips over malformed input still reports it
        raise op.error(f"malformed op ({type(e).__name__}: {e})") from e
    if op.name == "call":
        callee = functions.get(op.callee.name)
        if callee is None:
            raise op.error(f"call to undefined function @{op.callee.name}")
        want = [a.type for a in callee.args]
        got = [v.type for v in op.args]
        if got != want:
            raise op.error(f"@{callee.name} takes ({', '.join(map(str, want))}), "
                           f"got ({', '.join(map(str, got))})")
        if [r.type for r in op.results] != list(callee.result_types):
            raise op.error(f"@{callee.name} returns ({', '.join(map(str, callee.result_types))})")


def _describe(v: Value) -> str:
    return f"%{v.name}" if v.name else f"of type {v.type}"
