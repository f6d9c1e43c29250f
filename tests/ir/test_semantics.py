"""tilec.ir.semantics against independent references: Python integers, numpy's native float
ops, ml_dtypes arithmetic and exact rationals."""
from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from tilec.ir import dtypes as dt
from tilec.ir.parser import parse_module
from tilec.ir.semantics import NotFoldable, binary, covers, evaluate

RNG = np.random.default_rng(1234)
INT_TYPES = ["i3", "u4", "i8", "u8", "i16", "i32", "u32", "i64", "u64", "i1", "u1"]


def op_of(stmt: str, *arg_types: str):
    """The single op of `stmt`, with operands %a, %b, %c of the given types."""
    names = "abc"
    params = ", ".join(f"%{names[i]}: {t}" for i, t in enumerate(arg_types))
    m = parse_module(f"func @f({params}) {{\n  {stmt}\n  return\n}}\n")
    return m.functions[0].body.block.ops[0]


def run(stmt: str, *args_and_types):
    types = args_and_types[1::2]
    op = op_of(stmt, *types)
    results = evaluate(op, list(args_and_types[0::2]))
    assert len(results) == len(op.results)
    for r, res in zip(results, op.results):
        t = res.type
        shape = getattr(t, "shape", ())
        assert r.shape == shape, (r.shape, shape)
    return results[0]


def rand_ints(d: dt.DType, n: int = 64) -> np.ndarray:
    if d.kind == "uint" and d.bits == 64:
        return RNG.integers(0, 2**64, n, dtype=np.uint64)
    return RNG.integers(d.min, d.max, n, endpoint=True, dtype=np.int64)


def wrap_py(v: int, d: dt.DType) -> int:
    v %= 1 << d.bits
    if d.kind == "int" and v >= 1 << (d.bits - 1):
        v -= 1 << d.bits
    return v


def c_div(a: int, b: int) -> tuple[int, int]:
    q = abs(a) // abs(b)
    q = q if (a >= 0) == (b >= 0) else -q
    return q, a - b * q


# ---- integers ----------------------------------------------------------------------------

INT_REFS = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "max": max, "min": min, "and": lambda a, b: a & b, "or": lambda a, b: a | b,
    "xor": lambda a, b: a ^ b,
}


@pytest.mark.parametrize("tname", INT_TYPES)
@pytest.mark.parametrize("opname", sorted(INT_REFS))
def test_int_binary_wraps(tname, opname):
    d = dt.dtype(tname)
    a, b = rand_ints(d), rand_ints(d)
    t = f"tile<64x{tname}>"
    got = run(f"%r = {opname} %a, %b : {t}", a, t, b, t)
    assert got.dtype == d.compute_dtype
    want = [wrap_py(INT_REFS[opname](int(x), int(y)), d) for x, y in zip(a, b)]
    assert [int(v) for v in got] == want


@pytest.mark.parametrize("tname", ["i3", "u4", "i8", "u32", "i64", "u64"])
def test_int_div_rem_truncate_and_divide_by_zero(tname):
    d = dt.dtype(tname)
    a, b = rand_ints(d), rand_ints(d)
    b[:8] = 0
    if d.kind == "int":
        a[8], b[8] = d.min, -1  # the one overflow: wraps to MIN
        b[9:12] = -1
    t = f"tile<64x{tname}>"
    q = run(f"%r = div %a, %b : {t}", a, t, b, t)
    r = run(f"%r = rem %a, %b : {t}", a, t, b, t)
    for x, y, gq, gr in zip(a, b, q, r):
        x, y = int(x), int(y)
        if y == 0:
            assert int(gq) == wrap_py(-1, d) and int(gr) == x
        else:
            wq, wr = c_div(x, y)
            assert (int(gq), int(gr)) == (wrap_py(wq, d), wrap_py(wr, d))


def test_int3_add_wraps():
    t = "tile<4xi3>"
    got = run(f"%r = add %a, %b : {t}", np.array([3, 1, -4, 2]), t, np.array([1, 1, -1, 2]), t)
    assert got.tolist() == [-4, 2, 3, -4]


