"""`dot` on wgmma (sm_90a): f16/bf16 into f32 with a loaded b, b read from the pipeline's
shared buffers (N-major, or K-major through `tc.trans`) or staged there (also a computed b
when a is loaded), a from registers;
ptxas assembles every kernel. The GPU results are checked in tests/gpu/test_dot_gpu.py."""
from __future__ import annotations

import re

import pytest
from nvidia_util import compile_checked

from tilec.ir.parser import parse_module

GEMM = """
func @gemm(%A: tensor<?x?x{T}> {{contiguous = true, aligned = 16}},
           %B: tensor<?x?x{T}> {{contiguous = true, aligned = 16}},
           %C: tensor<?x?xf32>) attrs {{num_warps = {W}, num_stages = {S}}} {{
  %c0 = constant {{value = 0}} : i32
  %bk = constant {{value = {BK}}} : i32
  %K = tensor_dim %A {{axis = 1}} : i32
  %zero = constant {{value = 0.0}} : tile<{BM}x{BN}xf32>
  %acc = for %c0, %K, %bk, %zero : tile<{BM}x{BN}xf32> {{
  ^(%k: i32, %acc_in: tile<{BM}x{BN}xf32>):
{A}
{B}
    %acc_out = dot %a, %b, %acc_in : tile<{BM}x{BN}xf32>
    yield %acc_out
  }}
  store_view %C, [%c0, %c0], %acc
  return
}}
"""
B_NN = "    %b = load_view %B, [%k, %c0] : tile<{BK}x{BN}x{T}>"
B_NT = ("    %bt = load_view %B, [%c0, %k] : tile<{BN}x{BK}x{T}>\n"
        "    %b = permute %bt {{dims = [1, 0]}} : tile<{BK}x{BN}x{T}>")
B_COMPUTED = ("    %b0 = load_view %B, [%k, %c0] : tile<{BK}x{BN}x{T}>\n"
              "    %b = mul %b0, %b0 : tile<{BK}x{BN}x{T}>")
B_NT_COMPUTED = ("    %bt = load_view %B, [%c0, %k] : tile<{BN}x{BK}x{T}>\n"
                 "    %bt2 = mul %bt, %bt : tile<{BN}x{BK}x{T}>\n"
                 "    %b = permute %bt2 {{dims = [1, 0]}} : tile<{BK}x{BN}x{T}>")
A_LOADED = "    %a = load_view %A, [%c0, %k] : tile<{BM}x{BK}x{T}>"
A_COMPUTED = ("    %a0 = load_view %A, [%c0, %k] : tile<{BM}x{BK}x{T}>\n"
              "    %a = mul %a0, %a0 : tile<{BM}x{BK}x{T}>")


def gemm(t="f16", bm=128, bn=128, bk=64, warps=8, stages=3, b=B_NN, a=A_LOADED):
    fields = dict(T=t, BM=bm, BN=bn, BK=bk, W=warps, S=stages)
    return parse_module(GEMM.format(A=a.format(**fields), B=b.format(**fields), **fields))


SEP = r"(?:\s|//[^\n]*)*"   # whitespace and the `// begin inline asm` comments


def wgmmas(ptx: str) -> list[tuple[str, str]]:
    """(shape and types, trans-b flag) of every wgmma.mma_async."""
    return re.findall(r"wgmma\.mma_async\.sync\.aligned\.(\S+) .*, 1, 1, (\d);", ptx)


@pytest.mark.parametrize("t", ["f16", "bf16"])
@pytest.mark.parametrize("bm,bn,warps,n,per_k", [(128, 128, 8, 128, 1), (128, 256, 8, 256, 1),
                                                 (128, 128, 4, 128, 2), (64, 64, 4, 64, 1)])
def test_pipelined_gemm(t, bm, bn, warps, n, per_k):
    """The instruction count per k step of 16 is the row blocks of 64 a warpgroup owns; b
    is N-major (trans-b 1) and never goes through ldmatrix or registers; the landed bytes
    are fenced for the async proxy between cp.async.wait_group and the barrier."""
    k = compile_checked(gemm(t, bm, bn, 64, warps), "gemm", "sm_90a")
    found = wgmmas(k.ptx)
    assert set(found) == {(f"m64n{n}k16.f32.{t}.{t}", "1")}
    assert len(found) == 64 // 16 * per_k
    assert "mma.sync" not in k.ptx and ".trans" not in k.ptx
    assert re.search(r"cp\.async\.wait_group\s+\d+;" + SEP + r"fence\.proxy\.async\.shared::cta;"
                     + SEP + r"bar\.sync", k.ptx)
    assert "wgmma.fence.sync.aligned" in k.ptx and "wgmma.wait_group.sync.aligned 0" in k.ptx
    assert ".extern .shared .align 1024" in k.ptx   # the swizzle is on absolute addresses
    if warps == 8 or bm == 64:
        assert k.resources.spill_stores == 0 and k.resources.spill_loads == 0, k.resources


def test_transposed_b_is_read_k_major():
    k = compile_checked(gemm(b=B_NT), "gemm", "sm_90a")
    assert set(wgmmas(k.ptx)) == {("m64n128k16.f32.f16.f16", "0")}
    assert "ldmatrix" in k.ptx and ".trans" not in k.ptx   # a's fragments only


def test_unpipelined_b_is_staged():
    """Without num_stages b arrives in registers: stored in a Hopper layout, fenced, then a
    barrier before the products."""
    k = compile_checked(gemm(stages=1), "gemm", "sm_90a")
    assert re.search(r"st\.shared[^\n]*\n(.*\n)*?\s*fence\.proxy\.async\.shared::cta;" + SEP
                     + r"bar\.sync[^\n]*\n(.*\n)*?\s*wgmma\.fence", k.ptx)
    assert len(wgmmas(k.ptx)) == 4


@pytest.mark.parametrize("b, contiguous", [(B_COMPUTED, "N"), (B_NT_COMPUTED, "K")])
def test_computed_b_is_staged_in_runs(b, contiguous):
    """A loaded a and a computed b (dequantized weights): wgmma, b stored into shared memory
    along the dim its registers run (16-byte stores either way), a barrier before and after
    the products."""
    k = compile_checked(gemm(b=b), "gemm", "sm_90a")
    assert set(wgmmas(k.ptx)) == {("m64n128k16.f32.f16.f16", "1" if contiguous == "N" else "0")}
    assert "mma.sync" not in k.ptx
    staged = re.findall(r"st\.shared(\.\S+)", k.ptx)
    assert staged and set(staged) == {".v4.b32"}, staged
    assert k.resources.spill_stores == 0


@pytest.mark.parametrize("case", ["computed_a_and_b", "two_warps", "sm_80"])
def test_mma_sync_otherwise(case):
    """Neither operand loaded, warps that are no whole warpgroup, or a target without
    wgmma: mma.sync."""
    module = gemm(b=B_COMPUTED, a=A_COMPUTED) if case == "computed_a_and_b" else gemm(
        bm=64, bn=64, warps=2) if case == "two_warps" else gemm()
    k = compile_checked(module, "gemm", "sm_80" if case == "sm_80" else "sm_90a")
    assert "mma.sync.aligned.m16n8k16" in k.ptx and "wgmma" not in k.ptx
