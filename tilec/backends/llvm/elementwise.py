"""Elementwise ops: each thread applies the op to each of its elements (operands and result
share one layout, so element i of every operand is the same tile coordinate).

The exact meaning of each op is `tilec.ir.semantics`: integer division by zero gives all
ones (quotient) and the dividend (remainder), MIN / -1 wraps; shifts by the width or more
give 0 (or the sign fill); float max/min propagate NaN; comparisons with NaN are false
except `ne`. Floats that are storage-only formats (f8, f6, f4, ...) compute in f32 and round
back with the casts helper.
"""
from __future__ import annotations

from typing import Callable

from llvmlite import ir

from tilec.backends.abi import is_packed
from tilec.backends.llvm import casts
from tilec.backends.llvm import dtypes as ltypes
from tilec.backends.llvm import math as lmath
from tilec.backends.llvm.fastcasts import (PAIRED_FIELDS, fast_cast, has_fast_cast,
                                          has_paired_float, paired_fields_to_f16,
                                          paired_floats_to_f16)
from tilec.backends.llvm.lower import Lowering, lowers, tile_layout
from tilec.backends.llvm.values import I1, coord, i32, int_const
from tilec.ir import dtypes as dt
from tilec.ir.core import Operation, OpResult
from tilec.ir.layout_defaults import view_layout
from tilec.ir.dtypes import DType
from tilec.ir.types import PointerType, dtype_of, element_of


# -- helpers --------------------------------------------------------------------------------
def is_storage_only(d: DType) -> bool:
    """A float format without LLVM arithmetic: held as its bit pattern, computed in f32."""
    return ltypes.is_storage_only(d)


def promote(lw: Lowering, v: ir.Value, d: DType) -> ir.Value:
    """A storage-only float's value in its compute type; anything else unchanged."""
    if not is_storage_only(d):
        return v
    return casts.cast(lw.b, v, d, ltypes.compute_dtype(d), lw.target)


def demote(lw: Lowering, v: ir.Value, d: DType) -> ir.Value:
    """The inverse of `promote`: round a computed value back into storage-only `d`."""
    if not is_storage_only(d):
        return v
    return casts.cast(lw.b, v, ltypes.compute_dtype(d), d, lw.target)


def constant_of(d: DType, value) -> ir.Constant:
    """The LLVM constant of `value` rounded (floats) or wrapped (ints) into dtype `d`."""
    return ltypes.constant(d, value)


def map_elements(lw: Lowering, op: Operation, fn: Callable[..., ir.Value]) -> list:
    """[fn(*elements_i) for each element i] over the op's operands."""
    columns = [lw.get(v) for v in op.operands]
    return [[fn(*xs) for xs in zip(*columns)]]


# 16-bit floats: elements 2i and 2i+1 of a thread compute as one <2 x half> (<2 x bfloat>)
# operation, which NVPTX emits as one f16x2 / bf16x2 instruction (PTX ISA "Half Precision
# Floating-Point Instructions": add/sub/mul/fma .f16x2, .bf16x2), two lanes a register;
# lane-wise IEEE, so the results are those of the scalar ops.
_PAIRED = (dt.float16, dt.bfloat16)


def map_pairs(lw: Lowering, op: Operation, fn: Callable[..., ir.Value]) -> list:
    """Like `map_elements`, with `fn` applied to <2 x T> vectors of two elements of each
    operand: those that are the two lanes of one vector already (a paired cast's (e_i,
    e_i+P), `fastcasts.paired_fields_to_f16`), so that the op takes that register as it
    is, and the others in order, 2i and 2i+1 (a trailing odd one as a vector of one)."""
    b = lw.b
    columns = [lw.get(v) for v in op.operands]
    out: list[ir.Value | None] = [None] * len(columns[0])
    for idx in _pairing(columns):
        vecs = []
        for col in columns:
            vec: ir.Value = ir.Constant(ir.VectorType(col[idx[0]].type, len(idx)), None)
            for j, i in enumerate(idx):
                vec = b.insert_element(vec, col[i], i32(j))
            vecs.append(vec)
        r = fn(*vecs)
        for j, i in enumerate(idx):
            out[i] = b.extract_element(r, i32(j))
    return [out]