@pytest.mark.parametrize("tname", ["u4", "i4", "i8", "u8", "i32", "u64", "i64"])
def test_shifts(tname):
    d = dt.dtype(tname)
    a = rand_ints(d)
    n = RNG.integers(0, d.bits + 3, 64)
    t = f"tile<64x{tname}>"
    left = run(f"%r = shl %a, %b : {t}", a, t, n, t)
    right = run(f"%r = shr %a, %b : {t}", a, t, n, t)
    for x, k, gl, gr in zip(a, n, left, right):
        x, k = int(x), int(k)
        assert int(gl) == (0 if k >= d.bits else wrap_py(x << k, d))
        if k >= d.bits:
            assert int(gr) == (-1 if x < 0 else 0)
        else:
            assert int(gr) == x >> k  # Python >> is arithmetic; unsigned x is >= 0


def test_u4_shr_is_logical():
    t = "tile<3xu4>"
    got = run(f"%r = shr %a, %b : {t}", np.array([15, 8, 9]), t, np.array([1, 3, 4]), t)
    assert got.tolist() == [7, 1, 0]


@pytest.mark.parametrize("tname", ["i3", "u4", "i8", "u64", "i64"])
def test_int_unary(tname):
    d = dt.dtype(tname)
    a = rand_ints(d)
    t = f"tile<64x{tname}>"
    for name, ref in [("neg", lambda x: -x), ("abs", abs), ("not", lambda x: ~x)]:
        got = run(f"%r = {name} %a : {t}", a, t)
        want = [wrap_py(ref(int(x)) if d.kind == "int" or name != "abs" else int(x), d)
                for x in a]
        assert [int(v) for v in got] == want, name


def test_bool_logic_and_not():
    a = np.array([True, True, False, False])
    b = np.array([True, False, True, False])
    t = "tile<4xbool>"
    assert run(f"%r = and %a, %b : {t}", a, t, b, t).tolist() == [True, False, False, False]
    assert run(f"%r = xor %a, %b : {t}", a, t, b, t).tolist() == [False, True, True, False]
    assert run(f"%r = not %a : {t}", a, t).tolist() == [False, False, True, True]


# ---- floats ------------------------------------------------------------------------------

NP_OPS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}
ML = {"bf16": ml_dtypes.bfloat16, "f8e4m3": ml_dtypes.float8_e4m3fn,
      "f8e5m2": ml_dtypes.float8_e5m2, "f16": np.float16, "f32": np.float32}


def rand_floats(tname: str, n: int = 256, scale: float = 4.0) -> np.ndarray:
    d = dt.dtype(tname)
    x = RNG.standard_normal(n) * scale
    return d.round(x)


@pytest.mark.parametrize("tname", sorted(ML))
@pytest.mark.parametrize("opname", sorted(NP_OPS))
def test_float_binary_correctly_rounded(tname, opname):
    # numpy's f16/f32 and ml_dtypes' (computed in f32, rounded once: exact for p <= 11)
    # arithmetic are correctly rounded; inputs stay far from overflow (|a| <~ 20 over
    # |b| >= 1/4: e4m3's 448 is not reached by a quotient either, whatever the draw).
    a, b = rand_floats(tname), rand_floats(tname)
    b[np.abs(b) < 0.25] = 1
    t = f"tile<256x{tname}>"
    got = run(f"%r = {opname} %a, %b : {t}", a, t, b, t)
    storage = ML[tname]
    want = NP_OPS[opname](a.astype(storage), b.astype(storage)).astype(np.float64)
    np.testing.assert_array_equal(got.astype(np.float64), want)


