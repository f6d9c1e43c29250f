"""`casts.cast` is bit-exactly `DType.convert`: run on the host CPU through llvmlite's JIT,
exhaustively for every source of <= 16 bits, on random and edge samples for 32/64-bit
sources; and every cast assembles with ptxas for sm_90a."""
from __future__ import annotations

import numpy as np
import pytest
from llvm_jit import (HostJit, add_nvptx_kernel, build_array_function, emit_ptx, nvptx_module,
                      ptxas_path, run_ptxas)
from llvmlite import ir

from tilec.backends.llvm import dtypes as ltypes
from tilec.backends.llvm.casts import cast
from tilec.ir import dtypes as dt
from tilec.ir.dtypes import DType

CUSTOM_IEEE = dt.float_(3, 4, bias=5, inf=True)   # f8e3m4_ieee_b5
CUSTOM_FN = dt.float_(6, 5, nan="fn")              # f12e6m5_fn: wider range than f16
SMALL_FLOATS = [dt.float8_e4m3, dt.float8_e5m2, dt.float6_e3m2, dt.float6_e2m3,
                dt.float4_e2m1, dt.float3_e1m1, dt.float16, dt.bfloat16, CUSTOM_IEEE, CUSTOM_FN]
SMALL = ([dt.bool_] + [dt.int_(b) for b in range(1, 17)] + [dt.uint(b) for b in range(1, 17)]
         + SMALL_FLOATS)
WIDE = [dt.int32, dt.uint32, dt.int64, dt.uint64, dt.float32, dt.float64]
DESTINATIONS = SMALL + WIDE


