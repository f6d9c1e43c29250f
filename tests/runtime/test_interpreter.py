"""The CPU interpreter on kernels written as tile-IR text, against numpy references.

Outputs are poisoned (NaN or a sentinel) before each launch, so a kernel that writes nothing
fails, and inputs are random and nonzero."""
from __future__ import annotations

import time

import ml_dtypes
import numpy as np
import pytest

from tilec.errors import LaunchError, TilecError
from tilec.ir import dtypes as dt
from tilec.ir.parser import parse_module
from tilec.ir.verifier import verify
from tilec.runtime.interpreter import run
from tilec.runtime.tensor import PackedTensor, pack, tensor_info, unpack

RNG = np.random.default_rng(7)
SENTINEL = -12345


def kernel(text: str):
    return verify(parse_module(text))


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


# ---- views -------------------------------------------------------------------------------

VECTOR_ADD = kernel("""func @add(%x: tensor<?xf32>, %y: tensor<?xf32>, %out: tensor<?xf32>) {
  %pid = program_id {axis = 0} : i32
  %bs = constant {value = 128} : i32
  %off = mul %pid, %bs : i32
  %a = load_view %x, %off : tile<128xf32>
  %b = load_view %y, %off : tile<128xf32>
  %c = add %a, %b : tile<128xf32>
  store_view %out, [%off], %c
  return
}
""")


@pytest.mark.parametrize("n", [1, 128, 1000])
def test_vector_add_ragged_tail(n):
    x = RNG.standard_normal(n).astype(np.float32)
    y = RNG.standard_normal(n).astype(np.float32)
    out = np.full(n + 5, np.nan, np.float32)  # the tail past n must stay untouched
    run(VECTOR_ADD, "add", [x, y, out[:n]], (cdiv(n, 128),))
    np.testing.assert_array_equal(out[:n], x + y)
    assert np.isnan(out[n:]).all()


def test_strided_arguments_and_int32_copy_back():
    m = kernel("""func @copy(%x: tensor<?x?xi32>, %y: tensor<?x?xi32>, %s: tensor<?xi32>) {
  %z = constant {value = 0} : i32
  %t = load_view %x, %z, %z : tile<16x8xi32>
  store_view %y, [%z, %z], %t
  %s0 = tensor_stride %x {axis = 0} : i32
  %s1 = tensor_stride %x {axis = 1} : i32
  %p = tensor_ptr %s : ptr<i32>
  store %p, %s0
  %one = constant {value = 1} : i32
  %p1 = addptr %p, %one : ptr<i32>
  store %p1, %s1
  return
}
""")
    base = RNG.integers(-1000, 1000, (12, 10)).astype(np.int32)
    x = base[::2, ::-1].T  # shape (10, 6), negative and non-unit strides
    y = np.full((10, 6), SENTINEL, np.int32)
    s = np.full(2, SENTINEL, np.int32)
    run(m, "copy", [x, y, s], (1,))
    assert (y == x).all()
    assert s.tolist() == [-1, 20]


# ---- reductions ----------------------------------------------------------------------------

SOFTMAX = kernel("""func @softmax(%x: tensor<?x?xf32>, %y: tensor<?x?xf32>) {
  %row = program_id {axis = 0} : i32
  %zero = constant {value = 0} : i32
  %t = load_view %x, %row, %zero : tile<1x128xf32>
  %v = reshape %t : tile<128xf32>
  %cols = arange {start = 0, end = 128} : tile<128xi32>
  %n = tensor_dim %x {axis = 1} : i32
  %ns = splat %n : tile<128xi32>
  %in = cmp %cols, %ns {pred = "lt"} : tile<128xbool>
  %ninf = constant {value = -inf} : tile<128xf32>
  %xm = select %in, %v, %ninf : tile<128xf32>
  %m = reduce %xm {axis = 0, kind = "max"} : f32
  %ms = splat %m : tile<128xf32>
  %d = sub %xm, %ms : tile<128xf32>
  %e = exp %d : tile<128xf32>
  %s = reduce %e {axis = 0, kind = "sum"} : f32
  %ss = splat %s : tile<128xf32>
  %r = div %e, %ss : tile<128xf32>
  %r2 = reshape %r : tile<1x128xf32>
  store_view %y, [%row, %zero], %r2
  return
}
""")


