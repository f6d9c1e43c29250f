"""Element types: one `DType` value class for bool, ints of any width and any float format.

A `DType` knows its bit width and how to convert exactly to and from numpy. The conversions
here are the single executable meaning of a cast: the CPU interpreter, the constant folder and
the GPU differential tests all call `DType.convert` / `encode` / `decode`.

Float formats are described by (exponent bits, mantissa bits, bias) plus one of three
encodings of the special values, written as the `inf` / `nan` flags:

- ``ieee``   (``inf=True, nan="ieee"``): exponent all ones is inf (mantissa 0) or NaN.
- ``fn``     (``inf=False, nan="fn"``): no inf; only the all-ones magnitude S.11..1 is NaN
  (OCP E4M3). The top binade is otherwise finite.
- ``finite`` (``inf=False, nan="none"``): every pattern is a finite number (OCP FP6/FP4).

Default encoding of a shape (E, M) with ``bits = 1 + E + M``: fewer than 8 bits -> finite;
8 bits -> fn when E <= 4 (OCP E4M3), ieee when E >= 5 (OCP E5M2); more than 8 bits -> ieee.
Where the shape cannot hold that encoding (ieee needs M >= 1 and E >= 2; fn needs a positive
finite value left) the default falls back ieee -> fn -> finite. The default bias is
2**(E-1) - 1.

Rounding into a float format is round-to-nearest-even. Overflow: to inf in ieee formats,
else saturates to +-max finite (as PTX ``cvt.rn.satfinite``). NaN: the canonical positive NaN
where the format has one; in finite-only formats NaN encodes to +max finite (OCP leaves it
implementation defined; ml_dtypes gives +-0 instead).
"""
from __future__ import annotations

import functools
import math
import numbers
import re
from dataclasses import dataclass

import numpy as np

from tilec.errors import DTypeError

_U64 = np.uint64
_KINDS = ("int", "uint", "float", "bool")
_NAN_ENCODINGS = ("ieee", "fn", "none")
# (exponent, mantissa) -> short name for the shapes everyone knows.
_SHORT_FLOAT_NAMES = {(5, 10): "f16", (8, 7): "bf16", (8, 23): "f32", (11, 52): "f64"}
_NATIVE_FLOATS = {"f16": np.float16, "f32": np.float32, "f64": np.float64}


def _mode_flags(mode: str) -> tuple[bool, str]:
    return {"ieee": (True, "ieee"), "fn": (False, "fn"), "finite": (False, "none")}[mode]


def _mode_is_valid(exponent: int, mantissa: int, mode: str) -> bool:
    if mode == "ieee":
        return mantissa >= 1 and exponent >= 2
    if mode == "fn":
        return exponent + mantissa >= 2  # the all-ones NaN must leave a positive finite value
    return True


def default_float_mode(exponent: int, mantissa: int) -> str:
    """The special-value encoding ("ieee", "fn" or "finite") a shape gets when none is given."""
    bits = 1 + exponent + mantissa
    if bits < 8:
        order = ["finite"]
    elif bits == 8 and exponent <= 4:
        order = ["fn", "finite"]
    else:
        order = ["ieee", "fn", "finite"]
    return next(m for m in order if _mode_is_valid(exponent, mantissa, m))


