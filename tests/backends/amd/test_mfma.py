"""`dot` on MFMA: for every dtype with an instruction on the arch, the linked code object
disassembles to that instruction (llvm-objdump), as many per k-tile as the warp grid needs;
8-bit floats use the arch's own formats (FNUZ on gfx942, OCP on gfx950)."""
from __future__ import annotations

import pytest
from amd_util import compile_checked, disassembly, instructions
from test_dot_mma import gemm

from tilec.ir import dtypes as dt
from tilec.ir import mma

FNUZ_E4M3, FNUZ_E5M2 = mma.FLOAT8_E4M3_FNUZ.name, mma.FLOAT8_E5M2_FNUZ.name

CASES = [  # dtype, acc, arch, instruction (as llvm-objdump prints it), k of the instruction
    ("f16", "f32", "gfx90a", "v_mfma_f32_32x32x8f16", 8),
    ("f16", "f32", "gfx942", "v_mfma_f32_32x32x8_f16", 8),
    ("bf16", "f32", "gfx90a", "v_mfma_f32_32x32x8bf16_1k", 8),
    ("bf16", "f32", "gfx942", "v_mfma_f32_32x32x8_bf16", 8),
    ("i8", "i32", "gfx90a", "v_mfma_i32_32x32x8i8", 8),
    ("i8", "i32", "gfx942", "v_mfma_i32_32x32x16_i8", 16),
    (FNUZ_E4M3, "f32", "gfx942", "v_mfma_f32_32x32x16_fp8_fp8", 16),
    (FNUZ_E5M2, "f32", "gfx942", "v_mfma_f32_32x32x16_bf8_bf8", 16),
]


@pytest.mark.parametrize("t,acc,arch,instr,k", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_mfma_in_the_code_object(t, acc, arch, instr, k):
    bk = 32
    kernel = compile_checked(gemm(t, acc, 64, 64, bk), "gemm", arch)
    found = instructions(disassembly(kernel))
    # 64x64 over 4 wavefronts: a 2x2 grid of 32x32 tiles, one MFMA per wavefront per k step.
    assert found.count(instr) == bk // k, [i for i in found if "mfma" in i]
    assert not any(i.startswith("scratch_") for i in found)
    assert kernel.resources.scratch_bytes == 0


@pytest.mark.parametrize("t,instr", [("f8e4m3", "v_mfma_f32_32x32x16_fp8_fp8"),
                                     ("f8e5m2", "v_mfma_f32_32x32x16_bf8_bf8"),
                                     ("f16", "v_mfma_f32_32x32x8_f16")])
def test_gfx950_mfma_on_ocp_fp8(t, instr):
    # The assembly, not the disassembly: llvm-objdump learnt gfx950 in LLVM 20.
    kernel = compile_checked(gemm(t, "f32", 64, 64, 32), "gemm", "gfx950")
    assert instr in kernel.amdgcn


@pytest.mark.parametrize("t,arch", [("f8e4m3", "gfx942"), (FNUZ_E4M3, "gfx950"),
                                    ("f8e4m3", "gfx90a"), ("u8", "gfx942")])
def test_formats_the_arch_lacks_keep_the_fma_path(t, arch):
    acc = "i32" if t == "u8" else "f32"
    kernel = compile_checked(gemm(t, acc, 64, 64, 32), "gemm", arch)
    assert "v_mfma" not in kernel.amdgcn


def test_fnuz_formats_are_the_hardware_ranges():
    assert mma.FLOAT8_E4M3_FNUZ.max == 240.0 and mma.FLOAT8_E5M2_FNUZ.max == 57344.0
    assert mma.select("gfx942", dt.float8_e4m3, dt.float32) is None
    assert mma.select("gfx950", dt.float8_e4m3, dt.float32).k == 16


@pytest.mark.parametrize("warps", [4, 8])
def test_128x128x32_f16_fits_without_scratch(warps):
    kernel = compile_checked(gemm("f16", "f32", 128, 128, 32, warps), "gemm", "gfx942")
    r = kernel.resources
    print(f"128x128x32 f16, {warps} wavefronts: {r.vgprs} VGPRs, {r.agprs} AGPRs")
    found = instructions(disassembly(kernel))
    assert found.count("v_mfma_f32_32x32x8_f16") == 128 * 128 * 32 // (32 * 32 * 8) // warps
    assert r.scratch_bytes == 0 and r.vgpr_spills == 0


SMALL = [  # a 16-row tile: the 32x32 shapes do not divide it, the 16x16 ones do
    ("f16", "f32", "gfx90a", "v_mfma_f32_16x16x16f16", 16),
    ("bf16", "f32", "gfx942", "v_mfma_f32_16x16x16_bf16", 16),
    ("i8", "i32", "gfx90a", "v_mfma_i32_16x16x16i8", 16),
    ("i8", "i32", "gfx942", "v_mfma_i32_16x16x32_i8", 32),
    (FNUZ_E4M3, "f32", "gfx942", "v_mfma_f32_16x16x32_fp8_fp8", 32),
]


@pytest.mark.parametrize("t,acc,arch,instr,k", SMALL, ids=[f"{c[0]}-{c[2]}" for c in SMALL])
def test_16_row_tiles_use_16x16_mfma(t, acc, arch, instr, k):
    kernel = compile_checked(gemm(t, acc, 16, 64, 32), "gemm", arch)
    found = instructions(disassembly(kernel))
    # 16x64 over 4 wavefronts: a 1x4 grid of 16x16 tiles.
    assert found.count(instr) == 32 // k and not any("32x32" in i for i in found)
    assert kernel.resources.scratch_bytes == 0
