"""What the frontend manipulates while it walks a kernel: IR-backed tiles and scalars, tensor
parameters, and the emitter that builds IR with broadcasting and promotion.

Compile-time values (constexpr ints, floats, bools, dtypes, tuples of them) are plain Python
objects; runtime values are `TVal`s wrapping an IR `Value`; tensor parameters are `TensorArg`s.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from tilec.errors import CompileError, IRError, Location
from tilec.frontend import promotion
from tilec.ir import dtypes as dt
from tilec.ir.builder import Builder
from tilec.ir.core import Value
from tilec.ir.dtypes import DType
from tilec.ir.types import (PointerType, ScalarType, TensorType, TileType, Type, element_of,
                            shape_of)

PyNumber = (bool, int, float)


class TVal:
    """A runtime value: a scalar (uniform per program), a pointer, or a tile."""

    __slots__ = ("value",)

    def __init__(self, value: Value):
        self.value = value

    @property
    def type(self) -> Type:
        return self.value.type

    @property
    def shape(self) -> tuple[int, ...]:
        return shape_of(self.type)

    @property
    def is_tile(self) -> bool:
        return isinstance(self.type, TileType)

    @property
    def element(self):
        return element_of(self.type)

    @property
    def dtype(self) -> DType | None:
        e = self.element
        return e if isinstance(e, DType) else None

    @property
    def is_pointer(self) -> bool:
        return isinstance(self.element, PointerType)

    def __repr__(self) -> str:
        return f"<tile value {self.type}>"


class TensorArg:
    """A `tc.Tensor` parameter: the IR value of tensor type plus what specialisation knows."""

    def __init__(self, value: Value, name: str, contiguous: bool = False):
        self.value = value
        self.name = name
        self.contiguous = contiguous

    @property
    def type(self) -> TensorType:
        return self.value.type

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def rank(self) -> int:
        return self.type.rank


class Undefined:
    """A name that must not be read: assigned on some paths only, or only inside a loop."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason


def is_number(x: Any) -> bool:
    return isinstance(x, PyNumber) and not isinstance(x, np.ndarray)


def describe(x: Any) -> str:
    """A short description of a frontend value for messages."""
    if isinstance(x, TVal):
        return str(x.type)
    if isinstance(x, TensorArg):
        return f"tensor parameter {x.name} ({x.type})"
    if isinstance(x, DType):
        return f"dtype {x.name}"
    if isinstance(x, tuple):
        return "tuple (" + ", ".join(describe(v) for v in x) + ")"
    if isinstance(x, PyNumber) or x is None or isinstance(x, str):
        return f"constant {x!r}"
    return f"{type(x).__name__} {getattr(x, '__name__', '')}".strip()


