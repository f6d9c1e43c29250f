"""Hand-laid-out kernels covering op families beyond the corpus (ops.tile) compile for
sm_80 and sm_90a and assemble; plus unit tests of the lowering's layout planning."""
from __future__ import annotations

from pathlib import Path

import pytest
from filecheck import split_cases
from nvidia_util import ARCHS, compile_checked

from tilec.backends.llvm.convert import register_map, take_slots
from tilec.backends.llvm.memory import vector_groups
from tilec.backends.llvm.reduce import axis_plan
from tilec.backends.nvidia.compiler import parse_ptxas_release, parse_ptxas_report, ptxas_release
from tilec.errors import IRError
from tilec.ir.layout import column_spatial, local, parse_layout, replicate, spatial
from tilec.ir.parser import parse_module
from tilec.ir.verifier import verify
from tilec.backends.nvidia import compile_kernel

HERE = Path(__file__).resolve().parent
CASES = split_cases((HERE / "ops.tile").read_text())


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("line,text", CASES, ids=[f"line{n}" for n, _ in CASES])
def test_op_families_compile(line, text, arch):
    module = parse_module(text, f"ops.tile:{line}")
    k = compile_checked(module, module.functions[0].name, arch)
    assert k.resources.spill_stores == 0


def test_vector_groups():
    assert vector_groups(spatial(128) * local(4), 32) == 4
    assert vector_groups(spatial(128) * local(8), 16) == 8
    assert vector_groups(spatial(128) * local(8), 32) == 4          # 16 bytes at most
    assert vector_groups(local(4) * spatial(128), 32) == 1          # strided per thread
    assert vector_groups(spatial(32, 4) * local(1, 8), 8) == 8
    assert vector_groups(column_spatial(4, 32) * local(8, 1), 32) == 1


def test_register_map_finds_free_moves():
    a = spatial(128)
    e = parse_layout("spatial(1,128)")
    assert register_map(a, [1], e, [0, 1]) == [0]
    t = spatial(32, 4) * local(1, 8)
    u = column_spatial(4, 32) * local(8, 1)
    assert register_map(t, [32, 1], u, [32, 1]) is None
    # reversing a thread's own locals is a renaming
    assert register_map(spatial(128) * local(2), [1], spatial(128) * local(2), [1]) == [0, 1]


def test_axis_plan_splits_lanes_and_warps():
    layout = spatial(1, 2) * spatial(8, 8) * local(1, 4)
    masks, rest = axis_plan(layout, 1, 32)
    assert sorted(masks) == [1, 2, 4]
    assert rest == [(2, 64, 0)]
    masks, rest = axis_plan(replicate(4) * spatial(32), 0, 32)
    assert masks == [1, 2, 4, 8, 16] and rest == []


def test_parse_ptxas_report():
    text = """ptxas info    : Compiling entry function 'k' for 'sm_90a'
ptxas info    : Function properties for k
    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 72 registers, used 1 barriers, 1024 bytes smem"""
    r = parse_ptxas_report(text, "k")
    assert (r.registers, r.shared_bytes, r.spill_stores, r.spill_loads, r.stack_bytes) == \
        (72, 1024, 4, 12, 8)


def test_kernels_without_layouts_or_with_results_are_rejected():
    m = parse_module("func @f(%x: i32) -> i32 {\n  return %x\n}\n")
    with pytest.raises((IRError, TypeError)):
        compile_kernel(m, "f", arch="sm_80")


def _last_sums():
    import tilec as tc

    @tc.kernel
    def last_sums(P: tc.Tensor, Count: tc.Tensor, SCOPE: tc.constexpr):
        offs = tc.arange(0, 128)
        tc.atomic_add(P.ptr + offs, tc.full((128,), 1.0), sem="relaxed")
        if tc.atomic_add(Count.ptr, 1, scope=SCOPE) == 3:
            tc.atomic_xchg(P.ptr + offs, tc.zeros((128,), tc.float32), sem="relaxed")
    return last_sums


def test_atomic_orderings_in_ptx():
    """A split-K style "last program finishes" counter. Relaxed adds stay bare atoms. The
    acq_rel counter (a scalar: one thread acts for the program) comes after a barrier and
    between two fences at its scope, in the acting thread only (LLVM's NVPTX backend drops
    atomicrmw orderings, so the fences are all the order there is). On sm_90 they are one-way
    (PTX 8.6: fence.release before, fence.acquire after; this ptxas takes PTX 8.6), elsewhere
    fence.acq_rel both."""
    assert ptxas_release() >= (12, 7)
    last_sums = _last_sums()
    for scope in ("gpu", "cta", "sys"):
        module = last_sums.compile(f"P: tensor<?xf32>, Count: tensor<?xi32>, "
                                   f"SCOPE=\"{scope}\"")
        for arch in ARCHS:
            ptx = compile_kernel(module, "last_sums", arch=arch).ptx
            lines = [ln.strip() for ln in ptx.splitlines() if ln.strip()]
            adds = [i for i, ln in enumerate(lines) if ln.startswith("atom.global.add.f32")]
            count = next(i for i, ln in enumerate(lines) if ln.startswith("atom.global.add.u32"))
            fences = [i for i, ln in enumerate(lines) if ln.startswith("fence.")]
            assert fences == [count - 1, count + 1], [lines[i] for i in fences]
            sems = ("release", "acquire") if arch.startswith("sm_90") else ("acq_rel",) * 2
            assert [lines[i] for i in fences] == [f"fence.{sem}.{scope};" for sem in sems]
            assert ".version 8.6" in ptx if arch.startswith("sm_90") else ".version 8.0" in ptx
            assert adds and max(adds) < count
            between = lines[max(adds):count]
            assert any(ln.startswith("bar.sync") for ln in between)
            branch = max(i for i in range(count) if lines[i].startswith("@"))
            assert max(adds) < branch < count - 1, "the fences belong to the acting thread"
            assert not any(ln.startswith("bar.sync") for ln in lines[branch:count])