def test_f8e4m3_add_rounds_and_saturates():
    t = "tile<3xf8e4m3>"
    got = run(f"%r = add %a, %b : {t}", np.array([1.0, 448.0, 16.0]), t,
              np.array([0.0625, 448.0, 1.0]), t)
    # 1 + 1/16: a tie between 1 and 1.125 -> even (1); overflow saturates (no inf in E4M3);
    # 17 is a tie between 16 and 18 -> 16 (even mantissa).
    assert got.tolist() == [1.0, 448.0, 16.0]


def round_fraction(x: Fraction, d: dt.DType) -> float:
    """Correct RNE rounding of an exact rational into float dtype d (no overflow)."""
    guess = float(d.round(np.float64(float(x))))
    cands = {guess}
    for _ in range(2):
        for c in list(cands):
            up = np.nextafter(np.asarray(c, d.compute_dtype), np.inf)
            down = np.nextafter(np.asarray(c, d.compute_dtype), -np.inf)
            cands.update({float(up), float(down)})
    best = min(cands, key=lambda c: (abs(Fraction(c) - x),
                                     int(np.asarray(c, d.compute_dtype).view(
                                         np.uint32 if d == dt.float32 else np.uint64)) & 1))
    return best


@pytest.mark.parametrize("tname", ["f32", "f64"])
def test_fma_single_rounding(tname):
    d = dt.dtype(tname)
    n = 200
    a = d.round(RNG.standard_normal(n))
    b = d.round(RNG.standard_normal(n))
    # c close to -a*b makes the double-rounded a*b + c visibly wrong.
    c = d.round(-(a * b) * (1 + RNG.standard_normal(n) * 2.0**-20))
    c[:50] = d.round(RNG.standard_normal(50))
    # a*b + c = 1 + 2**-24 + 2**-70: float64 drops the tail and lands on an f32 tie, which
    # a double-rounding fma sends to 1; the correct result is 1 + 2**-23.
    a[50], b[50], c[50] = -(2.0**-24) * (1 + 2.0**-23), 1 - 2.0**-23, 1 + 2.0**-23
    if d == dt.float32:
        assert np.float32(a[50] * b[50] + c[50]) == 1.0
    t = f"tile<{n}x{tname}>"
    got = run(f"%r = fma %a, %b, %c : {t}", a, t, b, t, c, t)
    for x, y, z, g in zip(a, b, c, got):
        exact = Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z))
        want = float(exact) if d == dt.float64 else round_fraction(exact, d)
        assert float(g) == want, (x, y, z)


def test_float_max_min_propagate_nan_and_cmp():
    t = "tile<4xf32>"
    a = np.array([1.0, np.nan, 3.0, np.nan], np.float32)
    b = np.array([2.0, 1.0, np.nan, np.nan], np.float32)
    assert np.isnan(run(f"%r = max %a, %b : {t}", a, t, b, t)[1:]).all()
    assert np.isnan(run(f"%r = min %a, %b : {t}", a, t, b, t)[1:]).all()
    bt = "tile<4xbool>"
    for pred in ("eq", "lt", "le", "gt", "ge"):
        got = run(f"%r = cmp %a, %b {{pred = \"{pred}\"}} : {bt}", a, t, b, t)
        assert got[1:].tolist() == [False] * 3
    got = run(f"%r = cmp %a, %b {{pred = \"ne\"}} : {bt}", a, t, b, t)
    assert got.tolist() == [True] * 4


@pytest.mark.parametrize("tname", ["f32", "bf16", "f16", "f8e5m2"])
def test_float_unary_rounded_once(tname):
    d = dt.dtype(tname)
    x = np.abs(rand_floats(tname, scale=2.0)) + d.eps
    t = f"tile<256x{tname}>"
    refs = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh, "sin": np.sin,
            "cos": np.cos, "exp2": np.exp2, "log2": np.log2, "floor": np.floor,
            "ceil": np.ceil, "rsqrt": lambda v: 1 / np.sqrt(v)}
    for name, ref in refs.items():
        got = run(f"%r = {name} %a : {t}", x, t)
        assert got.dtype == d.compute_dtype
        np.testing.assert_array_equal(got, d.round(ref(x.astype(np.float64))), err_msg=name)
    got = run(f"%r = erf %a : {t}", x, t)
    np.testing.assert_array_equal(got, d.round(np.array([math.erf(v) for v in x])))
    assert run(f"%r = neg %a : {t}", x, t).tolist() == (-x).tolist()


