"""Every error a user can cause: a CompileError (or LaunchError) with a helpful message, the
user's file and line, the quoted source line and a caret."""
from __future__ import annotations

import sys

import numpy as np

import pytest

import tilec as tc
from tilec.errors import CompileError, LaunchError

SIG1 = "X: tensor<?xf32>, BLOCK=16"


def line_of(marker: str) -> int:
    with open(__file__) as f:
        for i, line in enumerate(f, 1):
            if ("# " + marker) in line and "line_of" not in line and "expect(" not in line:
                return i
    raise AssertionError(marker)


def expect(kernel, marker: str, message: str, signature: str = SIG1) -> CompileError:
    with pytest.raises(CompileError) as info:
        kernel.compile(signature)
    e = info.value
    assert message in e.message, e.message
    assert e.loc is not None and e.loc.file == __file__
    line = line_of(marker)
    assert e.loc.line == line, str(e)
    text = str(e)
    assert f"{__file__}:{line}:{e.loc.col}: error: " in text
    src = e.loc.source_line()
    assert src is not None and ("# " + marker) in src
    assert src in text and "^" in text.splitlines()[2]
    return e


def helper(x):
    return x


@tc.func
def recurse(x, n: tc.constexpr):
    return recurse(x, n - 1)  # ERR-recursion


@tc.kernel
def k_listcomp(X: tc.Tensor, BLOCK: tc.constexpr):
    xs = [i for i in range(4)]  # ERR-listcomp


@tc.kernel
def k_try(X: tc.Tensor, BLOCK: tc.constexpr):
    try:  # ERR-try
        pass
    except Exception:
        pass


@tc.kernel
def k_pycall(X: tc.Tensor, BLOCK: tc.constexpr):
    y = helper(1)  # ERR-pycall


@tc.kernel
def k_shape(X: tc.Tensor, n: int, BLOCK: tc.constexpr):
    t = tc.zeros((n,), tc.float32)  # ERR-shape


@tc.kernel
def k_dot(X: tc.Tensor, BLOCK: tc.constexpr):
    a = tc.zeros((16, 32), tc.float16)
    b = tc.zeros((16, 16), tc.float16)
    c = tc.dot(a, b)  # ERR-dot


@tc.kernel
def k_dot_batch(X: tc.Tensor, BLOCK: tc.constexpr):
    a = tc.zeros((2, 16, 16), tc.float16)
    b = tc.zeros((4, 16, 16), tc.float16)
    c = tc.dot(a, b)  # ERR-dot-batch


@tc.kernel
def k_dot_rank(X: tc.Tensor, BLOCK: tc.constexpr):
    a = tc.zeros((16,), tc.float16)
    c = tc.dot(a, a)  # ERR-dot-rank


@tc.kernel
def k_dot_acc(X: tc.Tensor, BLOCK: tc.constexpr):
    a = tc.zeros((2, 16, 32), tc.float16)
    b = tc.zeros((2, 32, 8), tc.float16)
    c = tc.dot(a, b, tc.zeros((2, 16, 16), tc.float32))  # ERR-dot-acc


@tc.kernel
def k_broadcast(X: tc.Tensor, BLOCK: tc.constexpr):
    a = tc.zeros((4, 8), tc.float32)
    b = tc.zeros((16,), tc.float32)
    c = a + b  # ERR-broadcast


@tc.kernel
def k_undefined(X: tc.Tensor, BLOCK: tc.constexpr):
    y = x_undefined + 1  # ERR-undefined


@tc.kernel
def k_break(X: tc.Tensor, n: int, BLOCK: tc.constexpr):
    for i in range(n):
        break  # ERR-break


@tc.kernel
def k_one_branch(X: tc.Tensor, BLOCK: tc.constexpr):
    pid = tc.program_id(0)
    if pid > 0:
        only_here = 1.0
    tc.store(X, (0,), tc.full((BLOCK,), only_here))  # ERR-one-branch


@tc.kernel
def k_recursion(X: tc.Tensor, BLOCK: tc.constexpr):
    y = recurse(tc.program_id(0), 3)


@tc.kernel
def k_lambda(X: tc.Tensor, BLOCK: tc.constexpr):
    f = lambda v: v  # ERR-lambda  # noqa: E731


