"""Shared-memory layouts: tile coordinate -> element offset in shared memory.

A `SharedLayout` is a strided layout (each tile dim split into modes, each mode with its own
stride, so padded, blocked and column-major layouts are all one class) followed by XOR
swizzles applied to the offset. The Hopper wgmma matrix descriptors and TMA tensor maps use
exactly such layouts (`hopper_layout`), so they are not special cases.

Composition with a register layout (`offsets(register_layout)`) gives each thread's offsets;
`contiguous_vector` and `bank_conflicts` read vector width and conflicts off that.
This module imports nothing from tilec except errors: register layouts are duck-typed
(anything with `coords()`, `num_threads` and `local_size`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from tilec.errors import LayoutError


@dataclass(frozen=True)
class Swizzle:
    """XOR swizzle `offset ^= (offset >> shift) & (((1 << bits) - 1) << base)`.

    Same meaning as CUTLASS `cute::Swizzle<BBits, MBase, SShift>` (include/cute/swizzle.hpp):
    the `bits` bits starting at `base + shift` are XORed into the `bits` bits starting at
    `base`; the low `base` bits are kept. Only shift >= bits is allowed (the two bit fields do
    not overlap), which makes the swizzle its own inverse and a bijection on every aligned
    block of 2**(bits + base + shift) offsets.
    """

    bits: int
    base: int
    shift: int

    def __post_init__(self) -> None:
        if min(self.bits, self.base, self.shift) < 0 or self.shift < self.bits:
            raise LayoutError(
                f"invalid swizzle({self.bits},{self.base},{self.shift})",
                hint="bits, base and shift must be >= 0 and shift >= bits",
            )

    def apply(self, offset: Any) -> Any:
        """Swizzle an int or an integer numpy array of offsets."""
        mask = ((1 << self.bits) - 1) << self.base
        return offset ^ ((offset >> self.shift) & mask)

    def __str__(self) -> str:
        return f"swizzle({self.bits},{self.base},{self.shift})"


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


@dataclass(frozen=True)
class SharedLayout:
    """A strided layout (modes with strides, per tile dim) followed by XOR swizzles.

    `modes[d]` are the sizes of dim d's modes, major to minor; `strides[d]` their strides in
    elements. Canonical: size-1 modes dropped, modes of a dim merged where they are contiguous
    (stride_major == stride_minor * size_minor), zero-bit swizzles dropped.
    """

    modes: tuple[tuple[int, ...], ...]
    strides: tuple[tuple[int, ...], ...]
    swizzles: tuple[Swizzle, ...] = ()

    def __post_init__(self) -> None:
        if len(self.modes) != len(self.strides):
            raise LayoutError("shared layout: modes and strides differ in rank")
        modes, strides = [], []
        for dim_modes, dim_strides in zip(self.modes, self.strides):
            if len(dim_modes) != len(dim_strides):
                raise LayoutError("shared layout: modes and strides differ in structure")
            kept = [
                (int(m), int(s)) for m, s in zip(dim_modes, dim_strides) if _check_size(m) != 1
            ]
            if any(s < 0 for _, s in kept):
                raise LayoutError("shared layout: strides must be >= 0")
            merged: list[tuple[int, int]] = []
            for size, stride in kept:
                if merged and merged[-1][1] == stride * size:
                    merged[-1] = (merged[-1][0] * size, stride)
                else:
                    merged.append((size, stride))
            modes.append(tuple(m for m, _ in merged))
            strides.append(tuple(s for _, s in merged))
        object.__setattr__(self, "modes", tuple(modes))
        object.__setattr__(self, "strides", tuple(strides))
        object.__setattr__(self, "swizzles", tuple(z for z in self.swizzles if z.bits > 0))

    # -- shape and size ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(math.prod(m) for m in self.modes)

    @property
    def rank(self) -> int:
        return len(self.modes)

    @property
    def size(self) -> int:
        """Number of elements spanned: the largest offset plus one."""
        if math.prod(self.shape) == 0:
            return 0
        return int(self.offsets().max()) + 1

    # -- the function --------------------------------------------------------------------------
    def _offsets_of(self, coords: Sequence[Any]) -> Any:
        """Offsets of coordinates given per dim (ints or broadcastable integer arrays)."""
        total: Any = 0
        for c, dim_modes, dim_strides in zip(coords, self.modes, self.strides):
            for size, stride in zip(reversed(dim_modes), reversed(dim_strides)):
                total = total + (c % size) * stride
                c = c // size
        for z in self.swizzles:
            total = z.apply(total)
        return total

    def offset(self, coord: Sequence[int]) -> int:
        """The element offset of one tile coordinate."""
        if len(coord) != self.rank or any(not 0 <= c < s for c, s in zip(coord, self.shape)):
            raise LayoutError(f"coordinate {tuple(coord)} is outside the tile {self.shape}")
        return int(self._offsets_of([int(c) for c in coord]))

    def offsets(self, register_layout: Any = None) -> np.ndarray:
        """All offsets: an array of the tile's shape, or, given a register layout (this is the
        composition shared o register), an array [num_threads, local_size] of the offset of
        each thread's local elements."""
        if register_layout is None:
            grid = np.indices(self.shape, dtype=np.int64)
            return np.asarray(self._offsets_of(list(grid)), dtype=np.int64).reshape(self.shape)
        if tuple(register_layout.shape) != self.shape:
            raise LayoutError(
                f"register layout of shape {register_layout.shape} does not fit a shared "
                f"layout of shape {self.shape}"
            )
        c = register_layout.coords()
        out = self._offsets_of([c[:, :, d] for d in range(self.rank)])
        return np.broadcast_to(np.asarray(out, dtype=np.int64), c.shape[:2]).copy()

    def is_injective(self) -> bool:
        """No two elements share an offset."""
        offs = self.offsets().ravel()
        return len(np.unique(offs)) == offs.size

    def is_bijective(self) -> bool:
        """The tile maps one-to-one onto [0, size): no aliasing and no gaps (no padding)."""
        offs = self.offsets().ravel()
        return self.is_injective() and (offs.size == 0 or int(offs.max()) + 1 == offs.size)

    # -- building ------------------------------------------------------------------------------
    def swizzle(self, bits: int, base: int, shift: int) -> SharedLayout:
        """This layout followed by one more XOR swizzle of the offset."""
        return SharedLayout(self.modes, self.strides, self.swizzles + (Swizzle(bits, base, shift),))

    def permute(self, dims: Sequence[int]) -> SharedLayout:
        """The same memory seen with the tile dims reordered (dims[i] becomes dim i)."""
        if sorted(dims) != list(range(self.rank)):
            raise LayoutError(f"permute: {tuple(dims)} is not a permutation of {self.rank} dims")
        return SharedLayout(
            tuple(self.modes[d] for d in dims), tuple(self.strides[d] for d in dims), self.swizzles
        )

    # -- printing ------------------------------------------------------------------------------
    def __str__(self) -> str:
        shape = self.shape
        simple = all(len(m) <= 1 for m in self.modes)
        dims = ",".join(str(s) for s in shape)
        if simple and self == row_major(*shape).with_swizzles(self.swizzles):
            text = f"row_major({dims})"
        elif simple and self == column_major(*shape).with_swizzles(self.swizzles):
            text = f"column_major({dims})"
        else:
            def fmt(values: tuple[int, ...]) -> str:
                if len(values) == 1:
                    return str(values[0])
                return "[" + ",".join(map(str, values)) + "]"

            sizes = ",".join(fmt(m) if m else "1" for m in self.modes)
            strides = ",".join(fmt(s) if s else "0" for s in self.strides)
            text = f"strided([{sizes}],[{strides}])"
        return text + "".join("." + str(z) for z in self.swizzles)

    def __repr__(self) -> str:
        return f"SharedLayout({self})"

    def with_swizzles(self, swizzles: tuple[Swizzle, ...]) -> SharedLayout:
        return SharedLayout(self.modes, self.strides, swizzles)

    def draw(self) -> str:
        """A grid of the offset of each element (rank 1 or 2)."""
        if self.rank not in (1, 2):
            raise LayoutError(f"draw supports rank 1 and 2 layouts, not rank {self.rank}")
        offs = self.offsets()
        grid = offs.reshape(1, -1) if self.rank == 1 else offs
        width = max(len(str(grid.max(initial=0))), len(str(grid.shape[1] - 1)))
        lines = [f"{self}  shape={self.shape} size={self.size}"]
        lines.append(" " * 5 + " ".join(f"{c:>{width}}" for c in range(grid.shape[1])))
        for r, row in enumerate(grid):
            lines.append(f"{r:>4} " + " ".join(f"{v:>{width}}" for v in row))
        return "\n".join(lines)


