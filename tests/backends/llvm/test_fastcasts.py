"""The bit-trick casts of low-bit ints and floats to f16/bf16 (`fastcasts`): which pairs take
them, that they are bit-exactly `DType.convert` for every input pattern (on the host JIT;
test_casts.py checks the same through `casts.cast`), and that on NVPTX they compile to
integer/f16 arithmetic without any conversion instruction."""
from __future__ import annotations

import re

import numpy as np
import pytest
from llvm_jit import (HostJit, add_nvptx_kernel, build_array_function, emit_ptx, nvptx_module,
                      run_ptxas)
from llvmlite import ir
from test_casts import assert_same

from tilec.backends.llvm.dtypes import llvm_type
from tilec.backends.llvm.fastcasts import (PAIRED_FIELDS, _funnel_cost, byte_windows,
                                          fast_cast, generic_byte_permute,
                                          has_paired_float, pair_distance,
                                          paired_fields_to_f16, paired_floats_to_f16)
from tilec.backends.nvidia.target import NvidiaTarget
from tilec.ir import dtypes as dt

F16_INTS = [dt.int_(b) for b in range(1, 11)] + [dt.uint(b) for b in range(1, 11)]
BF16_INTS = [dt.int_(b) for b in range(1, 8)] + [dt.uint(b) for b in range(1, 8)]
FLOATS = [dt.float8_e4m3, dt.float8_e5m2, dt.float6_e3m2, dt.float6_e2m3, dt.float4_e2m1,
          dt.float3_e1m1, dt.float_(3, 4, bias=5, inf=True, nan="ieee")]
PAIRS = ([(s, dt.float16) for s in F16_INTS] + [(s, dt.bfloat16) for s in BF16_INTS]
         + [(s, d) for s in FLOATS[:-1] for d in (dt.float16, dt.bfloat16)])


def _takes_fast_path(src, dst) -> bool:
    f = ir.Function(ir.Module(), ir.FunctionType(ir.VoidType(), [llvm_type(src)]), "probe")
    return fast_cast(ir.IRBuilder(f.append_basic_block()), f.args[0], src, dst) is not None


def test_which_pairs_are_fast():
    for src, dst in PAIRS:
        assert _takes_fast_path(src, dst), (src, dst)
    for src, dst in [(dt.int_(11), dt.float16), (dt.uint(8), dt.bfloat16), (dt.int16, dt.float16),
                     (dt.int8, dt.float32), (dt.float16, dt.bfloat16), (dt.bool_, dt.float16),
                     (FLOATS[-1], dt.float16)]:  # custom-bias IEEE: the general path
        assert not _takes_fast_path(src, dst), (src, dst)


@pytest.fixture(scope="module")
def jit() -> HostJit:
    module = ir.Module()
    for src, dst in PAIRS:
        build_array_function(module, f"fast_{src}_{dst}", [src], dst,
                             lambda b, v, src=src, dst=dst: fast_cast(b, v[0], src, dst))
    j = HostJit(opt=2)
    j.add(module)
    return j


@pytest.mark.parametrize("src, dst", PAIRS, ids=lambda x: str(x))
def test_exhaustive(jit, src, dst):
    patterns = np.arange(1 << src.bits, dtype=np.uint64)
    assert_same(src, dst, patterns, jit.run(f"fast_{src}_{dst}", [patterns], [src], dst))


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
def test_no_conversion_instructions_on_nvptx(arch):
    module = nvptx_module()
    pairs = [(dt.uint4, dt.float16), (dt.int3, dt.float16), (dt.int7, dt.bfloat16),
             (dt.float4_e2m1, dt.float16), (dt.float6_e3m2, dt.float16)]
    for src, dst in pairs:
        add_nvptx_kernel(module, f"fast_{src}_{dst}", [src], dst,
                         lambda b, v, src=src, dst=dst: fast_cast(b, v[0], src, dst))
    ptx = emit_ptx(module, arch)
    run_ptxas(ptx, arch)
    for src, dst in pairs:
        body = ptx.split(f".entry fast_{src}_{dst}")[1].split(".entry")[0]
        assert not re.search(r"cvt\.rn\.(f16|bf16)\.[su]", body), (src, dst)
        assert not re.search(r"cvt\.rn\.f32\.[su]", body), (src, dst)


