"""Every example's kernel compiles for gfx90a and gfx942 with the signature it states, links,
needs no scratch, and the ones with `tc.dot` disassemble to MFMA."""
from __future__ import annotations

import functools
import importlib.util
import sys

import pytest
from amd_util import ARCHS, TESTS, compile_checked, disassembly, instructions

# The examples that define a kernel named after the file (the library examples, such as
# attention.py, call tilec.lib; test_amd_attention.py compiles those kernels).
EXAMPLES = [p for p in sorted((TESTS.parent / "examples").glob("*.py"))
            if f"def {p.stem}(" in p.read_text()]


@functools.cache
def _module(stem: str):
    """The example's kernel as tile IR (what `tilec compile examples/X.py::X` compiles)."""
    path = TESTS.parent / "examples" / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"_amd_example_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    return getattr(module, stem).compile(None)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("stem", [p.stem for p in EXAMPLES])
def test_example_links_for_amd(stem, arch):
    k = compile_checked(_module(stem), stem, arch)
    found = instructions(disassembly(k))
    assert k.resources.scratch_bytes == 0 and k.resources.vgpr_spills == 0, k.resources
    assert not any(i.startswith("scratch_") for i in found)
    uses_dot = "tc.dot" in (TESTS.parent / "examples" / f"{stem}.py").read_text()
    assert any(i.startswith("v_mfma_f32_32x32x8") for i in found) == uses_dot
