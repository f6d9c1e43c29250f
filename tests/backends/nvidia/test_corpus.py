"""Every function of the IR corpus compiles to PTX for sm_80 and sm_90a and assembles with
ptxas: kernels directly, device functions (tile arguments or results) wrapped in a kernel
that loads their arguments and stores their results."""
from __future__ import annotations

from pathlib import Path

import pytest
from nvidia_util import ARCHS, compile_checked, is_kernel, wrap_as_kernel

from tilec.errors import IRError
from tilec.ir.parser import parse_file

CORPUS = Path(__file__).resolve().parents[2] / "ir" / "corpus"
# Known spills: `matmul` (128x128x32 f16 on mma over 4 warps: 128 accumulators per thread)
# spills in the masked slow path of its loads (228 registers without it);
# `flash_fwd` spills 16 bytes on sm_80 with its dots on mma (the 2x2 warp grid makes the
# row reductions cross warps); `heads` (24 bf16 per thread, 3-D) spills 8 bytes of
# predicates in the masked slow path of its store; `dots` (ten operand tiles live at once)
# spills 12 bytes on sm_90a, where its f16/bf16 dots run on wgmma and the fp8 one on mma.sync,
# so one accumulator changes layout between them. Every other corpus kernel must not spill.
MAY_SPILL = {"matmul", "heads", "flash_fwd", "dots"}
# Thread-block clusters (num_ctas > 1) from sm_90 on: on sm_80 a located error.
CLUSTERS = {"split_rows"}


def _functions():
    for path in sorted(CORPUS.glob("*.tile")):
        for fn in parse_file(path).functions:
            yield pytest.param(path.name, fn.name, id=f"{path.stem}:{fn.name}")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("file,name", list(_functions()))
def test_corpus_function_compiles(file, name, arch):
    module = parse_file(CORPUS / file)
    fn = module.get(name)
    if name in CLUSTERS and arch == "sm_80":
        with pytest.raises(IRError, match="sm_80 has no thread-block clusters") as e:
            compile_checked(module, name, arch)
        assert e.value.loc is not None and e.value.loc.line > 0
        return
    if not is_kernel(fn):
        module, name = wrap_as_kernel(module, fn)
    k = compile_checked(module, name, arch)
    if fn.name not in MAY_SPILL:
        assert k.resources.spill_stores == 0 and k.resources.spill_loads == 0, k.resources
    assert f".entry {name}(" in k.ptx
    assert ".maxntid 128" in k.ptx  # num_warps 4 by default
