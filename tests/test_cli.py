"""The `tilec` command line, run as a user runs it (a subprocess through the console entry)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tilec.ir.parser import parse_module
from tilec.ir.verifier import verify

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
# Examples that define a kernel of their own name (the library examples call tilec.lib).
KERNEL_EXAMPLES = [p for p in EXAMPLES if f"def {p.stem}(" in p.read_text()]


def tilec(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tilec.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("example", [p.stem for p in KERNEL_EXAMPLES])
def test_compile_example_emits_ir_that_parses_back(example):
    r = tilec("compile", f"examples/{example}.py::{example}", "--emit", "ir")
    assert r.returncode == 0, r.stderr
    module = verify(parse_module(r.stdout))
    assert module.functions[0].name == example


def test_compile_tile_file_with_dump_passes():
    r = tilec("compile", "tests/ir/corpus/softmax.tile", "--dump-passes")
    assert r.returncode == 0, r.stderr
    assert "// ----- after canonicalize" in r.stderr and "// ----- after dce" in r.stderr
    verify(parse_module(r.stdout))


def test_compile_writes_output_file(tmp_path):
    out = tmp_path / "k.tile"
    r = tilec("compile", "tests/ir/corpus/vector_add.tile", "-o", str(out))
    assert r.returncode == 0, r.stderr
    verify(parse_module(out.read_text()))
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary behind


def test_compile_with_signature_override():
    r = tilec("compile", "examples/softmax.py::softmax", "--signature",
              "X: tensor<?x?xf16>, Y: tensor<?x?xf16>, n_cols: i32, BLOCK=256")
    assert r.returncode == 0, r.stderr
    assert "tile<256xf16>" in r.stdout


def test_compile_reports_bad_tile_file_with_location(tmp_path):
    bad = tmp_path / "bad.tile"
    bad.write_text("func @f() {\n  %x = frobnicate : i32\n  return\n}\n")
    r = tilec("compile", str(bad))
    assert r.returncode == 1
    assert f"{bad}:2:8: error: unknown op 'frobnicate'" in r.stderr
    assert "%x = frobnicate : i32" in r.stderr and "Traceback" not in r.stderr


def test_compile_missing_kernel_name():
    r = tilec("compile", "examples/softmax.py::nope")
    assert r.returncode == 1 and "defines no kernel named 'nope'" in r.stderr


def test_compile_missing_file():
    r = tilec("compile", "no/such/file.tile")
    assert r.returncode == 1 and "no such file" in r.stderr


def test_layout_show_draws_ownership():
    r = tilec("layout", "show", "spatial(4,8)*local(1,2)")
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()
    assert "T31:1" in rows[-1] and "T0:0  T0:1  T1:0" in r.stdout


def test_layout_show_bad_text():
    r = tilec("layout", "show", "spatial(4,8)*bogus(2)")
    assert r.returncode == 1 and "bogus" in r.stderr and "Traceback" not in r.stderr


def test_info_lists_tools_targets_and_devices():
    r = tilec("info")
    assert r.returncode == 0, r.stderr
    for word in ("tilec", "llvmlite", "sm_90a", "gfx942", "ptxas", "ld.lld", "devices", "AMD GPUs"):
        assert word in r.stdout
    lld = next(line for line in r.stdout.splitlines() if line.startswith("ld.lld"))
    assert "LLD" in lld and "code object v4" in lld   # found, with its version
    assert "no HIP runtime" in r.stdout


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
@pytest.mark.parametrize("example", [p.stem for p in KERNEL_EXAMPLES])
def test_every_example_assembles_for_nvidia(example, arch, tmp_path):
    """Each example's kernel goes through the whole NVIDIA pipeline and ptxas."""
    cubin = tmp_path / f"{example}.cubin"
    r = tilec("compile", f"examples/{example}.py::{example}", "--target", arch,
              "--emit", "cubin", "-o", str(cubin))
    assert r.returncode == 0, r.stderr
    assert cubin.read_bytes()[:4] == b"\x7fELF"  # ptxas wrote a real cubin
    assert f"{example} on {arch}: Resources(" in r.stderr


def test_emit_ptx_and_llvm():
    r = tilec("compile", "examples/vector_add.py::vector_add", "--target", "sm_90a", "--emit",
              "ptx")
    assert r.returncode == 0, r.stderr
    assert ".target sm_90a" in r.stdout and ".entry vector_add" in r.stdout
    r = tilec("compile", "examples/vector_add.py::vector_add", "--emit", "llvm")
    assert r.returncode == 0 and "define ptx_kernel void @\"vector_add\"(" in r.stdout


def test_emit_laid_out_ir_with_target():
    r = tilec("compile", "tests/ir/corpus/softmax.tile", "--target", "sm_80", "--emit", "ir",
              "--num-warps", "8")
    assert r.returncode == 0, r.stderr
    assert "num_warps = 8" in r.stdout and "spatial(" in r.stdout
    verify(parse_module(r.stdout))


def test_tile_file_with_several_functions_needs_a_name():
    r = tilec("compile", "tests/ir/corpus/vector_add.tile", "--emit", "ptx")
    assert r.returncode == 1 and "say which to compile" in r.stderr and "vector_add_ptr" in r.stderr


def test_cubin_needs_an_output_file():
    r = tilec("compile", "tests/ir/corpus/vector_add.tile::vector_add_ptr", "--emit", "cubin")
    assert r.returncode == 1 and "write it to a file with -o" in r.stderr


def test_matmul_for_gfx942_links_and_disassembles_to_mfma(tmp_path):
    from tilec.backends.amd.hsaco import disassemble, kernel_metadata
    out = tmp_path / "mm.hsaco"
    r = tilec("compile", "examples/matmul.py::matmul", "--target", "gfx942", "--emit", "hsaco",
              "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "matmul on gfx942: Resources(" in r.stderr
    hsaco = out.read_bytes()
    assert "v_mfma_f32_32x32x8_f16" in disassemble(hsaco, "gfx942")
    assert kernel_metadata(hsaco, "matmul").wavefront_size == 64


def test_emit_amdgcn_and_llvm_for_amd():
    r = tilec("compile", "examples/vector_add.py::vector_add", "--target", "gfx90a", "--emit",
              "amdgcn")
    assert r.returncode == 0, r.stderr
    assert '.amdgcn_target "amdgcn-amd-amdhsa--gfx90a' in r.stdout
    assert "global_load_dwordx4" in r.stdout
    r = tilec("compile", "examples/vector_add.py::vector_add", "--target", "gfx942", "--emit",
              "llvm")
    assert r.returncode == 0 and 'define amdgpu_kernel void @"vector_add"(' in r.stdout


@pytest.mark.parametrize("target,emit,word", [("gfx942", "ptx", "AMD: --emit llvm|amdgcn|hsaco"),
                                              ("sm_90a", "hsaco", "NVIDIA: --emit llvm|ptx|cubin")])
def test_emit_must_suit_the_target(target, emit, word):
    r = tilec("compile", "examples/vector_add.py::vector_add", "--target", target, "--emit", emit)
    assert r.returncode == 1 and f"--emit {emit} is for" in r.stderr and word in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_target():
    r = tilec("compile", "examples/vector_add.py::vector_add", "--target", "gfx1100", "--emit",
              "llvm")
    assert r.returncode == 1 and "unknown target 'gfx1100'" in r.stderr and "gfx942" in r.stderr