@tc.kernel
def k_with(X: tc.Tensor, BLOCK: tc.constexpr):
    with open("x"):  # ERR-with
        pass


@tc.kernel
def k_class(X: tc.Tensor, BLOCK: tc.constexpr):
    class A:  # ERR-class
        pass


@tc.kernel
def k_yield(X: tc.Tensor, BLOCK: tc.constexpr):
    yield 1  # ERR-yield


@tc.kernel
def k_fstring(X: tc.Tensor, BLOCK: tc.constexpr):
    tc.print(f"{BLOCK}")  # ERR-fstring


@tc.kernel
def k_tile_if(X: tc.Tensor, BLOCK: tc.constexpr):
    x = tc.load(X, (0,), (BLOCK,))
    if x > 0:  # ERR-tile-if
        x = x + 1


@tc.kernel
def k_carried_type(X: tc.Tensor, n: int, BLOCK: tc.constexpr):
    x = tc.load(X, (0,), (BLOCK,))
    for i in range(n):  # ERR-carried
        x = x.to(tc.float16)


@tc.kernel
def k_return_in_loop(X: tc.Tensor, n: int, BLOCK: tc.constexpr):
    for i in range(n):
        return  # ERR-return-loop


@tc.kernel
def k_pow(X: tc.Tensor, BLOCK: tc.constexpr):
    x = tc.load(X, (0,), (BLOCK,))
    y = x ** x  # ERR-pow


@tc.kernel
def k_bad_arg(X: tc.Tensor, BLOCK: tc.constexpr):
    x = tc.load(X, (0,), (BLOCK,), bogus=1)  # ERR-bad-arg


@tc.kernel
def k_warps_n(X: tc.Tensor, BLOCK: tc.constexpr):
    a = tc.zeros((16, 16), tc.float16)
    c = tc.dot(a, a, warps_n=0)  # ERR-warps-n


SIGN = "X: tensor<?xf32>, n: i32, BLOCK=16"


@pytest.mark.parametrize("kernel,marker,message,sig", [
    (k_listcomp, "ERR-listcomp", "list comprehensions are not supported", SIG1),
    (k_try, "ERR-try", "`try` is not supported", SIG1),
    (k_pycall, "ERR-pycall", "'helper' is a Python function", SIG1),
    (k_shape, "ERR-shape", "tile shape must be compile-time constants", SIGN),
    (k_dot, "ERR-dot", "dot shapes do not chain: a is 16x32 but b is 16x16", SIG1),
    (k_dot_batch, "ERR-dot-batch", "dot batches differ: a holds 2 products but b 4", SIG1),
    (k_dot_rank, "ERR-dot-rank", "dot takes two 2-D tiles or two 3-D ones", SIG1),
    (k_dot_acc, "ERR-dot-acc", "but a @ b is 2x16x8", SIG1),
    (k_broadcast, "ERR-broadcast", "shapes [4, 8] and [16] cannot be broadcast", SIG1),
    (k_undefined, "ERR-undefined", "undefined name 'x_undefined'", SIG1),
    (k_break, "ERR-break", "`break` is not supported", SIGN),
    (k_one_branch, "ERR-one-branch", "'only_here' is assigned in only one branch", SIG1),
    (k_recursion, "ERR-recursion", "recursive call to @tc.func 'recurse'", SIG1),
    (k_lambda, "ERR-lambda", "`lambda` is not supported", SIG1),
    (k_with, "ERR-with", "`with` is not supported", SIG1),
    (k_class, "ERR-class", "class definitions are not supported", SIG1),
    (k_yield, "ERR-yield", "`yield` is not supported", SIG1),
    (k_fstring, "ERR-fstring", "f-strings are not supported", SIG1),
    (k_tile_if, "ERR-tile-if", "`if` needs a scalar condition", SIG1),
    (k_carried_type, "ERR-carried", "'x' is tile<16xf32> before the loop", SIGN),
    (k_return_in_loop, "ERR-return-loop", "`return` inside a loop", SIGN),
    (k_pow, "ERR-pow", "** needs a compile-time integer exponent", SIG1),
    (k_bad_arg, "ERR-bad-arg", "tc.load(): got an unexpected keyword argument 'bogus'", SIG1),
    (k_warps_n, "ERR-warps-n", "warps_n must be a positive integer, got 0", SIG1),
])
def test_compile_errors(kernel, marker, message, sig):
    expect(kernel, marker, message, sig)