def test_sqrt_f32_matches_numpy():
    x = np.abs(RNG.standard_normal(1000).astype(np.float32)) * 100
    t = "tile<1000xf32>"
    np.testing.assert_array_equal(run(f"%r = sqrt %a : {t}", x, t), np.sqrt(x))


# ---- casts, constants, select, views --------------------------------------------------------


def test_cast_rules():
    t_in, t_out = "tile<5xf32>", "tile<5xi8>"
    x = np.array([1.9, -1.9, 300.0, -300.0, np.nan], np.float32)
    assert run(f"%r = cast %a : {t_out}", x, t_in).tolist() == [1, -1, 127, -128, 0]
    x = np.array([1.0, 1.0625, 1.1875, 500.0, -1e9], np.float32)
    got = run("%r = cast %a : tile<5xf8e4m3>", x, t_in)
    assert got.tolist() == [1.0, 1.0, 1.25, 448.0, -448.0]
    got = run("%r = cast %a : tile<3xu4>", np.array([17, -1, 5]), "tile<3xi32>")
    assert got.tolist() == [1, 15, 5]


def test_constant_splat_select_arange():
    assert run("%r = constant {value = 0.1} : tile<2xbf16>").tolist() == [
        float(np.float32(ml_dtypes.bfloat16(0.1)))] * 2
    assert run("%r = constant {value = -1} : i3").shape == ()
    got = run("%r = splat %a : tile<2x3xi8>", np.int64(-5), "i8")
    assert got.shape == (2, 3) and (got == -5).all()
    assert run("%r = arange {start = 3, end = 7} : tile<4xi32>").tolist() == [3, 4, 5, 6]
    c = np.array([True, False, True])
    got = run("%r = select %a, %b, %c : tile<3xf16>", c, "tile<3xbool>",
              np.ones(3), "tile<3xf16>", np.zeros(3), "tile<3xf16>")
    assert got.tolist() == [1, 0, 1] and got.dtype == np.float16


def test_view_u8_u4_roundtrip():
    x = np.array([[0x12, 0xAB, 0x00, 0xFF]])
    lo_hi = run("%r = view %a : tile<1x8xu4>", x, "tile<1x4xu8>")
    assert lo_hi.tolist() == [[2, 1, 11, 10, 0, 0, 15, 15]]  # little-endian: low nibble first
    back = run("%r = view %a : tile<1x4xu8>", lo_hi, "tile<1x8xu4>")
    assert back.tolist() == x.tolist()


def test_view_matches_numpy_for_byte_types():
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    got = run("%r = view %a : tile<3x16xu8>", x, "tile<3x4xf32>")
    np.testing.assert_array_equal(got, x.view(np.uint8))
    got = run("%r = view %a : tile<3x8xi16>", x, "tile<3x4xf32>")
    np.testing.assert_array_equal(got, x.view(np.int16))
    y = x.astype(ml_dtypes.bfloat16)
    got = run("%r = view %a : tile<3x4xu16>", y.astype(np.float32), "tile<3x4xbf16>")
    np.testing.assert_array_equal(got, y.view(np.uint16))
    back = run("%r = view %a : tile<3x4xbf16>", got, "tile<3x4xu16>")
    np.testing.assert_array_equal(back, y.astype(np.float32))


def test_view_i3_odd_width_roundtrip():
    x = rand_ints(dt.int3, 16).reshape(2, 8)
    bits = run("%r = view %a : tile<2x3xu8>", x, "tile<2x8xi3>")
    back = run("%r = view %a : tile<2x8xi3>", bits, "tile<2x3xu8>")
    assert back.tolist() == x.tolist()
    packed = np.packbits(((x.astype(np.uint64)[..., None] >> np.arange(3, dtype=np.uint64)) & 1
                          ).astype(np.uint8).reshape(2, 24), axis=-1, bitorder="little")
    assert bits.tolist() == packed.tolist()


