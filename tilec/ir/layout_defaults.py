"""Layouts the compiler picks by itself, built with the algebra of `tilec.ir.layout`:
the default ("blocked") layout of a tile, and the layouts that make `reshape` and `view`
free in registers.

    default_layout((128, 64), 16, 128)
        == local(4,1) * spatial(4,1) * spatial(4,8) * local(1,8)
           repeats       warps          lanes          one 16-byte vector per thread
"""
from __future__ import annotations

import math
from typing import Sequence

from tilec.errors import LayoutError
from tilec.ir.layout import RegisterLayout, _build, local, replicate, spatial

WARP_SIZE = 32  # NVIDIA warps; AMD CDNA wavefronts are 64 lanes (`warp_size`)
VECTOR_BITS = 128  # the widest global load/store per thread (ld.global.v4.b32, 16 bytes)


def warp_size(target: str | None) -> int:
    """Lanes per warp on a target named as in `PassOptions.target`: 64 for AMD's gfx9
    (CDNA wave64), 32 for NVIDIA and when no target is chosen."""
    return 64 if target is not None and target.startswith("gfx") else WARP_SIZE


def vector_width(last_dim: int, element_bits: int) -> int:
    """Elements per thread along the last dim: the largest power of two that fits in 16
    bytes and divides `last_dim` (1 when the dim is odd)."""
    fit = max(1, VECTOR_BITS // max(1, element_bits))
    v = 1
    while v * 2 <= fit and last_dim % (v * 2) == 0:
        v *= 2
    return v


def default_layout(shape: Sequence[int], element_bits: int, num_threads: int,
                   warp: int = WARP_SIZE) -> RegisterLayout:
    """The default register layout of a tile (Triton's "blocked" layout, in the algebra).

    Each thread holds a vector of `vector_width` contiguous elements of the last dim; the
    lanes of a warp spread over the last dim first, then the earlier dims; the warps spread
    over the dims that remain, first dim first; what is left repeats inside each thread
    (`local`, strided by the whole block's tile). Threads and sizes only split by factors
    that divide the dims, so odd sizes end up as local repeats, and threads left over (a tile
    smaller than the block) hold copies: `replicate(k)`, the most significant thread bits of
    the lanes or of the warps. A warp has `warp` lanes (32 on NVIDIA, 64 on AMD gfx9).

    The result is `local(R) * replicate(rw) * spatial(W) * replicate(rl) * spatial(L) *
    local(1,..,v)` with every factor of size 1 dropped by the canonical form.
    """
    shape = tuple(int(s) for s in shape)
    if not shape:
        raise LayoutError("a register layout needs a tile of rank >= 1")
    if num_threads < 1:
        raise LayoutError(f"num_threads must be positive, got {num_threads}")
    lanes_total = math.gcd(num_threads, warp)
    warps_total = num_threads // lanes_total
    rank = len(shape)
    v = vector_width(shape[-1], element_bits)
    rest = list(shape)
    rest[-1] //= v
    lanes, lanes_left = [1] * rank, lanes_total
    for d in reversed(range(rank)):  # lanes: last dim first
        lanes[d] = math.gcd(rest[d], lanes_left)
        rest[d] //= lanes[d]
        lanes_left //= lanes[d]
    warps, warps_left = [1] * rank, warps_total
    for d in range(rank):  # warps: first dim first
        warps[d] = math.gcd(rest[d], warps_left)
        rest[d] //= warps[d]
        warps_left //= warps[d]
    vector = [1] * (rank - 1) + [v]
    return (local(*rest) * replicate(warps_left) * spatial(*warps) * replicate(lanes_left)
            * spatial(*lanes) * local(*vector))


def replicated_layout(shape: Sequence[int], num_threads: int) -> RegisterLayout:
    """Every thread holds the whole tile, row-major: the layout any reshape accepts."""
    return local(*shape) * replicate(num_threads)


def reshape_layout(layout: RegisterLayout, shape: Sequence[int]) -> RegisterLayout | None:
    """The layout of `reshape` to `shape` that keeps every element in its thread and local
    slot (each (thread, local) pair holds the same row-major index before and after), or
    None when the layout's modes do not split along the new dims.

    The modes of all dims, read in dim order, are the mixed-radix digits of the row-major
    index; the new dims regroup them, splitting a mode where a new dim ends inside it.
    """
    shape = tuple(int(s) for s in shape)
    if math.prod(shape) != math.prod(layout.shape):
        raise LayoutError(f"reshape_layout: {layout.shape} and {shape} differ in size")
    size = dict(enumerate(s for m in layout.modes for s in m))
    spatial_, local_ = list(layout.spatial), list(layout.local)
    # Merge modes that are consecutive both in the row-major order and in one entry list
    # (local(3,5) becomes one mode of 15, which then splits as 5x3).
    flat: list[int] = list(range(len(size)))
    i = 0
    while i < len(flat) - 1:
        a, b = flat[i], flat[i + 1]
        lst = spatial_ if a in spatial_ else local_
        if b in lst and lst.index(b) == lst.index(a) + 1:
            size[a] *= size.pop(b)
            lst.remove(b)
            del flat[i + 1]
        else:
            i += 1
    fresh = sum(len(m) for m in layout.modes)  # keys past every mode index
    dims: list[list[int]] = []
    queue = list(flat)
    for n in shape:
        keys, need = [], n
        while need > 1:
            if not queue:
                return None
            key = queue[0]
            s = size[key]
            if need % s == 0:
                keys.append(queue.pop(0))
                need //= s
            elif s % need == 0:  # the dim ends inside this mode: split it (major | minor)
                lst = spatial_ if key in spatial_ else local_
                minor = fresh
                fresh += 1
                size[key], size[minor] = need, s // need
                lst.insert(lst.index(key) + 1, minor)
                queue[0] = minor
                keys.append(key)
                need = 1
            else:
                return None
        dims.append(keys)
    if queue:
        return None
    return _build(dims, size, spatial_, local_)


def view_layout(layout: RegisterLayout, src_bits: int, dst_bits: int) -> RegisterLayout | None:
    """The layout of `view` (a bit cast that scales the last dim) that keeps every bit in its
    thread. With g = lcm(src_bits, dst_bits), each run of g / src_bits elements becomes
    g / dst_bits elements: `Q * local(1,..,g/src_bits)` becomes `Q * local(1,..,g/dst_bits)`
    (splitting u8 into u4: `L * local(1,..,2)`; merging 8 i4 into an i32: `L / local(1,..,8)`).
    None when the layout's innermost local factor is not a multiple of g / src_bits."""
    group = math.lcm(src_bits, dst_bits)
    ones = [1] * (layout.rank - 1)
    quotient = layout.divide(local(*ones, group // src_bits))
    if quotient is None:
        return None
    return quotient * local(*ones, group // dst_bits)
