"""Fast exact casts of low-bit values to f16 / bf16 by bit tricks, no conversion instruction.

What dequantization runs once per weight (`casts.cast` takes these paths first; each is
still bit-exactly `DType.convert`, which the exhaustive cast tests check):

- intN / uintN -> f16 for N <= 10 (bf16: N <= 7), the magic-number conversion: put the
  value (signed ones offset by 2**(N-1), an xor of the sign bit) into the mantissa of
  1024.0 (bf16: 128.0), where one unit of the mantissa is 1, and subtract the constant:
  ``f16(0x6400 | u) - 1024`` is u exactly. An `or` and one f16 subtraction, against an
  int -> float conversion (a quarter-rate instruction) and a rounding.
- small floats (e.g. e2m1, e3m2, e2m3, e1m1, e4m3) -> f16: the exponent and mantissa
  fields move as they are into f16's (a shift and an or with the sign), which reads the
  value scaled by 2**(bias - 15); one multiplication by the power of two 2**(15 - bias)
  puts it right, exactly, for normal and subnormal inputs alike (f16 arithmetic keeps
  subnormals). "fn" formats select NaN for their one NaN magnitude; the IEEE-like e5m2
  with f16's bias is a plain shift. To bf16 the same value goes through f16 when bf16
  holds every value of the format (both conversions exact).
- 1..8-bit ints and small floats straight from the 32-bit words they are packed in, to
  f16, two at a time: pairs (e_i, e_i+P) whose fields sit 16 bits apart in the stream
  (`paired_fields_to_f16`, `paired_floats_to_f16`), no byte permute.
"""
from __future__ import annotations

import functools
import math
from typing import Callable

from llvmlite import ir

from tilec.backends.llvm.dtypes import is_native_float, llvm_type
from tilec.ir import dtypes as dt
from tilec.ir.dtypes import DType

__all__ = ["fast_cast", "has_fast_cast", "has_paired_float", "pair_distance",
           "paired_fields_to_f16", "paired_floats_to_f16"]

I16 = ir.IntType(16)
F16 = ir.HalfType()
# dst -> (largest int width the magic holds exactly, magic bit pattern, its value)
_MAGIC = {dt.float16: (10, 0x6400, 1024.0), dt.bfloat16: (7, 0x4300, 128.0)}


def has_fast_cast(src: DType, dst: DType) -> bool:
    """Whether `fast_cast` has a path for src -> dst."""
    if dst not in _MAGIC or src.is_bool:
        return False
    if src.is_int:
        return src.bits <= _MAGIC[dst][0]
    if src.is_float and not is_native_float(src):
        return _small_float_ok(src, dst)
    return False


def fast_cast(b: ir.IRBuilder, value: ir.Value, src: DType, dst: DType) -> ir.Value | None:
    """The fast path for src -> dst, or None where there is none. `value` may also be a
    vector of src values (`<2 x iN>`): the result is then the vector of dst values, which
    NVPTX computes two lanes per 32-bit register (or.b32, sub.f16x2, ...)."""
    if not has_fast_cast(src, dst):
        return None
    if src.is_int:
        return _int_magic(b, value, src, dst)
    return _small_float(b, value, src, dst)


def _like(t: ir.Type, elem: ir.Type) -> ir.Type:
    """`elem`, or a vector of it as wide as `t` when `t` is a vector."""
    return ir.VectorType(elem, t.count) if isinstance(t, ir.VectorType) else elem


def _k(t: ir.Type, value) -> ir.Constant:
    """A constant of scalar or vector type `t` (every lane `value`)."""
    if isinstance(t, ir.VectorType):
        return ir.Constant(t, [ir.Constant(t.element, value)] * t.count)
    return ir.Constant(t, value)


def _int_magic(b: ir.IRBuilder, x: ir.Value, src: DType, dst: DType) -> ir.Value:
    _, magic, base = _MAGIC[dst]
    n = src.bits
    signed = src.kind == "int"
    u = b.xor(x, _k(x.type, 1 << (n - 1))) if signed else x  # x + 2**(n-1), mod 2**n
    t16 = _like(x.type, I16)
    bits = b.or_(b.zext(u, t16), _k(t16, magic))
    out_t = _like(x.type, llvm_type(dst))
    offset = base + ((1 << (n - 1)) if signed else 0)
    return b.fsub(b.bitcast(bits, out_t), _k(out_t, float(offset)))


def _fits_f16(src: DType) -> bool:
    """Whether every value of the small float `src` is an f16 value and the field move plus
    one power-of-two scaling is exact: fields of at most 4 exponent bits (so no f16 inf/NaN
    pattern), at most 10 mantissa bits, values within f16's range and on its grid."""
    m, bias = src.mantissa, src.bias
    return (src.exponent <= 4 and m <= 10 and float(src.max) <= 65504.0
            and 1 - bias - m >= -24 and -14 <= 15 - bias <= 15)