def _lane_of(v: ir.Value) -> tuple[int, int] | None:
    """(id of the vector, lane) when `v` is a constant-lane extract from a vector."""
    if isinstance(v, ir.Instruction) and v.opname == "extractelement":
        vec, lane = v.operands
        if isinstance(lane, ir.Constant):
            return id(vec), int(lane.constant)
    return None


def _pairing(columns: list[list]) -> list[tuple[int, ...]]:
    """The index pairs `map_pairs` computes together: the operand whose elements are most
    often lanes 0 and 1 of one vector gives those pairs, the rest go in order."""
    n = len(columns[0])
    best: list[tuple[int, int]] = []
    for col in columns:
        lanes = [_lane_of(v) for v in col]
        at = {lane: i for i, lane in enumerate(lanes) if lane is not None}
        found = []
        for i, lane in enumerate(lanes):
            if lane is not None and lane[1] == 0:
                j = at.get((lane[0], 1))
                if j is not None and j != i:
                    found.append((i, j))
        if len(found) > len(best):
            best = found
    taken = {i for pair in best for i in pair}
    if len(taken) != 2 * len(best):   # an element in two vectors' pairs: in order instead
        best, taken = [], set()
    rest = [i for i in range(n) if i not in taken]
    return best + [tuple(rest[i:i + 2]) for i in range(0, len(rest), 2)]


def _intrinsic(lw: Lowering, name: str, t: ir.Type, nargs: int) -> ir.Function:
    """The overloaded float intrinsic `name` for `t` (a scalar or a vector: llvm.fma.v2f16)."""
    elem = t.element if isinstance(t, ir.VectorType) else t
    suffix = {ir.HalfType: "f16", ir.FloatType: "f32", ir.DoubleType: "f64"}.get(type(elem),
                                                                                "bf16")
    full = f"{name}.{f'v{t.count}' if isinstance(t, ir.VectorType) else ''}{suffix}"
    existing = lw.module.globals.get(full)
    if existing is not None:
        return existing
    return ir.Function(lw.module, ir.FunctionType(t, [t] * nargs), full)


# Ops that are one LLVM instruction, by IR op name.
_FLOAT_INSTR = {"add": ir.IRBuilder.fadd, "sub": ir.IRBuilder.fsub, "mul": ir.IRBuilder.fmul,
                "div": ir.IRBuilder.fdiv, "rem": ir.IRBuilder.frem}
_INT_INSTR = {"add": ir.IRBuilder.add, "sub": ir.IRBuilder.sub, "mul": ir.IRBuilder.mul,
              "and": ir.IRBuilder.and_, "or": ir.IRBuilder.or_, "xor": ir.IRBuilder.xor}


def _float_binary(lw: Lowering, name: str, a: ir.Value, b_: ir.Value) -> ir.Value:
    b = lw.b
    if name == "div" and lw.fn.attrs.get("fast_math") and not isinstance(a.type, ir.DoubleType):
        return _fast_div(lw, a, b_)
    instr = _FLOAT_INSTR.get(name)
    if instr is not None:
        return instr(b, a, b_)
    # llvm.maximum / llvm.minimum propagate NaN (LangRef); NVPTX selects max.NaN (sm_80+).
    fn = _intrinsic(lw, "llvm.maximum" if name == "max" else "llvm.minimum", a.type, 2)
    return b.call(fn, [a, b_])