@dataclass(frozen=True)
class DType:
    """An element type. `bias`, `inf` and `nan` left as None get the defaults of the shape;
    after construction every field holds a concrete value (ints: bias 0, no inf, nan "none")."""

    kind: str
    bits: int
    exponent: int = 0
    mantissa: int = 0
    bias: int | None = None
    inf: bool | None = None
    nan: str | None = None

    def __post_init__(self) -> None:
        for field in ("bits", "exponent", "mantissa"):
            value = getattr(self, field)
            if not isinstance(value, numbers.Integral):
                raise DTypeError(f"dtype {field} must be an integer, got {value!r}")
            object.__setattr__(self, field, int(value))
        if self.kind not in _KINDS:
            raise DTypeError(f"unknown dtype kind {self.kind!r}", hint=f"one of {_KINDS}")
        if self.kind == "float":
            self._init_float()
            return
        if self.bias not in (None, 0) or self.inf or self.nan not in (None, "none"):
            raise DTypeError(f"{self.kind} dtypes have no bias, inf or NaN")
        if self.exponent or self.mantissa:
            raise DTypeError(f"{self.kind} dtypes have no exponent or mantissa fields")
        object.__setattr__(self, "bias", 0)
        object.__setattr__(self, "inf", False)
        object.__setattr__(self, "nan", "none")
        if self.kind == "bool" and self.bits != 1:
            raise DTypeError(f"bool has 1 bit, got bits={self.bits}")
        if not 1 <= self.bits <= 64:
            raise DTypeError(f"integer width must be 1..64 bits, got {self.bits!r}",
                             hint="e.g. int_(4), uint(12)")

    def _init_float(self) -> None:
        e, m = self.exponent, self.mantissa
        if not (1 <= e <= 11 and 0 <= m <= 52):
            raise DTypeError(
                f"float needs 1..11 exponent bits and 0..52 mantissa bits, got e{e}m{m}",
                hint="wider formats are not exactly representable in the float64 reference",
            )
        if self.bits != 1 + e + m:
            raise DTypeError(f"float bits must be 1 + exponent + mantissa = {1 + e + m}, "
                             f"got {self.bits}")
        default_inf, default_nan = _mode_flags(default_float_mode(e, m))
        if self.nan is None:
            inf = default_inf if self.inf is None else self.inf
            # inf=False alone: the shape's default NaN encoding, or "fn" instead of "ieee".
            nan = "ieee" if inf else ("fn" if default_nan == "ieee" else default_nan)
        else:
            nan = self.nan
            inf = (nan == "ieee") if self.inf is None else self.inf
        if nan not in _NAN_ENCODINGS:
            raise DTypeError(f"unknown NaN encoding {nan!r}", hint=f"one of {_NAN_ENCODINGS}")
        if bool(inf) != (nan == "ieee"):
            raise DTypeError(
                f"unsupported special values inf={inf}, nan={nan!r}",
                hint="use inf=True with nan='ieee', or inf=False with nan='fn' or 'none'",
            )
        mode = {"ieee": "ieee", "fn": "fn", "none": "finite"}[nan]
        if not _mode_is_valid(e, m, mode):
            raise DTypeError(f"e{e}m{m} cannot use the {mode!r} special-value encoding",
                             hint="ieee needs mantissa >= 1 and exponent >= 2")
        bias = (1 << (e - 1)) - 1 if self.bias is None else self.bias
        object.__setattr__(self, "inf", bool(inf))
        object.__setattr__(self, "nan", nan)
        object.__setattr__(self, "bias", bias)
        # The float64 reference must hold every value of the format exactly.
        top_field = self._max_pattern >> m
        if max(top_field, 1) - bias > 1023 or 1 - bias - m < -1074:
            raise DTypeError(f"bias {bias} puts {self.name} outside the float64 range",
                             hint="choose a bias closer to 2**(exponent-1) - 1")

    # ---- identity -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """Canonical IR name: bool, i4, u12, f16, bf16, f8e4m3, f8e4m3_ieee, f6e3m2_b4, ..."""
        if self.kind == "bool":
            return "bool"
        if self.kind != "float":
            return f"{self.kind[0]}{self.bits}"
        e, m = self.exponent, self.mantissa
        name = _SHORT_FLOAT_NAMES.get((e, m), f"f{self.bits}e{e}m{m}")
        if self.float_mode != default_float_mode(e, m):
            name += f"_{self.float_mode}"
        if self.bias != (1 << (e - 1)) - 1:
            name += f"_bneg{-self.bias}" if self.bias < 0 else f"_b{self.bias}"
        return name

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"tc.dtype({self.name!r})"

    @property
    def float_mode(self) -> str:
        """ "ieee", "fn" or "finite" for floats (see the module docstring); "" otherwise."""
        if self.kind != "float":
            return ""
        return {"ieee": "ieee", "fn": "fn", "none": "finite"}[self.nan]

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    @property
    def is_int(self) -> bool:
        """True for signed and unsigned integers (not bool)."""
        return self.kind in ("int", "uint")

    @property
    def is_signed(self) -> bool:
        return self.kind in ("int", "float")

    @property
    def is_bool(self) -> bool:
        return self.kind == "bool"

    @property
    def itemsize_bits(self) -> int:
        """Bits one element takes in memory: `bits`, except bool, which is stored as a byte."""
        return 8 if self.kind == "bool" else self.bits

    # ---- numeric range ----------------------------------------------------------------------

    @property
    def _max_pattern(self) -> int:
        """The largest finite magnitude pattern (sign bit clear)."""
        e, m = self.exponent, self.mantissa
        if self.nan == "ieee":
            return ((1 << e) - 1 << m) - 1
        if self.nan == "fn":
            return (1 << (e + m)) - 2
        return (1 << (e + m)) - 1

    @property
    def max(self) -> int | float:
        """Largest finite value."""
        if self.kind == "float":
            return float(self.decode(np.array([self._max_pattern], _U64))[0])
        if self.kind == "int":
            return (1 << (self.bits - 1)) - 1
        return (1 << self.bits) - 1

    @property
    def min(self) -> int | float:
        """Smallest (most negative) finite value."""
        if self.kind == "float":
            return -self.max
        return -(1 << (self.bits - 1)) if self.kind == "int" else 0

    def _float_only(self, what: str) -> None:
        if self.kind != "float":
            raise DTypeError(f"{what} is defined for float dtypes only, not {self.name}")

    @property
    def eps(self) -> float:
        """Distance from 1 to the next larger value at 1's precision: 2**-mantissa."""
        self._float_only("eps")
        return float(2.0 ** -self.mantissa)

    @property
    def smallest_normal(self) -> float:
        self._float_only("smallest_normal")
        return float(2.0 ** (1 - self.bias))

    @property
    def smallest_subnormal(self) -> float:
        self._float_only("smallest_subnormal")
        return float(2.0 ** (1 - self.bias - self.mantissa))

    # ---- numpy containers ---------------------------------------------------------------------

    @property
    def compute_dtype(self) -> np.dtype:
        """The numpy dtype the CPU interpreter holds values of this type in (exactly)."""
        if self.kind == "bool":
            return np.dtype(np.bool_)
        if self.kind != "float":
            return np.dtype(np.uint64 if self.kind == "uint" and self.bits == 64 else np.int64)
        native = _NATIVE_FLOATS.get(self.name)
        if native is not None:
            return np.dtype(native)
        top_exponent = max(self._max_pattern >> self.mantissa, 1) - self.bias
        fits_f32 = (self.mantissa <= 23 and top_exponent <= 127
                    and 1 - self.bias - self.mantissa >= -149)
        return np.dtype(np.float32 if fits_f32 else np.float64)

    @property
    def storage_dtype(self) -> np.dtype | None:
        """numpy dtype of one element in memory; None for widths that are not 8/16/32/64."""
        if self.kind == "bool":
            return np.dtype(np.bool_)
        if self.bits not in (8, 16, 32, 64):
            return None
        native = _NATIVE_FLOATS.get(self.name)
        if native is not None:
            return np.dtype(native)
        prefix = "int" if self.kind == "int" else "uint"  # other floats: their bit pattern
        return np.dtype(f"{prefix}{self.bits}")

    # ---- bit patterns ---------------------------------------------------------------------------

    def encode(self, values) -> np.ndarray:
        """The bit pattern (uint64, high bits zero) of each value, rounded into this type."""
        v = np.asarray(values)
        if self.kind == "bool":
            return (v != 0).astype(_U64)
        if self.kind != "float":
            return _int_patterns(v, self)
        if v.dtype.kind in "iu":
            v = _round_ints_for_float(v, self)
        return _encode_float(v.astype(np.float64), self)

    def decode(self, patterns) -> np.ndarray:
        """The exact value of each bit pattern (bits above `bits` ignored), in compute_dtype."""
        p = np.asarray(patterns).astype(_U64) & _U64((1 << self.itemsize_bits) - 1)
        if self.kind == "bool":
            return p != 0
        if self.kind == "float":
            return _decode_float(p, self).astype(self.compute_dtype)
        if self.kind == "uint":
            return p.astype(self.compute_dtype)
        # Sign-extend: move the sign bit to bit 63, then shift back arithmetically.
        unused = 64 - self.bits
        return (p << _U64(unused)).view(np.int64) >> np.int64(unused)

    def round(self, values) -> np.ndarray:
        """Values rounded (floats) or wrapped (ints) into this type: decode(encode(values))."""
        return self.decode(self.encode(values))

    def wrap(self, values) -> np.ndarray:
        """Reduce integers modulo 2**bits into this int type (two's complement)."""
        if not self.is_int:
            raise DTypeError(f"wrap is defined for integer dtypes only, not {self.name}")
        return self.round(values)

    def convert(self, values, src: DType) -> np.ndarray:
        """The cast op from `src` to this type, on values held in src.compute_dtype.

        float->float and int->float round to nearest even (overflow as `encode`);
        float->int truncates toward zero and saturates, NaN -> 0 (PTX ``cvt.rzi.sat``);
        int->int wraps; anything->bool is ``!= 0``; bool->number is 0 or 1.
        """
        v = np.asarray(values)
        if self.kind == "bool":
            return v != 0
        if src.kind == "bool":
            v = (v != 0).astype(np.int64)
        if self.kind == "float":
            return self.round(v)
        if src.kind == "float":
            return _float_to_int_saturating(v.astype(np.float64), self)
        return self.wrap(v)


