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
from tilec.backends.llvm.fastcasts import fast_cast, nibble_pairs_to_f16
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


# ---- 4-bit weights straight from words --------------------------------------------------


def _prmt(x: int, y: int, selector: int) -> int:
    """PTX `prmt.b32` in its default mode: result byte i = byte (selector >> 4i) & 7 of the
    eight bytes of (x, y), x's first (the sign-replicate bit 3 unused here)."""
    data = x | y << 32
    return sum(((data >> 8 * ((selector >> 4 * i) & 7)) & 0xFF) << 8 * i for i in range(4))


class _PrmtModel:
    """A target whose byte_perm is emitted as the model above computes it, so the host JIT
    runs the same selectors the NVIDIA hook passes to prmt."""

    def byte_perm(self, b, x, y, selector):
        i32 = ir.IntType(32)
        out = ir.Constant(i32, 0)
        for i in range(4):
            k = (selector >> 4 * i) & 7
            src = x if k < 4 else y
            byte = b.and_(b.lshr(src, ir.Constant(i32, 8 * (k % 4))), ir.Constant(i32, 0xFF))
            out = b.or_(out, b.shl(byte, ir.Constant(i32, 8 * i)))
        return out


@pytest.mark.parametrize("target", [None, _PrmtModel()], ids=["shifts", "prmt"])
@pytest.mark.parametrize("src", [dt.uint4, dt.int4], ids=str)
def test_nibble_pairs_from_words(src, target):
    """Every byte value in every byte position of a word: the 8 f16 values equal the cast
    of each nibble."""
    module = ir.Module()
    for j in range(8):
        def body(b, v, j=j):
            pairs = nibble_pairs_to_f16(b, [v[0]], src.kind == "int", target)
            return b.extract_element(pairs[j // 2], ir.Constant(ir.IntType(32), j % 2))
        build_array_function(module, f"nib{j}", [dt.uint32], dt.float16, body)
    jit = HostJit(opt=2)
    jit.add(module)
    bytes_ = np.arange(256, dtype=np.uint64)
    words = np.concatenate([bytes_ << (8 * k) | ((255 - bytes_) << (8 * ((k + 1) % 4)))
                            for k in range(4)])
    for j in range(8):
        got = jit.run(f"nib{j}", [words], [dt.uint32], dt.float16)
        nibbles = (words >> np.uint64(4 * j)) & np.uint64(0xF)
        assert_same(src, dt.float16, nibbles, got)


def test_prmt_selector_spreads_the_byte():
    word = 0x89ABCDEF
    for byte in range(4):
        sel = byte | 4 << 4 | byte << 8 | 4 << 12
        want = ((word >> 8 * byte) & 0xFF) * 0x00010001
        assert _prmt(word, 0, sel) == want
