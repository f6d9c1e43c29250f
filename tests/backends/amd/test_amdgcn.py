"""FileCheck-style checks on the AMDGCN of hand-laid-out kernels (amdgcn_checks.tile): the
Target hooks (DPP, ds_swizzle, ds_bpermute, s_barrier around LDS, v_exp_f32, the dispatch
packet, s_trap), 16-byte global accesses; byte-identical output for identical input."""
from __future__ import annotations

from pathlib import Path

import pytest
from amd_util import ARCHS, CORPUS, compile_checked, compiled_text
from filecheck import filecheck, split_cases

from tilec.ir.parser import parse_file

HERE = Path(__file__).resolve().parent
CASES = split_cases((HERE / "amdgcn_checks.tile").read_text())


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("line,text", CASES, ids=[f"line{n}" for n, _ in CASES])
def test_amdgcn_checks(line, text, arch):
    k = compiled_text(text, f"amdgcn_checks.tile:{line}", arch)
    filecheck(k.amdgcn, text)


def test_output_is_byte_identical():
    path = CORPUS / "matmul.tile"
    first = compile_checked(parse_file(path), "matmul", "gfx942")
    again = compile_checked(parse_file(path), "matmul", "gfx942")
    assert first.llvm_ir == again.llvm_ir
    assert first.amdgcn == again.amdgcn
    assert first.hsaco == again.hsaco


def test_compile_leaves_the_module_unchanged():
    module = parse_file(CORPUS / "softmax.tile")
    before = str(module)
    compile_checked(module, "softmax", "gfx90a")
    assert str(module) == before
