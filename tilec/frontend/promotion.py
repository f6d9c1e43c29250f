"""Type promotion for the DSL's operators, written down in one place.

Binary IR ops need operands of one type, so the frontend decides the common dtype of two
operands here and inserts the casts. The rules (Triton-like, with sub-byte types added):

    Step 1 - arithmetic type of each operand (`arith_dtype`):
      bool                          -> bool (arithmetic operators turn it into i32, step 3)
      int<N> / uint<N>, N not 8/16/32/64
                                    -> the smallest of i8/i16/i32/i64 (u8/...) holding N bits
      float of a non-standard format (f8, f6, f4, custom)
                                    -> the smallest of f16, bf16, f32, f64 holding every value
      f16, bf16, f32, f64, i8..i64, u8..u64
                                    -> unchanged

    Step 2 - common type of two arithmetic types a, b (`common_dtype`):
      a == b                        -> a
      float  op float               -> the wider; f16 op bf16 -> f32
      int    op float               -> the float
      bool   op x                   -> x
      int    op int, widths differ  -> the wider one (with its signedness)
      int    op int, same width     -> unsigned if either is unsigned

    Step 3 - Python literals (`literal_dtype`): a literal has no dtype of its own until it
      meets a typed operand.
      int literal   with an int tile    -> the tile's dtype if the value fits, else i32/i64
                                           (then step 2: u8 tile + 300 -> i32)
      int literal   with a float tile   -> the tile's dtype
      float literal with a float tile   -> the tile's dtype
      float literal with an int/bool tile -> f32
      bool literal  with anything       -> the tile's dtype
      alone: int -> i32 (i64 if it does not fit, u64 above i64), float -> f32, bool -> bool

    Operator-specific:
      + - * // % ** on bool op bool     -> i32
      /  (true division) on ints        -> f32 (both operands cast first)
      & | ^ << >> need ints or bools (no promotion to float); shifts need ints
      comparisons                       -> promote as above, result bool
      math functions (exp, sqrt, ...)   -> ints become f32; floats take step 1
      sum/prod/cumsum/cumprod           -> ints and bools narrower than 32 bits become i32
"""
from __future__ import annotations

from tilec.ir import dtypes as dt
from tilec.ir.dtypes import DType

STANDARD_FLOATS = (dt.float16, dt.bfloat16, dt.float32, dt.float64)
_INT_WIDTHS = (8, 16, 32, 64)


def _holds(wide: DType, narrow: DType) -> bool:
    """Whether every finite value of float `narrow` is a value of float `wide`."""
    return (wide.mantissa >= narrow.mantissa and wide.max >= narrow.max
            and wide.smallest_subnormal <= narrow.smallest_subnormal)


def arith_dtype(d: DType) -> DType:
    """Step 1: the type arithmetic on `d` is done in."""
    if d.is_bool:
        return d
    if d.is_int:
        if d.bits in _INT_WIDTHS:
            return d
        width = next(w for w in _INT_WIDTHS if w >= d.bits)
        return dt.int_(width) if d.kind == "int" else dt.uint(width)
    if d in STANDARD_FLOATS:
        return d
    for std in STANDARD_FLOATS:
        if _holds(std, d):
            return std
    return dt.float64


def common_dtype(a: DType, b: DType) -> DType:
    """Steps 1 and 2: the dtype both operands are cast to."""
    a, b = arith_dtype(a), arith_dtype(b)
    if a == b:
        return a
    if a.is_bool:
        return b
    if b.is_bool:
        return a
    if a.is_float and b.is_float:
        if a.bits == b.bits:  # f16 vs bf16: neither holds the other
            return dt.float32
        return a if a.bits > b.bits else b
    if a.is_float:
        return a
    if b.is_float:
        return b
    if a.bits != b.bits:
        return a if a.bits > b.bits else b
    return a if a.kind == "uint" else b


def default_literal_dtype(value: bool | int | float) -> DType:
    """The dtype of a Python literal that meets no typed operand."""
    if isinstance(value, bool):
        return dt.bool_
    if isinstance(value, int):
        if dt.int32.min <= value <= dt.int32.max:
            return dt.int32
        if dt.int64.min <= value <= dt.int64.max:
            return dt.int64
        return dt.uint64
    return dt.float32


def literal_dtype(value: bool | int | float, other: DType) -> DType:
    """Step 3: the dtype a Python literal takes next to an operand of dtype `other`."""
    other = arith_dtype(other)
    if isinstance(value, bool):
        return other
    if isinstance(value, int):
        if other.is_float:
            return other
        if other.is_int and other.min <= value <= other.max:
            return other
        return default_literal_dtype(value)
    # float literal
    return other if other.is_float else dt.float32


def reduction_dtype(d: DType) -> DType:
    """Accumulation dtype of sum/prod/cumsum/cumprod."""
    d = arith_dtype(d)
    if d.is_bool or (d.is_int and d.bits < 32):
        return dt.int32 if d.is_bool or d.kind == "int" else dt.uint32
    return d


def math_dtype(d: DType) -> DType:
    """Dtype transcendental functions compute in: ints become f32."""
    d = arith_dtype(d)
    return d if d.is_float else dt.float32
