"""Check a module's invariants: every op's own rules, SSA dominance, terminators, calls.

Run after the frontend, after parsing and (in tests, or with TILEC_VERIFY=1) after every
pass, so a broken pass is caught where it broke.
"""
from __future__ import annotations

from typing import Callable

from tilec.errors import IRError, TilecError
from tilec.ir.core import Function, Module, Operation, Region, Trait, Value
from tilec.ir.shared_layout import SharedLayout
from tilec.ir.types import SHARED, TileType, Type


def verify(module: Module) -> Module:
    """Raise IRError (with the op's source location) at the first broken rule."""
    functions = {f.name: f for f in module.functions}
    for f in module.functions:
        _verify_function(f, functions)
    return module


def _verify_function(f: Function, functions: dict[str, Function]) -> None:
    scope: set[Value] = set(f.args)
    for a in f.args:
        _check_type(a.type, lambda msg, name=a.name: IRError(f"argument %{name}: {msg}", f.loc))
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
    if region.parent is not None:
        for a in block.args:
            _check_type(a.type, region.parent.error)
    for i, op in enumerate(block.ops):
        if op.parent is not block:
            raise op.error("op's parent link is broken (internal error in a pass)")
        for v in op.operands:
            if v not in inner:
                raise op.error(f"operand {_describe(v)} does not dominate this use",
                               hint="a value defined inside a region is not visible after "
                                    "it or in a sibling region: yield it as a result")
        if op.has_trait(Trait.TERMINATOR) and i != len(block.ops) - 1:
            raise op.error("a terminator must be the last op of its block")
        for r in op.regions:
            _verify_region(r, inner, functions)
        for r in op.results:
            _check_type(r.type, op.error)
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


def _check_type(t: Type, error: Callable[[str], IRError]) -> None:
    """A tile's layout covers exactly its shape and suits its space (registers or shared)."""
    if not isinstance(t, TileType) or t.layout is None:
        return
    shape = tuple(getattr(t.layout, "shape", t.shape))
    if shape != t.shape:
        raise error(f"layout {t.layout} covers shape {list(shape)}, but {t} has shape "
                    f"{list(t.shape)}")
    if isinstance(t.layout, SharedLayout) != (t.space == SHARED):
        want = "shared" if t.space == SHARED else "register"
        raise error(f"{t} needs a {want} layout, got {t.layout}")


def _describe(v: Value) -> str:
    return f"%{v.name}" if v.name else f"of type {v.type}"
