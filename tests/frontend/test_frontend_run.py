"""End to end on the CPU interpreter: DSL kernels against numpy, random inputs, poisoned
outputs."""
from __future__ import annotations

import numpy as np
import pytest

import tilec as tc

RNG = np.random.default_rng(0)


def poisoned(shape, dtype=np.float32):
    if np.issubdtype(np.dtype(dtype), np.floating):
        return np.full(shape, np.nan, dtype)
    return np.full(shape, 123, dtype)


# ---------------------------------------------------------------------------------------
# kernels


@tc.kernel
def vadd(X: tc.Tensor, Y: tc.Tensor, Out: tc.Tensor, n: int, BLOCK: tc.constexpr):
    pid = tc.program_id(0)
    offs = pid * BLOCK + tc.arange(0, BLOCK)
    m = offs < n
    x = tc.load(X.ptr + offs, mask=m)
    y = tc.load(Y.ptr + offs, mask=m)
    tc.store(Out.ptr + offs, x + y, mask=m)


@tc.kernel
def softmax(X: tc.Tensor, Y: tc.Tensor, n_cols: int, BLOCK: tc.constexpr):
    row = tc.program_id(0)
    cols = tc.arange(0, BLOCK)
    x = tc.load(X.ptr + row * X.stride(0) + cols, mask=cols < n_cols, other=-float("inf"))
    x = x - tc.max(x, axis=0)
    e = tc.exp(x)
    tc.store(Y.ptr + row * Y.stride(0) + cols, e / tc.sum(e, axis=0), mask=cols < n_cols)


@tc.kernel
def matmul(A: tc.Tensor, B: tc.Tensor, C: tc.Tensor, BM: tc.constexpr, BN: tc.constexpr,
           BK: tc.constexpr):
    pm, pn = tc.program_id(0), tc.program_id(1)
    acc = tc.zeros((BM, BN), tc.float32)
    for k in range(tc.cdiv(A.shape[1], BK)):
        a = tc.load(A, (pm, k), (BM, BK))
        b = tc.load(B, (k, pn), (BK, BN))
        acc = tc.dot(a, b, acc)
    tc.store(C, (pm, pn), acc.to(C.dtype))


@tc.kernel
def row_argmax(X: tc.Tensor, Out: tc.Tensor, n_cols: int, BLOCK: tc.constexpr):
    row = tc.program_id(0)
    cols = tc.arange(0, BLOCK)
    x = tc.load(X.ptr + row * X.stride(0) + cols, mask=cols < n_cols, other=-float("inf"))
    tc.store(Out.ptr + row, tc.argmax(x, axis=0))


