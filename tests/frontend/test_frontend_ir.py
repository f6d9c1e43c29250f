"""The IR the frontend builds for each construct: verified, as expected, and it round-trips
through the printer and parser."""
from __future__ import annotations

import numpy as np
import pytest

import tilec as tc
from tilec.ir.parser import parse_module
from tilec.ir.printer import print_module
from tilec.ir.verifier import verify


def check(module) -> str:
    verify(module)
    text = print_module(module)
    again = parse_module(text)
    verify(again)
    assert again == module, text
    return text


@tc.kernel(signature="X: tensor<?x?xf16>, Y: tensor<?x?xf16>, n_cols: i32, BLOCK=128")
def softmax(X: tc.Tensor, Y: tc.Tensor, n_cols: int, BLOCK: tc.constexpr):
    row = tc.program_id(0)
    cols = tc.arange(0, BLOCK)
    x = tc.load(X.ptr + row * X.stride(0) + cols, mask=cols < n_cols, other=-float("inf"))
    x = x - tc.max(x, axis=0)
    e = tc.exp(x)
    tc.store(Y.ptr + row * Y.stride(0) + cols, e / tc.sum(e, axis=0), mask=cols < n_cols)


@tc.kernel
def loops(A: tc.Tensor, n: int, BLOCK: tc.constexpr):
    acc = tc.zeros((BLOCK,), tc.float32)
    i = 0
    for k in range(0, n, 2):
        acc = acc + tc.load(A, (k,), (BLOCK,))
        i += 1
    while i < n:
        i = i * 2
    if i > 3:
        acc = acc * 2.0
    else:
        acc = acc - 1.0
    tc.store(A, (0,), acc)


@tc.kernel
def shapes(A: tc.Tensor, B: tc.Tensor, BM: tc.constexpr, BN: tc.constexpr):
    r = tc.arange(0, BM)
    c = tc.arange(0, BN)
    grid = r[:, None] * BN + c[None, :]
    t = tc.reshape(grid, (BN, BM))
    u = tc.permute(t, (1, 0)) + tc.trans(t)
    v = tc.expand_dims(tc.sum(u, axis=0), 0)
    w = tc.broadcast_to(v, (BM, BN))
    q = tc.where(w > 0, w, -w).to(tc.float16)
    bits = q.view(tc.uint8)
    tc.store(B, (0, 0), bits)
    tc.store(A, (0, 0), tc.cumsum(q, axis=1) + tc.argmin(q, axis=1, keep_dims=True))