# ---- shape ops ------------------------------------------------------------------------------


def test_shape_ops():
    x = RNG.integers(-100, 100, (2, 3, 4))
    t = "tile<2x3x4xi32>"
    assert (run("%r = reshape %a : tile<6x4xi32>", x, t) == x.reshape(6, 4)).all()
    got = run("%r = permute %a {dims = [2, 0, 1]} : tile<4x2x3xi32>", x, t)
    assert (got == x.transpose(2, 0, 1)).all()
    got = run("%r = expand_dims %a {axis = 1} : tile<2x1x3x4xi32>", x, t)
    assert got.shape == (2, 1, 3, 4)
    got = run("%r = broadcast %a : tile<2x5x4xi32>", x[:, :1], "tile<2x1x4xi32>")
    assert (got == np.broadcast_to(x[:, :1], (2, 5, 4))).all()
    assert (run("%r = convert_layout %a : tile<2x3x4xi32>", x, t) == x).all()


# ---- reductions, scans, dot ------------------------------------------------------------------


def test_reduce():
    x = RNG.standard_normal((8, 16)).astype(np.float32)
    t = "tile<8x16xf32>"
    got = run('%r = reduce %a {axis = 1, kind = "sum"} : tile<8xf32>', x, t)
    np.testing.assert_array_equal(got, x.astype(np.float64).sum(1).astype(np.float32))
    got = run('%r = reduce %a {axis = 0, kind = "max"} : tile<16xf32>', x, t)
    np.testing.assert_array_equal(got, x.max(0))
    u = RNG.integers(0, 16, (4, 8))
    got = run('%r = reduce %a {axis = 1, kind = "sum"} : tile<4xu4>', u, "tile<4x8xu4>")
    assert got.tolist() == (u.sum(1) % 16).tolist()
    got = run('%r = reduce %a {axis = 1, kind = "xor"} : tile<4xu4>', u, "tile<4x8xu4>")
    assert got.tolist() == np.bitwise_xor.reduce(u, axis=1).tolist()
    got = run('%r = reduce %a {axis = 0, kind = "prod"} : i8', np.array([4, 8, 8]), "tile<3xi8>")
    assert got.shape == () and int(got) == 0  # 256 wraps to 0
    b = np.array([[True, False], [True, True]])
    got = run('%r = reduce %a {axis = 1, kind = "and"} : tile<2xbool>', b, "tile<2x2xbool>")
    assert got.tolist() == [False, True]


def test_argreduce_first_index_and_nan():
    x = np.array([[1.0, 3.0, 3.0, -1.0],
                  [np.nan, 5.0, np.nan, 0.0],
                  [np.inf, 2.0, np.nan, -np.inf],
                  [np.nan, np.nan, np.nan, np.nan]], np.float32)
    t = "tile<4x4xf32>"
    mx = run('%r = argreduce %a {axis = 1, kind = "max"} : tile<4xi32>', x, t)
    mn = run('%r = argreduce %a {axis = 1, kind = "min"} : tile<4xi32>', x, t)
    assert mx.tolist() == [1, 0, 2, 0]
    assert mn.tolist() == [3, 3, 3, 0]
    i = np.array([[2, 7, 7, 0], [5, 5, 1, 1]])
    got = run('%r = argreduce %a {axis = 1, kind = "min"} : tile<2xi32>', i, "tile<2x4xi8>")
    assert got.tolist() == [3, 2]


