"""FileCheck-style checks on the PTX of hand-laid-out kernels (ptx_checks.tile), and
byte-identical output for identical input."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from filecheck import filecheck, split_cases
from nvidia_util import ARCHS, compile_checked

from tilec.ir.parser import parse_file, parse_module

HERE = Path(__file__).resolve().parent
CASES = split_cases((HERE / "ptx_checks.tile").read_text())


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("line,text", CASES, ids=[f"line{n}" for n, _ in CASES])
def test_ptx_checks(line, text, arch):
    module = parse_module(text, f"ptx_checks.tile:{line}")
    k = compile_checked(module, module.functions[0].name, arch)
    filecheck(k.ptx, text)


@pytest.mark.parametrize("arch", ARCHS)
def test_output_is_byte_identical(arch):
    path = HERE.parents[1] / "ir" / "corpus" / "flash_attention.tile"
    first = compile_checked(parse_file(path), "flash_fwd", arch)
    again = compile_checked(parse_file(path), "flash_fwd", arch)
    same_module = compile_checked(parse_file(path), "flash_fwd", arch)
    assert first.llvm_ir == again.llvm_ir == same_module.llvm_ir
    assert first.ptx == again.ptx
    assert first.cubin == again.cubin


def test_compile_leaves_the_module_unchanged():
    path = HERE.parents[1] / "ir" / "corpus" / "softmax.tile"
    module = parse_file(path)
    before = str(module)
    compile_checked(module, "softmax", "sm_90a")
    assert str(module) == before


def test_ptxas_is_found_without_a_cuda_toolkit(monkeypatch):
    """The `test` extra's nvidia-cuda-nvcc wheel supplies ptxas when PATH has none."""
    import subprocess

    from tilec.backends.nvidia.compiler import ptxas_path
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("TILEC_PTXAS", raising=False)
    exe = ptxas_path()
    assert exe is not None and "cuda_nvcc" in exe
    assert "ptxas" in subprocess.run([exe, "--version"], capture_output=True, text=True).stdout


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
def test_fast_math_divides_with_div_full(arch, dtype):
    """fast_math: approximate exp and division (Triton's defaults); else correctly rounded."""
    src = f"""func @k(%x: tensor<?x{dtype}>, %y: tensor<?x{dtype}>) attrs {{fast_math = FAST}} {{
  %c0 = constant {{value = 0}} : i32
  %a = load_view %x, [%c0] : tile<128x{dtype}>
  %e = exp %a : tile<128x{dtype}>
  %q = div %e, %a : tile<128x{dtype}>
  store_view %y, [%c0], %q
  return
}}"""
    fast = compile_checked(parse_module(src.replace("FAST", "true")), "k", arch)
    accurate = compile_checked(parse_module(src.replace("FAST", "false")), "k", arch)
    assert "div.full.f32" in fast.ptx and "div.rn.f32" not in fast.ptx
    assert "div.rn.f32" in accurate.ptx and "div.full.f32" not in accurate.ptx
    assert "ex2.approx" in fast.ptx


def test_shared_addresses_are_32_bit():
    """The module's data layout is the target machine's (32-bit shared pointers), and PTX
    addresses shared memory with 32-bit registers."""
    from tilec.backends.nvidia.llvm_passes import target_machine
    from tilec.backends.nvidia.target import DATA_LAYOUT
    assert str(target_machine("sm_90a", 80).target_data) == DATA_LAYOUT
    path = HERE.parents[1] / "ir" / "corpus" / "flash_attention.tile"
    ptx = compile_checked(parse_file(path), "flash_fwd", "sm_90a").ptx
    assert "ldmatrix" in ptx
    assert not re.search(r"(ld|st|ldmatrix\S*)\.shared\S*\s.*\[%rd", ptx)
    assert re.search(r"\.shared\S*\s.*\[%r\d", ptx)