def _fast_div(lw: Lowering, a: ir.Value, d: ir.Value) -> ir.Value:
    """Fast-math division of f32 and narrower floats: the target's approximate f32 divide
    (PTX `div.full.f32`, 2 ulp), rounded once into a narrower type."""
    b, f32 = lw.b, ir.FloatType()
    if isinstance(a.type, ir.FloatType):
        return lw.target.div_approx(b, a, d)
    q = lw.target.div_approx(b, b.fpext(a, f32), b.fpext(d, f32))
    return b.fptrunc(q, a.type)


def _int_div_rem(b: ir.IRBuilder, a: ir.Value, d_: ir.Value, signed: bool,
                 want_rem: bool) -> ir.Value:
    t = a.type
    zero, one, ones = ir.Constant(t, 0), ir.Constant(t, 1), int_const(t, -1)
    by_zero = b.icmp_unsigned("==", d_, zero)
    by_minus_one = b.icmp_unsigned("==", d_, ones) if signed else ir.Constant(I1, 0)
    # LLVM's sdiv/udiv are undefined for these divisors: divide by 1 instead, then fix up.
    unsafe = b.or_(by_zero, by_minus_one) if signed else by_zero
    safe = b.select(unsafe, one, d_)
    if want_rem:
        r = b.srem(a, safe) if signed else b.urem(a, safe)
        if signed:
            r = b.select(by_minus_one, zero, r)
        return b.select(by_zero, a, r)
    q = b.sdiv(a, safe) if signed else b.udiv(a, safe)
    if signed:
        q = b.select(by_minus_one, b.sub(zero, a), q)
    return b.select(by_zero, ones, q)


def _int_binary(lw: Lowering, name: str, d: DType, a: ir.Value, c: ir.Value) -> ir.Value:
    b = lw.b
    signed = d.kind == "int"
    instr = _INT_INSTR.get(name)
    if instr is not None:
        return instr(b, a, c)
    if name in ("div", "rem"):
        return _int_div_rem(b, a, c, signed, name == "rem")
    if name in ("max", "min"):
        cmp = b.icmp_signed if signed else b.icmp_unsigned
        return b.select(cmp(">" if name == "max" else "<", a, c), a, c)
    width = ir.Constant(a.type, d.bits)
    big = b.icmp_unsigned(">=", c, width)  # the shift amount read as unsigned
    if name == "shl":
        return b.select(big, ir.Constant(a.type, 0), b.shl(a, b.select(big, ir.Constant(
            a.type, 0), c)))
    if signed:  # arithmetic: clamp to width - 1 gives the sign fill
        return b.ashr(a, b.select(big, ir.Constant(a.type, d.bits - 1), c))
    return b.select(big, ir.Constant(a.type, 0), b.lshr(a, b.select(big, ir.Constant(
        a.type, 0), c)))


_BINARY = ("add", "sub", "mul", "div", "rem", "max", "min", "and", "or", "xor", "shl", "shr")


@lowers(*_BINARY)
def _binary(lw: Lowering, op: Operation) -> list:
    d = dtype_of(op.lhs.type)
    if d in _PAIRED and op.name in ("add", "sub", "mul"):
        return map_pairs(lw, op, lambda a, c: _FLOAT_INSTR[op.name](lw.b, a, c))
    if d.is_float:
        return map_elements(lw, op, lambda a, c: demote(
            lw, _float_binary(lw, op.name, promote(lw, a, d), promote(lw, c, d)), d))
    if d.is_bool:
        if op.name not in ("and", "or", "xor", "max", "min"):
            raise op.error(f"'{op.name}' is not defined on bool")
        name = {"max": "or", "min": "and"}.get(op.name, op.name)
        return map_elements(lw, op, lambda a, c: _int_binary(lw, name, d, a, c))
    return map_elements(lw, op, lambda a, c: _int_binary(lw, op.name, d, a, c))