def test_one_branch_message_has_hint():
    e = expect(k_one_branch, "ERR-one-branch", "assign it in both branches")
    assert f"line {line_of('ERR-one-branch') - 2}" in e.message


def test_errors_at_launch_name_the_parameter():
    @tc.kernel
    def k(X: tc.Tensor, n: int, BLOCK: tc.constexpr):
        tc.store(X, (0,), tc.full((BLOCK,), n).to(tc.float32))

    x = np.zeros(16, np.float32)
    with pytest.raises(LaunchError, match=r"takes 3 arguments \(X, n, BLOCK\) but 4"):
        k[(1,)](x, 1, 16, 5)
    with pytest.raises(LaunchError, match="missing value for constexpr parameter 'BLOCK'"):
        k[(1,)](x, 3)
    with pytest.raises(LaunchError, match="missing argument 'n'"):
        k[(1,)](x, BLOCK=16)
    with pytest.raises(LaunchError, match="no parameter 'BLOK'"):
        k[(1,)](x, 3, BLOK=16)
    with pytest.raises(LaunchError, match="parameter 'n' is an int but got float"):
        k[(1,)](x, 3.5, BLOCK=16)
    with pytest.raises(LaunchError, match="argument 'X' must be a tensor"):
        k[(1,)]("not an array", 3, BLOCK=16)
    with pytest.raises(LaunchError, match="argument 'X' has an unsupported dtype"):
        k[(1,)](np.zeros(16, np.complex64), 3, BLOCK=16)
    with pytest.raises(LaunchError, match="grid must be 1 to 3"):
        k[(1, 1, 1, 1)](x, 3, BLOCK=16)

    class Malformed:
        __cuda_array_interface__ = {}
    with pytest.raises(LaunchError, match="argument 'X' is not a well-formed GPU tensor"):
        k[(1,)](Malformed(), 3, BLOCK=16)


def test_bad_launch_options_are_named():
    @tc.kernel
    def k(X: tc.Tensor, BLOCK: tc.constexpr):
        tc.store(X, (0,), tc.zeros((BLOCK,), tc.float32))

    x = np.zeros(16, np.float32)
    with pytest.raises(LaunchError, match="num_warps must be a positive int, got 0") as info:
        k[(1,)](x, BLOCK=16, num_warps=0)
    assert info.value.loc is not None and info.value.loc.file == __file__
    with pytest.raises(LaunchError, match="fast_math must be True or False, got 1"):
        k[(1,)](x, BLOCK=16, fast_math=1)
    with pytest.raises(CompileError, match="fast_math must be True or False, got 'yes'") as info:
        tc.kernel(fast_math="yes")(k.fn)
    assert info.value.loc.file == __file__ and info.value.loc.line == sys._getframe().f_lineno - 1
    with pytest.raises(CompileError, match="fast_math must be True or False"):
        k.compile("X: tensor<?xf32>, BLOCK=16, fast_math=3")


@tc.kernel
def k_cluster_kind(X: tc.Tensor, BLOCK: tc.constexpr):
    x = tc.load(X, (0,), (BLOCK,))
    tc.store(X, (0,), tc.cluster_reduce(x, "mean"))  # ERR-cluster-kind


@tc.kernel
def k_cluster_bool(X: tc.Tensor, BLOCK: tc.constexpr):
    x = tc.load(X, (0,), (BLOCK,))
    tc.store(X, (0,), tc.cluster_reduce(x > 0).to(tc.float32))  # ERR-cluster-bool


def test_cluster_reduce_errors():
    expect(k_cluster_kind, "ERR-cluster-kind",
           "'cluster_reduce': attribute 'kind' must be one of sum, max, min; got 'mean'")
    expect(k_cluster_bool, "ERR-cluster-bool", "cluster_reduce takes 16- or 32-bit numbers")


@tc.kernel
def k_take_axis(X: tc.Tensor, BLOCK: tc.constexpr):
    x = tc.load(X, (0,), (BLOCK,))
    y = tc.take(x, 0, axis=1)  # ERR-take-axis