@tc.kernel
def math_ops(A: tc.Tensor, P: tc.Tensor, BLOCK: tc.constexpr):
    x = tc.load(A, (0,), (BLOCK,))
    y = tc.exp2(x) + tc.log(x) + tc.log2(x) + tc.sqrt(x) + tc.rsqrt(x) + tc.tanh(x)
    y = y + tc.erf(x) + tc.sin(x) + tc.cos(x) + tc.abs(x) + tc.floor(x) + tc.ceil(x)
    y = tc.maximum(y, 0.0) + tc.minimum(y, 1.0) + tc.fma(x, y, x) + x ** 3
    i = x.to(tc.int32)
    j = (i & 3) | (i ^ 5) | (i << 1) | (i >> 1) | ~i | (i // 3) | (i % 3) | -i
    tc.store(A, (0,), y + j)
    old = tc.atomic_max(P.ptr + tc.arange(0, BLOCK), 0.0, mask=x > 0)
    tc.atomic_cas(P.ptr, 0.0, 1.0)
    tc.device_assert(old >= 0, "negative")
    tc.print("old", old)


@tc.kernel
def explicit(A: tc.Tensor, BM: tc.constexpr):
    buf = tc.shared((2, BM, BM), tc.float16)
    stage = buf[0]
    tc.copy_async(A, (0, 0), stage)
    tc.wait(0)
    tc.barrier()
    x = stage.load()
    y = tc.with_layout(x, "spatial(4,8)*local(4,2)")
    tc.store(A, (0, 0), y)


def test_softmax_signature():
    m = softmax.compile()
    text = check(m)
    assert "func @softmax(%X: tensor<?x?xf16>" in text
    assert "attrs {BLOCK = 128}" in text
    assert "reduce" in text and "exp" in text and "load %" in text


def test_loops_and_if():
    m = loops.compile("A: tensor<?xf32>, n: i32 {divisible = 16}, BLOCK=32")
    text = check(m)
    assert "%n: i32 {divisible = 16}" in text
    assert "for " in text and "while " in text and "condition " in text and "if " in text
    assert "yield" in text


def test_shapes():
    text = check(shapes.compile("A: tensor<?x?xf16>, B: tensor<?x?xu8>, BM=8, BN=16"))
    for op in ("expand_dims", "broadcast", "reshape", "permute", "select", "view", "scan",
               "argreduce"):
        assert op in text, op


def test_math_and_atomics():
    text = check(math_ops.compile("A: tensor<?xf32>, P: tensor<?xf32>, BLOCK=16"))
    for op in ("exp2", "rsqrt", "erf", "fma", "shl", "shr", "not", "rem", "atomic_rmw",
               "atomic_cas", "assert", "print"):
        assert op in text, op


def test_explicit_level():
    text = check(explicit.compile("A: tensor<?x?xf16>, BM=16"))
    for op in ("shared_alloc", "shared_index", "copy_async", "async_wait", "barrier",
               "shared_load", "convert_layout"):
        assert op in text, op


def test_ir_from_arrays_records_specialisation():
    x = np.zeros((4, 64), np.float16)
    m = softmax.ir(x, x, 64, BLOCK=64)
    text = check(m)
    assert "{contiguous = true" in text
    assert "%n_cols: i32 {divisible = 16}" in text
    # the last stride of a contiguous tensor is the constant 1: only dim 0's stride is read
    assert text.count("tensor_stride") == 2


@pytest.mark.parametrize("cols,aligned", [(64, True), (60, False)])
def test_aligned_means_every_row_starts_16_byte_aligned(cols, aligned):
    """60 f16 are 120 bytes: the base is aligned, the second row is not."""
    x = np.zeros((4, cols), np.float16)
    assert x.ctypes.data % 16 == 0
    text = check(softmax.ir(x, x, cols, BLOCK=64))
    assert ("aligned = 16" in text) is aligned


def test_locations_point_at_user_source():
    m = softmax.compile()
    f = m.functions[0]
    exp = next(op for op in f.walk() if op.name == "exp")
    assert exp.loc.file == __file__
    assert "tc.exp(x)" in exp.loc.source_line()
    assert exp.loc.col == exp.loc.source_line().index("tc.exp") + 1


def test_deterministic_ir():
    a = print_module(loops.compile("A: tensor<?xf32>, n: i32, BLOCK=32"))
    b = print_module(loops.compile("A: tensor<?xf32>, n: i32, BLOCK=32"))
    assert a == b


def test_constexpr_if_folds_and_dtype_constexpr():
    @tc.kernel
    def k(A: tc.Tensor, USE: tc.constexpr, DT: tc.constexpr):
        x = tc.load(A, (0,), (8,))
        if USE:
            x = x * 2
        else:
            x = x * 3
        if A.dtype == tc.float32:
            x = x + 1
        tc.store(A, (0,), x.to(DT).to(A.dtype))
    text = check(k.compile("A: tensor<?xf32>, USE=True, DT=f16"))
    assert "if " not in text and "value = 2.0" in text and "value = 3.0" not in text
    assert 'DT = "f16"' in text


def test_calling_dsl_outside_kernel_raises():
    with pytest.raises(tc.TilecError, match="only be called inside a @tc.kernel"):
        tc.exp(1.0)
    assert tc.cdiv(10, 4) == 3  # host helper for grids


@tc.kernel(signature="X: tensor<?xf32>", fast_math=True)
def fast_exp2(X: tc.Tensor):
    tc.store(X, (0,), tc.exp2(tc.load(X, (0,), (128,))))


@tc.kernel(signature="A: tensor<?x?xf16>, C: tensor<?x?xf32>")
def dot_warps(A: tc.Tensor, C: tc.Tensor):
    a = tc.load(A, (0, 0), (64, 64))
    tc.store(C, (0, 0), tc.dot(a, a, warps_n=1))


def test_fast_math_and_dot_warps_n():
    """`@tc.kernel(fast_math=True)` marks the function; `warps_n` is an attribute of dot."""
    assert "fast_math = true" in check(fast_exp2.compile())
    assert "fast_math" not in check(dot_warps.compile())
    assert "{warps_n = 1}" in check(dot_warps.compile())
