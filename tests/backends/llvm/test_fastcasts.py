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
from tilec.backends.llvm.fastcasts import fast_cast
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