def _ieee_like_f16(src: DType) -> bool:
    """e5m2-shaped: f16's exponent field and bias, IEEE specials: a plain shift."""
    return (src.float_mode == "ieee" and src.exponent == 5 and src.bias == 15
            and src.mantissa <= 10)


def _small_float_ok(src: DType, dst: DType) -> bool:
    if not (_ieee_like_f16(src) or (src.float_mode in ("fn", "finite") and _fits_f16(src))):
        return False
    return dst == dt.float16 or src.mantissa <= 7


def _small_float(b: ir.IRBuilder, p: ir.Value, src: DType, dst: DType) -> ir.Value:
    n, m = src.bits, src.mantissa
    t = p.type
    t16 = _like(t, I16)
    sign = b.lshr(p, _k(t, n - 1))
    mag = b.and_(p, _k(t, (1 << (n - 1)) - 1))
    bits = b.or_(b.shl(b.zext(sign, t16), _k(t16, 15)),
                 b.shl(b.zext(mag, t16), _k(t16, 10 - m)))
    th = _like(t, F16)
    h = b.bitcast(bits, th)
    if not _ieee_like_f16(src) and src.bias != 15:
        h = b.fmul(h, _k(th, float(2.0 ** (15 - src.bias))))
    if src.float_mode == "fn":  # the one NaN magnitude, all ones
        nan = b.icmp_unsigned("==", mag, _k(t, (1 << (n - 1)) - 1))
        h = b.select(nan, _k(th, float("nan")), h)
    if dst == dt.bfloat16:
        return b.fptrunc(b.fpext(h, _like(t, ir.FloatType())), _like(t, llvm_type(dst)))
    return h


# ---- 1..8-bit integer weights straight from their 32-bit words --------------------------
I32 = ir.IntType(32)

