"""Every function of the IR corpus compiles for gfx90a and gfx942 and links into a code object
(device functions wrapped in a kernel, as for NVIDIA); none needs scratch memory; and the
kernel argument segment the runtime packs is the one the code object's metadata describes."""
from __future__ import annotations

import pytest
from amd_util import ARCHS, CORPUS, compiled_file, instructions

from tilec.backends.amd.compiler import kernarg_layout
from tilec.errors import IRError
from tilec.ir.parser import parse_file

# No device printf on AMD yet: these kernels stop at their `print` with a located error.
PRINTS = {"checked_copy"}
# Thread-block clusters are NVIDIA's (sm_90 on): these kernels stop with a located error.
CLUSTERS = {"split_rows"}


def _functions():
    for path in sorted(CORPUS.glob("*.tile")):
        for fn in parse_file(path).functions:
            yield pytest.param(str(path), fn.name, id=f"{path.stem}:{fn.name}")


FUNCTIONS = list(_functions())


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("path,name", FUNCTIONS)
def test_corpus_function_links(path, name, arch):
    if name in PRINTS:
        with pytest.raises(IRError, match=rf"print is not supported on {arch}") as e:
            compiled_file(path, name, arch)
        assert e.value.loc is not None and e.value.loc.line > 0
        return
    if name in CLUSTERS:
        with pytest.raises(IRError, match=rf"{arch} has no thread-block clusters") as e:
            compiled_file(path, name, arch)
        assert e.value.loc is not None and e.value.loc.line > 0
        return
    k = compiled_file(path, name, arch)
    r = k.resources
    # No scratch: no VGPR spills and no stack (SGPR spills go to VGPR lanes, not memory).
    assert r.scratch_bytes == 0 and r.vgpr_spills == 0, r
    assert not any(i.startswith("scratch_") or i.startswith("buffer_store")
                   for i in instructions(k.amdgcn))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("path,name", [p for p in FUNCTIONS
                                       if p.values[1] not in PRINTS | CLUSTERS])
def test_kernarg_layout_matches_the_metadata(path, name, arch):
    k = compiled_file(path, name, arch)
    md = k.metadata()
    explicit = [a for a in md.args if not a.hidden]
    slots, size = kernarg_layout(k.params)
    assert [(a.name, a.offset, a.size) for a in explicit] == \
        [(p.name, s.offset, s.size) for p, s in zip(k.params, slots)]
    assert [a.value_kind for a in explicit] == \
        ["global_buffer" if p.machine == "ptr" else "by_value" for p in k.params]
    # Hidden arguments, if any, come after the explicit ones.
    assert all(a.offset >= size for a in md.args if a.hidden)
    assert md.kernarg_size >= size
