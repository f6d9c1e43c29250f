"""The Python builtins a kernel may call (range, len, min, max, int, float, ...): each is
evaluated at compile time on constants, or maps to a tc.* operation on tiles."""
from __future__ import annotations

import builtins as _py
from typing import TYPE_CHECKING, Any, Callable

from tilec.errors import CompileError
from tilec.frontend import dsl
from tilec.frontend.values import TensorArg, TVal, describe
from tilec.ir import dtypes as dt

if TYPE_CHECKING:
    from tilec.frontend.codegen import CodeGen


class PyBuiltin:
    """A Python builtin allowed in kernels, evaluated by `fn(codegen, args, kwargs)`."""

    def __init__(self, name: str, fn: Callable):
        self.name, self.fn = name, fn


def _all_const(args: list[Any]) -> bool:
    return not any(isinstance(a, (TVal, TensorArg)) for a in args)


def _py_range(cg: CodeGen, args, kw):
    if kw or not _all_const(args):
        raise CompileError("range(...) with runtime bounds can only be a for loop's iterable")
    return range(*args)


def _py_len(cg: CodeGen, args, kw):
    (x,) = args
    if isinstance(x, TVal):
        if not x.is_tile:
            raise CompileError("len() of a scalar")
        return x.shape[0]
    try:
        return len(x)
    except TypeError:
        raise CompileError(f"len() of {describe(x)}") from None


def _py_minmax(which: str):
    def f(cg: CodeGen, args, kw):
        if len(args) == 1 and isinstance(args[0], tuple):
            args = list(args[0])
        if _all_const(args):
            return getattr(_py, which)(*args, **kw)
        stub = dsl.maximum if which == "max" else dsl.minimum
        out = args[0]
        for a in args[1:]:
            out = cg.call(stub, [out, a], {})
        return out
    return f


def _py_convert(kind: str):
    def f(cg: CodeGen, args, kw):
        if kw or len(args) != 1:
            raise CompileError(f"{kind}() takes one argument")
        (x,) = args
        if not isinstance(x, TVal):
            try:
                return {"int": int, "float": float, "bool": bool}[kind](x)
            except (TypeError, ValueError) as e:
                raise CompileError(f"{kind}({x!r}): {e}") from None
        if kind == "bool":
            return cg.em.to_bool(x)
        return cg.em.cast(x, dt.int32 if kind == "int" else dt.float32)
    return f


def _py_abs(cg: CodeGen, args, kw):
    (x,) = args
    return cg.call(dsl.abs, [x], {}) if isinstance(x, TVal) else _py.abs(x)


def _py_tuple(cg: CodeGen, args, kw):
    if not args:
        return ()
    (x,) = args
    if isinstance(x, (tuple, range, str)):
        return tuple(x)
    raise CompileError(f"tuple() of {describe(x)}")


def _py_zip(cg: CodeGen, args, kw):
    if not all(isinstance(a, (tuple, range)) for a in args):
        raise CompileError("zip() takes compile-time tuples")
    return tuple(zip(*args))


def _py_enumerate(cg: CodeGen, args, kw):
    if len(args) != 1 or not isinstance(args[0], (tuple, range)):
        raise CompileError("enumerate() takes a compile-time tuple")
    return tuple(enumerate(args[0]))


def _py_print(cg: CodeGen, args, kw):
    raise CompileError("print() cannot be used inside a kernel",
                       hint="use tc.print('prefix', values...) to print from the device")


def _py_isinstance(cg: CodeGen, args, kw):
    x, cls = args
    return isinstance(x, cls)


PY_BUILTINS: dict[str, PyBuiltin] = {
    name: PyBuiltin(name, fn) for name, fn in {
        "range": _py_range, "len": _py_len, "min": _py_minmax("min"),
        "max": _py_minmax("max"), "int": _py_convert("int"), "float": _py_convert("float"),
        "bool": _py_convert("bool"), "abs": _py_abs, "tuple": _py_tuple, "list": _py_tuple,
        "zip": _py_zip, "enumerate": _py_enumerate, "print": _py_print,
    }.items()
}