def broadcast_shapes(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """numpy rules: align on the right; each pair of dimensions is equal or has a 1."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and x != 1 and y != 1:
            raise CompileError(
                f"shapes {list(a)} and {list(b)} cannot be broadcast together",
                hint="dimensions must be equal or 1 when aligned on the right; use "
                     "x[:, None] / tc.expand_dims to add a dimension")
        out.append(max(x, y) if min(x, y) != 0 else 0)
    return tuple(reversed(out))


def as_dtype(x: Any, what: str = "dtype") -> DType:
    if isinstance(x, DType):
        return x
    if isinstance(x, str):
        return dt.dtype(x)
    raise CompileError(f"{what} must be a dtype such as tc.float16, got {describe(x)}")


def fold_constant(value: bool | int | float, d: DType) -> bool | int | float:
    """A Python number converted to dtype `d` exactly as the cast op would."""
    if d.is_bool:
        return bool(value)
    if d.is_int:
        if isinstance(value, float):
            if math.isnan(value):
                return 0
            value = max(min(math.trunc(value) if math.isfinite(value) else value, d.max), d.min)
            return int(value)
        v = int(value) & ((1 << d.bits) - 1)
        if d.kind == "int" and v >= 1 << (d.bits - 1):
            v -= 1 << d.bits
        return v
    v = float(value)
    if math.isnan(v):
        return v
    rounded = float(d.round(np.array([v], np.float64))[0])
    return rounded


class Emitter:
    """Builds IR at the builder's insertion point with the current source location."""

    def __init__(self, builder: Builder):
        self.b = builder
        self.loc: Location | None = None
        self.codegen = None  # the CodeGen visiting now (builtins call back into it)

    # -- raw ops ------------------------------------------------------------------------
    def op(self, name: str, *operands: Any, **kw: Any) -> TVal:
        return TVal(self.create(name, *operands, **kw).result)

    def create(self, name: str, *operands: Any, **kw: Any):
        """Create and verify op `name`: a broken rule is the user's error at this line."""
        vals = [self._raw(o) for o in operands]
        kw = {k: (self._raw(v) if k not in ("types", "attrs", "regions", "names") else v)
              for k, v in kw.items()}
        try:
            op = self.b.create(name, *vals, loc=self.loc, **kw)
            op.verify_structure()
            op.verify()
        except IRError as e:
            raise CompileError(e.message, self.loc, e.hint) from None
        return op

    @staticmethod
    def _raw(x: Any):
        if isinstance(x, (TVal, TensorArg)):
            return x.value
        if isinstance(x, list):
            return [Emitter._raw(v) for v in x]
        return x

    # -- constants, casts, broadcasts ---------------------------------------------------
    def constant(self, value: bool | int | float, d: DType, shape: tuple[int, ...] = ()) -> TVal:
        if d.is_int:
            if isinstance(value, float):
                raise CompileError(f"float constant {value!r} used where {d} is expected",
                                   hint="convert it explicitly with int(...) or .to()")
            if not (d.min <= int(value) <= d.max):
                value = fold_constant(value, d)
            value = int(value)
        elif d.is_bool:
            value = bool(value)
        else:
            value = fold_constant(value, d)
        t = TileType(shape, d) if shape else ScalarType(d)
        return self.op("constant", attrs={"value": value}, types=[t])

    def materialize(self, x: Any, d: DType | None = None, what: str = "operand") -> TVal:
        """A runtime value for `x` (a TVal, or a Python number made a constant)."""
        if isinstance(x, TVal):
            return x
        if is_number(x):
            return self.constant(x, d or promotion.default_literal_dtype(x))
        raise CompileError(f"{what} must be a tile or a number, got {describe(x)}")

    def cast(self, x: TVal, d: DType) -> TVal:
        if x.is_pointer:
            raise CompileError(f"cannot convert pointers {x.type} to {d}")
        if x.dtype == d:
            return x
        t = TileType(x.shape, d) if x.is_tile else ScalarType(d)
        return self.op("cast", x, types=[t])

    def broadcast(self, x: TVal, shape: tuple[int, ...]) -> TVal:
        """`x` broadcast to `shape` (scalars are splat; lower ranks gain leading 1s)."""
        if x.shape == tuple(shape) and (x.is_tile or not shape):
            return x
        if not x.is_tile:
            return self.op("splat", x, types=[TileType(shape, x.element)])
        if broadcast_shapes(x.shape, shape) != tuple(shape):
            raise CompileError(f"cannot broadcast {x.type} to shape {list(shape)}")
        while x.type.rank < len(shape):
            x = self.op("expand_dims", x, attrs={"axis": 0})
        if x.shape != tuple(shape):
            x = self.op("broadcast", x, types=[TileType(shape, x.element)])
        return x

    def value_as(self, x: Any, d: DType, shape: tuple[int, ...]) -> TVal:
        """`x` (number or TVal) converted to dtype `d` and broadcast to `shape`."""
        if is_number(x):
            return self.constant(x, d, shape)
        x = self.materialize(x)
        return self.broadcast(self.cast(x, d), shape)

    # -- operands of binary ops -------------------------------------------------------
    def common(self, *xs: Any, what: str = "operands") -> tuple[DType, tuple[int, ...]]:
        """The dtype and shape a group of numbers/TVals promote and broadcast to."""
        typed = [x for x in xs if isinstance(x, TVal)]
        for x in xs:
            if not isinstance(x, TVal) and not is_number(x):
                raise CompileError(f"{what} must be tiles or numbers, got {describe(x)}")
        for x in typed:
            if x.is_pointer:
                raise CompileError(f"pointers {x.type} cannot be used here",
                                   hint="pointer tiles support + and - with integer offsets")
        shape: tuple[int, ...] = ()
        for x in typed:
            shape = broadcast_shapes(shape, x.shape)
        if not typed:
            d = promotion.default_literal_dtype(xs[0])
            for x in xs[1:]:
                d = promotion.common_dtype(d, promotion.default_literal_dtype(x))
            return d, shape
        d = typed[0].dtype
        for x in typed[1:]:
            d = promotion.common_dtype(d, x.dtype)
        d = promotion.arith_dtype(d)
        for x in xs:
            if not isinstance(x, TVal):
                d = promotion.common_dtype(d, promotion.literal_dtype(x, d))
        return d, shape

    def binary(self, name: str, a: Any, b: Any) -> TVal:
        d, shape = self.common(a, b)
        if d.is_bool and name in ("add", "sub", "mul", "div", "rem", "max", "min"):
            d = dt.int32 if name not in ("max", "min") else d
        if name in ("and", "or", "xor") and d.is_float:
            raise CompileError(f"bitwise '{name}' needs integer or bool operands, got {d}")
        if name in ("shl", "shr") and not d.is_int:
            raise CompileError(f"shifts need integer operands, got {d}")
        if name in ("max", "min") and d.is_bool:
            name = "or" if name == "max" else "and"
        return self.op(name, self.value_as(a, d, shape), self.value_as(b, d, shape))

    def compare(self, pred: str, a: Any, b: Any) -> TVal:
        d, shape = self.common(a, b)
        return self.op("cmp", self.value_as(a, d, shape), self.value_as(b, d, shape),
                       attrs={"pred": pred})

    def truediv(self, a: Any, b: Any) -> TVal:
        d, shape = self.common(a, b)
        if not d.is_float:
            d = dt.float32
        return self.op("div", self.value_as(a, d, shape), self.value_as(b, d, shape))

    def floordiv(self, a: Any, b: Any) -> TVal:
        d, shape = self.common(a, b)
        if d.is_bool:
            d = dt.int32
        q = self.op("div", self.value_as(a, d, shape), self.value_as(b, d, shape))
        return self.op("floor", q) if d.is_float else q

    def to_bool(self, x: Any) -> TVal:
        x = self.materialize(x)
        if x.dtype == dt.bool_:
            return x
        if x.is_pointer or x.dtype is None:
            raise CompileError(f"cannot use {x.type} as a condition")
        return self.op("cmp", x, self.constant(0, x.dtype, x.shape), attrs={"pred": "ne"})

    def addptr(self, ptr: TVal, offset: Any, negate: bool = False) -> TVal:
        if isinstance(offset, TVal) and offset.is_pointer:
            raise CompileError("cannot add two pointers")
        off = self.materialize(offset)
        if off.dtype is None or not off.dtype.is_int:
            raise CompileError(f"pointer offsets must be integers, got {off.type}",
                               hint="convert the offsets with .to(tc.int32)")
        off = self.cast(off, promotion.arith_dtype(off.dtype))
        if negate:
            off = self.op("neg", off)
        shape = broadcast_shapes(ptr.shape, off.shape)
        return self.op("addptr", self.broadcast(ptr, shape), self.broadcast(off, shape))


class constexpr:
    """Annotation of a compile-time parameter (`BLOCK: tc.constexpr`); `tc.constexpr(v)` also
    marks a value, which the frontend unwraps."""

    def __init__(self, value: Any = None):
        self.value = value.value if isinstance(value, constexpr) else value

    def __repr__(self) -> str:
        return f"constexpr({self.value!r})"


class Tensor:
    """Annotation of a global tensor parameter: pointer, dtype, shape and strides together."""


def annotation_kind(annotation: Any, globals_: dict[str, Any]) -> str | None:
    """'constexpr', 'tensor', 'int', 'float', 'bool' or None for a parameter annotation
    (strings, as `from __future__ import annotations` leaves them, are evaluated)."""
    import inspect
    if annotation is inspect.Parameter.empty or annotation is None:
        return None
    if isinstance(annotation, str):
        try:
            annotation = eval(annotation, dict(globals_))  # noqa: S307 (the user's own source)
        except Exception:
            text = annotation.rsplit(".", 1)[-1]
            return {"constexpr": "constexpr", "Tensor": "tensor", "int": "int",
                    "float": "float", "bool": "bool"}.get(text)
    if annotation is constexpr or isinstance(annotation, constexpr):
        return "constexpr"
    if annotation is Tensor:
        return "tensor"
    if annotation is bool:
        return "bool"
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    return None
