"""Where a kernel's Python comes from and what it may refer to: parsed sources with the
offsets that map AST positions to the user's file, the values a kernel may capture from its
globals and closure, and small AST queries the visitor uses."""
from __future__ import annotations

import ast
import inspect
import sys
import textwrap
import types
from dataclasses import dataclass
from typing import Any, Callable

from tilec.errors import CompileError, Location
from tilec.frontend import dsl
from tilec.frontend.values import Tensor, constexpr, is_number
from tilec.ir.core import Block
from tilec.ir.dtypes import DType


class JITFunction:
    """Base of @tc.kernel and @tc.func objects: a Python function the frontend inlines."""

    def __init__(self, fn: Callable):
        self.fn = fn
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__


# ---------------------------------------------------------------------------------------
# source


@dataclass
class Source:
    fn: Callable
    file: str
    tree: ast.FunctionDef
    line_offset: int
    col_offset: int
    globals: dict[str, Any]
    closure: dict[str, Any]


_SOURCES: dict[Any, Source] = {}


def get_source(fn: Callable) -> Source:
    """The parsed source of `fn` with the offsets that map AST positions to the file."""
    code = getattr(fn, "__code__", None)
    if code is not None and code in _SOURCES:
        return _SOURCES[code]
    try:
        lines, start = inspect.getsourcelines(fn)
        file = inspect.getsourcefile(fn) or code.co_filename
    except (OSError, TypeError) as e:
        raise CompileError(f"cannot read the source of '{getattr(fn, '__name__', fn)}': {e}",
                           hint="kernels must be defined in a .py file, not typed into a "
                                "REPL or built with exec") from None
    first = lines[0]
    text = textwrap.dedent("".join(lines))
    removed = (len(first) - len(first.lstrip())) - (
        len(text.splitlines()[0]) - len(text.splitlines()[0].lstrip()))
    tree = ast.parse(text)
    fdef = tree.body[0]
    if not isinstance(fdef, ast.FunctionDef):
        raise CompileError(f"'{fn.__name__}' must be a plain `def` function",
                           Location(file, start, 1))
    try:
        closure = dict(inspect.getclosurevars(fn).nonlocals)
    except (TypeError, ValueError):
        closure = {}
    src = Source(fn, file, fdef, start - 1, removed, fn.__globals__, closure)
    if code is not None:
        _SOURCES[code] = src
    return src


# ---------------------------------------------------------------------------------------
# helpers


class BoundMethod:
    """`x.method` of a tile or tensor: calling it passes `x` first."""

    def __init__(self, fn: Callable, self_: Any, name: str):
        self.fn, self.self_, self.name = fn, self_, name


_ALLOWED_MODULE_TYPES = (types.ModuleType,)


def _layout_types() -> tuple[type, ...]:
    from tilec.ir.layout import RegisterLayout
    from tilec.ir.shared_layout import SharedLayout
    return (RegisterLayout, SharedLayout)


def check_constant(name: str, value: Any) -> Any:
    """A global/closure value the kernel may use, or a CompileError saying why not."""
    if isinstance(value, constexpr):
        return value.value
    if (is_number(value) or value is None or isinstance(value, (str, DType, JITFunction,
                                                                 _ALLOWED_MODULE_TYPES))
            or dsl.impl_of(value) is not None or value is constexpr or value is Tensor):
        return value
    if isinstance(value, tuple):
        return tuple(check_constant(name, v) for v in value)
    if isinstance(value, _layout_types()):
        return value
    if callable(value):
        raise CompileError(
            f"'{name}' is a Python function; inside a kernel only tc.* operations and "
            "@tc.func functions can be called",
            hint=f"decorate '{name}' with @tc.func to inline it into the kernel")
    raise CompileError(
        f"'{name}' is a {type(value).__name__}; kernels can only use constants from outside "
        "(int, float, bool, str, dtypes and tuples of them) and @tc.func functions",
        hint="pass it as a kernel argument instead")


def assigned_names(stmts: list[ast.stmt]) -> list[str]:
    """Names stored to anywhere in `stmts` (in order of first appearance)."""
    out: dict[str, None] = {}
    for s in stmts:
        for node in ast.walk(s):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                out.setdefault(node.id, None)
    return list(out)


def contains_return(stmts: list[ast.stmt]) -> bool:
    return any(isinstance(n, ast.Return) for s in stmts for n in ast.walk(s))


def discard(block: Block) -> None:
    for op in block.ops:
        op.drop_operand_uses()


def caller_location(depth: int) -> Location:
    """The source position of the call `depth` frames above the caller of this function."""
    frame = sys._getframe(depth + 1)
    # The instruction being executed knows its source span (PEP 657, Python 3.11).
    positions = list(frame.f_code.co_positions())
    line, _, col, _ = positions[frame.f_lasti // 2] if frame.f_lasti >= 0 else (None,) * 4
    return Location(frame.f_code.co_filename, line or frame.f_lineno, (col or 0) + 1)