def _check_size(size: Any) -> int:
    if not _is_int(size) or size < 1:
        raise LayoutError(f"layout sizes must be positive integers, got {size!r}")
    return int(size)


# -- constructors --------------------------------------------------------------------------------
def strided(
    shape: Sequence[int | Sequence[int]], strides: Sequence[int | Sequence[int]]
) -> SharedLayout:
    """Explicit strides; an entry may be a list to split a dim into modes (major to minor)."""
    if len(shape) != len(strides):
        raise LayoutError("strided: shape and strides differ in rank")

    def as_tuple(x: int | Sequence[int]) -> tuple[int, ...]:
        return (x,) if _is_int(x) else tuple(x)  # type: ignore[arg-type]

    return SharedLayout(tuple(as_tuple(s) for s in shape), tuple(as_tuple(s) for s in strides))


def row_major(*shape: int, pad: int = 0) -> SharedLayout:
    """Row-major (last dim contiguous); `pad` extra elements after each innermost row."""
    for s in shape:
        _check_size(s)
    strides, acc = [], 1
    for i, s in enumerate(reversed(shape)):
        strides.append(acc)
        acc *= s + (pad if i == 0 else 0)
    return strided(shape, tuple(reversed(strides)))


def column_major(*shape: int) -> SharedLayout:
    """Column-major (first dim contiguous)."""
    for s in shape:
        _check_size(s)
    strides = [math.prod(shape[:d]) for d in range(len(shape))]
    return strided(shape, strides)