def reference(src: DType, dst: DType, patterns: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return dst.encode(dst.convert(src.decode(patterns), src)).astype(np.uint64)


def is_nan(dtype: DType, patterns: np.ndarray) -> np.ndarray:
    if not dtype.is_float:
        return np.zeros(patterns.shape, bool)
    return np.isnan(dtype.decode(patterns).astype(np.float64))


def assert_same(src: DType, dst: DType, patterns: np.ndarray, got: np.ndarray) -> None:
    want = reference(src, dst, patterns)
    ok = (got == want) | (is_nan(dst, got) & is_nan(dst, want))
    if not ok.all():
        bad = np.flatnonzero(~ok)[:8]
        rows = [f"{int(patterns[i]):#x} ({src.decode(patterns[i:i + 1])[0]!r}): "
                f"got {int(got[i]):#x}, want {int(want[i]):#x}" for i in bad]
        pytest.fail(f"cast {src} -> {dst}: {int((~ok).sum())} of {len(ok)} differ\n"
                    + "\n".join(rows))


def function_name(src: DType, dst: DType) -> str:
    return f"cast_{src}_to_{dst}"


def compile_family(jit: HostJit, src: DType, dsts) -> None:
    """One JIT module holding src -> every dst."""
    module = ir.Module()
    for dst in dsts:
        build_array_function(module, function_name(src, dst), [src], dst,
                             lambda b, v, dst=dst: cast(b, v[0], src, dst, None))
    jit.add(module)


@pytest.fixture(scope="module")
def jit() -> HostJit:
    return HostJit(opt=2)


@pytest.mark.parametrize("src", SMALL, ids=str)
def test_exhaustive(jit, src):
    compile_family(jit, src, DESTINATIONS)
    patterns = np.arange(1 << src.bits, dtype=np.uint64)
    for dst in DESTINATIONS:
        got = jit.run(function_name(src, dst), [patterns], [src], dst)
        assert_same(src, dst, patterns, got)


# ---- 32- and 64-bit sources: random patterns plus the values where rounding decides ---------


def _float_edges(src: DType) -> np.ndarray:
    """Every small destination's values, the midpoints between neighbours (ties), and the
    src-neighbours of both; integer edges; specials. As src patterns."""
    values = [np.array([0.0, -0.0, np.inf, -np.inf, np.nan, src.max, -src.max,
                        src.smallest_normal, src.smallest_subnormal])]
    for d in SMALL_FLOATS + [dt.float32]:
        if d == src or d.bits > 16 and d.bits >= src.bits:
            continue
        v = np.unique(d.decode(np.arange(1 << min(d.bits, 16), dtype=np.uint64))
                      .astype(np.float64))
        v = v[np.isfinite(v) & (v >= 0)]
        if d.bits > 16:  # f32 into f64 sources: a sample of its binades
            v = np.ldexp(1.0 + np.arange(64) / 64, np.arange(-150, 128)[:, None]).ravel()
        mids = (v[1:] + v[:-1]) / 2
        top = d.max + (d.max - v[-2]) / 2  # the overflow threshold
        values += [v, mids, np.array([top])]
    ints = np.concatenate([np.ldexp(1.0, np.arange(0, 65)), np.arange(-300, 300) / 2.0])
    values.append(ints[:, None] + np.array([-1.0, -0.5, 0.0, 0.5, 1.0]))
    x = np.concatenate([np.ravel(a) for a in values]).astype(np.float64)
    x = np.concatenate([x, -x])
    native = src.compute_dtype.type
    with np.errstate(all="ignore"):
        xs = x.astype(native)
        near = np.concatenate([xs, np.nextafter(xs, native(np.inf)),
                               np.nextafter(xs, native(-np.inf))])
    return np.unique(near.view(f"uint{src.bits}").astype(np.uint64))


def _int_edges(src: DType) -> np.ndarray:
    rng = np.random.default_rng(1)
    bits = src.bits
    lengths = rng.integers(1, bits + 1, 20000)
    ones = np.array([(1 << int(n)) - 1 for n in lengths], dtype=np.uint64)
    sample = rng.integers(0, 2**63, 20000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    out = [sample & ones]
    # Ties and near-ties at every scale: (odd m) * 2**j +- small.
    for j in range(1, bits):
        m = rng.integers(0, 1 << min(26, bits - j), 64, dtype=np.uint64)
        base = (m << np.uint64(j)) | (np.uint64(1) << np.uint64(j - 1))
        out += [base, base + np.uint64(1), base - np.uint64(1)]
    powers = np.uint64(1) << np.arange(bits, dtype=np.uint64)
    out += [powers, powers - np.uint64(1), powers + np.uint64(1)]
    p = np.concatenate(out)
    p = np.concatenate([p, ~p + np.uint64(1)])  # negatives (two's complement) too
    return np.unique(p & np.uint64((1 << bits) - 1 if bits < 64 else 2**64 - 1))


@pytest.mark.parametrize("src", WIDE, ids=str)
def test_wide_sources(jit, src):
    compile_family(jit, src, DESTINATIONS)
    rng = np.random.default_rng(0)
    random = rng.integers(0, 2**64 - 1, 200_000, dtype=np.uint64, endpoint=True)
    random &= np.uint64(2**src.bits - 1 if src.bits < 64 else 2**64 - 1)
    edges = _float_edges(src) if src.is_float else _int_edges(src)
    patterns = np.concatenate([random, edges])
    for dst in DESTINATIONS:
        got = jit.run(function_name(src, dst), [patterns], [src], dst)
        assert_same(src, dst, patterns, got)


def test_unoptimised_jit_agrees():
    """Code generated without LLVM's optimiser (no instcombine to hide poison) is exact too."""
    jit = HostJit(opt=0)
    for src in (dt.float8_e4m3, dt.int16, dt.bfloat16, CUSTOM_IEEE):
        compile_family(jit, src, DESTINATIONS)
        patterns = np.arange(1 << src.bits, dtype=np.uint64)
        for dst in DESTINATIONS:
            got = jit.run(function_name(src, dst), [patterns], [src], dst)
            assert_same(src, dst, patterns, got)


# ---- API ----------------------------------------------------------------------------------------


def test_llvm_types():
    assert str(ltypes.llvm_type(dt.bool_)) == "i1"
    assert str(ltypes.llvm_type(dt.int_(3))) == "i3"
    assert str(ltypes.llvm_type(dt.uint(17))) == "i17"
    assert str(ltypes.llvm_type(dt.float16)) == "half"
    assert str(ltypes.llvm_type(dt.bfloat16)) == "bfloat"
    assert str(ltypes.llvm_type(dt.float8_e4m3)) == "i8"
    assert str(ltypes.llvm_type(dt.float6_e3m2)) == "i6"
    assert ltypes.is_storage_only(dt.float8_e5m2) and not ltypes.is_storage_only(dt.bfloat16)
    assert str(ltypes.compute_type(dt.float4_e2m1)) == "float"
    assert str(ltypes.compute_type(dt.float_(11, 20))) == "double"
    assert str(ltypes.compute_type(dt.float16)) == "half"


@pytest.mark.parametrize("dtype,value,text", [
    (dt.bfloat16, 1.5, "bfloat 0xR3FC0"),
    (dt.bfloat16, float("nan"), "bfloat 0xR7FC0"),
    (dt.float8_e4m3, 1000.0, "i8 126"),  # saturates to 448
    (dt.int_(3), 9, "i3 1"),               # wraps
    (dt.float16, 1e9, "half 0x7ff0000000000000"),
    (dt.bool_, 3, "i1 1"),
])
def test_constant(dtype, value, text):
    assert str(ltypes.constant(dtype, value)) == text


# ---- NVPTX: every cast assembles ---------------------------------------------------------------


def test_casts_assemble_for_sm_90a():
    assert ptxas_path(), "ptxas is part of the test environment"
    module = nvptx_module()
    ints = [dt.bool_, dt.int_(1), dt.int_(3), dt.uint(5), dt.int8, dt.uint8, dt.int16, dt.uint16]
    sources = ints + SMALL_FLOATS + WIDE
    for src in sources:
        for dst in sources:
            add_nvptx_kernel(module, function_name(src, dst), [src], dst,
                             lambda b, v, src=src, dst=dst: cast(b, v[0], src, dst, None))
    ptx = emit_ptx(module)
    assert ".extern" not in ptx  # an unknown intrinsic becomes an extern call
    run_ptxas(ptx)
