"""Register layouts: how a tile is spread over the threads of a thread block.

A register layout of a tile of shape S over T threads (thread = warp * 32 + lane), each
holding L local elements, is a function (thread, local) -> tile coordinate. As in Tilus, each
tile dim is split into *modes* (sizes, major to minor); the thread index is read in mixed
radix over an ordered list of spatial entries and the local index over an ordered list of
local entries. A spatial entry is either a mode or a *replication* of k threads that hold the
same elements. Any sizes work, not only powers of two.

    spatial(4, 8)          thread t holds (t // 8, t % 8)
    column_spatial(4, 8)   thread t holds (t % 4, t // 4)
    local(2, 4)            one thread holds a 2x4 tile, local index row-major
    column_local(2, 4)     ... local index column-major
    replicate(k)           k threads hold the same elements (rank 0: fits any product)
    A * B                  coord = coordA * shapeB + coordB, thread = threadA * threadsB +
                           threadB, local = localA * localsB + localB

The representation is canonical (size-1 modes dropped; modes adjacent both in their dim and in
the thread or local order merged), so equal functions compare and hash equal.

Text syntax (only letters, digits, `_ , ( ) [ ] * .` and spaces, so it nests in the IR):
    spatial(4,8)*local(2,4)     products of primitives, `replicate(k)` included
    layout(modes[[2,8],[2,4,2]],spatial[1,rep2,3],local[2,0,4])
                                general form: modes per dim, then the spatial and local
                                entries as flat mode indices (`repK` = replication of K)
    row_major(64,64).swizzle(3,3,3), strided([..],[..])   shared layouts (shared_layout.py)

`python -m tilec.ir.layout "spatial(4,8)*local(2,4)"` draws the thread-ownership grid.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from tilec.errors import LayoutError
from tilec.ir.shared_layout import SharedLayout, Swizzle, column_major, row_major, strided

# A spatial or local entry: a flat mode index (>= 0), or -k for a replication of k threads.
Entry = int


def _size(value: Any, what: str = "layout sizes") -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise LayoutError(f"{what} must be positive integers, got {value!r}")
    return int(value)


def _build(
    dims: Sequence[Sequence[Any]],
    size: dict[Any, int],
    spatial: Sequence[Any],
    local: Sequence[Any],
) -> RegisterLayout:
    """Make a layout from modes named by arbitrary keys (ints < 0 in `spatial` are
    replications); renumbers keys into flat mode indices in dim order."""
    index: dict[Any, int] = {}
    for dim_keys in dims:
        for key in dim_keys:
            index[key] = len(index)
    modes = tuple(tuple(size[k] for k in dim_keys) for dim_keys in dims)

    def entry(key: Any) -> int:
        if isinstance(key, int) and key < 0:
            return key
        if key not in index:
            raise LayoutError("layout entry refers to a mode of no tile dim")
        return index[key]

    return RegisterLayout(modes, tuple(map(entry, spatial)), tuple(map(entry, local)))


def _canonical(modes: Any, spatial: Any, local: Any) -> tuple[Any, Any, Any]:
    """Validate and canonicalise (drop size-1 modes, merge contiguous modes)."""
    sizes = [_size(s) for dim_modes in modes for s in dim_modes]
    spatial, local = [int(e) for e in spatial], [int(e) for e in local]
    if sorted(e for e in spatial + local if e >= 0) != list(range(len(sizes))):
        raise LayoutError("every mode must appear exactly once among the spatial and local entries")
    if any(e < 0 for e in local):
        raise LayoutError("replication entries are only allowed among the spatial entries")
    size = dict(enumerate(sizes))
    dims, start = [], 0
    for dim_modes in modes:
        dims.append([m for m in range(start, start + len(dim_modes)) if size[m] > 1])
        start += len(dim_modes)
    spatial = [e for e in spatial if e != -1 and (e < 0 or size[e] > 1)]
    local = [e for e in local if size[e] > 1]
    changed = True
    while changed:
        changed = False
        for i in range(len(spatial) - 1):
            if spatial[i] < 0 and spatial[i + 1] < 0:  # adjacent replications: one of k1*k2
                spatial[i : i + 2] = [-spatial[i] * spatial[i + 1]]
                changed = True
                break
        where = {e: (lst, i) for lst in (spatial, local) for i, e in enumerate(lst) if e >= 0}
        for dim_keys in dims:
            for j in range(len(dim_keys) - 1):
                major, minor = dim_keys[j], dim_keys[j + 1]
                (lst_a, ia), (lst_b, ib) = where[major], where[minor]
                if lst_a is lst_b and ib == ia + 1:  # contiguous in dim and in order: merge
                    size[major] *= size[minor]
                    del dim_keys[j + 1]
                    del lst_a[ib]
                    changed = True
                    break
            if changed:
                break
    index = {k: i for i, k in enumerate(k for dim_keys in dims for k in dim_keys)}
    out_modes = tuple(tuple(size[k] for k in dim_keys) for dim_keys in dims)
    return (
        out_modes,
        tuple(e if e < 0 else index[e] for e in spatial),
        tuple(index[e] for e in local),
    )


@dataclass(frozen=True)
class RegisterLayout:
    """A canonical register layout; build it with the primitives and `*`."""

    modes: tuple[tuple[int, ...], ...]
    spatial: tuple[Entry, ...]
    local: tuple[Entry, ...]
    _sizes: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _dims: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        modes, spatial, local = _canonical(self.modes, self.spatial, self.local)
        object.__setattr__(self, "modes", modes)
        object.__setattr__(self, "spatial", spatial)
        object.__setattr__(self, "local", local)
        object.__setattr__(self, "_sizes", tuple(s for m in modes for s in m))
        dims, start = [], 0
        for m in modes:
            dims.append(tuple(range(start, start + len(m))))
            start += len(m)
        object.__setattr__(self, "_dims", tuple(dims))

    # -- facts -----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(math.prod(m) for m in self.modes)

    @property
    def rank(self) -> int:
        return len(self.modes)

    def _entry_size(self, e: Entry) -> int:
        return -e if e < 0 else self._sizes[e]

    @property
    def num_threads(self) -> int:
        return math.prod(self._entry_size(e) for e in self.spatial)

    @property
    def local_size(self) -> int:
        return math.prod(self._sizes[e] for e in self.local)

    @property
    def replication(self) -> int:
        """How many threads hold each element."""
        return math.prod(-e for e in self.spatial if e < 0)

    def is_local(self, dim: int) -> bool:
        """Whether each thread holds the whole extent of `dim` in its own registers."""
        return all(m in self.local for m in self._dims[self._dim(dim)])

    def is_bijective(self) -> bool:
        """Every element is held by exactly one (thread, local) pair."""
        return self.replication == 1

    # -- the function ----------------------------------------------------------------------
    def _mode_values(self, thread: Any, local: Any) -> dict[int, Any]:
        values: dict[int, Any] = {}
        for entries, rest in ((self.spatial, thread), (self.local, local)):
            for e in reversed(entries):
                size = self._entry_size(e)
                if e >= 0:
                    values[e] = rest % size
                rest = rest // size
        return values

    def map(self, thread: int, local: int) -> tuple[int, ...]:
        """The tile coordinate of a thread's local element."""
        if not (0 <= thread < self.num_threads and 0 <= local < self.local_size):
            raise LayoutError(
                f"(thread {thread}, local {local}) outside {self.num_threads} threads x "
                f"{self.local_size} local elements"
            )
        values = self._mode_values(thread, local)
        coord = []
        for dim in self._dims:
            c = 0
            for m in dim:
                c = c * self._sizes[m] + values[m]
            coord.append(c)
        return tuple(coord)

    def coords(self) -> np.ndarray:
        """All coordinates: an int64 array [num_threads, local_size, rank]."""
        threads = np.arange(self.num_threads, dtype=np.int64)[:, None]
        locals_ = np.arange(self.local_size, dtype=np.int64)[None, :]
        values = self._mode_values(threads, locals_)
        out = np.zeros((self.num_threads, self.local_size, self.rank), dtype=np.int64)
        for d, dim in enumerate(self._dims):
            c: Any = 0
            for m in dim:
                c = c * self._sizes[m] + values[m]
            out[:, :, d] = c
        return out

    def owners(self, coord: Sequence[int]) -> list[tuple[int, int]]:
        """All (thread, local) pairs holding a tile coordinate, by thread."""
        if len(coord) != self.rank or any(not 0 <= c < s for c, s in zip(coord, self.shape)):
            raise LayoutError(f"coordinate {tuple(coord)} is outside the tile {self.shape}")
        values: dict[int, int] = {}
        for c, dim in zip(coord, self._dims):
            for m in reversed(dim):
                values[m], c = c % self._sizes[m], c // self._sizes[m]
        threads = [0]
        for e in self.spatial:
            if e < 0:
                threads = [t * -e + r for t in threads for r in range(-e)]
            else:
                threads = [t * self._sizes[e] + values[e] for t in threads]
        local = 0
        for e in self.local:
            local = local * self._sizes[e] + values[e]
        return [(t, local) for t in sorted(threads)]

    def inverse(self) -> np.ndarray:
        """For a bijective layout, an int64 array of shape `shape + (2,)` holding the
        (thread, local) of each tile coordinate."""
        if not self.is_bijective():
            raise LayoutError(f"{self} replicates elements over {self.replication} threads",
                              hint="only bijective layouts have an inverse; use owners()")
        out = np.zeros(self.shape + (2,), dtype=np.int64)
        c = self.coords()
        index = tuple(c[:, :, d] for d in range(self.rank))
        out[index + (0,)] = np.arange(self.num_threads)[:, None]
        out[index + (1,)] = np.arange(self.local_size)[None, :]
        return out

    # -- algebra ---------------------------------------------------------------------------
    def _keys(self) -> tuple[list[list[int]], dict[int, int]]:
        return [list(dim) for dim in self._dims], dict(enumerate(self._sizes))

    def __mul__(self, other: RegisterLayout) -> RegisterLayout:
        """Product: each element of self becomes a copy of other."""
        if not isinstance(other, RegisterLayout):
            return NotImplemented
        a, b = _promote(self, other)
        shift = len(a._sizes)  # b's modes are renamed past a's
        dims = [list(da) + [m + shift for m in db] for da, db in zip(a._dims, b._dims)]
        size = dict(enumerate(a._sizes + b._sizes))
        bump = lambda e: e if e < 0 else e + shift  # noqa: E731
        return _build(dims, size, a.spatial + tuple(map(bump, b.spatial)),
                      a.local + tuple(map(bump, b.local)))

    def divide(self, other: RegisterLayout) -> RegisterLayout | None:
        """The Q with Q * other == self, or None when other does not divide self.

        This is how an instruction layout (a vector load, ldmatrix, an mma operand) is matched
        against a tile layout: it must be the innermost factor.
        """
        whole, r = _promote(self, other)
        if any(a % b for a, b in zip(whole.shape, r.shape)):
            return None
        dims, size = whole._keys()
        lists = [list(whole.spatial), list(whole.local)]
        fresh = len(size)
        matched: dict[int, int] = {}  # mode of r -> key in the refined copy of self
        for d, r_dim in enumerate(r._dims):
            j = len(dims[d]) - 1
            for rm in reversed(r_dim):
                if j < 0 or size[dims[d][j]] % r._sizes[rm]:
                    return None
                key = dims[d][j]
                if size[key] == r._sizes[rm]:
                    matched[rm] = key
                    j -= 1
                    continue
                # Split the mode: its minor part (of r's size) follows it in dim and order.
                size[key] //= r._sizes[rm]
                size[fresh] = r._sizes[rm]
                dims[d].insert(j + 1, fresh)
                lst = next(lst for lst in lists if key in lst)
                lst.insert(lst.index(key) + 1, fresh)
                matched[rm] = fresh
                fresh += 1
        tails = []
        for lst, r_entries in zip(lists, (r.spatial, r.local)):
            i = len(lst) - 1
            for re_ in reversed(r_entries):
                if i < 0:
                    return None
                if re_ >= 0:
                    if lst[i] != matched[re_]:
                        return None
                    i -= 1
                elif lst[i] >= 0 or (-lst[i]) % (-re_):
                    return None
                elif lst[i] == re_:
                    i -= 1
                else:  # split the replication; its minor part matches
                    lst[i] = -((-lst[i]) // (-re_))
            tails.append(lst[: i + 1])
        used = set(matched.values())
        q_dims = [[k for k in dim if k not in used] for dim in dims]
        try:
            quotient = _build(q_dims, size, tails[0], tails[1])
        except LayoutError:
            return None
        return quotient if quotient * r == whole else None

    def __truediv__(self, other: RegisterLayout) -> RegisterLayout:
        quotient = self.divide(other)
        if quotient is None:
            raise LayoutError(f"{other} does not divide {self}",
                              hint="the divisor must be the innermost factor of the layout")
        return quotient

    def compose(self, shared: SharedLayout) -> np.ndarray:
        """Composition with a shared layout: [num_threads, local_size] element offsets of each
        thread's local elements (same as `shared.offsets(self)`)."""
        return shared.offsets(self)

    def reduce(self, dim: int) -> RegisterLayout:
        """The layout of a reduction along `dim` keeping it as size 1: the threads that spread
        the dim now hold the same result (replication); its local modes disappear."""
        d = self._dim(dim)
        dims, size = self._keys()
        gone = set(dims[d])
        dims[d] = []
        spatial = [-size[e] if e in gone else e for e in self.spatial]
        return _build(dims, size, spatial, [e for e in self.local if e not in gone])

    def squeeze(self, dim: int) -> RegisterLayout:
        """Drop a size-1 dim."""
        d = self._dim(dim)
        if self.shape[d] != 1:
            raise LayoutError(f"cannot squeeze dim {dim} of size {self.shape[d]}")
        dims, size = self._keys()
        del dims[d]
        return _build(dims, size, self.spatial, self.local)

    def expand_dims(self, dim: int) -> RegisterLayout:
        """Insert a size-1 dim at `dim` (negative counts from the end of the result)."""
        d = dim + self.rank + 1 if dim < 0 else dim
        if not 0 <= d <= self.rank:
            raise LayoutError(f"expand_dims: dim {dim} out of range for rank {self.rank}")
        dims, size = self._keys()
        dims.insert(d, [])
        return _build(dims, size, self.spatial, self.local)

    def permute(self, dims: Sequence[int]) -> RegisterLayout:
        """Reorder tile dims (dims[i] becomes dim i); threads and locals are unchanged."""
        if sorted(dims) != list(range(self.rank)):
            raise LayoutError(f"permute: {tuple(dims)} is not a permutation of {self.rank} dims")
        old, size = self._keys()
        return _build([old[d] for d in dims], size, self.spatial, self.local)

    def _dim(self, dim: int) -> int:
        d = dim + self.rank if dim < 0 else dim
        if not 0 <= d < self.rank:
            raise LayoutError(f"dim {dim} out of range for a rank-{self.rank} layout")
        return d

    # -- GF(2) form ------------------------------------------------------------------------
    def to_linear(self, warp_size: int = 32) -> LinearLayout:
        """The linear map over GF(2) (Triton's linear layouts) of a power-of-two layout:
        the coordinate of each register, lane and warp bit; a coordinate is the XOR of the
        bases of the set bits. Replicated thread bits have zero bases."""
        if any(s & (s - 1) for s in self._sizes + tuple(-e for e in self.spatial if e < 0)):
            raise LayoutError(f"{self} has sizes that are not powers of two; it has no GF(2) form")
        lane_bits = min(self.num_threads, warp_size).bit_length() - 1
        thread_bases = [self.map(1 << b, 0) for b in range(self.num_threads.bit_length() - 1)]
        return LinearLayout(
            shape=self.shape,
            register=tuple(self.map(0, 1 << b) for b in range(self.local_size.bit_length() - 1)),
            lane=tuple(thread_bases[:lane_bits]),
            warp=tuple(thread_bases[lane_bits:]),
        )

    @staticmethod
    def from_linear(linear: LinearLayout) -> RegisterLayout:
        """The register layout of a GF(2) layout whose bases are single coordinate bits."""
        dims: list[list[Any]] = [[(d, b) for b in reversed(range(s.bit_length() - 1))]
                                 for d, s in enumerate(linear.shape)]
        if any(s & (s - 1) for s in linear.shape):
            raise LayoutError("a linear layout needs a power-of-two shape")
        hit: set[tuple[int, int]] = set()

        def key(basis: tuple[int, ...], replicable: bool) -> Any:
            nonzero = [(d, c) for d, c in enumerate(basis) if c]
            if not nonzero:
                if replicable:
                    return -2
                raise LayoutError("a zero register basis (a register repeating another) is not "
                                  "expressible as a register layout")
            if len(nonzero) != 1 or nonzero[0][1] & (nonzero[0][1] - 1):
                raise LayoutError(f"basis {basis} is not a single coordinate bit")
            d, c = nonzero[0]
            k = (d, c.bit_length() - 1)
            if k in hit or c >= linear.shape[d]:
                raise LayoutError(f"basis {basis} repeats or leaves the tile")
            hit.add(k)
            return k

        # Thread bits run lane bits then warp bits, low to high; entries run major to minor.
        spatial = [key(b, True) for b in reversed(linear.lane + linear.warp)]
        local = [key(b, False) for b in reversed(linear.register)]
        if len(hit) != sum(len(dk) for dk in dims):
            raise LayoutError("the bases do not cover every coordinate bit")
        return _build(dims, {k: 2 for dk in dims for k in dk}, spatial, local)

    # -- text ------------------------------------------------------------------------------
    def __str__(self) -> str:
        factors = _factorize(self)
        if factors is None:
            return _general_form(self)
        return "*".join(factors)

    def __repr__(self) -> str:
        return f"RegisterLayout({self})"

    def draw(self) -> str:
        """A grid showing which thread(s) and local index hold each element (rank 1 or 2)."""
        if self.rank not in (1, 2):
            raise LayoutError(f"draw supports rank 1 and 2 layouts, not rank {self.rank}")
        rows, cols = (1, self.shape[0]) if self.rank == 1 else self.shape
        if self.rank == 1 and cols > 16:  # wrap long vectors into rows of 16
            rows, cols = -(-cols // 16), 16
        owners: dict[int, list[int]] = {}
        local_of: dict[int, int] = {}
        c = self.coords()
        flat = c[:, :, 0] if self.rank == 1 else c[:, :, 0] * self.shape[1] + c[:, :, 1]
        for t in range(self.num_threads):
            for l in range(self.local_size):
                owners.setdefault(int(flat[t, l]), []).append(t)
                local_of[int(flat[t, l])] = l
        cells = {}
        for i, ts in owners.items():
            who = ",".join(map(str, ts)) if len(ts) <= 2 else f"{ts[0]}(x{len(ts)})"
            cells[i] = f"T{who}:{local_of[i]}"
        width = max(len(s) for s in cells.values())
        lines = [f"{self}  shape={self.shape} threads={self.num_threads} "
                 f"local={self.local_size} replication={self.replication}"]
        lines.append(" " * 6 + " ".join(f"{j:>{width}}" for j in range(cols)))
        total = math.prod(self.shape)
        for r in range(rows):
            row = [cells[r * cols + j] if r * cols + j < total else "" for j in range(cols)]
            lines.append(f"{r * cols if self.rank == 1 else r:>5} "
                         + " ".join(f"{s:>{width}}" for s in row))
        if self.replication > 2:
            lines.append("T<first>(xN): the element is held by N threads; the first is shown")
        return "\n".join(lines)


def _promote(a: RegisterLayout, b: RegisterLayout) -> tuple[RegisterLayout, RegisterLayout]:
    """Rank-0 layouts (replicate(k), local()) broadcast to the other's rank."""
    if a.rank == b.rank:
        return a, b
    if a.rank == 0:
        return RegisterLayout(((),) * b.rank, a.spatial, a.local), b
    if b.rank == 0:
        return a, RegisterLayout(((),) * a.rank, b.spatial, b.local)
    raise LayoutError(f"rank mismatch: {a} has rank {a.rank}, {b} has rank {b.rank}")


@dataclass(frozen=True)
class LinearLayout:
    """A layout as a linear map over GF(2): bases (tile coordinates) of each input bit."""

    shape: tuple[int, ...]
    register: tuple[tuple[int, ...], ...]
    lane: tuple[tuple[int, ...], ...]
    warp: tuple[tuple[int, ...], ...]

    def apply(self, register: int, lane: int, warp: int) -> tuple[int, ...]:
        coord = [0] * len(self.shape)
        for value, bases in ((register, self.register), (lane, self.lane), (warp, self.warp)):
            for bit, basis in enumerate(bases):
                if value >> bit & 1:
                    coord = [c ^ b for c, b in zip(coord, basis)]
        return tuple(coord)


# -- primitives ----------------------------------------------------------------------------------
def _primitive(dims: Sequence[int], kind: str, column: bool) -> RegisterLayout:
    sizes = [_size(d, f"{kind} sizes") for d in dims]
    order = tuple(reversed(range(len(sizes)))) if column else tuple(range(len(sizes)))
    modes = tuple((s,) for s in sizes)
    if kind == "spatial":
        return RegisterLayout(modes, order, ())
    return RegisterLayout(modes, (), order)


def spatial(*dims: int) -> RegisterLayout:
    """One element per thread, threads in row-major order over the tile."""
    return _primitive(dims, "spatial", column=False)


def column_spatial(*dims: int) -> RegisterLayout:
    """One element per thread, threads in column-major order over the tile."""
    return _primitive(dims, "spatial", column=True)


def local(*dims: int) -> RegisterLayout:
    """The whole tile in one thread, local index row-major."""
    return _primitive(dims, "local", column=False)


def column_local(*dims: int) -> RegisterLayout:
    """The whole tile in one thread, local index column-major."""
    return _primitive(dims, "local", column=True)


def replicate(k: int) -> RegisterLayout:
    """k threads holding the same elements; rank 0, so it fits into a product of any rank."""
    return RegisterLayout((), (-_size(k, "replication"),), ())


# -- printing ------------------------------------------------------------------------------------
def _factorize(layout: RegisterLayout) -> list[str] | None:
    """Write a layout as a product of primitives, peeling the innermost factor off each time:
    the longest trailing run of local entries that are each the minor-most remaining mode of
    distinct dims in row- (or column-) major order, else a trailing replication, else such a
    run of spatial entries. None when stuck (then the general form is printed)."""
    dims = [list(d) for d in layout._dims]
    dim_of = {m: d for d, dm in enumerate(dims) for m in dm}
    lists = {"spatial": list(layout.spatial), "local": list(layout.local)}
    factors: list[str] = []
    while lists["spatial"] or lists["local"]:
        peeled = False
        for kind in ("local", "replicate", "spatial"):
            if kind == "replicate":
                if lists["spatial"] and lists["spatial"][-1] < 0:
                    factors.append(f"replicate({-lists['spatial'].pop()})")
                    peeled = True
                    break
                continue
            lst = lists[kind]
            best: tuple[int, bool] = (0, False)
            for column in (False, True):
                n = 0
                while n < len(lst):
                    e = lst[-1 - n]
                    if e < 0 or dims[dim_of[e]][-1] != e:
                        break
                    if n:  # e is more major than lst[-n]: its dim comes first in row order
                        prev = dim_of[lst[-n]]
                        if not (dim_of[e] > prev if column else dim_of[e] < prev):
                            break
                    n += 1
                if n > best[0]:
                    best = (n, column)
            n, column = best
            if n == 0:
                continue
            sizes = [1] * layout.rank
            for e in lst[len(lst) - n:]:
                sizes[dim_of[e]] = layout._sizes[e]
                dims[dim_of[e]].pop()
            del lst[len(lst) - n:]
            name = ("column_" if column and n > 1 else "") + kind
            factors.append(f"{name}({','.join(map(str, sizes))})")
            peeled = True
            break
        if not peeled:
            return None
    if layout.rank and not any(f.split("(")[0] != "replicate" for f in factors):
        factors.append(f"local({','.join('1' * layout.rank)})")  # carries the rank
    if not factors:
        factors.append("local()")
    return factors[::-1]


def _general_form(layout: RegisterLayout) -> str:
    modes = ",".join("[" + ",".join(map(str, m)) + "]" for m in layout.modes)
    spatial_ = ",".join(f"rep{-e}" if e < 0 else str(e) for e in layout.spatial)
    local_ = ",".join(map(str, layout.local))
    return f"layout(modes[{modes}],spatial[{spatial_}],local[{local_}])"


# -- parsing -------------------------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<int>\d+)|(?P<punct>[()\[\],*.]))")


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if m is None:
                col = pos + len(text[pos:]) - len(text[pos:].lstrip()) + 1
                self.fail(f"unexpected character {text[col - 1]!r}", col)
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind), m.start(kind) + 1))
            pos = m.end()
        self.i = 0

    def fail(self, message: str, col: int | None = None) -> None:
        if col is None:
            col = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text) + 1
        raise LayoutError(f"layout syntax, column {col}: {message} in {self.text!r}")

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None, kind: str | None = None) -> str:
        want = repr(expected) if expected is not None else f"a{'n integer' if kind == 'int' else ' name'}"
        if self.i >= len(self.tokens):
            self.fail(f"expected {want}, found the end")
        k, value, _ = self.tokens[self.i]
        if (expected is not None and value != expected) or (kind is not None and k != kind):
            self.fail(f"expected {want}, found {value!r}")
        self.i += 1
        return value

    def integer(self) -> int:
        return int(self.take(kind="int"))

    def ints(self, close: str) -> list[int]:
        values: list[int] = []
        while self.peek() != close:
            if values:
                if self.peek() != ",":
                    self.fail(f"expected ',' or {close!r}, found {self.describe()}")
                self.take(",")
            values.append(self.integer())
        self.take(close)
        return values

    def describe(self) -> str:
        return "the end" if self.peek() is None else repr(self.peek())

    def int_or_list(self) -> int | list[int]:
        if self.peek() == "[":
            self.take("[")
            return self.ints("]")
        return self.integer()

    def shape_list(self) -> list[int | list[int]]:
        self.take("[")
        items: list[int | list[int]] = []
        while self.peek() != "]":
            if items:
                self.take(",")
            items.append(self.int_or_list())
        self.take("]")
        return items

    def layout(self) -> RegisterLayout | SharedLayout:
        result: RegisterLayout | SharedLayout
        if self.peek() in ("row_major", "column_major", "strided"):
            result = self.shared()
        else:
            result = self.factor()
            while self.peek() == "*":
                self.take("*")
                col = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text) + 1
                right = self.factor()
                try:
                    result = result * right
                except LayoutError as err:
                    self.fail(err.message, col)
        if self.peek() is not None:
            self.fail(f"unexpected {self.peek()!r}")
        return result

    def factor(self) -> RegisterLayout:
        col = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text) + 1
        name = self.take(kind="name")
        self.take("(")
        try:
            if name == "layout":
                return self.general()
            constructors = {"spatial": spatial, "column_spatial": column_spatial,
                            "local": local, "column_local": column_local}
            if name in constructors:
                return constructors[name](*self.ints(")"))
            if name == "replicate":
                k = self.integer()
                self.take(")")
                return replicate(k)
        except LayoutError as err:
            if "layout syntax" in err.message:
                raise
            self.fail(err.message, col)
        self.fail(f"unknown layout {name!r}", col)
        raise AssertionError  # unreachable

    def general(self) -> RegisterLayout:
        self.take("modes")
        modes = [m if isinstance(m, list) else [m] for m in self.shape_list()]
        self.take(",")
        self.take("spatial")
        self.take("[")
        spatial_: list[int] = []
        while self.peek() != "]":
            if spatial_:
                self.take(",")
            if self.tokens[self.i][0] == "name":
                word = self.take(kind="name")
                if not re.fullmatch(r"rep\d+", word):
                    self.fail(f"expected a mode index or repK, found {word!r}")
                spatial_.append(-int(word[3:]))
            else:
                spatial_.append(self.integer())
        self.take("]")
        self.take(",")
        self.take("local")
        self.take("[")
        local_ = self.ints("]")
        self.take(")")
        return RegisterLayout(tuple(tuple(m) for m in modes), tuple(spatial_), tuple(local_))

    def shared(self) -> SharedLayout:
        col = self.tokens[self.i][2]
        name = self.take(kind="name")
        self.take("(")
        try:
            if name == "strided":
                shape = self.shape_list()
                self.take(",")
                strides = self.shape_list()
                self.take(")")
                result = strided(shape, strides)
            else:
                dims = self.ints(")")
                result = row_major(*dims) if name == "row_major" else column_major(*dims)
            while self.peek() == ".":
                self.take(".")
                self.take("swizzle")
                self.take("(")
                args = self.ints(")")
                if len(args) != 3:
                    self.fail("swizzle takes (bits, base, shift)")
                result = result.swizzle(*args)
        except LayoutError as err:
            if "layout syntax" in err.message:
                raise
            self.fail(err.message, col)
        return result


def parse_layout(text: str) -> RegisterLayout | SharedLayout:
    """Parse any printed layout (register or shared) back; errors name the column."""
    return _Parser(text).layout()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tilec.ir.layout",
        description="Draw a layout: for a register layout, which thread:local holds each "
        "element; for a shared layout, the offset of each element.",
        epilog='example: python -m tilec.ir.layout "spatial(4,8)*local(2,4)"',
    )
    parser.add_argument("layout", help="layout text, e.g. 'column_spatial(4,8)*local(2,1)' or "
                        "'row_major(8,64).swizzle(3,3,3)'")
    args = parser.parse_args(argv)
    try:
        print(parse_layout(args.layout).draw())
    except LayoutError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


__all__ = [
    "RegisterLayout", "LinearLayout", "SharedLayout", "Swizzle", "spatial", "column_spatial",
    "local", "column_local", "replicate", "parse_layout",
]

if __name__ == "__main__":
    sys.exit(main())