@lowers("neg", "not")
def _neg_not(lw: Lowering, op: Operation) -> list:
    d = dtype_of(op.x.type)
    b = lw.b
    if op.name == "not":
        return map_elements(lw, op, lambda x: b.xor(x, int_const(x.type, -1)))
    if d.is_float:
        return map_elements(lw, op, lambda x: demote(lw, b.fneg(promote(lw, x, d)), d))
    return map_elements(lw, op, lambda x: b.sub(ir.Constant(x.type, 0), x))


@lowers("abs")
def _abs(lw: Lowering, op: Operation) -> list:
    d = dtype_of(op.x.type)
    b = lw.b
    if d.is_float:
        return map_elements(lw, op, lambda x: lmath.unary(b, "abs", x, d, lw.target))
    if d.kind == "uint":
        return [list(lw.get(op.x))]
    zero = ir.Constant(ltypes.llvm_type(d), 0)
    return map_elements(lw, op, lambda x: b.select(b.icmp_signed("<", x, zero),
                                                   b.sub(zero, x), x))


_MATH = ("exp", "exp2", "log", "log2", "sqrt", "rsqrt", "tanh", "erf", "sin", "cos", "floor",
         "ceil")


# Transcendentals whose f64 versions need a device math library (libdevice on NVIDIA).
_LIBM = frozenset({"exp", "exp2", "log", "log2", "tanh", "erf", "sin", "cos"})


@lowers(*_MATH)
def _math(lw: Lowering, op: Operation) -> list:
    """Accurate by default; a kernel with `attrs {fast_math = true}` gets the target's
    approximate instructions for exp, exp2, log, log2, rsqrt, sin and cos."""
    d = dtype_of(op.x.type)
    if op.name in _LIBM and ltypes.compute_dtype(d) == dt.float64 and \
            not getattr(lw.target, "has_f64_libm", True):
        raise op.error(f"f64 '{op.name}' needs a device math library, which {lw.target.arch} "
                       "does not link yet", hint="compute in f32 (cast first)")
    fast = bool(lw.fn.attrs.get("fast_math", False))
    return map_elements(lw, op, lambda x: lmath.unary(lw.b, op.name, x, d, lw.target,
                                                      fast=fast))


@lowers("fma")
def _fma(lw: Lowering, op: Operation) -> list:
    d = dtype_of(op.a.type)
    if d in _PAIRED:
        return map_pairs(lw, op, lambda a, c, e: lw.b.call(
            _intrinsic(lw, "llvm.fma", a.type, 3), [a, c, e]))

    def one(a, c, e):
        a, c, e = (promote(lw, v, d) for v in (a, c, e))
        return demote(lw, lw.b.call(_intrinsic(lw, "llvm.fma", a.type, 3), [a, c, e]), d)
    return map_elements(lw, op, one)


_ORDERED = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


@lowers("cmp")
def _cmp(lw: Lowering, op: Operation) -> list:
    d = dtype_of(op.lhs.type)
    b = lw.b
    pred = _ORDERED[op.pred]
    if d.is_float:
        def one(x, y):
            x, y = promote(lw, x, d), promote(lw, y, d)
            if op.pred == "ne":  # true when unordered: NaN != anything
                return b.fcmp_unordered("!=", x, y)
            return b.fcmp_ordered(pred, x, y)
        return map_elements(lw, op, one)
    cmp = b.icmp_signed if d.kind == "int" else b.icmp_unsigned
    return map_elements(lw, op, lambda x, y: cmp(pred, x, y))


@lowers("select")
def _select(lw: Lowering, op: Operation) -> list:
    return map_elements(lw, op, lambda c, a, e: lw.b.select(c, a, e))