@tc.kernel
def collatz_steps(X: tc.Tensor, Out: tc.Tensor):
    i = tc.program_id(0)
    v = tc.load(X.ptr + i)
    steps = 0
    while v != 1:
        v = tc.where(v % 2 == 0, v // 2, 3 * v + 1)
        steps += 1
    tc.store(Out.ptr + i, steps)


@tc.kernel
def branchy(X: tc.Tensor, Out: tc.Tensor, BLOCK: tc.constexpr):
    pid = tc.program_id(0)
    offs = pid * BLOCK + tc.arange(0, BLOCK)
    x = tc.load(X, (pid,), (BLOCK,))
    scale = 1.0
    if pid % 2 == 0:
        y = x * 2.0
        scale = 3.0
    else:
        y = x - 1.0
    tc.store(Out.ptr + offs, y * scale)


@tc.kernel
def early_return(X: tc.Tensor, Out: tc.Tensor, n_rows: int, BLOCK: tc.constexpr):
    row = tc.program_id(0)
    if row >= n_rows:
        return
    x = tc.load(X, (row, 0), (1, BLOCK))
    tc.store(Out, (row, 0), x + 1.0)


@tc.func
def square_plus(x, c: tc.constexpr = 1):
    return x * x + c


@tc.func
def pick(x, flag):
    if flag:
        return x
    return -x


@tc.func
def add_combine(a, b):
    return a + b


SCALES = (1.0, 2.0, 4.0)
OFFSET = 0.5


@tc.kernel
def unrolled(X: tc.Tensor, Out: tc.Tensor, BLOCK: tc.constexpr, N: tc.constexpr):
    x = tc.load(X, (0,), (BLOCK,))
    acc = tc.zeros((BLOCK,), tc.float32)
    for i in tc.static_range(N):
        acc += x * (i + 1)
    for s in SCALES:
        acc = acc + s
    tc.store(Out, (0,), square_plus(acc, c=2) + OFFSET)


@tc.kernel
def func_branches(X: tc.Tensor, Out: tc.Tensor, BLOCK: tc.constexpr):
    pid = tc.program_id(0)
    x = tc.load(X, (pid,), (BLOCK,))
    tc.store(Out, (pid,), pick(x, pid == 0))


@tc.kernel
def tuples(X: tc.Tensor, Out: tc.Tensor, BLOCK: tc.constexpr):
    x = tc.load(X, (0, 0), (BLOCK, BLOCK))
    a, b = x, x.T
    a, b = b, a
    pair = (tc.sum(a, axis=1), tc.max(b, axis=0, keep_dims=True))
    s, m = pair
    tc.store(Out, (0, 0), s[:, None] + m)


@tc.kernel
def custom_reduce_scan(X: tc.Tensor, R: tc.Tensor, S: tc.Tensor, BLOCK: tc.constexpr):
    x = tc.load(X, (0, 0), (BLOCK, BLOCK))
    tc.store(R, (0,), tc.reduce(x, 1, add_combine))
    tc.store(S, (0, 0), tc.cumsum(x, axis=1))


@tc.kernel
def promote(I8: tc.Tensor, F16: tc.Tensor, O32: tc.Tensor, OF: tc.Tensor, BLOCK: tc.constexpr):
    a = tc.load(I8, (0,), (BLOCK,))
    f = tc.load(F16, (0,), (BLOCK,))
    tc.store(O32, (0,), (a + 300) * 2)     # i8 + 300 -> i32
    tc.store(OF, (0,), a * f + 1)          # i8 * f16 -> f16


@tc.kernel
def counted_loop(Out: tc.Tensor, n: int, BLOCK: tc.constexpr):
    total = 0
    for i in range(1, n, 2):
        total = total + i
    acc = 0.0
    for j in range(n):
        acc = acc + tc.full((BLOCK,), j, tc.float32)
    tc.store(Out, (0,), acc + total)


@tc.kernel
def atomics(Out: tc.Tensor, BLOCK: tc.constexpr):
    offs = tc.arange(0, BLOCK) % 4
    tc.atomic_add(Out.ptr + offs, 1)


# ---------------------------------------------------------------------------------------
# tests


def test_vector_add():
    n = 1000
    x, y = RNG.standard_normal(n).astype(np.float32), RNG.standard_normal(n).astype(np.float32)
    out = poisoned(n)
    vadd[(tc.cdiv(n, 256),)](x, y, out, n, BLOCK=256)
    np.testing.assert_array_equal(out, x + y)


def test_softmax():
    x = RNG.standard_normal((5, 37)).astype(np.float32)
    y = poisoned(x.shape)
    softmax[(5,)](x, y, 37, BLOCK=64)
    ref = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(y, ref / ref.sum(1, keepdims=True), rtol=1e-5)


@pytest.mark.parametrize("M,N,K", [(64, 32, 32), (70, 50, 45)])
def test_matmul_ragged(M, N, K):
    a = RNG.standard_normal((M, K)).astype(np.float16)
    b = RNG.standard_normal((K, N)).astype(np.float16)
    c = poisoned((M, N), np.float16)
    grid = lambda meta: (tc.cdiv(M, meta["BM"]), tc.cdiv(N, meta["BN"]))  # noqa: E731
    matmul[grid](a, b, c, BM=32, BN=32, BK=16)
    ref = a.astype(np.float32) @ b.astype(np.float32)
    np.testing.assert_allclose(c.astype(np.float32), ref, rtol=2e-2, atol=2e-2)


def test_argmax():
    x = RNG.standard_normal((6, 20)).astype(np.float32)
    out = poisoned(6, np.int32)
    row_argmax[(6,)](x, out, 20, BLOCK=32)
    np.testing.assert_array_equal(out, x.argmax(1))


def test_while_loop():
    x = np.array([1, 2, 3, 6, 7, 27], np.int32)
    out = poisoned(6, np.int32)
    collatz_steps[(6,)](x, out)

    def steps(v):
        n = 0
        while v != 1:
            v = v // 2 if v % 2 == 0 else 3 * v + 1
            n += 1
        return n
    np.testing.assert_array_equal(out, [steps(int(v)) for v in x])


def test_if_else_carried():
    x = RNG.standard_normal(64).astype(np.float32)
    out = poisoned(64)
    branchy[(4,)](x, out, BLOCK=16)
    ref = x.reshape(4, 16).copy()
    ref[0::2] = ref[0::2] * 2.0 * 3.0
    ref[1::2] = ref[1::2] - 1.0
    np.testing.assert_allclose(out, ref.reshape(-1), rtol=1e-6)


def test_early_return():
    x = RNG.standard_normal((3, 8)).astype(np.float32)
    out = poisoned((3, 8))
    early_return[(5,)](x, out, 3, BLOCK=8)   # programs 3 and 4 return at once
    np.testing.assert_allclose(out, x + 1.0)


def test_static_range_closure_func_inlining():
    x = RNG.standard_normal(16).astype(np.float32)
    out = poisoned(16)
    unrolled[(1,)](x, out, BLOCK=16, N=3)
    acc = x * 1 + x * 2 + x * 3 + sum((1.0, 2.0, 4.0))
    np.testing.assert_allclose(out, acc * acc + 2 + 0.5, rtol=1e-5)
    m = unrolled.ir(x, out, BLOCK=16, N=3)
    assert "for" not in str(m)


def test_func_with_early_return_in_branches():
    x = RNG.standard_normal(32).astype(np.float32)
    out = poisoned(32)
    func_branches[(2,)](x, out, BLOCK=16)
    np.testing.assert_array_equal(out, np.concatenate([x[:16], -x[16:]]))


def test_tuples():
    x = RNG.standard_normal((8, 8)).astype(np.float32)
    out = poisoned((8, 8))
    tuples[(1,)](x, out, BLOCK=8)
    a, b = x.T, x
    np.testing.assert_allclose(out, a.sum(1)[:, None] + b.max(0, keepdims=True), rtol=1e-5)


def test_custom_reduce_and_cumsum():
    x = RNG.standard_normal((8, 8)).astype(np.float32)
    r, s = poisoned(8), poisoned((8, 8))
    custom_reduce_scan[(1,)](x, r, s, BLOCK=8)
    np.testing.assert_allclose(r, x.sum(1), rtol=1e-5)
    np.testing.assert_allclose(s, np.cumsum(x, 1), rtol=1e-5)


def test_promotion_end_to_end():
    a = RNG.integers(-100, 100, 16).astype(np.int8)
    f = RNG.standard_normal(16).astype(np.float16)
    o32, of = poisoned(16, np.int32), poisoned(16, np.float16)
    promote[(1,)](a, f, o32, of, BLOCK=16)
    np.testing.assert_array_equal(o32, (a.astype(np.int32) + 300) * 2)
    np.testing.assert_array_equal(of, (a.astype(np.float16) * f + np.float16(1)))


def test_loop_carried_python_numbers_take_the_body_type():
    out = poisoned(8)
    counted_loop[(1,)](out, 7, BLOCK=8)
    np.testing.assert_array_equal(out, np.full(8, sum(range(7)) + sum(range(1, 7, 2)),
                                               np.float32))


def test_atomics():
    out = np.zeros(4, np.int32)
    atomics[(3,)](out, BLOCK=16)
    np.testing.assert_array_equal(out, [12, 12, 12, 12])


def test_specialisation_cache():
    x = RNG.standard_normal(64).astype(np.float32)
    y, out = x.copy(), poisoned(64)
    before = vadd.compile_count
    vadd[(1,)](x, y, out, 64, BLOCK=64)
    vadd[(1,)](x, y, out, 64, BLOCK=64)
    vadd[(1,)](x[::1], y, out, 64, BLOCK=64)
    assert vadd.compile_count == before + 1
    vadd[(2,)](x, y, out, 50, BLOCK=32)     # 50 is not divisible by 16, BLOCK differs
    assert vadd.compile_count == before + 2
    vadd[(1,)](x.astype(np.float64), y.astype(np.float64), out.astype(np.float64), 64,
               BLOCK=64)
    assert vadd.compile_count == before + 3


def test_int_equal_to_one_is_specialised():
    out = poisoned(8)
    counted_loop[(1,)](out, 1, BLOCK=8)
    np.testing.assert_array_equal(out, np.zeros(8, np.float32))
    text = str(counted_loop.ir(out, 1, BLOCK=8))
    assert "equal_to_1 = true" in text


def test_packed_subbyte_tensor():
    @tc.kernel
    def widen(Q: tc.Tensor, Out: tc.Tensor, BLOCK: tc.constexpr):
        q = tc.load(Q, (0,), (BLOCK,))
        tc.store(Out, (0,), q.to(tc.int32) * 2)

    vals = RNG.integers(-8, 8, 16)
    out = poisoned(16, np.int32)
    widen[(1,)](tc.pack(vals, tc.int4), out, BLOCK=16)
    np.testing.assert_array_equal(out, vals * 2)


def test_closures_nested_control_flow_and_roundtrip():
    from tilec.ir.parser import parse_module
    from tilec.ir.verifier import verify

    factor = 3          # closure constants
    shift = (1, 2)

    @tc.kernel
    def nested(X: tc.Tensor, Out: tc.Tensor, n: int, BLOCK: tc.constexpr):
        x = tc.load(X, (0,), (BLOCK,))
        acc = 0.0
        count = 0
        for i in range(n):
            for j in range(2):
                if (i + j) % 2 == 0:
                    acc = acc + x * factor
                else:
                    acc = acc - shift[1]
                count += 1
        k = 0
        while k < count:
            k += 4
        tc.store(Out, (0,), acc + k)

    x = RNG.standard_normal(8).astype(np.float32)
    out = poisoned(8)
    nested[(1,)](x, out, 3, BLOCK=8, num_warps=8, num_stages=2)
    acc = np.zeros(8, np.float32)
    for i in range(3):
        for j in range(2):
            acc = acc + x * 3 if (i + j) % 2 == 0 else acc - 2
    np.testing.assert_allclose(out, acc + 8, rtol=1e-5)
    m = nested.ir(x, out, 3, BLOCK=8, num_warps=8, num_stages=2)
    verify(m)
    text = str(m)
    assert "num_warps = 8" in text and "num_stages = 2" in text
    assert parse_module(text) == m


def test_layering_frontend_is_not_imported_below():
    import pathlib
    root = pathlib.Path(tc.__file__).parent
    for sub in ("ir", "runtime"):
        for path in (root / sub).rglob("*.py"):
            assert "tilec.frontend" not in path.read_text(), path


def test_fast_math_is_a_kernel_default_a_launch_option_and_an_attribute():
    def body(X: tc.Tensor, Y: tc.Tensor, BLOCK: tc.constexpr):
        x = tc.load(X, (0,), (BLOCK,))
        tc.store(Y, (0,), tc.exp(x) / (x + 3.0))

    x = RNG.standard_normal(16).astype(np.float32)
    fast, accurate = tc.kernel(fast_math=True)(body), tc.kernel(body)
    assert "fast_math = true" in str(fast.ir(x, x, BLOCK=16))
    assert "fast_math" not in str(accurate.ir(x, x, BLOCK=16))
    assert "fast_math = false" in str(fast.ir(x, x, BLOCK=16, fast_math=False))
    assert "fast_math = true" in str(fast.compile("X: tensor<?xf32>, Y: tensor<?xf32>, BLOCK=16"))
    out = poisoned(16)  # the interpreter is exact either way
    fast[(1,)](x, out, BLOCK=16)
    np.testing.assert_allclose(out, np.exp(x) / (x + 3.0), rtol=1e-6)


@tc.kernel
def _cluster_sums(X: tc.Tensor, S: tc.Tensor, M: tc.Tensor, H: tc.Tensor, I: tc.Tensor,
                  BLOCK: tc.constexpr):
    pid = tc.program_id(0)
    x = tc.load(X, (pid,), (BLOCK,))
    tc.store(S, (pid,), tc.cluster_reduce(x))
    tc.store(M, (pid,), tc.cluster_reduce(x, "max") - tc.cluster_reduce(x, "min"))
    tc.store(H, (pid,), tc.cluster_reduce(x.to(tc.float16)))
    part = tc.cluster_reduce(pid % 4 + 1)          # a scalar: 1 + 2 + 3 + 4 in every program
    tc.store(I, (pid,), tc.full((BLOCK,), part))


def test_cluster_reduce_combines_each_cluster_in_program_order():
    """num_ctas = 4: programs 0-3 and 4-7 are two clusters (the interpreter runs each
    cluster's programs side by side); every program gets its cluster's combination: sums in
    f32, f16 summed in f32 and rounded once, max, min, and a scalar."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(8 * 32).astype(np.float32)
    s, m, i = np.zeros_like(x), np.zeros_like(x), np.zeros(x.size, np.int32)
    h = np.zeros(x.size, np.float16)
    _cluster_sums[(8,)](x, s, m, h, i, BLOCK=32, num_ctas=4)
    blocks = x.reshape(2, 4, 32)
    want = np.repeat(blocks.sum(1, keepdims=True), 4, 1).reshape(-1)
    np.testing.assert_allclose(s, want, rtol=1e-6, atol=1e-6)
    spread = np.repeat((blocks.max(1) - blocks.min(1))[:, None], 4, 1).reshape(-1)
    np.testing.assert_allclose(m, spread, rtol=1e-6)
    halves = np.repeat(blocks.astype(np.float16).astype(np.float64).sum(1, keepdims=True), 4, 1)
    np.testing.assert_array_equal(h, halves.reshape(-1).astype(np.float16))
    assert (i == 10).all()
    # One program a cluster: each program its own values.
    _cluster_sums[(8,)](x, s, m, h, i, BLOCK=32)
    np.testing.assert_array_equal(s, x)
    assert (m == 0).all() and (i == (np.arange(x.size) // 32) % 4 + 1).all()


def test_cluster_programs_fail_together():
    """An error in one program of a cluster stops its cluster (the others, waiting at the
    cluster's barrier, are released) and reaches the caller."""
    @tc.kernel
    def k(X: tc.Tensor, BLOCK: tc.constexpr):
        pid = tc.program_id(0)
        tc.device_assert(pid != 2, "program 2 fails")
        tc.store(X, (pid,), tc.cluster_reduce(tc.full((BLOCK,), 1.0)))

    with pytest.raises(tc.TilecError, match="program 2 fails"):
        k[(4,)](np.zeros(64, np.float32), BLOCK=16, num_ctas=4)


@tc.kernel
def take_parts(X: tc.Tensor, H: tc.Tensor, R: tc.Tensor, E: tc.Tensor):
    x = tc.load(X, (0, 0), (8, 32))
    g = tc.reshape(x, (8, 2, 16))
    tc.store(H, (0, 0), tc.take(g, 1, axis=1) - g.take(0, axis=1))
    tc.store(R, (0,), tc.take(x, 5))
    tc.store(E, (0,), tc.full((1,), tc.take(tc.take(x, -1, axis=1), 7)))


def test_take():
    x = RNG.standard_normal((8, 32)).astype(np.float32)
    h, r, e = poisoned((8, 16)), poisoned((32,)), poisoned((1,))
    take_parts[(1,)](x, h, r, e)
    np.testing.assert_array_equal(h, x[:, 16:] - x[:, :16])
    np.testing.assert_array_equal(r, x[5])
    np.testing.assert_array_equal(e, x[7, -1:])


@tc.kernel
def split_k_dot(A: tc.Tensor, B: tc.Tensor, C: tc.Tensor, P: tc.constexpr):
    """Split-K across warps: K in P parts, a batch of P products, their sum."""
    a = tc.load(A, (0, 0), (32, 64))
    b = tc.load(B, (0, 0), (64, 16))
    parts = tc.dot(tc.permute(tc.reshape(a, (32, P, 64 // P)), (1, 0, 2)),
                   tc.reshape(b, (P, 64 // P, 16)))
    tc.store(C, (0, 0), tc.sum(parts, axis=0))


def test_batched_dot_splits_k():
    a = RNG.integers(-4, 5, (32, 64)).astype(np.float16)
    b = RNG.integers(-4, 5, (64, 16)).astype(np.float16)
    for p in (1, 4):
        c = poisoned((32, 16))
        split_k_dot[(1,)](a, b, c, P=p)
        np.testing.assert_array_equal(c, a.astype(np.float32) @ b.astype(np.float32))


@tc.kernel
def scaled_rows(X: tc.Tensor, S: tc.Tensor, Y: tc.Tensor, BLOCK: tc.constexpr):
    row = tc.program_id(0)
    x = tc.load(X, (row, 0), (1, BLOCK), eviction_policy="evict_first")
    s = tc.load(S.ptr + row, cache_modifier=".ca", eviction_policy="evict_last")
    tc.store(Y, (row, 0), x * s + tc.load(S.ptr, volatile=True), cache_modifier=".wt")


def test_cache_hints_change_no_result():
    """Hints choose instructions on the GPU; the interpreter's results are the plain ones."""
    x = RNG.standard_normal((5, 64)).astype(np.float32)
    s = RNG.standard_normal(5).astype(np.float32)
    y = poisoned((5, 64))
    scaled_rows[(5,)](x, s, y, BLOCK=64)
    np.testing.assert_allclose(y, x * s[:, None] + s[0], rtol=1e-6)



@tc.kernel
def weighted_after_wait(W: tc.Tensor, X: tc.Tensor, Y: tc.Tensor, BLOCK: tc.constexpr):
    tc.gdc_launch_dependents()
    row = tc.program_id(0)
    w = tc.load(W, (row, 0), (1, BLOCK))    # weights: no earlier launch writes them
    tc.gdc_wait()
    tc.store(Y, (row, 0), w * tc.load(X, (row, 0), (1, BLOCK)))


def test_grid_dependency_changes_no_result():
    """Programmatic dependent launch only orders launches; the interpreter runs in order."""
    w = RNG.standard_normal((3, 32)).astype(np.float32)
    x = RNG.standard_normal((3, 32)).astype(np.float32)
    y = poisoned((3, 32))
    weighted_after_wait[(3,)](w, x, y, BLOCK=32)
    np.testing.assert_array_equal(y, w * x)
