"""Invalid IR gives a located, helpful IRError, never a Python traceback.

Each file in `tests/ir/invalid/` holds cases separated by lines `// -----`. A case is a small
module that must fail to parse or to verify, and it says how with annotations in comments:

    %c = add %a, %b : tile<4xf32>      // error: shape mismatch
    // error@+1: use of undefined value %z
    %d = neg %z : f32
    // hint: did you mean

- `// error: TEXT` on a line: the error must be reported at that line and its message must
  contain TEXT. `// error@+N: TEXT` / `// error@-N: TEXT` name the line N below / above the
  annotation instead (for errors on lines that cannot carry a comment of their own).
- `// hint: TEXT` (optional, any line): the error's hint must contain TEXT.

Each case is parsed at its own line numbers in the file, so the reported location, and the
source line that `str(error)` shows, are the file's.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tilec.errors import IRError
from tilec.ir.parser import parse_module
from tilec.ir.verifier import verify

INVALID = Path(__file__).parent / "invalid"
SEPARATOR = re.compile(r"^// -----\s*$")
ERROR = re.compile(r"//\s*error(?:@([+-]\d+))?:\s*(.+?)\s*$")
HINT = re.compile(r"//\s*hint:\s*(.+?)\s*$")


@dataclass
class Case:
    path: Path
    first_line: int  # 1-based line of the case's first line in the file
    text: str
    line: int  # the line the error must be reported at
    message: str
    hint: str | None

    @property
    def id(self) -> str:
        return f"{self.path.stem}:{self.line}"


def _cases(path: Path) -> list[Case]:
    lines = path.read_text().splitlines()
    chunks, start = [], 0
    for i, line in enumerate(lines + ["// -----"]):
        if SEPARATOR.match(line):
            chunks.append((start, lines[start:i]))
            start = i + 1
    cases = []
    for start, chunk in chunks:
        errors = [(start + i + 1, m) for i, l in enumerate(chunk) if (m := ERROR.search(l))]
        hints = [m.group(1) for l in chunk if (m := HINT.search(l))]
        if not any(l.strip() and not l.strip().startswith("//") for l in chunk):
            continue  # only comments (the file's header)
        assert len(errors) == 1, f"{path.name}:{start + 1}: a case needs one '// error:' line"
        at, m = errors[0]
        line = at + int(m.group(1) or 0)
        cases.append(Case(path, start + 1, "\n".join(chunk) + "\n", line, m.group(2),
                          hints[0] if hints else None))
    return cases


CASES = [c for p in sorted(INVALID.glob("*.tile")) for c in _cases(p)]


def test_there_are_cases():
    assert len(CASES) >= 60
    assert len({p.stem for p in INVALID.glob("*.tile")}) >= 4


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_invalid(case: Case):
    # Pad with empty lines so the case keeps its line numbers from the file.
    text = "\n" * (case.first_line - 1) + case.text
    try:
        verify(parse_module(text, str(case.path)))
    except IRError as err:
        error = err
    except Exception as err:  # noqa: BLE001 - the point is to catch any other exception
        pytest.fail(f"{case.id}: raised {type(err).__name__} instead of IRError: {err}")
    else:
        pytest.fail(f"{case.id}: no error; expected '{case.message}'")
    assert case.message in error.message, f"{case.id}: got {error.message!r}"
    assert error.loc is not None, f"{case.id}: error without a location"
    assert error.loc.line == case.line, f"{case.id}: reported at line {error.loc.line}:\n{error}"
    assert error.loc.file == str(case.path)
    shown = str(error)
    source_line = case.path.read_text().splitlines()[case.line - 1]
    assert str(case.path) in shown
    assert source_line.strip() in shown
    assert "^" in shown  # the caret under the column
    if case.hint is not None:
        assert error.hint is not None and case.hint in error.hint, f"{case.id}: hint {error.hint!r}"


def test_a_valid_case_passes():
    # The harness itself: a case without its error line is valid IR, so the errors the
    # cases report come from the broken line, not from a broken surrounding.
    text = ("func @f(%a: tile<4xf32>, %b: tile<4xf32>) -> tile<4xf32> {\n"
            "  %c = add %a, %b : tile<4xf32>\n  return %c\n}\n")
    verify(parse_module(text, "ok.tile"))