# ---- float encode / decode ---------------------------------------------------------------------


def _encode_float(x: np.ndarray, t: DType) -> np.ndarray:
    """Round float64 values to the nearest (ties to even) pattern of float format `t`."""
    e_bits, m_bits = t.exponent, t.mantissa
    emin = 1 - t.bias  # exponent of the smallest normal
    max_pat = t._max_pattern
    top_exponent = max(max_pat >> m_bits, 1) - t.bias
    a = np.abs(x)
    is_nan = np.isnan(a)
    # Past 2**(top_exponent + 1) every value overflows (ldexp gives inf beyond float64).
    over = a >= (math.ldexp(1.0, top_exponent + 1) if top_exponent < 1023 else math.inf)
    a = np.where(is_nan | over, 0.0, a)
    _, frexp_exp = np.frexp(a)
    exp = np.where(a == 0, emin, frexp_exp.astype(np.int64) - 1)  # a in [2**exp, 2**(exp+1))
    # Binade above the subnormals; the quantum there is 2**(emin + binade - m_bits).
    binade = np.maximum(exp - emin, 0)
    steps = np.rint(np.ldexp(a, m_bits - emin - binade))  # np.rint rounds ties to even
    # Patterns of one sign are ordered like values, so binade * 2**M + steps is the pattern,
    # a carry out of the mantissa moving to the next binade by itself.
    mag = (binade.astype(_U64) << _U64(m_bits)) + steps.astype(_U64)
    over |= mag > _U64(max_pat)
    overflow_pat = ((1 << e_bits) - 1) << m_bits if t.inf else max_pat
    mag = np.where(over, _U64(overflow_pat), mag)
    sign = np.signbit(x).astype(_U64) << _U64(t.bits - 1)
    if t.nan == "ieee":
        nan_pat = (((1 << e_bits) - 1) << m_bits) | (1 << (m_bits - 1))  # canonical quiet NaN
    elif t.nan == "fn":
        nan_pat = (1 << (e_bits + m_bits)) - 1
    else:
        nan_pat = max_pat  # finite-only formats: NaN -> +max (our choice, see module doc)
    return np.where(is_nan, _U64(nan_pat), sign | mag)


