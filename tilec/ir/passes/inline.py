"""Inline every call: `%r = call %a {callee = @f}` becomes a copy of @f's body with its
arguments bound to the call's operands, and the values @f returns replace %r. Callees are
inlined first, so nested calls disappear too; recursion is an error. Functions stay in the
module (a later step decides which ones are kernels).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from tilec.errors import IRError
from tilec.ir.core import Function, Module, Operation
from tilec.ir.rewrite import inline_region_before, replace_op

if TYPE_CHECKING:
    from tilec.ir.passes.manager import PassOptions

NAME = "inline"


def run(module: Module, options: PassOptions) -> Module:
    functions = {f.name: f for f in module.functions}
    done: set[str] = set()
    for f in module.functions:
        _inline_calls(f, functions, done, [])
    return module


def _calls(f: Function) -> list[Operation]:
    return [op for op in f.walk() if op.name == "call"]


def _inline_calls(f: Function, functions: dict[str, Function], done: set[str],
                  stack: list[str]) -> None:
    """Inline the calls in `f`, after those in its callees (depth first)."""
    if f.name in done:
        return
    stack.append(f.name)
    for call in _calls(f):
        name = call.callee.name
        callee = functions.get(name)
        if callee is None:
            raise IRError(f"call to undefined function @{name}", call.loc)
        if name in stack:
            cycle = " -> ".join("@" + n for n in stack[stack.index(name):] + [name])
            raise IRError(f"recursive call cannot be inlined: {cycle}", call.loc,
                          "rewrite the recursion as a loop")
        _inline_calls(callee, functions, done, stack)
        _check_returns(callee)
        replace_op(call, inline_region_before(callee.body, call, call.args))
    stack.pop()
    done.add(f.name)


def _check_returns(f: Function) -> None:
    # The body's final `return` is the only exit the inliner understands.
    term = f.body.block.terminator
    if term is None or term.name != "return":
        raise IRError(f"function @{f.name} must end with 'return'", f.loc)
    for op in f.walk():
        if op.name == "return" and op is not term:
            raise op.error("a 'return' inside a region cannot be inlined")