# Bytes covered by one swizzle pattern row in the Hopper modes. PTX ISA, section "Shared Memory
# Matrix Layout" of wgmma (9.7.15.5.1.2) and the "Matrix Descriptor Format" swizzle field; the
# same four modes are CU_TENSOR_MAP_SWIZZLE_{NONE,32B,64B,128B} of TMA tensor maps.
HOPPER_SWIZZLE_BYTES = {"none": 16, "32B": 32, "64B": 64, "128B": 128}


def swizzle_mode(mode: str, elem_bits: int) -> Swizzle | None:
    """The XOR swizzle, in element units, of a Hopper wgmma/TMA swizzle mode.

    In bytes the modes are CUTLASS Swizzle<1,4,3> (32B), <2,4,3> (64B), <3,4,3> (128B)
    (cute/atom/mma_traits_sm90_gmma.hpp, Layout_K_SW*_Atom_Bits): the 16-byte chunk index is
    XORed with the 128-byte row index modulo 2, 4 or 8. In elements the base moves from 4
    (16 bytes) to log2(128 / elem_bits); the shift does not change.
    """
    if mode not in HOPPER_SWIZZLE_BYTES:
        raise LayoutError(f"unknown swizzle mode {mode!r}", hint="use none, 32B, 64B or 128B")
    if elem_bits <= 0 or 128 % elem_bits:
        raise LayoutError(f"{elem_bits}-bit elements do not tile a 16-byte chunk")
    if mode == "none":
        return None
    bits = {"32B": 1, "64B": 2, "128B": 3}[mode]
    return Swizzle(bits, int(math.log2(128 // elem_bits)), 3)


def hopper_layout(shape: Sequence[int], elem_bits: int, mode: str = "128B") -> SharedLayout:
    """A (rows, cols) tile, cols contiguous, as wgmma matrix descriptors and TMA expect it.

    The tile is cut into atoms of 8 rows x `HOPPER_SWIZZLE_BYTES[mode]` bytes (for "none" the
    8x16-byte core matrices), atoms stacked down the rows first, then along the columns (the
    order of CUTLASS `tile_to_shape` of the GMMA atoms), then swizzled. K-major operands use
    (M or N, K); MN-major operands use (K, M or N) and `.permute((1, 0))` for the tile view.
    """
    rows, cols = shape
    atom_cols = HOPPER_SWIZZLE_BYTES[mode] * 8 // elem_bits
    if rows % 8 or cols % atom_cols:
        raise LayoutError(
            f"a {rows}x{cols} tile of {elem_bits}-bit elements does not tile into "
            f"8x{atom_cols} atoms of the {mode} swizzle mode"
        )
    layout = strided([rows, [cols // atom_cols, atom_cols]], [atom_cols, [rows * atom_cols, 1]])
    swz = swizzle_mode(mode, elem_bits)
    return layout if swz is None else layout.swizzle(swz.bits, swz.base, swz.shift)


# -- composition helpers -------------------------------------------------------------------------
def _thread_offsets(register_layout: Any, memory: SharedLayout | Sequence[int]) -> np.ndarray:
    if isinstance(memory, SharedLayout):
        return memory.offsets(register_layout)
    strides = tuple(memory)
    if len(strides) != len(register_layout.shape):
        raise LayoutError("strides and register layout differ in rank")
    return np.asarray(strided(register_layout.shape, strides).offsets(register_layout))


def contiguous_vector(register_layout: Any, memory: SharedLayout | Sequence[int]) -> int:
    """Widest vector (a power of two dividing local_size) such that every thread's local
    elements v*g .. v*g+v-1 sit at consecutive offsets starting at a multiple of v.

    `memory` is a shared layout or the strides of a strided (e.g. global) tensor.
    """
    offs = _thread_offsets(register_layout, memory)
    num_local = offs.shape[1]
    best, v = 1, 2
    while v <= num_local and num_local % v == 0:
        groups = offs.reshape(offs.shape[0], num_local // v, v)
        consecutive = np.all(groups - groups[:, :, :1] == np.arange(v))
        aligned = np.all(groups[:, :, 0] % v == 0)
        if not (consecutive and aligned):
            break
        best, v = v, v * 2
    return best


def bank_conflicts(
    register_layout: Any,
    shared: SharedLayout,
    elem_bits: int,
    vector: int | None = None,
    warp_size: int = 32,
    banks: int = 32,
) -> int:
    """Extra shared-memory wavefronts when each warp accesses its elements, `vector` local
    elements per access (default: the widest contiguous vector, at most 16 bytes).

    Model: 32 banks of 4-byte words. Accesses wider than 4 bytes per thread run in phases of
    128 bytes (8 threads for 16-byte, 16 for 8-byte accesses), as NVIDIA hardware does; a phase
    needs as many wavefronts as the most distinct words one bank is asked for (threads reading
    the same word share it). The count returned is the sum, over warps and accesses, of the
    wavefronts beyond the minimum ceil(distinct words / 32); 0 means conflict-free.
    """
    offs = shared.offsets(register_layout)
    if vector is None:
        vector = min(contiguous_vector(register_layout, shared), max(1, 128 // elem_bits))
    return _conflicts(offs, elem_bits, vector, warp_size, banks)


def _conflicts(offs: np.ndarray, elem_bits: int, vector: int, warp_size: int = 32,
               banks: int = 32) -> int:
    """`bank_conflicts` of the thread offsets `offs` ([num_threads, local_size])."""
    num_threads, num_local = offs.shape
    if num_local % vector:
        raise LayoutError(f"vector {vector} does not divide {num_local} local elements")
    access_bytes = vector * elem_bits // 8
    phase = warp_size if access_bytes <= 4 else max(1, 128 // access_bytes)
    if num_threads % warp_size == 0 and warp_size % phase == 0:
        return _bank_conflicts_whole_warps(offs, elem_bits, vector, warp_size, phase, banks)
    return _bank_conflicts_each_warp(offs, elem_bits, vector, warp_size, phase, banks)


def _bank_conflicts_each_warp(offs: np.ndarray, elem_bits: int, vector: int, warp_size: int,
                              phase: int, banks: int) -> int:
    """`bank_conflicts` one warp, access and phase at a time (any number of threads)."""
    num_threads, num_local = offs.shape
    extra = 0
    for warp_start in range(0, num_threads, warp_size):
        warp = offs[warp_start:warp_start + warp_size].astype(np.int64)
        for g in range(0, num_local, vector):
            access = warp[:, g:g + vector]
            wavefronts = 0
            for p in range(0, access.shape[0], phase):
                words = np.unique((access[p:p + phase] * elem_bits) // 32)
                wavefronts += int(np.bincount(words % banks, minlength=banks).max())
            all_words = np.unique((access * elem_bits) // 32)
            extra += wavefronts - -(-len(all_words) // banks)
    return extra


def _distinct_last(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `words` sorted along the last axis, and a mask of each value's first copy."""
    ordered = np.sort(words, axis=-1)
    first = np.ones(ordered.shape, dtype=bool)
    first[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    return ordered, first


def _bank_conflicts_whole_warps(offs: np.ndarray, elem_bits: int, vector: int, warp_size: int,
                                phase: int, banks: int) -> int:
    """`bank_conflicts` for whole warps, every (warp, access, phase) at once: the same count
    as the loop over them (distinct words per bank per phase, less the minimum)."""
    num_threads, num_local = offs.shape
    warps, groups = num_threads // warp_size, num_local // vector
    # (warp, access, thread in warp, element of the access) -> word address
    words = ((offs.astype(np.int64).reshape(warps, warp_size, groups, vector)
              .transpose(0, 2, 1, 3)) * elem_bits) // 32
    per_phase = words.reshape(warps, groups, warp_size // phase, phase * vector)
    ordered, first = _distinct_last(per_phase)
    rows = ordered.size // ordered.shape[-1]
    row = np.broadcast_to(np.arange(rows).reshape(ordered.shape[:-1] + (1,)), ordered.shape)
    slots = (row * banks + ordered % banks)[first]  # (phase, bank) of each distinct word
    wavefronts = np.bincount(slots, minlength=rows * banks).reshape(rows, banks).max(axis=-1)
    _, first_all = _distinct_last(words.reshape(warps, groups, warp_size * vector))
    minimum = -(-first_all.sum(axis=-1) // banks)
    return int(wavefronts.sum() - minimum.sum())


def best_swizzle(
    base: SharedLayout,
    accesses: Sequence[tuple[Any, int]],
    elem_bits: int,
    chunk_bytes: int = 16,
) -> SharedLayout:
    """`base` followed by the XOR swizzle that minimises the bank conflicts of `accesses`
    (pairs of a register layout and the elements per access, see `bank_conflicts`), among
    swizzles that keep each `chunk_bytes` chunk contiguous (base = log2 of the elements per
    chunk) and keep the layout a bijection. Ties go to fewer bits, then the smaller shift;
    no swizzle when none helps. Deterministic."""
    chunk = max(1, chunk_bytes * 8 // elem_bits)
    low = int(math.log2(chunk))
    every = base.offsets()
    size = int(every.max()) + 1 if every.size else 0
    top = max(1, int(math.log2(max(1, size))))
    # A candidate's offsets are its swizzle applied to base's, computed once; and a swizzle is
    # its own inverse, so a candidate is injective exactly when base is.
    plain = [(base.offsets(r), v) for r, v in accesses]

    def cost(z: Swizzle | None, bound: float) -> float:
        """The conflicts of `z`, or inf once they reach `bound` (then it cannot win)."""
        total = 0
        for offs, v in plain:
            total += _conflicts(offs if z is None else z.apply(offs), elem_bits, v)
            if total >= bound:
                return math.inf
        return total

    # Nothing beats conflict-free (a tie keeps the earlier), nor is anything else injective
    # when base is not.
    best, best_cost = base, cost(None, math.inf)
    if best_cost == 0 or not base.is_injective():
        return best
    for bits in (1, 2, 3):
        for shift in range(bits, top - low - bits + 1):
            z = Swizzle(bits, low, shift)
            if int(z.apply(every).max()) + 1 != size:
                continue
            c = cost(z, best_cost)
            if c < best_cost:
                best, best_cost = base.swizzle(bits, low, shift), c
                if c == 0:
                    return best
    return best