def _decode_float(p: np.ndarray, t: DType) -> np.ndarray:
    m_bits = t.mantissa
    mag = p & _U64((1 << (t.bits - 1)) - 1)
    field = (mag >> _U64(m_bits)).astype(np.int64)
    frac = (mag & _U64((1 << m_bits) - 1)).astype(np.int64)
    significand = frac + np.where(field > 0, 1 << m_bits, 0)  # <= 2**53: exact in float64
    with np.errstate(over="ignore"):  # the inf/NaN exponent field overflows; replaced below
        val = np.ldexp(significand.astype(np.float64), np.maximum(field, 1) - t.bias - m_bits)
    if t.nan == "ieee":
        top = field == (1 << t.exponent) - 1
        val = np.where(top, np.where(frac == 0, np.inf, np.nan), val)
    elif t.nan == "fn":
        val = np.where(mag == _U64((1 << (t.bits - 1)) - 1), np.nan, val)
    return np.where(p >> _U64(t.bits - 1) != 0, -val, val)


def _bit_length(m: np.ndarray) -> np.ndarray:
    """Vectorised int.bit_length of a uint64 array."""
    length = np.zeros(m.shape, np.int64)
    v = m.copy()
    for step in (32, 16, 8, 4, 2, 1):
        big = v >= _U64(1 << step)
        length += np.where(big, step, 0)
        v = np.where(big, v >> _U64(step), v)
    return length + (v != 0)