@lowers("cast")
def _cast(lw: Lowering, op: Operation) -> list:
    src, dst = dtype_of(op.x.type), dtype_of(op.results[0].type)
    if src == dst:
        return [list(lw.get(op.x))]
    words = _packed_words(lw, op, src, dst)
    if words is not None:  # low-bit values viewed from words: pairs straight from them
        if src.is_int:
            return [paired_fields_to_f16(lw.b, words, src.bits, src.kind == "int",
                                         lw.target)]
        return [paired_floats_to_f16(lw.b, words, src, lw.target)]
    if has_fast_cast(src, dst):  # low-bit -> f16/bf16: the bit tricks, two lanes at once
        if src.bits >= 8 or lw.target.narrow_int_vectors:
            return map_pairs(lw, op, lambda x: fast_cast(lw.b, x, src, dst))
        return map_elements(lw, op, lambda x: fast_cast(lw.b, x, src, dst))
    return map_elements(lw, op, lambda x: casts.cast(lw.b, x, src, dst, lw.target))


def _packed_words(lw: Lowering, op: Operation, src: DType, dst: DType) -> list | None:
    """The 32-bit words of a cast of 1..8-bit ints (or small floats, `has_paired_float`) to
    f16 whose operand is a `view` of words that stays in registers (each thread's elements
    are its words' fields, in order, in whole units of PAIRED_FIELDS:
    `convert._view_in_registers`); None for any other."""
    x = op.x
    paired = (src.is_int and src.bits in PAIRED_FIELDS) or has_paired_float(src)
    if dst != dt.float16 or not paired or not isinstance(x, OpResult):
        return None
    view = x.owner
    if view.name != "view":
        return None
    words_t = view.x.type
    if dtype_of(words_t).bits != 32 or not dtype_of(words_t).is_int:
        return None
    if view_layout(tile_layout(words_t), 32, src.bits) != tile_layout(x.type):
        return None
    words = list(lw.get(view.x))
    return words if len(words) % PAIRED_FIELDS[src.bits][0] == 0 else None


def _count(t) -> int:
    layout = tile_layout(t)
    return 1 if layout is None else layout.local_size


@lowers("constant")
def _constant(lw: Lowering, op: Operation) -> list:
    t = op.results[0].type
    return [[constant_of(dtype_of(t), op.value)] * _count(t)]


@lowers("splat")
def _splat(lw: Lowering, op: Operation) -> list:
    return [lw.get(op.x) * _count(op.results[0].type)]


@lowers("arange")
def _arange(lw: Lowering, op: Operation) -> list:
    layout = tile_layout(op.results[0].type)
    index = lw.index(layout)
    b = lw.b
    out = []
    for local in range(layout.local_size):
        c = coord(b, index, local, 0)
        out.append(b.add(c, i32(op.start)) if op.start else c)
    return [out]


def memory_type(element) -> ir.Type:
    """The LLVM type of one element in global memory (bool is a byte)."""
    if isinstance(element, PointerType):
        return ir.PointerType(addrspace=1)
    return ir.IntType(8) if element.is_bool else ltypes.llvm_type(element)


def offset_i64(b: ir.IRBuilder, v: ir.Value, d: DType) -> ir.Value:
    """An integer offset widened to i64 (sign- or zero-extended by its dtype)."""
    i64 = ir.IntType(64)
    if v.type == i64:
        return v
    if v.type.width > 64:
        return b.trunc(v, i64)
    return b.sext(v, i64) if d.kind == "int" else b.zext(v, i64)


@lowers("addptr")
def _addptr(lw: Lowering, op: Operation) -> list:
    pointee = element_of(op.ptr.type)
    pointee = pointee.pointee if isinstance(pointee, PointerType) else pointee
    if is_packed(pointee):
        raise op.error(f"pointers to {pointee} (not a whole number of bytes) are not supported",
                       hint="use a tensor view (load_view) for packed sub-byte data")
    et = memory_type(pointee)
    d = dtype_of(op.offset.type)
    b = lw.b
    return map_elements(lw, op, lambda p, o: b.gep(p, [offset_i64(b, o, d)],
                                                   source_etype=et))


__all__ = ["constant_of", "promote", "demote", "is_storage_only", "memory_type", "offset_i64",
           "map_elements"]