def test_one_way_fences_need_a_ptxas_that_knows_ptx_86(monkeypatch):
    """With a ptxas older than CUDA 12.7 (or none: the driver compiles the PTX) the fences
    stay fence.acq_rel at PTX 8.0, which every CUDA 12 toolchain takes."""
    import tilec.backends.nvidia.compiler as nvc
    module = _last_sums().compile('P: tensor<?xf32>, Count: tensor<?xi32>, SCOPE="gpu"')
    for release in ((12, 4), None):
        monkeypatch.setattr(nvc, "ptxas_release", lambda release=release: release)
        ptx = compile_kernel(module, "last_sums", arch="sm_90a").ptx
        assert ".version 8.0" in ptx and ptx.count("fence.acq_rel.gpu;") == 2


def test_parse_ptxas_release():
    text = ("ptxas: NVIDIA (R) Ptx optimizing assembler\nCopyright (c) 2005-2025 NVIDIA "
            "Corporation\nCuda compilation tools, release 13.0, V13.0.88\n")
    assert parse_ptxas_release(text) == (13, 0)
    assert parse_ptxas_release("Cuda compilation tools, release 12.4, V12.4.131") == (12, 4)
    assert parse_ptxas_release("no version here") is None


def test_take_of_a_local_axis_picks_registers():
    text = next(t for _, t in CASES if "@take_halves" in t)
    k = compile_checked(parse_module(text, "ops.tile"), "take_halves", "sm_90a")
    assert "convert_layout" not in k.tile_ir and k.resources.shared_bytes == 0
    # each half is one of the two runs a thread holds: its first or its last 32 registers
    layout = spatial(32, 1, 4) * local(1, 2, 32)
    assert take_slots(layout, 1, 0) == list(range(32))
    assert take_slots(layout, 1, 1) == list(range(32, 64))
    assert take_slots(replicate(32) * local(4), 0, 3) == [3]


def test_take_of_a_split_axis_is_an_internal_error():
    with pytest.raises(IRError, match="which threads split"):
        take_slots(spatial(4, 32) * local(1, 2), 0, 1)


BATCHED = """
func @split_k(%a: tensor<?x?xf16>, %b: tensor<?x?xf16>, %c: tensor<?x?xf32>) {
  %z = constant {value = 0} : i32
  %x = load_view %a, [%z, %z] : tile<16x256xf16>
  %y = load_view %b, [%z, %z] : tile<256x16xf16>
  %xr = reshape %x : tile<16x4x64xf16>
  %x3 = permute %xr {dims = [1, 0, 2]} : tile<4x16x64xf16>
  %y3 = reshape %y : tile<4x64x16xf16>
  %acc = constant {value = 0.0} : tile<4x16x16xf32>
  %d = dot %x3, %y3, %acc : tile<4x16x16xf32>
  %s = reduce %d {axis = 0, kind = "sum"} : tile<16x16xf32>
  store_view %c, [%z, %z], %s
  return
}
"""


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
def test_batched_dot_gives_each_warp_a_product(arch):
    """K = 256 in 4 parts over 4 warps: each warp runs its own product, 16x16 by 64 deep,
    on mma (8 m16n8k16, not the 32 of one warp doing all four), and no FMA loop is left."""
    module = parse_module(BATCHED)
    verify(module)
    k = compile_checked(module, "split_k", arch)
    assert k.ptx.count("mma.sync.aligned.m16n8k16") == 8
    assert "dot.body" not in k.ptx and "fma.rn.f32" not in k.ptx


def test_grid_dependency_orders_griddepcontrol_on_sm90_only():
    """gdc_launch_dependents comes first, the weights' load before gdc_wait and the other
    operand's load after it (the asm's memory clobber keeps them there); sm_80 has no
    griddepcontrol and launches in order, so nothing is emitted there."""
    text = (HERE.parents[1] / "ir" / "corpus" / "grid_dependency.tile").read_text()
    ptx = compile_checked(parse_module(text, "grid_dependency.tile"), "scale_by_weights",
                          "sm_90a").ptx
    body = ptx[ptx.index(".entry"):]
    first = body.index("griddepcontrol.launch_dependents;")
    wait = body.index("griddepcontrol.wait;")
    loads = [i for i in range(len(body)) if body.startswith("ld.global", i)]
    assert first < loads[0] < wait < loads[-1] and len(loads) >= 2
    assert "griddepcontrol" not in compile_checked(
        parse_module(text, "grid_dependency.tile"), "scale_by_weights", "sm_80").ptx