def _round_ints_for_float(v: np.ndarray, t: DType) -> np.ndarray:
    """Round integers (up to 64 bits) to `t`'s precision exactly, returned as float64.

    Converting int64 to float64 first would round twice for |v| > 2**53.
    """
    if v.dtype.kind == "u":
        neg = np.zeros(v.shape, bool)
        mag = v.astype(_U64)
    else:
        s = v.astype(np.int64)
        neg = s < 0
        mag = np.where(neg, ~s.view(_U64) + _U64(1), s.view(_U64))  # exact |s|, even for -2**63
    emin = 1 - t.bias
    shift = np.maximum(_bit_length(mag) - 1, emin) - t.mantissa  # log2 of the quantum
    sh = np.clip(shift, 1, 64).astype(_U64)
    kept = np.where(sh >= _U64(64), _U64(0), mag >> np.minimum(sh, _U64(63)))
    low_mask = np.where(sh >= _U64(64), _U64(2**64 - 1),
                        (_U64(1) << np.minimum(sh, _U64(63))) - _U64(1))
    rem = mag & low_mask
    half = _U64(1) << (sh - _U64(1))
    up = (rem > half) | ((rem == half) & ((kept & _U64(1)) == _U64(1)))
    rounded = np.ldexp((kept + up).astype(np.float64), sh.astype(np.int64))
    out = np.where(shift <= 0, mag.astype(np.float64), rounded)  # shift <= 0: mag < 2**53
    out = np.where(shift > 64, 0.0, out)  # below half the smallest quantum
    return np.where(neg, -out, out)


# ---- int helpers -------------------------------------------------------------------------------


def _int_patterns(v: np.ndarray, t: DType) -> np.ndarray:
    """Two's-complement low `bits` of integer values (integral floats accepted)."""
    mask = _U64((1 << t.bits) - 1)
    if v.dtype.kind == "b":
        return v.astype(_U64)
    if v.dtype.kind == "u":
        return v.astype(_U64) & mask
    if v.dtype.kind == "i":
        return v.astype(np.int64).view(_U64) & mask
    if v.dtype.kind != "f":
        raise DTypeError(f"cannot encode values of numpy dtype {v.dtype} as {t.name}")
    f = v.astype(np.float64)
    if not np.all(np.isfinite(f) & (np.trunc(f) == f)):
        raise DTypeError(f"cannot encode non-integer values as {t.name}",
                         hint=f"cast first: {t!r}.convert(values, src=float64)")
    r = np.fmod(f, 2.0**64)  # exact; wrapping is modulo 2**bits anyway
    mag = np.abs(r).astype(_U64)
    return np.where(r < 0, ~mag + _U64(1), mag) & mask