def test_scan():
    x = RNG.integers(-5, 5, (3, 6))
    t = "tile<3x6xi8>"
    got = run('%r = scan %a {axis = 1, kind = "sum"} : tile<3x6xi8>', x, t)
    assert (got == np.cumsum(x, 1)).all()
    got = run('%r = scan %a {axis = 1, kind = "sum", reverse = true} : tile<3x6xi8>', x, t)
    assert (got == np.flip(np.cumsum(np.flip(x, 1), 1), 1)).all()
    got = run('%r = scan %a {axis = 0, kind = "max"} : tile<3x6xi8>', x, t)
    assert (got == np.maximum.accumulate(x, 0)).all()
    u = np.full((1, 5), 7)
    got = run('%r = scan %a {axis = 1, kind = "sum"} : tile<1x5xu4>', u, "tile<1x5xu4>")
    assert got.tolist() == [[7, 14, 5, 12, 3]]


def test_dot():
    a = RNG.standard_normal((16, 8)).astype(np.float16)
    b = RNG.standard_normal((8, 4)).astype(np.float16)
    c = RNG.standard_normal((16, 4)).astype(np.float32)
    got = run("%r = dot %a, %b, %c : tile<16x4xf32>",
              a, "tile<16x8xf16>", b, "tile<8x4xf16>", c, "tile<16x4xf32>")
    want = (a.astype(np.float64) @ b.astype(np.float64) + c).astype(np.float32)
    np.testing.assert_array_equal(got, want)
    ai = RNG.integers(-128, 128, (4, 64))
    bi = RNG.integers(-128, 128, (64, 4))
    ci = RNG.integers(-1000, 1000, (4, 4))
    got = run("%r = dot %a, %b, %c : tile<4x4xi32>",
              ai, "tile<4x64xi8>", bi, "tile<64x4xi8>", ci, "tile<4x4xi32>")
    assert (got == ai @ bi + ci).all()
    x = np.full((2, 2), 1 + 2.0**-20, np.float32)
    got = run('%r = dot %a, %b, %c {precision = "tf32"} : tile<2x2xf32>',
              x, "tile<2x2xf32>", x, "tile<2x2xf32>", np.zeros((2, 2)), "tile<2x2xf32>")
    assert (got == 2.0).all()  # tf32 keeps 10 mantissa bits: 1 + 2**-20 -> 1


def test_reduce_custom_with_region_callback():
    m = parse_module("""func @f(%a: tile<3x4xi32>) {
  %r = reduce_custom %a {axis = 1} : tile<3xi32> {
  ^(%x: i32, %y: i32):
    %s = max %x, %y : i32
    yield %s
  }
  return
}
""")
    op = m.functions[0].body.block.ops[0]
    inner = op.regions[0].block.ops[0]

    def run_region(region, args):
        return evaluate(inner, args)

    x = RNG.integers(-50, 50, (3, 4))
    assert evaluate(op, [x], run_region)[0].tolist() == x.max(1).tolist()
    with pytest.raises(NotFoldable):
        evaluate(op, [x])


def test_not_foldable_and_coverage():
    op = op_of("%v = load_view %a, %b : tile<4xf32>", "tensor<?xf32>", "i32")
    assert not covers(op)
    with pytest.raises(NotFoldable):
        evaluate(op, [None, 0])
    with pytest.raises(KeyError):  # the folder may catch KeyError too
        evaluate(op_of("%p = addptr %a, %b : ptr<f32>", "ptr<f32>", "i32"), [0, 1])
    from tilec.ir.ops import arith, tile
    pure = {cls.name for mod in (arith, tile) for cls in vars(mod).values()
            if isinstance(cls, type) and getattr(cls, "name", "")
            and cls.__module__ == mod.__name__}
    assert all(covers(n) for n in pure), sorted(n for n in pure if not covers(n))


def test_binary_helper_and_python_operands():
    assert binary("add", dt.int3, 3, 1).tolist() == -4
    got = evaluate(op_of("%r = add %a, %b : i3", "i3", "i3"), [3, 1])[0]
    assert got.shape == () and int(got) == -4
    got = evaluate(op_of("%r = mul %a, %b : bf16", "bf16", "bf16"), [1.1, 1.0])[0]
    assert float(got) == float(ml_dtypes.bfloat16(1.1))