@tc.kernel
def k_take_index(X: tc.Tensor, BLOCK: tc.constexpr):
    x = tc.reshape(tc.load(X, (0,), (BLOCK,)), (2, BLOCK // 2))
    y = x.take(2, axis=0)  # ERR-take-index


@tc.kernel
def k_take_runtime(X: tc.Tensor, n: int, BLOCK: tc.constexpr):
    x = tc.load(X, (0,), (BLOCK,))
    y = tc.take(x, n)  # ERR-take-runtime


@tc.kernel
def k_take_scalar(X: tc.Tensor, BLOCK: tc.constexpr):
    y = tc.take(tc.program_id(0), 0)  # ERR-take-scalar


def test_take_errors():
    expect(k_take_axis, "ERR-take-axis", "axis 1 is out of range for take of tile<16xf32>",
           SIG1)
    expect(k_take_index, "ERR-take-index",
           "index 2 is out of range for axis 0 of tile<2x8xf32> (size 2)", SIG1)
    expect(k_take_runtime, "ERR-take-runtime", "index must be a compile-time integer", SIGN)
    expect(k_take_scalar, "ERR-take-scalar", "take slices a tile, got i32", SIG1)


def test_cluster_launch_needs_whole_clusters():
    @tc.kernel
    def k(X: tc.Tensor, BLOCK: tc.constexpr):
        tc.store(X, (tc.program_id(0),), tc.cluster_reduce(tc.full((BLOCK,), 1.0)))

    x = np.zeros(96, np.float32)
    with pytest.raises(LaunchError, match="grid dimension 0 is 6: clusters of num_ctas = 4 "
                                          "programs need a multiple of it") as info:
        k[(6,)](x, BLOCK=16, num_ctas=4)
    assert info.value.loc is not None and info.value.loc.file == __file__
    with pytest.raises(LaunchError, match="num_ctas must be a positive int, got 0"):
        k[(4,)](x, BLOCK=16, num_ctas=0)


def test_non_constexpr_shape_at_launch_names_line():
    x = np.zeros(16, np.float32)
    with pytest.raises(CompileError) as info:
        k_shape[(1,)](x, 16, BLOCK=16)
    assert info.value.loc.line == line_of("ERR-shape")
    assert "dimension 0 is i32" in info.value.message


def test_bad_signature():
    with pytest.raises(CompileError, match="does not give parameter 'BLOCK'"):
        k_try.compile("X: tensor<?xf32>")
    with pytest.raises(CompileError, match="tc.constexpr: give its value"):
        k_try.compile("X: tensor<?xf32>, BLOCK: i32")


@tc.kernel
def k_internal(X: tc.Tensor, BLOCK: tc.constexpr):
    y = tc.exp(tc.load(X, (0,), (BLOCK,)))  # ERR-internal


def test_internal_errors_become_compile_errors(monkeypatch):
    def broken(em, x):
        raise RuntimeError("boom")
    monkeypatch.setattr(tc.exp, "__tilec_builtin__", broken)
    e = expect(k_internal, "ERR-internal", "internal error while compiling this line: "
                                           "RuntimeError: boom")
    assert "tilec bug" in e.hint


def test_launch_errors_point_at_the_launch_line():
    @tc.kernel
    def k(X: tc.Tensor, n: int, BLOCK: tc.constexpr):
        tc.store(X, (0,), tc.full((BLOCK,), n).to(tc.float32))

    x = np.zeros(16, np.float32)
    cases = [
        (lambda: k[(1,)](x, 1, 16, 5), "takes 3 arguments"),                     # LAUNCH-count
        (lambda: k[(1,)](np.zeros(4, np.complex64), 3, BLOCK=16), "unsupported dtype"),  # LAUNCH-dtype
    ]
    for (launch, message), marker in zip(cases, ["LAUNCH-count", "LAUNCH-dtype"]):
        with pytest.raises(LaunchError) as info:
            launch()
        err = info.value
        assert message in err.message
        assert err.loc.file == __file__ and err.loc.line == line_of(marker)
        text = str(err)
        assert f"{__file__}:{err.loc.line}:" in text and marker in text and "^" in text


def test_gpu_tensor_without_a_gpu_says_so():
    @tc.kernel
    def k(X: tc.Tensor, BLOCK: tc.constexpr):
        tc.store(X, (0,), tc.zeros((BLOCK,), tc.float32))

    class DeviceArray:  # looks like a CuPy array: the launch must go to the GPU
        __cuda_array_interface__ = {"shape": (16,), "typestr": "<f4", "data": (0, False),
                                    "version": 3}
    with pytest.raises(LaunchError) as info:
        k[(1,)](DeviceArray(), BLOCK=16)  # LAUNCH-nogpu
    assert "no CUDA driver found" in info.value.message
    assert info.value.loc.line == line_of("LAUNCH-nogpu")


@tc.kernel
def k_atomic_sem(X: tc.Tensor, BLOCK: tc.constexpr):
    tc.atomic_add(X.ptr + tc.arange(0, BLOCK), 1.0, sem="seq_cst")  # ERR-atomic-sem


@tc.kernel
def k_atomic_scope(X: tc.Tensor, BLOCK: tc.constexpr):
    tc.atomic_cas(X.ptr, 0.0, 1.0, scope="device")  # ERR-atomic-scope


def test_atomic_ordering_errors():
    expect(k_atomic_sem, "ERR-atomic-sem", "atomic sem must be one of 'relaxed', 'acquire'")
    expect(k_atomic_scope, "ERR-atomic-scope", "atomic scope must be one of 'cta', 'gpu'")


@tc.kernel
def k_cache_bad(X: tc.Tensor, BLOCK: tc.constexpr):
    x = tc.load(X, (0,), (BLOCK,), cache_modifier=".wb")  # ERR-cache-load


@tc.kernel
def k_store_cache_bad(X: tc.Tensor, BLOCK: tc.constexpr):
    tc.store(X, (0,), tc.zeros((BLOCK,), tc.float32), cache_modifier=".cv")  # ERR-cache-store


@tc.kernel
def k_evict_bad(X: tc.Tensor, BLOCK: tc.constexpr):
    x = tc.load(X.ptr + tc.arange(0, BLOCK), eviction_policy="evict_never")  # ERR-evict


@tc.kernel
def k_volatile_hinted(X: tc.Tensor, BLOCK: tc.constexpr):
    x = tc.load(X.ptr, volatile=True, cache_modifier=".cg")  # ERR-volatile-cache


@tc.kernel
def k_volatile_bad(X: tc.Tensor, BLOCK: tc.constexpr):
    x = tc.load(X.ptr, volatile="yes")  # ERR-volatile-type


@tc.kernel
def k_packed_store_hint(W: tc.Tensor, BLOCK: tc.constexpr):
    tc.store(W, (0,), tc.zeros((BLOCK,), tc.int32), eviction_policy="evict_first")  # ERR-packed


def test_cache_hint_errors():
    expect(k_cache_bad, "ERR-cache-load", "tc.load's cache_modifier must be one of '.ca', "
           "'.cg', '.cs', '.lu', '.cv'")
    expect(k_store_cache_bad, "ERR-cache-store", "tc.store's cache_modifier must be one of "
           "'.wb', '.cg', '.cs', '.wt'")
    expect(k_evict_bad, "ERR-evict", "eviction_policy must be one of 'evict_first', "
           "'evict_last'")
    expect(k_volatile_hinted, "ERR-volatile-cache",
           "a volatile load takes no cache_modifier or eviction_policy")
    expect(k_volatile_bad, "ERR-volatile-type", "volatile must be True or False")
    # Packed sub-byte stores are 32-bit atomics: found when the kernel is lowered.
    from tilec.backends.nvidia import compile_kernel
    module = k_packed_store_hint.compile("W: tensor<?xi4>, BLOCK=64")
    with pytest.raises(tc.TilecError) as info:
        compile_kernel(module, "k_packed_store_hint", arch="sm_90a")
    assert "stores of packed i4 elements take no cache hints" in info.value.message
    loc = info.value.loc
    assert loc is not None and loc.file == __file__ and loc.line == line_of("ERR-packed")
    assert "# ERR-packed" in loc.source_line()