def _float_to_int_saturating(x: np.ndarray, t: DType) -> np.ndarray:
    lo, hi = t.min, t.max
    trunc = np.trunc(np.where(np.isnan(x), 0.0, x))
    below = trunc <= float(lo)
    above = trunc >= float(hi)  # float(hi) may round up to 2**63 / 2**64: still right
    mid = np.where(below | above, 0.0, trunc).astype(t.compute_dtype)
    out = np.where(below, t.compute_dtype.type(lo), mid)
    return np.where(above, t.compute_dtype.type(hi), out).astype(t.compute_dtype)


# ---- constructors and constants ------------------------------------------------------------------


def int_(bits: int) -> DType:
    """Signed integer of `bits` (1..64) bits."""
    return DType("int", bits)


def uint(bits: int) -> DType:
    """Unsigned integer of `bits` (1..64) bits."""
    return DType("uint", bits)


def float_(exponent: int, mantissa: int, *, bias: int | None = None, inf: bool | None = None,
           nan: str | None = None) -> DType:
    """Float with a sign bit, `exponent` and `mantissa` bits; unset flags/bias take the
    defaults of the shape (module docstring)."""
    return DType("float", 1 + exponent + mantissa, exponent, mantissa, bias, inf, nan)


bool_ = DType("bool", 1)
int1, int2, int3, int4 = int_(1), int_(2), int_(3), int_(4)
int5, int6, int7, int8 = int_(5), int_(6), int_(7), int_(8)
int16, int32, int64 = int_(16), int_(32), int_(64)
uint1, uint2, uint3, uint4 = uint(1), uint(2), uint(3), uint(4)
uint5, uint6, uint7, uint8 = uint(5), uint(6), uint(7), uint(8)
uint16, uint32, uint64 = uint(16), uint(32), uint(64)
float16 = float_(5, 10)
bfloat16 = float_(8, 7)
float32 = float_(8, 23)
float64 = float_(11, 52)
float8_e4m3 = float_(4, 3)  # OCP E4M3 ("fn"): max 448, NaN only at S.1111.111
float8_e5m2 = float_(5, 2)  # OCP E5M2: IEEE inf and NaN
float6_e3m2 = float_(3, 2)  # OCP FP6 E3M2: finite only, max 28
float6_e2m3 = float_(2, 3)  # OCP FP6 E2M3: finite only, max 7.5
float4_e2m1 = float_(2, 1)  # OCP FP4 E2M1: finite only, max 6
float3_e1m1 = float_(1, 1)  # finite only: 0, 1, 2, 3 (bias 0)


# ---- names -------------------------------------------------------------------------------------

_ACCEPTED_FORMS = (
    "bool; i<N>, u<N>, int<N>, uint<N> (N = 1..64); f16, half, float16, bf16, bfloat16, "
    "f32, float32, f64, float64; f<bits>e<E>m<M> or float<bits>_e<E>m<M> (also the ml_dtypes "
    "spelling float8_e4m3fn); floats may add _ieee, _fn or _finite (special values) and "
    "_b<bias> or _bneg<bias>"
)
_FLOAT_SHORT = {"f16": (5, 10), "half": (5, 10), "float16": (5, 10), "bf16": (8, 7),
                "bfloat16": (8, 7), "f32": (8, 23), "float32": (8, 23), "f64": (11, 52),
                "float64": (11, 52)}
