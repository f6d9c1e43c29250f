"""Layout conversions inside warps: when every element a thread needs is held by a thread of
its own warp, the move is a sequence of warp shuffles instead of a trip through shared memory.

A plan has one *round* per destination local j. In round j every lane sends its source
local `send[j]` (the same index for every lane, so the sender needs no table) and receives
from lane `src_lane(lane, j)`. The layouts are compile-time, so the plan is found by
enumerating owners; the lane function must be the same in every warp and affine over GF(2)
(`src = c ^ sum_k lane_bit_k * col_k`, as Triton's linear layouts make every power-of-two
layout), which costs a few integer ops per round and no memory. A round whose lane function
is the identity is a register renaming.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from llvmlite import ir

from tilec.ir.layout import RegisterLayout


@dataclass(frozen=True)
class Round:
    """Destination local j receives source local `send` from lane `c ^ sum(bit_k * cols[k])`."""

    send: int
    c: int
    cols: tuple[int, ...]

    @property
    def identity(self) -> bool:
        return self.c == 0 and all(col == 1 << k for k, col in enumerate(self.cols))


def affine_gf2(table: Sequence[int]) -> tuple[int, tuple[int, ...]] | None:
    """(c, cols) with table[l] == c ^ XOR_{k: bit k of l} cols[k] for every l, else None."""
    n = len(table)
    bits = n.bit_length() - 1
    if n != 1 << bits:
        return None
    c = int(table[0])
    cols = tuple(int(table[1 << k]) ^ c for k in range(bits))
    lanes = np.arange(n)
    got = np.full(n, c, dtype=np.int64)
    for k, col in enumerate(cols):
        got ^= ((lanes >> k) & 1) * col
    return (c, cols) if np.array_equal(got, np.asarray(table)) else None


def plan(src: RegisterLayout, k_src: Sequence[int], dst: RegisterLayout, k_dst: Sequence[int],
         warp_size: int) -> list[Round] | None:
    """Rounds that move `src`'s keys to `dst`'s inside each warp, or None when that is not
    possible (a key held only by another warp, a sender local that differs between lanes,
    a lane pattern that differs between warps or is not affine)."""
    threads = src.num_threads
    if dst.num_threads != threads or threads % warp_size:
        return None
    ks = src.coords() @ np.asarray(k_src, np.int64)   # [threads, src locals]
    kd = dst.coords() @ np.asarray(k_dst, np.int64)   # [threads, dst locals]
    warps = threads // warp_size
    ks_w = ks.reshape(warps, warp_size, -1)
    rounds = []
    for j in range(kd.shape[1]):
        need = kd[:, j].reshape(warps, warp_size)     # [warp, lane] key needed
        found = None
        for i in range(ks.shape[1]):
            # For each (warp, lane): which lanes of the warp hold `need` at local i?
            holds = ks_w[:, None, :, i] == need[:, :, None]   # [warp, lane, sender]
            if not holds.any(axis=2).all():
                continue
            sender = holds.argmax(axis=2)                      # the first holder
            if not (sender == sender[0]).all():
                continue
            fit = affine_gf2(sender[0].tolist())
            if fit is not None:
                found = Round(i, *fit)
                break
        if found is None:
            return None
        rounds.append(found)
    return rounds


def apply(b: ir.IRBuilder, target, lane: ir.Value, values: Sequence[ir.Value],
          rounds: Sequence[Round]) -> list[ir.Value]:
    """Emit the rounds: one shuffle per 32-bit word of each element that moves."""
    out = []
    i32 = ir.IntType(32)
    for r in rounds:
        v = values[r.send]
        if r.identity:
            out.append(v)
            continue
        src_lane: ir.Value = ir.Constant(i32, r.c)
        for k, col in enumerate(r.cols):
            if col:
                bit = b.and_(b.lshr(lane, ir.Constant(i32, k)), ir.Constant(i32, 1))
                src_lane = b.xor(src_lane, b.mul(bit, ir.Constant(i32, col)))
        out.append(_shuffle_value(b, target, v, src_lane))
    return out


def _shuffle_value(b: ir.IRBuilder, target, v: ir.Value, src_lane: ir.Value) -> ir.Value:
    """Shuffle any scalar LLVM value as 32-bit words."""
    t = v.type
    bits = t.width if isinstance(t, ir.IntType) else {"half": 16, "bfloat": 16, "float": 32,
                                                       "double": 64}[str(t)]
    word = ir.IntType(bits)
    x = v if isinstance(t, ir.IntType) else b.bitcast(v, word)
    i32 = ir.IntType(32)
    if bits <= 32:
        w = b.zext(x, i32) if bits < 32 else x
        got = target.shuffle_idx(b, w, src_lane)
        y = b.trunc(got, word) if bits < 32 else got
    else:
        i64 = ir.IntType(64)
        lo = target.shuffle_idx(b, b.trunc(x, i32), src_lane)
        hi = target.shuffle_idx(b, b.trunc(b.lshr(x, ir.Constant(i64, 32)), i32), src_lane)
        y = b.or_(b.zext(lo, i64), b.shl(b.zext(hi, i64), ir.Constant(i64, 32)))
    return y if isinstance(t, ir.IntType) else b.bitcast(y, t)