# bits -> (words a unit, the distance P of the two elements one f16x2 register holds): a
# unit is the fewest whole words of whole fields (1 word for 1, 2, 4 and 8 bits; 3 for 3
# and 6; 5 and 7 for 5 and 7), and pairs (e_i, e_i+P) of its fields sit 16 bits a word
# apart in the stream: one and/xor puts both into the mantissas of one f16x2 register
# (no byte permute), after a shift or two.
PAIRED_FIELDS = {bits: (bits // math.gcd(bits, 32), 16 // math.gcd(bits, 32))
                 for bits in range(1, 9)}


def pair_distance(bits: int) -> int:
    """P: which elements share an f16x2 register when `paired_fields_to_f16` converts
    `bits`-bit fields (e_i, e_i+P); 1 (pairs of neighbours) for other widths."""
    return PAIRED_FIELDS[bits][1] if bits in PAIRED_FIELDS else 1


def paired_fields_to_f16(b: ir.IRBuilder, words: list[ir.Value], bits: int, signed: bool,
                         target=None) -> list[ir.Value]:
    """The `bits`-bit integers (1..8) packed little-endian in `words` (whole units of
    PAIRED_FIELDS) as f16 values, in order, computed as f16x2 pairs (e_i, e_i+P). For a
    pair, a 32-bit window of the stream holds field i at bit b and field i+P at bit 16 + b
    (b + bits <= 10, the mantissa: for one-word units a shift, where the unit is several
    words a funnel shift for each half and a half-word merge); one and/xor (a lop3) keeps
    both fields and sets the exponents of 2**(10-b), where one unit of the mantissa at bit
    b is 1 (the sign bit flipped: x + 2**(bits-1)), and one f16x2 subtraction leaves the
    values. A window serves every field at b = 0, bits, 2*bits, ... up to 10 - bits.
    Exact, like `_int_magic`."""
    field = (1 << bits) - 1
    and_xor = getattr(target, "and_xor", None)
    bias = float(1 << (bits - 1)) if signed else 0.0

    def pair(t: ir.Value, off: int) -> ir.Value:
        mask = (field << off) * 0x10001
        flip = (((25 - off) << 10) | ((1 << (bits - 1 + off)) if signed else 0)) * 0x10001
        x = and_xor(b, t, mask, flip) if and_xor is not None else \
            b.xor(b.and_(t, ir.Constant(I32, mask)), ir.Constant(I32, flip))
        offset = ir.Constant(F16, float(2 ** (10 - off)) + bias)
        return b.fsub(b.bitcast(x, _PAIR), ir.Constant(_PAIR, [offset, offset]))
    step = 8 if bits in (2, 4) else bits * ((10 - bits) // bits + 1)   # b + bits <= 10
    return _in_pairs(b, words, bits, step, 10 - bits, pair, target)


def has_paired_float(src: DType) -> bool:
    """Whether `paired_floats_to_f16` converts `src`: a small float of at most 8 bits that
    `fast_cast` moves field by field, without a NaN to select (not the "fn" formats)."""
    return (src.is_float and not is_native_float(src) and src.bits in PAIRED_FIELDS
            and src.float_mode != "fn" and _small_float_ok(src, dt.float16))


def paired_floats_to_f16(b: ir.IRBuilder, words: list[ir.Value], src: DType,
                         target=None) -> list[ir.Value]:
    """The small floats `src` (`has_paired_float`) packed in `words` as f16 values, in
    order, computed as f16x2 pairs (e_i, e_i+P) from windows as `paired_fields_to_f16`'s
    (each field inside its half: b + bits <= 16): one shift puts both signs at bit 15 of
    their halves, another both magnitudes (exponent and mantissa fields) under f16's
    exponent field, two ands and an or join them (lop3s), and one f16x2 multiplication by
    2**(15 - bias) scales the pair, exactly, as `_small_float` does one value."""
    n, m = src.bits, src.mantissa
    magnitude = ((1 << (n - 1)) - 1) << (10 - m)
    scale = float(2.0 ** (15 - src.bias))

    def shifted(t: ir.Value, by: int) -> ir.Value:
        return b.shl(t, ir.Constant(I32, by)) if by >= 0 else b.lshr(t, ir.Constant(I32, -by))

    def pair(t: ir.Value, off: int) -> ir.Value:
        sign = b.and_(shifted(t, 16 - n - off), ir.Constant(I32, 0x80008000))
        mag = b.and_(shifted(t, 10 - m - off), ir.Constant(I32, magnitude * 0x10001))
        h = b.bitcast(b.or_(sign, mag), _PAIR)
        if _ieee_like_f16(src) or src.bias == 15:
            return h
        return b.fmul(h, ir.Constant(_PAIR, [scale, scale]))
    return _in_pairs(b, words, n, n * ((16 - n) // n + 1), 16 - n, pair, target)


_PAIR = ir.VectorType(F16, 2)


def _in_pairs(b: ir.IRBuilder, words: list[ir.Value], bits: int, step: int, reach: int,
              pair: Callable[[ir.Value, int], ir.Value], target=None) -> list[ir.Value]:
    """The fields of `words` (whole units of PAIRED_FIELDS) in order, from `pair(t, b)`:
    the <2 x half> of fields i and i+P, which the 32-bit window t holds at bits b and 16 +
    b. Windows start every `step` bits of the stream (so b < step). In units of several
    words a window's halves come from two places of the stream, joined by the target's
    `merge_halves` where it has one (one byte permute). Where the target has
    `byte_permute` and a field sits at most `reach` bits into a byte, its window starts
    on that byte instead and one or two byte permutes gather it straight from the words
    (`byte_windows`): no funnel shifts."""
    n, p = PAIRED_FIELDS[bits]
    merge = getattr(target, "merge_halves", None)
    permute = getattr(target, "byte_permute", None)
    planned = byte_windows(bits, reach, step) if n > 1 and permute else {}
    out: list[ir.Value] = []
    for u in range(0, len(words), n):
        unit = words[u:u + n]
        windows: dict[int, ir.Value] = {}

        def window(start: int) -> ir.Value:
            """Bits start .. start + 31 of the unit's stream (zeros past its end)."""
            if start not in windows:
                k, r = divmod(start, 32)
                lo = unit[k] if k < n else ir.Constant(I32, 0)
                hi = unit[k + 1] if k + 1 < n else ir.Constant(I32, 0)
                windows[start] = lo if r == 0 else _funnel_right(b, hi, lo, r)
            return windows[start]

        merged: dict[int, ir.Value] = {}
        gathered: dict[int, ir.Value] = {}
        values: list[ir.Value | None] = [None] * (2 * p)
        for i in range(p):
            pos = bits * i
            if i in planned:
                start, steps = planned[i]
                if start not in gathered:
                    t = None
                    for x, y, selector in steps:  # y None: the previous step's result
                        t = permute(b, unit[x], unit[y] if y is not None else t, selector)
                    gathered[start] = t
                v = pair(gathered[start], pos - start)
            else:
                start = pos - pos % step
                if start not in merged:
                    low, high = window(start), window(start + 16 * n - 16)
                    if n == 1:
                        merged[start] = low
                    elif merge is not None:
                        merged[start] = merge(b, low, high)
                    else:
                        merged[start] = b.or_(b.and_(low, ir.Constant(I32, 0xFFFF)),
                                              b.and_(high, ir.Constant(I32, 0xFFFF0000)))
                v = pair(merged[start], pos - start)
            values[i] = b.extract_element(v, ir.Constant(I32, 0))
            values[i + p] = b.extract_element(v, ir.Constant(I32, 1))
        out += values
    return out


@functools.cache
def byte_windows(bits: int, reach: int, step: int) -> dict[int, tuple[int, tuple]]:
    """For the pairs i (fields i and i+P of a unit of several words, 16n bits apart) whose
    field sits at most `reach` bits into a byte: {i: (start, steps)}, the window starting
    at that byte (bit `start` of the stream) whose bytes 0, 1 are stream bytes start/8 ..
    and bytes 2, 3 stream bytes start/8 + 2n .., and how to gather it with byte permutes
    (PTX prmt: result byte k = byte `selector >> 4k & 7` of y:x). `steps` is one
    (x, y, selector) where the bytes the window's fields use lie in at most two words, or
    two where they lie in three: first (y, z) into a word holding their bytes in place,
    then (x, None: that word). Pairs of a window whose bytes span four words keep the
    funnel windows of `step` bits, and so do all pairs where those are no more
    instructions (`_funnel_cost`): e.g. int5's fields at bits 6 and 7 of a byte."""
    n, p = PAIRED_FIELDS[bits]
    users: dict[int, list[int]] = {}
    for i in range(p):
        pos = bits * i
        if pos % 8 <= reach:
            users.setdefault(pos - pos % 8, []).append(i)
    plan: dict[int, tuple[int, tuple]] = {}
    for start, pairs in users.items():
        take: dict[int, int] = {}    # window byte -> stream byte
        for i in pairs:
            for first, k0 in ((bits * i, 0), (bits * i + 16 * n, 2)):
                base = start // 8 + (2 * n if k0 else 0)
                for byte in range(first // 8, (first + bits - 1) // 8 + 1):
                    take[k0 + byte - base] = byte
        assert all(0 <= k < 4 for k in take)
        used = sorted({byte // 4 for byte in take.values()})
        if len(used) > 3:
            continue

        def selector(source) -> int:
            return sum(source(k, byte) << 4 * k for k, byte in take.items())
        if len(used) <= 2:
            x, y = used[0], used[-1]
            steps = ((x, y, selector(lambda k, byte: byte % 4 + 4 * (byte // 4 != x))),)
        else:
            x, y, z = used
            inner = {k: byte for k, byte in take.items() if byte // 4 != x}
            first_sel = sum((byte % 4 + 4 * (byte // 4 == z)) << 4 * k
                            for k, byte in inner.items())
            steps = ((y, z, first_sel),
                     (x, None, selector(lambda k, byte: byte % 4 if byte // 4 == x else 4 + k)))
        for i in pairs:
            plan[i] = (start, steps)
    permutes = sum(len(steps) for _, steps in set(plan.values()))
    rest = [i for i in range(p) if i not in plan]
    if permutes + _funnel_cost(bits, step, rest) >= _funnel_cost(bits, step, range(p)):
        return {}
    return plan


def _funnel_cost(bits: int, step: int, pairs) -> int:
    """Instructions the funnel windows of these pairs take in `_in_pairs`: a funnel shift
    for each distinct window half that does not start on a word, a merge a window."""
    n, _ = PAIRED_FIELDS[bits]
    starts = {bits * i - bits * i % step for i in pairs}
    halves = {h for s in starts for h in (s, s + 16 * n - 16) if h % 32}
    return len(halves) + len(starts)


def generic_byte_permute(b: ir.IRBuilder, x: ir.Value, y: ir.Value, selector: int) -> ir.Value:
    """PTX prmt's default mode in plain LLVM IR (result byte k = byte `selector >> 4k & 7`
    of y:x): for hosts, whose JIT then checks `byte_windows` as NVPTX runs them."""
    i64 = ir.IntType(64)
    both = b.or_(b.zext(x, i64), b.shl(b.zext(y, i64), ir.Constant(i64, 32)))
    out = ir.Constant(I32, 0)
    for k in range(4):
        byte = b.and_(b.trunc(b.lshr(both, ir.Constant(i64, 8 * (selector >> 4 * k & 7))),
                              I32), ir.Constant(I32, 0xFF))
        out = b.or_(out, b.shl(byte, ir.Constant(I32, 8 * k)))
    return out


def _funnel_right(b: ir.IRBuilder, hi: ir.Value, lo: ir.Value, shift: int) -> ir.Value:
    """The low 32 bits of (hi:lo) >> shift: one funnel shift (shf.r.wrap / v_alignbit)."""
    module = b.module
    fn = module.globals.get("llvm.fshr.i32")
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(I32, [I32, I32, I32]), "llvm.fshr.i32")
    return b.call(fn, [hi, lo, ir.Constant(I32, shift)])
