"""The hand-laid-out kernels of the NVIDIA tests (ops.tile: op families beyond the corpus;
ptx_checks.tile) compile for gfx90a and gfx942 and link, their 128-thread layouts run as two
wavefronts; `print` stops with a located error (no device printf on AMD yet)."""
from __future__ import annotations

from pathlib import Path

import pytest
from amd_util import ARCHS, compiled_text
from filecheck import split_cases

from tilec.errors import IRError

NVIDIA = Path(__file__).resolve().parent.parent / "nvidia"
CASES = [(f"{name}:{line}", text) for name in ("ops.tile", "ptx_checks.tile")
         for line, text in split_cases((NVIDIA / name).read_text())]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("where,text", CASES, ids=[c[0] for c in CASES])
def test_nvidia_test_kernels_link_for_amd(where, text, arch):
    if "\n  print " in text:
        with pytest.raises(IRError, match="print is not supported") as e:
            compiled_text(text, where, arch)
        assert e.value.loc.line == text[:text.index("\n  print ")].count("\n") + 2
        return
    k = compiled_text(text, where, arch)
    assert k.resources.scratch_bytes == 0, k.resources