# ---- 2, 3 and 4-bit weights straight from words --------------------------------------------


def _convert_from_words(src, convert) -> None:
    """Every field of a unit of words (1 word, or 3 for 3-bit fields that straddle words),
    over every value of each field and random neighbours: `convert(b, words)`'s f16
    values, in order, equal the cast of each field."""
    n, pair = PAIRED_FIELDS[src.bits]
    count = 32 * n // src.bits
    assert pair_distance(src.bits) == pair == count // 2
    module = ir.Module()
    for j in range(count):
        def body(b, v, j=j):
            return convert(b, list(v))[j]
        build_array_function(module, f"field{j}", [dt.uint32] * n, dt.float16, body)
    jit = HostJit(opt=2)
    jit.add(module)
    rng = np.random.default_rng(src.bits)
    for j in range(count):
        values = np.arange(1 << src.bits, dtype=object)
        noise = [int(x) for x in rng.integers(0, 2**63, 4 * len(values))]
        streams = [(noise[k] | noise[k + len(values)] << 63) % (1 << 32 * n)
                   for k in range(len(values))]
        field = ((1 << src.bits) - 1) << (src.bits * j)
        streams = [(s & ~field) | (int(v) << (src.bits * j)) for s, v in zip(streams, values)]
        words = [np.array([(s >> (32 * w)) & 0xFFFFFFFF for s in streams], np.uint64)
                 for w in range(n)]
        got = jit.run(f"field{j}", words, [dt.uint32] * n, dt.float16)
        assert_same(src, dt.float16, np.array([int(v) for v in values], np.uint64), got)


class _HostPermute:
    """A target with NVPTX's byte permute written in plain IR: the host JIT runs the
    windows `byte_windows` gathers as prmt would."""
    byte_permute = staticmethod(generic_byte_permute)


@pytest.mark.parametrize("permute", [False, True], ids=["funnel", "prmt"])
@pytest.mark.parametrize("src", [dt.int_(b) for b in range(1, 9)] +
                         [dt.uint(b) for b in range(1, 9)], ids=str)
def test_paired_fields_from_words(src, permute):
    """Ints from their words as pairs (e_i, e_i+P), exhaustively per field: with funnel
    windows only, and with the target's byte permutes."""
    target = _HostPermute() if permute else None
    _convert_from_words(src, lambda b, words: paired_fields_to_f16(
        b, words, src.bits, src.kind == "int", target))


@pytest.mark.parametrize("src", [dt.float4_e2m1, dt.float6_e3m2, dt.float6_e2m3,
                                 dt.float3_e1m1, dt.float8_e5m2], ids=str)
@pytest.mark.parametrize("permute", [False, True], ids=["funnel", "prmt"])
def test_paired_floats_from_words(src, permute):
    """Small floats from their words as pairs (e_i, e_i+P), exhaustively per field."""
    assert has_paired_float(src)
    target = _HostPermute() if permute else None
    _convert_from_words(src, lambda b, words: paired_floats_to_f16(b, words, src, target))


def test_paired_floats_are_not_for_nan_formats():
    assert not has_paired_float(dt.float8_e4m3)      # "fn": its NaN needs a select
    assert not has_paired_float(dt.int4) and not has_paired_float(dt.float16)


def _pairs_ptx(formats: list, convert) -> dict:
    """{format: the PTX of a kernel summing `convert(b, words, src)` over one unit of
    words}, assembled by ptxas."""
    module = nvptx_module()
    for src in formats:
        n, _ = PAIRED_FIELDS[src.bits]

        def body(b, v, src=src):
            vals = convert(b, list(v), src)
            total = vals[0]
            for x in vals[1:]:
                total = b.fadd(total, x)
            return total
        add_nvptx_kernel(module, f"pairs_{src}", [dt.uint32] * n, dt.float16, body)
    ptx = emit_ptx(module, "sm_90a")
    run_ptxas(ptx, "sm_90a")
    return {src: ptx.split(f".entry pairs_{src}")[1].split(".entry")[0] for src in formats}


