"""`dot` on tensor cores: mma.sync for every dtype that has one, operands through swizzled
shared memory and ldmatrix, ptxas on sm_80 / sm_89 / sm_90a, registers of a 128x128x32 tile."""
from __future__ import annotations

import re

import pytest
from filecheck import filecheck
from nvidia_util import compile_checked

from tilec.ir.parser import parse_module
from tilec.ir.printer import print_module

GEMM = """
func @gemm(%A: tensor<?x?x{T}>, %B: tensor<?x?x{T}>, %C: tensor<?x?x{ACC}>) attrs {{num_warps = {W}}} {{
  %c0 = constant {{value = 0}} : i32
  %bk = constant {{value = {BK}}} : i32
  %K = tensor_dim %A {{axis = 1}} : i32
  %zero = constant {{value = 0}} : tile<{BM}x{BN}x{ACC}>
  %acc = for %c0, %K, %bk, %zero : tile<{BM}x{BN}x{ACC}> {{
  ^(%k: i32, %acc_in: tile<{BM}x{BN}x{ACC}>):
    %a = load_view %A, [%c0, %k] : tile<{BM}x{BK}x{T}>
    %b = load_view %B, [%k, %c0] : tile<{BK}x{BN}x{T}>
    %acc_out = dot %a, %b, %acc_in {{precision = "{P}"}} : tile<{BM}x{BN}x{ACC}>
    yield %acc_out
  }}
  store_view %C, [%c0, %c0], %acc
  return
}}
"""


def gemm(t: str, acc: str, bm=128, bn=128, bk=32, warps=4, precision="ieee"):
    text = GEMM.format(T=t, ACC=acc, BM=bm, BN=bn, BK=bk, W=warps, P=precision)
    return parse_module(text.replace("{value = 0}} : tile", "{value = 0} : tile")
                        if acc == "i32" else text.replace("{value = 0} : tile<",
                                                          "{value = 0.0} : tile<"))


def loop_body(ptx: str) -> str:
    """The PTX between the first bar.sync and the last (the staged mma loop body)."""
    start, end = ptx.index("bar.sync"), ptx.rindex("bar.sync")
    return ptx[start:end]


# f16 and bf16 with a loaded b run on wgmma on sm_90a (test_dot_wgmma.py).
CASES = [  # dtype, acc, instruction, archs, bk, ldmatrix count per k-tile (a, b)
    ("f16", "f32", "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32", ("sm_80", "sm_89"), 32),
    ("bf16", "f32", "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", ("sm_80", "sm_89"), 32),
    ("i8", "i32", "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32", ("sm_80", "sm_90a"), 64),
    ("f8e4m3", "f32", "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32", ("sm_89", "sm_90a"), 64),
    ("f8e5m2", "f32", "mma.sync.aligned.m16n8k32.row.col.f32.e5m2.e5m2.f32", ("sm_89",), 64),
    ("f32", "f32", "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32", ("sm_80", "sm_90a"), 16),
]