_SUFFIX = r"(?:_(?P<mode>ieee|fn|finite))?(?:_b(?P<neg>neg)?(?P<bias>\d+))?"
_RE_INT = re.compile(r"(?P<kind>i|u|int|uint)(?P<bits>\d+)")
_RE_SHORT = re.compile(r"(?P<short>" + "|".join(_FLOAT_SHORT) + ")" + _SUFFIX)
_RE_FLOAT = re.compile(
    r"(?:f(?P<bits>\d+)e(?P<e>\d+)m(?P<m>\d+)"
    r"|float(?P<lbits>\d+)_e(?P<le>\d+)m(?P<lm>\d+)(?P<fn>fn)?)" + _SUFFIX
)


@functools.lru_cache(maxsize=None)
def _parse(name: str) -> DType:
    if name == "bool":
        return bool_
    if m := _RE_INT.fullmatch(name):
        return DType("uint" if m["kind"].startswith("u") else "int", int(m["bits"]))
    if m := _RE_SHORT.fullmatch(name):
        exponent, mantissa = _FLOAT_SHORT[m["short"]]
        bits = 1 + exponent + mantissa
    elif m := _RE_FLOAT.fullmatch(name):
        bits = int(m["bits"] or m["lbits"])
        exponent, mantissa = int(m["e"] or m["le"]), int(m["m"] or m["lm"])
    else:
        raise DTypeError(f"unknown dtype {name!r}", hint=f"accepted forms: {_ACCEPTED_FORMS}")
    mode = m["mode"]
    if m.groupdict().get("fn"):
        # ml_dtypes "fn": no infinities, so the shape's default unless that has them.
        if mode is not None:
            raise DTypeError(f"unknown dtype {name!r}: 'fn' given twice",
                             hint=f"accepted forms: {_ACCEPTED_FORMS}")
        default = default_float_mode(exponent, mantissa)
        mode = "fn" if default == "ieee" else default
    inf, nan = _mode_flags(mode) if mode else (None, None)
    bias = None if m["bias"] is None else (-1 if m["neg"] else 1) * int(m["bias"])
    return DType("float", bits, exponent, mantissa, bias, inf, nan)


def dtype(name: str | DType) -> DType:
    """The DType named `name` (canonical IR names and the long aliases); DTypes pass through."""
    if isinstance(name, DType):
        return name
    if not isinstance(name, str):
        raise DTypeError(f"expected a dtype name, got {name!r}",
                         hint=f"accepted forms: {_ACCEPTED_FORMS}")
    try:
        return _parse(name)
    except DTypeError as err:
        if err.message.startswith("unknown dtype"):
            raise
        raise DTypeError(f"invalid dtype {name!r}: {err.message}", hint=err.hint) from None


# numpy / ml_dtypes dtype names. ml_dtypes' float8_e4m3 and float8_e3m4 are IEEE-like (with inf),
# unlike our default for those shapes; its "fn" types are our defaults.
_FROM_NUMPY = {
    "bool": bool_, "bfloat16": bfloat16, "float16": float16, "float32": float32,
    "float64": float64, "float8_e4m3fn": float8_e4m3, "float8_e5m2": float8_e5m2,
    "float8_e4m3": float_(4, 3, inf=True), "float8_e3m4": float_(3, 4, inf=True),
    "float6_e3m2fn": float6_e3m2, "float6_e2m3fn": float6_e2m3, "float4_e2m1fn": float4_e2m1,
    **{f"int{b}": int_(b) for b in (1, 2, 4, 8, 16, 32, 64)},
    **{f"uint{b}": uint(b) for b in (1, 2, 4, 8, 16, 32, 64)},
}


def dtype_from_numpy(np_dtype) -> DType:
    """The DType of a numpy dtype (or ml_dtypes type, found by name; ml_dtypes isn't imported)."""
    name = np.dtype(np_dtype).name
    if name not in _FROM_NUMPY:
        raise DTypeError(f"numpy dtype {name!r} has no tilec equivalent",
                         hint="supported: " + ", ".join(sorted(_FROM_NUMPY)))
    return _FROM_NUMPY[name]
