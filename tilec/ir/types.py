"""IR types: scalars, pointers, tiles (register or shared) and global tensors.

Types are frozen values: they compare by value, hash, and print in one textual syntax
that `tilec.ir.parser` reads back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from tilec.ir.dtypes import DType

REGISTER = "register"
SHARED = "shared"


@dataclass(frozen=True)
class ScalarType:
    """One value per program instance (uniform across the block): `i32`, `f32`, `bool`."""

    dtype: DType

    def __str__(self) -> str:
        return self.dtype.name


@dataclass(frozen=True)
class PointerType:
    """An address in global memory of elements of `pointee`: `ptr<f16>`."""

    pointee: DType

    def __str__(self) -> str:
        return f"ptr<{self.pointee.name}>"


Element = Union[DType, PointerType]


@dataclass(frozen=True)
class TileType:
    """A tile: `shape` elements of `element`, spread over the block by `layout`.

    `layout` is None until layout assignment. `space` is where the tile lives: registers
    (a register layout) or shared memory (a shared layout).
    """

    shape: tuple[int, ...]
    element: Element
    layout: object | None = None
    space: str = REGISTER

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def with_shape(self, shape: tuple[int, ...]) -> TileType:
        return TileType(tuple(shape), self.element, None, self.space)

    def with_element(self, element: Element) -> TileType:
        return TileType(self.shape, element, self.layout, self.space)

    def with_layout(self, layout: object | None) -> TileType:
        return TileType(self.shape, self.element, layout, self.space)

    def __str__(self) -> str:
        elem = self.element.name if isinstance(self.element, DType) else str(self.element)
        text = "x".join(str(d) for d in self.shape) + "x" + elem if self.shape else elem
        extra = []
        if self.space == SHARED:
            extra.append(SHARED)
        if self.layout is not None:
            extra.append(str(self.layout))
        return f"tile<{text}, {' '.join(extra)}>" if extra else f"tile<{text}>"


@dataclass(frozen=True)
class TensorType:
    """A global tensor argument: base pointer, shape and strides travel together.

    Sizes are dynamic (`?`); dtype and rank are part of the type.
    """

    dtype: DType
    rank: int

    def __str__(self) -> str:
        return "tensor<" + "?x" * self.rank + self.dtype.name + ">"


Type = Union[ScalarType, PointerType, TileType, TensorType]


def shape_of(t: Type) -> tuple[int, ...]:
    """The tile shape of a value; () for scalars and pointers."""
    return t.shape if isinstance(t, TileType) else ()


def element_of(t: Type) -> Element:
    """The element type of a scalar, pointer or tile (a DType or a PointerType)."""
    if isinstance(t, TileType):
        return t.element
    if isinstance(t, ScalarType):
        return t.dtype
    if isinstance(t, PointerType):
        return t
    raise TypeError(f"{t} has no element type")


def dtype_of(t: Type) -> DType | None:
    """The DType of a scalar or tile of numbers; None for pointers and tensors."""
    e = element_of(t) if not isinstance(t, TensorType) else t.dtype
    return e if isinstance(e, DType) else None


def like(t: Type, element: Element) -> Type:
    """A type of the same shape (and layout) as `t` with another element type."""
    if isinstance(t, TileType):
        return t.with_element(element)
    return ScalarType(element) if isinstance(element, DType) else element


def is_tile(t: Type) -> bool:
    return isinstance(t, TileType)


def is_scalar(t: Type) -> bool:
    return isinstance(t, (ScalarType, PointerType))
