"""The cast op in LLVM IR, bit-exactly `DType.convert`, for every pair of dtypes.

`cast(b, value, src, dst, target)` emits straight-line, branch-free code (a GPU runs both
sides of a branch anyway): integer bit manipulation plus `select`, and the native
conversions where LLVM's instruction *is* the reference's meaning:

- int -> int: `trunc` / `sext` / `zext` by the source's signedness (wraps).
- anything -> bool: `!= 0` (NaN is true, -0.0 false); bool -> number: 0 or 1.
- float -> int: `llvm.fptosi.sat` / `llvm.fptoui.sat` (truncate, saturate, NaN -> 0; plain
  `fptosi` is poison out of range, LangRef "fptosi"). Storage-only floats decode first.
- float -> float between native types where one rounding is guaranteed: `fpext`, and
  `fptrunc` f32 -> f16/bf16 and f64 -> f32 (PTX `cvt.rn`). f64 -> f16/bf16 does *not* use
  `fptrunc` (x86 makes it a libcall, and a route through f32 would round twice): it goes
  through `repack` like every storage-only format.
- int -> f32/f64: `sitofp`/`uitofp` (one rounding, LangRef); into other formats through
  `_int_to_pattern`, which rounds a 64-bit integer once.

`repack` is the general float -> float conversion on bit patterns: unpack sign, exponent and
significand (normalising the source's subnormals with `llvm.ctlz` when the destination's
normal range reaches them), then pack with round-to-nearest-even through a sticky-aware
right shift that also makes the destination's subnormals, overflow to inf (formats with inf)
or to +-max (the others, like PTX `cvt.rn.satfinite`), and NaN to the canonical NaN (+max in
finite-only formats, as `DType.encode`).
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from tilec.backends.llvm.dtypes import (compute_dtype, constant, is_native_float,
                                        is_storage_only, llvm_type)
from tilec.backends.llvm.fastcasts import fast_cast
from tilec.ir import dtypes as dt
from tilec.ir.dtypes import DType

__all__ = ["cast", "repack", "call_intrinsic", "to_compute", "from_compute"]


def call_intrinsic(b: ir.IRBuilder, name: str, ret: ir.Type, args: list[ir.Value]) -> ir.Value:
    """Call the LLVM intrinsic `name` (fully mangled, e.g. "llvm.ctlz.i32"), declaring it in
    the module on first use."""
    module = b.module
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, [a.type for a in args]), name)
    return b.call(fn, args)


def _suffix(t: ir.Type) -> str:
    """The type's part of an overloaded intrinsic's name (LangRef "Intrinsic Functions")."""
    if isinstance(t, ir.IntType):
        return f"i{t.width}"
    return t.intrinsic_name


# ---- the entry point ------------------------------------------------------------------------


def cast(b: ir.IRBuilder, value: ir.Value, src: DType, dst: DType, target=None) -> ir.Value:
    """`value` (of `llvm_type(src)`) converted to `dst`, exactly as `dst.convert(., src)`.

    `target` is accepted for the lowering's uniform signature; no cast needs a target hook.
    """
    if src == dst:
        return value
    if dst.is_bool:
        return _to_bool(b, value, src)
    if src.is_bool:
        if dst.is_float:
            return b.select(value, constant(dst, 1), constant(dst, 0))
        return b.zext(value, llvm_type(dst)) if dst.bits > 1 else value
    if src.is_int and dst.is_int:
        return _resize_int(b, value, src.kind == "int", dst.bits)
    fast = fast_cast(b, value, src, dst)  # low-bit ints and floats -> f16/bf16: bit tricks
    if fast is not None:
        return fast
    if src.is_float and dst.is_float:
        return _float_to_float(b, value, src, dst)
    if src.is_int:
        return _int_to_float(b, value, src, dst)
    return _float_to_int(b, value, src, dst)


def to_compute(b: ir.IRBuilder, value: ir.Value, dtype: DType) -> ir.Value:
    """A storage-only float's pattern decoded into its compute type (f32 or f64); other
    values pass through."""
    return cast(b, value, dtype, compute_dtype(dtype))


def from_compute(b: ir.IRBuilder, value: ir.Value, dtype: DType) -> ir.Value:
    """The inverse of `to_compute`: round a compute-type value into `dtype` (RNE)."""
    return cast(b, value, compute_dtype(dtype), dtype)


def _to_bool(b: ir.IRBuilder, value: ir.Value, src: DType) -> ir.Value:
    if src.is_float and not is_storage_only(src):
        return b.fcmp_unordered("!=", value, ir.Constant(value.type, 0.0))  # NaN -> true
    if src.is_float:  # any pattern but +-0 is nonzero (NaN included)
        magnitude = b.and_(value, ir.Constant(value.type, (1 << (src.bits - 1)) - 1))
        return b.icmp_unsigned("!=", magnitude, ir.Constant(value.type, 0))
    return b.icmp_unsigned("!=", value, ir.Constant(value.type, 0))


def _resize_int(b: ir.IRBuilder, value: ir.Value, signed: bool, bits: int) -> ir.Value:
    """Wrap or extend an integer to `bits` (extension by the source's signedness)."""
    width = value.type.width
    t = ir.IntType(bits)
    if bits == width:
        return value
    if bits < width:
        return b.trunc(value, t)
    return b.sext(value, t) if signed else b.zext(value, t)


# ---- float -> float -------------------------------------------------------------------------

# (src, dst) pairs of native formats where one LLVM instruction rounds once: fpext is exact,
# fptrunc rounds to nearest even. Pairs not listed go through f32 (f16 <-> bf16, exact into
# f32 then one rounding) or through `repack` (f64 -> f16/bf16).
_EXTEND = {("f16", "f32"), ("f16", "f64"), ("bf16", "f32"), ("bf16", "f64"), ("f32", "f64")}
_TRUNCATE = {("f32", "f16"), ("f32", "bf16"), ("f64", "f32")}


def _float_to_float(b: ir.IRBuilder, value: ir.Value, src: DType, dst: DType) -> ir.Value:
    pair = (src.name, dst.name)
    if pair in _EXTEND:
        return b.fpext(value, llvm_type(dst))
    if pair in _TRUNCATE:
        return b.fptrunc(value, llvm_type(dst))
    if pair in (("f16", "bf16"), ("bf16", "f16")):
        return b.fptrunc(b.fpext(value, ir.FloatType()), llvm_type(dst))
    pattern = value
    if is_native_float(src):
        pattern = b.bitcast(value, ir.IntType(src.bits))
    out = repack(b, pattern, src, dst)
    return b.bitcast(out, llvm_type(dst)) if is_native_float(dst) else out


@dataclass(frozen=True)
class _Unpacked:
    """A float as sign (0/1), unbiased exponent and significand, all in one iW type.

    `sig`'s leading one is at bit `point` for normal numbers; for subnormals it is lower
    unless `_normalise` ran (then it is at `point` for every nonzero value).
    """

    sign: ir.Value
    exponent: ir.Value
    sig: ir.Value
    point: int
    is_nan: ir.Value | None
    is_inf: ir.Value | None
    is_zero: ir.Value | None


def _c(t: ir.IntType, v: int) -> ir.Constant:
    return ir.Constant(t, v & ((1 << t.width) - 1))


def _work_width(*needs: int) -> ir.IntType:
    """i32 when every need fits, else i64 (GPUs do 64-bit integer ops as pairs)."""
    return ir.IntType(32 if max(needs) <= 32 else 64)


def repack(b: ir.IRBuilder, pattern: ir.Value, src: DType, dst: DType) -> ir.Value:
    """The `dst` bit pattern (i{dst.bits}) of the `src` float given as its bit pattern
    (i{src.bits}): `dst.encode(src.decode(pattern))`, NaN as the canonical NaN."""
    w = _work_width(src.bits, dst.bits, src.mantissa + 3, dst.mantissa + 3)
    u = _unpack(b, b.zext(pattern, w) if src.bits < w.width else pattern, src)
    if src.mantissa >= 1 and dst.bias > src.bias:
        # The source's subnormals may be normal numbers of dst: bring their leading one to
        # `point` so that pack sees normalised significands.
        u = _normalise(b, u)
    return _pack(b, u, dst)


def _unpack(b: ir.IRBuilder, p: ir.Value, src: DType) -> _Unpacked:
    w: ir.IntType = p.type
    m = src.mantissa
    mag = b.and_(p, _c(w, (1 << (src.bits - 1)) - 1))
    sign = b.lshr(p, _c(w, src.bits - 1))
    field = b.lshr(mag, _c(w, m))
    normal = b.icmp_unsigned("!=", field, _c(w, 0))
    frac = b.and_(mag, _c(w, (1 << m) - 1))
    sig = b.or_(frac, b.shl(b.zext(normal, w), _c(w, m)))
    exponent = b.sub(b.select(normal, field, _c(w, 1)), _c(w, src.bias))
    is_nan = is_inf = None
    if src.nan == "ieee":
        inf_pattern = ((1 << src.exponent) - 1) << m
        is_nan = b.icmp_unsigned(">", mag, _c(w, inf_pattern))
        is_inf = b.icmp_unsigned("==", mag, _c(w, inf_pattern))
    elif src.nan == "fn":
        is_nan = b.icmp_unsigned("==", mag, _c(w, (1 << (src.bits - 1)) - 1))
    is_zero = b.icmp_unsigned("==", mag, _c(w, 0))
    return _Unpacked(sign, exponent, sig, m, is_nan, is_inf, is_zero)


def _normalise(b: ir.IRBuilder, u: _Unpacked) -> _Unpacked:
    w: ir.IntType = u.sig.type
    lz = call_intrinsic(b, f"llvm.ctlz.{_suffix(w)}", w, [u.sig, ir.Constant(ir.IntType(1), 0)])
    # Normal significands already have their leading one at `point`: k == 0 for them.
    # Zero gives k = point + 1 (ctlz(0) == width), harmless: pack selects zero itself.
    k = b.sub(lz, _c(w, w.width - 1 - u.point))
    return _Unpacked(u.sign, b.sub(u.exponent, k), b.shl(u.sig, k), u.point, u.is_nan,
                     u.is_inf, u.is_zero)


def _smax(b, x, y):
    return b.select(b.icmp_signed(">", x, y), x, y)


def _smin(b, x, y):
    return b.select(b.icmp_signed("<", x, y), x, y)


def _round_shift_right(b: ir.IRBuilder, sig: ir.Value, s: ir.Value) -> ir.Value:
    """sig / 2**s rounded to nearest even, for 0 <= s < width - 1 (callers keep
    s <= point + 2 with point + 3 <= width, so 2 * remainder cannot overflow)."""
    w = sig.type
    one = b.shl(_c(w, 1), s)
    rem = b.and_(sig, b.sub(one, _c(w, 1)))
    q = b.lshr(sig, s)
    # Round up iff rem > half, or rem == half and q is odd: 2*rem + lsb(q) > 2**s. For s == 0
    # rem is 0 and 0 + lsb > 1 never holds, so no special case is needed.
    twice = b.or_(b.shl(rem, _c(w, 1)), b.and_(q, _c(w, 1)))
    up = b.icmp_unsigned(">", twice, one)
    return b.add(q, b.zext(up, w))


def _pack(b: ir.IRBuilder, u: _Unpacked, dst: DType) -> ir.Value:
    """Round the unpacked value to nearest even into `dst`; returns i{dst.bits}."""
    w: ir.IntType = u.sig.type
    m = dst.mantissa
    d = b.add(u.exponent, _c(w, dst.bias))  # dst's biased exponent, if it were normal
    d1 = _smax(b, d, _c(w, 1))
    # Clamp before shifting: any d past the largest field overflows anyway (checked below).
    base = b.shl(b.sub(_smin(b, d1, _c(w, (1 << dst.exponent) + 1)), _c(w, 1)), _c(w, m))
    subnormal_shift = b.sub(d1, d)  # max(1 - d, 0): extra places below the normal range
    shift = b.add(subnormal_shift, _c(w, u.point - m))
    limit = _c(w, u.point + 2)  # shifting further always rounds to 0
    right = _round_shift_right(b, u.sig, b.select(b.icmp_signed(">", shift, limit), limit,
                                                  _smax(b, shift, _c(w, 0))))
    if u.point >= m:
        rounded = right
    else:  # dst has more mantissa bits: normal results shift left, exactly
        left = b.shl(u.sig, _smax(b, b.sub(_c(w, 0), shift), _c(w, 0)))
        rounded = b.select(b.icmp_signed("<", shift, _c(w, 0)), left, right)
    # Patterns of one sign are ordered like their values: a carry out of the mantissa moves
    # into the exponent field by itself, and a result past max_pattern has overflowed.
    mag = b.add(base, rounded)
    max_pattern = dst._max_pattern
    over = b.icmp_unsigned(">", mag, _c(w, max_pattern))
    if u.is_inf is not None:
        over = b.or_(over, u.is_inf)
    overflow = (((1 << dst.exponent) - 1) << m) if dst.inf else max_pattern
    mag = b.select(over, _c(w, overflow), mag)
    if u.is_zero is not None:
        mag = b.select(u.is_zero, _c(w, 0), mag)
    out = b.or_(b.shl(u.sign, _c(w, dst.bits - 1)), mag)
    if u.is_nan is not None:
        nan_pattern = int(dst.encode(float("nan"))[()])
        out = b.select(u.is_nan, _c(w, nan_pattern), out)
    return b.trunc(out, ir.IntType(dst.bits)) if dst.bits < w.width else out


# ---- int -> float ---------------------------------------------------------------------------


def _exact_in(src: DType, bits_of_precision: int) -> bool:
    """Whether every value of the integer dtype `src` has at most that many significant bits."""
    magnitude_bits = src.bits - 1 if src.kind == "int" else src.bits
    # A signed minimum -2**(bits-1) is a single bit however wide.
    return magnitude_bits <= bits_of_precision


def _int_to_float(b: ir.IRBuilder, value: ir.Value, src: DType, dst: DType) -> ir.Value:
    signed = src.kind == "int"
    if dst in (dt.float32, dt.float64) or (is_native_float(dst) and _exact_in(src, 24)):
        # sitofp/uitofp round once (LangRef); into f16/bf16 only from ints f32 holds exactly.
        wide = _resize_int(b, value, signed, 32 if src.bits <= 32 else 64)
        convert = b.sitofp if signed else b.uitofp
        if dst in (dt.float32, dt.float64):
            return convert(wide, llvm_type(dst))
        return b.fptrunc(convert(wide, ir.FloatType()), llvm_type(dst))
    out = _int_to_pattern(b, value, src, dst)
    return b.bitcast(out, llvm_type(dst)) if is_native_float(dst) else out


def _int_to_pattern(b: ir.IRBuilder, value: ir.Value, src: DType, dst: DType) -> ir.Value:
    """The `dst` pattern of an integer, rounded once (RNE) from its full value."""
    signed = src.kind == "int"
    w = _work_width(src.bits, dst.bits, dst.mantissa + 5)
    x = _resize_int(b, value, signed, w.width)
    zero = _c(w, 0)
    if signed:
        negative = b.icmp_signed("<", x, zero)
        magnitude = b.select(negative, b.sub(zero, x), x)  # -MIN wraps to MIN = 2**(w-1): right
        sign = b.zext(negative, w)
    else:
        magnitude, sign = x, zero
    lz = call_intrinsic(b, f"llvm.ctlz.{_suffix(w)}", w,
                        [magnitude, ir.Constant(ir.IntType(1), 0)])
    exponent = b.sub(_c(w, w.width - 1), lz)
    # Put the leading one at point = w - 3, so that pack's 2 * remainder fits in iW. Where the
    # magnitude may use the top two bits, shift right keeping a sticky bit instead: exact for
    # rounding because pack drops at least point - mantissa >= 2 more bits.
    point = w.width - 3
    if src.bits <= w.width - 2:  # magnitude < 2**(w - 2), so lz >= 2
        sig = b.shl(magnitude, b.sub(lz, _c(w, 2)))
    else:
        top = b.shl(magnitude, _smin(b, lz, _c(w, w.width - 1)))
        sticky = b.zext(b.icmp_unsigned("!=", b.and_(top, _c(w, 3)), zero), w)
        sig = b.or_(b.lshr(top, _c(w, 2)), sticky)
    is_zero = b.icmp_unsigned("==", magnitude, zero)
    return _pack(b, _Unpacked(sign, exponent, sig, point, None, None, is_zero), dst)


# ---- float -> int ---------------------------------------------------------------------------


def _float_to_int(b: ir.IRBuilder, value: ir.Value, src: DType, dst: DType) -> ir.Value:
    if is_storage_only(src):
        value = to_compute(b, value, src)  # exact
    elif src == dt.bfloat16:
        value = b.fpext(value, ir.FloatType())  # exact; not every target has bf16 -> int
    t = llvm_type(dst)
    op = "fptosi" if dst.kind == "int" else "fptoui"
    if dst.bits in (8, 16, 32, 64):
        # llvm.fpto[su]i.sat: truncate toward zero, clamp to the type's range, NaN -> 0.
        return call_intrinsic(b, f"llvm.{op}.sat.{_suffix(t)}.{_suffix(value.type)}", t, [value])
    # Odd widths: NVPTX miscompiles the i1 form (it tests the clamped value against 0 the
    # wrong way round), so saturate to a standard width, clamp to the range, then truncate.
    wide = ir.IntType(32 if dst.bits < 32 else 64)
    v = call_intrinsic(b, f"llvm.{op}.sat.{_suffix(wide)}.{_suffix(value.type)}", wide, [value])
    lo, hi = ir.Constant(wide, int(dst.min)), ir.Constant(wide, int(dst.max))
    if dst.kind == "int":
        v = b.select(b.icmp_signed("<", v, lo), lo, v)
        v = b.select(b.icmp_signed(">", v, hi), hi, v)
    else:
        v = b.select(b.icmp_unsigned(">", v, hi), hi, v)
    return b.trunc(v, t)