@pytest.mark.parametrize("t,acc,instr,archs,bk", CASES, ids=[c[0] for c in CASES])
def test_mma_ptx(t, acc, instr, archs, bk):
    for arch in archs:
        k = compile_checked(gemm(t, acc, 64, 64, bk, precision="tf32" if t == "f32" else "ieee"),
                            "gemm", arch)
        filecheck(k.ptx, f"""
        // CHECK: st.shared.v4.b32 {{{{.*}}}}
        // CHECK: bar.sync 0;
        // CHECK: ldmatrix.sync.aligned.m8n8.x4.shared.b16 {{{{.*}}}}
        // CHECK: {instr} {{{{.*}}}}
        """)
        body = loop_body(k.ptx)
        # 64x64 over a 2x2 warp grid: 2x4 m16n8 tiles per warp per k step.
        assert body.count(instr) == 8 * (bk // int(re.search(r"k(\d+)\.", instr).group(1)))
        if t in ("f16", "bf16"):
            assert "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16" in body   # row-major B
            assert not re.search(r"ld\.shared\.(b16|u16)", body)
        if t.startswith("f8"):
            assert ".version 8.4" in k.ptx     # e4m3/e5m2 mma needs PTX ISA 8.4
        if t == "f32":
            assert "and.b32" in body           # rounded to tf32 (nearest even) first


def test_ieee_f32_keeps_the_fma_path():
    k = compile_checked(gemm("f32", "f32", 64, 64, 16), "gemm", "sm_80")
    assert "mma.sync" not in k.ptx and "fma.rn.f32" in k.ptx


@pytest.mark.parametrize("warps", [4, 8])
def test_128x128x32_f16_registers(warps):
    k = compile_checked(gemm("f16", "f32", 128, 128, 32, warps), "gemm", "sm_80")
    r = k.resources
    print(f"128x128x32 f16, {warps} warps: {r.registers} registers, spills {r.spill_stores}")
    body = loop_body(k.ptx)
    assert body.count("mma.sync.aligned.m16n8k16") == 128 * 128 * 32 // (16 * 8 * 16) // warps
    assert not re.search(r"ld\.shared\.(b16|u16)", body)
    if warps == 8:
        assert r.spill_stores == 0 and r.spill_loads == 0, r
    else:
        # The accumulator (128 f32 a thread) and one k step of fragments fit (228 registers
        # without the masked slow path of the global loads); that slow path's per-element
        # predicates still push it over 255. Fixed in memory.py, not here.
        assert r.registers <= 255


@pytest.mark.parametrize("facts", [True, False], ids=["rows_aligned", "unknown"])
def test_pipelined_copies_need_no_slow_path_on_aligned_rows(facts):
    """With the launch's facts (a contiguous last dim, rows 16-byte aligned) every cp.async
    of the pipeline is known to be aligned: no synchronous element-by-element copy is left
    beside them, so the loop body is one block that ptxas can interleave with the mma."""
    text = print_module(gemm("f16", "f32", 128, 128, 32))
    text = text.replace("num_warps = 4", "num_stages = 3, num_warps = 4")
    if facts:
        text = re.sub(r"(%[ABC]: tensor<\?x\?x\w+>)", r"\1 {contiguous = true, aligned = 16}",
                      text)
    k = compile_checked(parse_module(text), "gemm", "sm_90a")
    assert k.ptx.count("cp.async.cg.shared.global") > 0
    loads = re.findall(r"ld\.global\.\S+", k.ptx)
    assert (loads == []) is facts, loads


@pytest.mark.parametrize("b_first", [False, True], ids=["a_then_b", "b_then_a"])
@pytest.mark.parametrize("t,acc,bk", [("f16", "f32", 32), ("i8", "i32", 64),
                                      ("f8e4m3", "f32", 64), ("f32", "f32", 16)],
                         ids=["f16", "i8", "f8e4m3", "tf32"])
def test_staged_operands_are_not_overwritten(monkeypatch, t, acc, bk, b_first):
    """An operand staged for ldmatrix waits in the scratch area until its dot loads it; the
    other operand's conversion in between (the generic one for the 8-bit and tf32 b
    fragments, which hold runs along k) must not write over it: every scratch part taken
    after a staged one (in this loop body, all before the dot) is disjoint from it."""
    from tilec.backends.llvm import staging
    from tilec.backends.llvm.shared import SharedPlan
    parts: list[tuple[int, int, bool]] = []   # (start, end, staged for ldmatrix)
    in_store = []
    scratch, store = SharedPlan.scratch, staging._store

    def record(self, b, nbytes, at=0):
        parts.append((at, at + nbytes, bool(in_store)))
        return scratch(self, b, nbytes, at)

    def staged_store(*args, **kw):
        in_store.append(1)
        try:
            return store(*args, **kw)
        finally:
            in_store.pop()
    monkeypatch.setattr(SharedPlan, "scratch", record)
    monkeypatch.setattr(staging, "_store", staged_store)
    module = gemm(t, acc, 64, 64, bk, precision="tf32" if t == "f32" else "ieee")
    if b_first:  # b loaded (and so converted) before a
        text = print_module(module)
        load_a = re.search(r"\n *%a = load_view[^\n]*", text).group(0)
        load_b = re.search(r"\n *%b = load_view[^\n]*", text).group(0)
        module = parse_module(text.replace(load_a, "\0").replace(load_b, load_a)
                              .replace("\0", load_b))
        text = print_module(module)
        assert text.index("%b = load_view") < text.index("%a = load_view")
    k = compile_checked(module, "gemm", "sm_80" if t == "f16" else "sm_90a")
    assert "mma.sync" in k.ptx and "ldmatrix" in k.ptx
    assert len(parts) == 2 and any(p[2] for p in parts), parts
    for i, (s0, e0, staged) in enumerate(parts):
        for s1, e1, _ in parts[i + 1:] if staged else ():
            assert e1 <= s0 or e0 <= s1, parts