def _window_counts(body: str) -> tuple[int, int]:
    """(byte permutes, shifts: funnel or plain) of a kernel body."""
    shifts = len(re.findall(r"\b(shf\.[lr]\.wrap|shr\.u32|shl\.b32)\b", body))
    return body.count("prmt.b32"), shifts


def test_paired_fields_on_nvptx_gather_windows_with_byte_permutes():
    """One lop3 and one sub.f16x2 a pair; one-word units shift and take no byte permute;
    in units of several words the windows `byte_windows` plans take one or two prmt and no
    shift (int3: 8 prmt for 16 pairs, where funnel windows took 10 shifts and 6 merges),
    the others a funnel shift a half that does not start on a word and a prmt merge."""
    widths = [dt.int2, dt.int3, dt.uint4, dt.int5, dt.uint6, dt.int7, dt.uint8]
    bodies = _pairs_ptx(widths, lambda b, v, src: paired_fields_to_f16(
        b, v, src.bits, src.kind == "int", NvidiaTarget("sm_90a")))
    for src, body in bodies.items():
        words, pairs = PAIRED_FIELDS[src.bits]
        assert body.count("lop3.b32") == 16 * words // src.bits == pairs, src
        assert "cvt.rn.f16" not in body and "and.b32" not in body, src
        permutes, shifts = _window_counts(body)
        if words == 1:
            assert permutes == 0, src
            continue
        step = src.bits * ((10 - src.bits) // src.bits + 1)
        plan = byte_windows(src.bits, 10 - src.bits, step)
        rest = [i for i in range(pairs) if i not in plan]
        assert permutes + shifts == (sum(len(steps) for _, steps in set(plan.values()))
                                     + _funnel_cost(src.bits, step, rest)), src
        assert permutes + shifts <= _funnel_cost(src.bits, step, range(pairs)), src
    assert _window_counts(bodies[dt.int3]) == (8, 0)
    assert _window_counts(bodies[dt.int7]) == (10 + 8, 16)   # half the pairs planned


def test_paired_floats_on_nvptx_gather_windows_with_byte_permutes():
    """Two shifts, the and/or that joins them and one mul.f16x2 a pair; no conversion
    instructions; in units of several words (float6, float3: 16 or 8 pairs, each field
    inside a byte-aligned half) every window gathered by byte permutes, 8 a unit, and no
    funnel shift."""
    formats = [dt.float4_e2m1, dt.float6_e3m2, dt.float3_e1m1]
    for src, body in _pairs_ptx(formats, lambda b, v, src: paired_floats_to_f16(
            b, v, src, NvidiaTarget("sm_90a"))).items():
        words, pairs = PAIRED_FIELDS[src.bits]
        assert body.count("mul.rn.f16x2") == 16 * words // src.bits == pairs, src
        assert "cvt.rn.f16" not in body, src
        assert body.count("prmt.b32") == (0 if words == 1 else 8), src
        assert "shf." not in body, src


def test_map_pairs_takes_the_vectors_it_is_given():
    """`map_pairs` computes together the two lanes of one vector (a paired cast's (e_i,
    e_i+P)), whatever their places, and the other elements in order."""
    from tilec.backends.llvm.elementwise import _pairing
    fn = ir.Function(ir.Module(), ir.FunctionType(ir.VoidType(), [ir.VectorType(
        ir.HalfType(), 2)] * 2 + [ir.HalfType()] * 3), "f")
    b = ir.IRBuilder(fn.append_basic_block())
    u, v, x, y, z = fn.args
    lanes = [b.extract_element(w, ir.Constant(ir.IntType(32), i)) for w in (u, v)
             for i in range(2)]
    # elements: u0 v0 x u1 v1 y z  ->  (u0, u1), (v0, v1), then x y, z in order
    col = [lanes[0], lanes[2], x, lanes[1], lanes[3], y, z]
    assert _pairing([col]) == [(0, 3), (1, 4), (2, 5), (6,)]
    assert _pairing([[x, y, z]]) == [(0, 1), (2,)]
    # the operand with the most vector pairs decides, for every operand
    assert _pairing([[x] * 7, col]) == [(0, 3), (1, 4), (2, 5), (6,)]
