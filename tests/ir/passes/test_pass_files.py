"""Text-in, text-out pass tests: each `*.tile` file here starts with `// RUN: pass,pass...`
and holds cases split by `// -----`. A case is input IR followed by `// CHECK` lines for
the module after the passes (see tests/filecheck.py), or by `// ERROR: text` when the
passes must fail with an IRError containing that text. Input and output are verified.
A case may set pass options with `// OPTIONS: target=sm_80 num_warps=8`.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from filecheck import directives, filecheck, split_cases

from tilec.errors import IRError
from tilec.ir.parser import parse_module
from tilec.ir.passes.manager import PassOptions, run_passes
from tilec.ir.printer import print_module
from tilec.ir.verifier import verify

HERE = Path(__file__).parent
_RUN = re.compile(r"^//\s*RUN:\s*(.*)$", re.M)
_ERROR = re.compile(r"^\s*//\s*ERROR:\s*(.*)$", re.M)
_OPTIONS = re.compile(r"^\s*//\s*OPTIONS:\s*(.*)$", re.M)


def _options(case: str) -> PassOptions:
    m = _OPTIONS.search(case)
    if not m:
        return PassOptions()
    pairs = dict(item.split("=") for item in m.group(1).split())
    return PassOptions(target=pairs.get("target"), num_warps=int(pairs.get("num_warps", 4)))


def _cases():
    for path in sorted(HERE.glob("*.tile")):
        text = path.read_text()
        run = _RUN.search(text)
        assert run, f"{path.name} has no '// RUN: passes' line"
        passes = [p.strip() for p in run.group(1).split(",")]
        for line, case in split_cases(text):
            if "func @" not in case:
                continue  # the file's header
            yield pytest.param(path, line, case, passes, id=f"{path.stem}:{line}")


CASES = list(_cases())


def test_there_are_cases_for_every_pass():
    from tilec.ir.passes import PASSES
    covered = {p for param in CASES for p in param.values[3]}
    assert set(PASSES) <= covered


@pytest.mark.parametrize("path, line, case, passes", CASES)
def test_pass_file_case(path: Path, line: int, case: str, passes: list[str]):
    # Pad with blank lines so that parse errors point at the right line of the file.
    module = verify(parse_module("\n" * (line - 1) + case, str(path)))
    error = _ERROR.search(case)
    if error:
        with pytest.raises(IRError) as info:
            run_passes(module, passes, _options(case), verify=True)
        assert error.group(1).strip() in str(info.value)
        return
    checks = directives(case, line)
    assert checks, f"{path.name}:{line}: a case needs CHECK or ERROR lines"
    out = print_module(run_passes(module, passes, _options(case), verify=True))
    filecheck(out, checks)
    assert parse_module(out) == module  # the output reads back as itself