def test_row_softmax():
    x = RNG.standard_normal((37, 100)).astype(np.float32) * 3
    y = np.full_like(x, np.nan)
    run(SOFTMAX, "softmax", [x, y], (37,))
    e = np.exp(x.astype(np.float64) - x.max(1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(1, keepdims=True), rtol=1e-6, atol=1e-7)


MATMUL = kernel("""func @matmul(%a: tensor<?x?xf16>, %b: tensor<?x?xf16>, %c: tensor<?x?xf32>) {
  %pm = program_id {axis = 0} : i32
  %pn = program_id {axis = 1} : i32
  %bs = constant {value = 32} : i32
  %rm = mul %pm, %bs : i32
  %rn = mul %pn, %bs : i32
  %K = tensor_dim %a {axis = 1} : i32
  %z = constant {value = 0} : i32
  %acc0 = constant {value = 0.0} : tile<32x32xf32>
  %acc = for %z, %K, %bs, %acc0 : tile<32x32xf32> {
  ^(%k: i32, %acc_in: tile<32x32xf32>):
    %ta = load_view %a, %rm, %k : tile<32x32xf16>
    %tb = load_view %b, %k, %rn : tile<32x32xf16>
    %next = dot %ta, %tb, %acc_in : tile<32x32xf32>
    yield %next
  }
  store_view %c, [%rm, %rn], %acc
  return
}
""")


@pytest.mark.parametrize("mkn", [(100, 70, 50), (33, 1, 65), (128, 128, 128)])
def test_tiled_matmul_ragged(mkn):
    M, K, N = mkn
    a = RNG.standard_normal((M, K)).astype(np.float16)
    b = RNG.standard_normal((K, N)).astype(np.float16)
    c = np.full((M, N), np.nan, np.float32)
    start = time.perf_counter()
    run(MATMUL, "matmul", [a, b, c], (cdiv(M, 32), cdiv(N, 32)))
    elapsed = time.perf_counter() - start
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
    if mkn == (128, 128, 128):
        assert elapsed < 0.5, elapsed


# ---- pointers -------------------------------------------------------------------------------

GATHER = kernel("""func @gather(%src: tensor<?xf32>, %idx: tensor<?xi32>, %out: tensor<?xf32>) {
  %pid = program_id {axis = 0} : i32
  %bs = constant {value = 64} : i32
  %off = mul %pid, %bs : i32
  %i = load_view %idx, %off : tile<64xi32>
  %n = tensor_dim %idx {axis = 0} : i32
  %ar = arange {start = 0, end = 64} : tile<64xi32>
  %offs = splat %off : tile<64xi32>
  %pos = add %ar, %offs : tile<64xi32>
  %ns = splat %n : tile<64xi32>
  %valid = cmp %pos, %ns {pred = "lt"} : tile<64xbool>
  %zero = constant {value = 0} : tile<64xi32>
  %ge = cmp %i, %zero {pred = "ge"} : tile<64xbool>
  %m = and %valid, %ge : tile<64xbool>
  %base = tensor_ptr %src : ptr<f32>
  %bases = splat %base : tile<64xptr<f32>>
  %ptrs = addptr %bases, %i : tile<64xptr<f32>>
  %other = constant {value = -1.0} : tile<64xf32>
  %v = load %ptrs, mask %m, other %other : tile<64xf32>
  store_view %out, [%off], %v
  return
}
""")


def test_pointer_gather_with_mask_and_other():
    src = RNG.standard_normal(50).astype(np.float32)
    idx = RNG.integers(0, 50, 150).astype(np.int32)
    idx[::7] = -3  # masked off: reads `other`, and would be out of bounds otherwise
    out = np.full(150, np.nan, np.float32)
    run(GATHER, "gather", [src, idx, out], (cdiv(150, 64),))
    want = np.where(idx >= 0, src[np.clip(idx, 0, None)], -1.0)
    np.testing.assert_array_equal(out, want)


def test_unmasked_out_of_bounds_pointer_is_an_error():
    m = kernel("""func @oob(%x: tensor<?xf32>, %y: tensor<?xf32>) {
  %base = tensor_ptr %x : ptr<f32>
  %bases = splat %base : tile<16xptr<f32>>
  %ar = arange {start = 0, end = 16} : tile<16xi32>
  %ptrs = addptr %bases, %ar : tile<16xptr<f32>>
  %v = load %ptrs : tile<16xf32>
  return
}
""")
    x = RNG.standard_normal(10).astype(np.float32)
    with pytest.raises(TilecError) as err:
        run(m, "oob", [x, x], (1,))
    text = str(err.value)
    assert "out of bounds" in text and "<string>:6:8" in text and "(0,)" in text
    assert "element 10" in text


def test_pointer_tile_shape_ops_and_scatter():
    # out[j, i] = x[i, j] through a 2-D tile of pointers built with expand_dims/broadcast.
    m = kernel("""func @t(%x: tensor<?x?xf32>, %out: tensor<?x?xf32>) {
  %r = arange {start = 0, end = 4} : tile<4xi32>
  %c = arange {start = 0, end = 8} : tile<8xi32>
  %r2 = expand_dims %r {axis = 1} : tile<4x1xi32>
  %c2 = expand_dims %c {axis = 0} : tile<1x8xi32>
  %rb = broadcast %r2 : tile<4x8xi32>
  %cb = broadcast %c2 : tile<4x8xi32>
  %s0 = tensor_stride %x {axis = 0} : i32
  %s0t = splat %s0 : tile<4x8xi32>
  %ro = mul %rb, %s0t : tile<4x8xi32>
  %o = add %ro, %cb : tile<4x8xi32>
  %xp = tensor_ptr %x : ptr<f32>
  %xps = splat %xp : tile<4x8xptr<f32>>
  %src = addptr %xps, %o : tile<4x8xptr<f32>>
  %v = load %src : tile<4x8xf32>
  %vt = permute %v {dims = [1, 0]} : tile<8x4xf32>
  %op = tensor_ptr %out : ptr<f32>
  %ops = splat %op : tile<4x8xptr<f32>>
  %t8 = constant {value = 4} : tile<4x8xi32>
  %co = mul %cb, %t8 : tile<4x8xi32>
  %dsto = add %co, %rb : tile<4x8xi32>
  %dst = addptr %ops, %dsto : tile<4x8xptr<f32>>
  %dstt = permute %dst {dims = [1, 0]} : tile<8x4xptr<f32>>
  %lim = constant {value = 6} : tile<4x8xi32>
  %keep = cmp %cb, %lim {pred = "lt"} : tile<4x8xbool>
  %keept = permute %keep {dims = [1, 0]} : tile<8x4xbool>
  store %dstt, %vt, mask %keept
  return
}
""")
    x = RNG.standard_normal((4, 8)).astype(np.float32)
    out = np.full((8, 4), np.nan, np.float32)
    run(m, "t", [x, out], (1,))
    np.testing.assert_array_equal(out[:6], x.T[:6])
    assert np.isnan(out[6:]).all()


# ---- atomics -------------------------------------------------------------------------------

HIST = kernel("""func @hist(%x: tensor<?xi32>, %h: tensor<?xi32>, %old: tensor<?xi32>) {
  %pid = program_id {axis = 0} : i32
  %bs = constant {value = 64} : i32
  %off = mul %pid, %bs : i32
  %v = load_view %x, %off : tile<64xi32>
  %n = tensor_dim %x {axis = 0} : i32
  %ar = arange {start = 0, end = 64} : tile<64xi32>
  %offs = splat %off : tile<64xi32>
  %pos = add %ar, %offs : tile<64xi32>
  %ns = splat %n : tile<64xi32>
  %valid = cmp %pos, %ns {pred = "lt"} : tile<64xbool>
  %hb = tensor_ptr %h : ptr<i32>
  %hbs = splat %hb : tile<64xptr<i32>>
  %ptrs = addptr %hbs, %v : tile<64xptr<i32>>
  %one = constant {value = 1} : tile<64xi32>
  %o = atomic_rmw %ptrs, %one, mask %valid {kind = "add"} : tile<64xi32>
  store_view %old, [%off], %o
  return
}
""")


def test_atomic_add_histogram_with_duplicates():
    x = RNG.integers(0, 5, 150).astype(np.int32)
    h = np.zeros(5, np.int32)
    old = np.full(150, SENTINEL, np.int32)
    run(HIST, "hist", [x, h, old], (3,))
    assert h.tolist() == np.bincount(x, minlength=5).tolist()
    seen = [0] * 5  # sequential semantics: programs in order, lanes in order
    for i, v in enumerate(x):
        assert old[i] == seen[v]
        seen[v] += 1


def test_atomic_max_xchg_and_cas():
    m = kernel("""func @k(%f: tensor<?xf32>, %vals: tensor<?xf32>, %slot: tensor<?xi32>,
                   %got: tensor<?xi32>, %sw: tensor<?xi32>) {
  %pid = program_id {axis = 0} : i32
  %z = constant {value = 0} : i32
  %v = load_view %vals, %z : tile<8xf32>
  %fp = tensor_ptr %f : ptr<f32>
  %fps = splat %fp : tile<8xptr<f32>>
  %zi = constant {value = 0} : tile<8xi32>
  %same = addptr %fps, %zi : tile<8xptr<f32>>
  %o = atomic_rmw %same, %v {kind = "max"} : tile<8xf32>
  %sp = tensor_ptr %slot : ptr<i32>
  %one = constant {value = 1} : i32
  %me = add %pid, %one : i32
  %prev = atomic_cas %sp, %z, %me : i32
  %gp = tensor_ptr %got : ptr<i32>
  %gpi = addptr %gp, %pid : ptr<i32>
  store %gpi, %prev
  %swp = tensor_ptr %sw : ptr<i32>
  %x = atomic_rmw %swp, %me {kind = "xchg"} : i32
  return
}
""")
    f = np.array([-100.0], np.float32)
    vals = RNG.standard_normal(8).astype(np.float32)
    slot = np.zeros(1, np.int32)
    got = np.full(3, SENTINEL, np.int32)
    sw = np.full(1, SENTINEL, np.int32)
    run(m, "k", [f, vals, slot, got, sw], (3,))
    assert f[0] == vals.max()
    assert slot[0] == 1 and got.tolist() == [0, 1, 1]  # only program 0 swaps
    assert sw[0] == 3


# ---- control flow -----------------------------------------------------------------------------

COLLATZ = kernel("""func @collatz(%out: tensor<?xi32>) {
  %pid = program_id {axis = 0} : i32
  %one = constant {value = 1} : i32
  %n0 = add %pid, %one : i32
  %z = constant {value = 0} : i32
  %two = constant {value = 2} : i32
  %n, %steps = while %n0, %z : i32, i32 {
  ^(%a: i32, %s: i32):
    %c = cmp %a, %one {pred = "ne"} : bool
    condition %c, %a, %s
  } {
  ^(%a2: i32, %s2: i32):
    %r = rem %a2, %two : i32
    %odd = cmp %r, %z {pred = "ne"} : bool
    %next = if %odd : i32 {
      %three = constant {value = 3} : i32
      %t = mul %a2, %three : i32
      %t1 = add %t, %one : i32
      yield %t1
    } {
      %h = div %a2, %two : i32
      yield %h
    }
    %s3 = add %s2, %one : i32
    yield %next, %s3
  }
  %ptr = tensor_ptr %out : ptr<i32>
  %p = addptr %ptr, %pid : ptr<i32>
  store %p, %steps
  return
}
""")


def test_while_and_if_else():
    out = np.full(30, SENTINEL, np.int32)
    run(COLLATZ, "collatz", [out], (30,))

    def steps(n):
        k = 0
        while n != 1:
            n = 3 * n + 1 if n % 2 else n // 2
            k += 1
        return k
    assert out.tolist() == [steps(n) for n in range(1, 31)]


def test_scan_and_argreduce():
    m = kernel("""func @k(%x: tensor<?x?xf32>, %cs: tensor<?x?xf32>, %am: tensor<?xi32>) {
  %z = constant {value = 0} : i32
  %t = load_view %x, %z, %z : tile<4x16xf32>
  %c = scan %t {axis = 1, kind = "sum"} : tile<4x16xf32>
  store_view %cs, [%z, %z], %c
  %rc = scan %t {axis = 1, kind = "max", reverse = true} : tile<4x16xf32>
  %a = argreduce %rc {axis = 1, kind = "min"} : tile<4xi32>
  %b = argreduce %t {axis = 1, kind = "max"} : tile<4xi32>
  %ab = add %a, %b : tile<4xi32>
  %ab2 = reshape %ab : tile<4xi32>
  store_view %am, [%z], %ab2
  return
}
""")
    x = RNG.standard_normal((4, 16)).astype(np.float32)
    cs = np.full((4, 16), np.nan, np.float32)
    am = np.full(4, SENTINEL, np.int32)
    run(m, "k", [x, cs, am], (1,))
    np.testing.assert_array_equal(cs, np.cumsum(x.astype(np.float64), 1).astype(np.float32))
    rc = np.flip(np.maximum.accumulate(np.flip(x, 1), 1), 1)
    assert am.tolist() == (np.argmin(rc, 1) + np.argmax(x, 1)).tolist()


def test_call_reduce_custom_and_print(capsys):
    m = kernel("""func @twice(%v: tile<16xf32>) -> f32 {
  %w = add %v, %v : tile<16xf32>
  %r = reduce_custom %w {axis = 0} : f32 {
  ^(%p: f32, %q: f32):
    %mx = max %p, %q : f32
    yield %mx
  }
  return %r
}

func @k(%x: tensor<?xf32>, %y: tensor<?xf32>) {
  %z = constant {value = 0} : i32
  %v = load_view %x, %z : tile<16xf32>
  %r = call %v {callee = @twice} : f32
  print %r {prefix = "max2"}
  %p = tensor_ptr %y : ptr<f32>
  store %p, %r
  return
}
""")
    x = RNG.standard_normal(16).astype(np.float32)
    y = np.full(1, np.nan, np.float32)
    run(m, "k", [x, y], (2,))
    assert y[0] == 2 * x.max()
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("max2 pid (0,)") and "(1,)" in out[1]


def test_shared_memory_and_copy_async():
    m = kernel("""func @k(%x: tensor<?x?xf32>, %y: tensor<?x?xf32>) {
  %buf = shared_alloc : tile<2x4x8xf32, shared>
  %z = constant {value = 0} : i32
  %one = constant {value = 1} : i32
  %s1 = shared_index %buf, %one : tile<4x8xf32, shared>
  %s0 = shared_index %buf, %z : tile<4x8xf32, shared>
  copy_async %x, [%z, %z], %s1
  async_wait
  barrier
  %t = shared_load %s1 : tile<4x8xf32>
  %t2 = add %t, %t : tile<4x8xf32>
  shared_store %s0, %t2
  %u = shared_load %s0 : tile<4x8xf32>
  store_view %y, [%z, %z], %u
  return
}
""")
    x = RNG.standard_normal((3, 8)).astype(np.float32)
    y = np.full((3, 8), np.nan, np.float32)
    run(m, "k", [x, y], (1,))
    np.testing.assert_array_equal(y, 2 * x)


def test_masked_off_copy_async_reads_nothing_and_fills_zeros():
    m = kernel("""func @k(%x: tensor<?x?xf32>, %y: tensor<?x?xf32>, %go: i32) {
  %buf = shared_alloc : tile<4x8xf32, shared>
  %z = constant {value = 0} : i32
  %on = cmp %go, %z {pred = "ne"} : bool
  copy_async %x, [%z, %z], %buf, mask %on
  async_wait
  barrier
  %t = shared_load %buf : tile<4x8xf32>
  store_view %y, [%z, %z], %t
  return
}
""")
    x = RNG.standard_normal((4, 8)).astype(np.float32)
    for go, want in ((1, x), (0, np.zeros_like(x))):
        y = np.full((4, 8), np.nan, np.float32)
        run(m, "k", [x, y, go], (1,))
        np.testing.assert_array_equal(y, want)


# ---- dtypes through memory ------------------------------------------------------------------


def test_packed_u4_dequantize_and_packed_output():
    m = kernel("""func @deq(%w: tensor<?x?xu4>, %raw: tensor<?x?xu8>, %out: tensor<?x?xf32>,
                     %out2: tensor<?x?xf32>, %inc: tensor<?x?xu4>) {
  %z = constant {value = 0} : i32
  %t = load_view %w, %z, %z : tile<4x34xu4>
  %f = cast %t : tile<4x34xf32>
  %sc = constant {value = 0.5} : tile<4x34xf32>
  %d = mul %f, %sc : tile<4x34xf32>
  store_view %out, [%z, %z], %d
  %b = load_view %raw, %z, %z : tile<4x17xu8>
  %nib = view %b : tile<4x34xu4>
  %g = cast %nib : tile<4x34xf32>
  store_view %out2, [%z, %z], %g
  %one = constant {value = 1} : tile<4x34xu4>
  %t1 = add %t, %one : tile<4x34xu4>
  %part = reshape %t1 : tile<4x34xu4>
  store_view %inc, [%z, %z], %part
  return
}
""")
    w = RNG.integers(0, 16, (4, 33))
    packed = pack(w, "u4")
    assert packed.data.shape == (4, 17)
    raw = packed.data.copy()  # the same bytes, seen as u8
    out = np.full((4, 33), np.nan, np.float32)
    out2 = np.full((4, 33), np.nan, np.float32)
    inc_init = RNG.integers(0, 16, (5, 40))
    inc = pack(inc_init, dt.uint4)
    run(m, "deq", [packed, raw, out, out2, inc], (1,))
    np.testing.assert_array_equal(out, w * 0.5)
    np.testing.assert_array_equal(out2, w)
    want = inc_init.copy()
    want[:4, :34] = np.concatenate([(w + 1) % 16, np.ones((4, 1), int)], 1)
    assert unpack(inc).tolist() == want.tolist()  # unwritten elements keep their bits


def test_bf16_through_ml_dtypes():
    m = kernel("""func @k(%x: tensor<?xbf16>, %y: tensor<?xbf16>) {
  %pid = program_id {axis = 0} : i32
  %bs = constant {value = 32} : i32
  %off = mul %pid, %bs : i32
  %v = load_view %x, %off : tile<32xbf16>
  %two = constant {value = 2.0} : tile<32xbf16>
  %c = constant {value = 0.1} : tile<32xbf16>
  %a = mul %v, %two : tile<32xbf16>
  %b = add %a, %c : tile<32xbf16>
  store_view %y, [%off], %b
  return
}
""")
    x = RNG.standard_normal(50).astype(ml_dtypes.bfloat16)
    x_before = x.copy()
    y = np.full(50, np.nan, ml_dtypes.bfloat16)
    run(m, "k", [x, y], (2,))
    bf = ml_dtypes.bfloat16
    want = (x * bf(2.0)).astype(bf) + bf(0.1)
    np.testing.assert_array_equal(y.view(np.uint16), want.astype(bf).view(np.uint16))
    np.testing.assert_array_equal(x.view(np.uint16), x_before.view(np.uint16))


# ---- errors ---------------------------------------------------------------------------------


def test_assert_names_message_location_and_program():
    m = kernel("""func @chk(%x: tensor<?xi32>) {
  %pid = program_id {axis = 0} : i32
  %two = constant {value = 2} : i32
  %ok = cmp %pid, %two {pred = "lt"} : bool
  assert %ok {message = "pid too big"} loc("kernel.py":12:5)
  return
}
""")
    x = np.zeros(1, np.int32)
    with pytest.raises(TilecError) as err:
        run(m, "chk", [x], (4,))
    text = str(err.value)
    assert "pid too big" in text and "kernel.py:12:5" in text and "program id (2,)" in text


def test_scalar_parameters_and_rank0_tensor():
    m = kernel("""func @axpy(%x: tensor<?xf16>, %out: tensor<?xf16>, %n: i32, %alpha: f16,
                      %total: tensor<f32>) {
  %z = constant {value = 0} : i32
  %v = load_view %x, %z : tile<64xf16>
  %a = splat %alpha : tile<64xf16>
  %r = mul %v, %a : tile<64xf16>
  %ar = arange {start = 0, end = 64} : tile<64xi32>
  %ns = splat %n : tile<64xi32>
  %keep = cmp %ar, %ns {pred = "lt"} : tile<64xbool>
  %op = tensor_ptr %out : ptr<f16>
  %ops = splat %op : tile<64xptr<f16>>
  %ptrs = addptr %ops, %ar : tile<64xptr<f16>>
  store %ptrs, %r, mask %keep
  %rf = cast %r : tile<64xf32>
  %zf = constant {value = 0.0} : tile<64xf32>
  %rk = select %keep, %rf, %zf : tile<64xf32>
  %s = reduce %rk {axis = 0, kind = "sum"} : f32
  %tp = tensor_ptr %total : ptr<f32>
  store %tp, %s
  return
}
""")
    x = RNG.standard_normal(64).astype(np.float16)
    out = np.full(64, np.nan, np.float16)
    total = np.full((), np.nan, np.float32)
    run(m, "axpy", [x, out, 40, 0.1, total], (1,))
    want = (x * np.float16(0.1))[:40]
    np.testing.assert_array_equal(out[:40], want)
    assert np.isnan(out[40:]).all()
    assert total == np.float32(want.astype(np.float64).sum())
    with pytest.raises(LaunchError):
        run(m, "axpy", [x, out, 2**40, 0.1, total], (1,))


def test_launch_errors():
    x = np.zeros(4, np.float32)
    with pytest.raises(LaunchError):
        run(VECTOR_ADD, "add", [x, x], (1,))
    with pytest.raises(LaunchError):
        run(VECTOR_ADD, "add", [x, x, np.zeros(4, np.float64)], (1,))
    with pytest.raises(LaunchError):
        run(VECTOR_ADD, "nope", [x, x, x], (1,))


def test_tensor_info_and_packed_roundtrip():
    a = np.zeros((3, 4), ml_dtypes.float8_e4m3fn)
    info = tensor_info(a[:, ::2])
    assert info.dtype == dt.float8_e4m3 and info.shape == (3, 2) and info.strides == (4, 2)
    v = RNG.integers(-4, 4, (3, 5))
    p = pack(v, "i3")
    assert isinstance(p, PackedTensor) and p.row_bytes == 2
    assert tensor_info(p).packed and tensor_info(p).strides == (5, 1)
    assert unpack(p).tolist() == v.tolist()


def test_packed_store_keeps_the_row_padding_bits():
    """A 3-element u3 row is 9 bits in 2 bytes: the 7 bits after it are not the kernel's."""
    m = parse_module("""func @fill(%t: tensor<?x?xu3>) {
  %c0 = constant {value = 0} : i32
  %v = constant {value = 5} : tile<2x3xu3>
  store_view %t, [%c0, %c0], %v
  return
}""")
    data = np.full((2, 2), 0xFF, np.uint8)
    packed = PackedTensor(data, dt.uint3, (2, 3))
    run(m, "fill", [packed], (1,))
    np.testing.assert_array_equal(unpack(packed), np.full((2, 3), 5))
    assert (data[:, 1] & 0xFE).tolist() == [0xFE, 0xFE]  # padding bits 9..15 untouched
