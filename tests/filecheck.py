"""A small FileCheck for text-in/text-out tests (after LLVM's FileCheck).

Directives are `//` comments in the test text:

    // CHECK: %c = constant {value = 5} : i32     a later line is exactly this
    // CHECK-NEXT: return %c                       the line right after the last match
    // CHECK-NOT: add                              no line contains this, between the
                                                   matches before and after it

Lines compare whole, modulo whitespace (runs of blanks are one space; ends are stripped).
`{{regex}}` inside a pattern matches a regular expression, e.g. `%{{[0-9]+}} = ...`.
CHECK-NOT matches anywhere inside a line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_DIRECTIVE = re.compile(r"^\s*//\s*(CHECK|CHECK-NEXT|CHECK-NOT):(.*)$")
_SEPARATOR = re.compile(r"^\s*//\s*-----\s*$", re.M)


@dataclass(frozen=True)
class Directive:
    kind: str      # "CHECK", "CHECK-NEXT" or "CHECK-NOT"
    pattern: str   # whitespace-normalised
    line: int      # 1-based line of the directive in the check text


class CheckError(AssertionError):
    """The output does not match the CHECK lines."""


def normalize(line: str) -> str:
    return " ".join(line.split())


def directives(text: str, first_line: int = 1) -> list[Directive]:
    out = []
    for i, line in enumerate(text.splitlines()):
        m = _DIRECTIVE.match(line)
        if m:
            out.append(Directive(m.group(1), normalize(m.group(2)), first_line + i))
    return out


def _regex(pattern: str, whole: bool) -> re.Pattern:
    parts = re.split(r"\{\{(.*?)\}\}", pattern)
    body = "".join(p if i % 2 else re.escape(p) for i, p in enumerate(parts))
    return re.compile(f"^{body}$" if whole else body)


def split_cases(text: str) -> list[tuple[int, str]]:
    """Split a test file at `// -----` lines into (first line number, text) cases."""
    cases, line = [], 1
    for chunk in _SEPARATOR.split(text):
        cases.append((line, chunk))
        line += chunk.count("\n")
    return [(n, c) for n, c in cases if c.strip()]


def filecheck(output: str, checks: str | list[Directive]) -> None:
    """Raise CheckError (with the output, numbered) unless `output` satisfies `checks`."""
    items = directives(checks) if isinstance(checks, str) else checks
    if not items:
        raise CheckError("no CHECK lines to check")
    lines = [normalize(s) for s in output.splitlines()]
    pos = 0            # the first line a CHECK may match
    last = None        # the line of the last positive match
    pending: list[Directive] = []
    for d in items:
        if d.kind == "CHECK-NOT":
            pending.append(d)
            continue
        rx = _regex(d.pattern, whole=True)
        if d.kind == "CHECK-NEXT":
            if last is None:
                _fail(d, "CHECK-NEXT without a CHECK before it", lines, pos)
            found = pos if pos < len(lines) and rx.match(lines[pos]) else None
            if found is None:
                _fail(d, "is not the line right after the previous match", lines, pos)
        else:
            found = next((i for i in range(pos, len(lines)) if rx.match(lines[i])), None)
            if found is None:
                _fail(d, "not found", lines, pos)
        _check_nots(pending, lines, pos, found)
        pending = []
        pos = last = found + 1
    _check_nots(pending, lines, pos, len(lines))


def _check_nots(nots: list[Directive], lines: list[str], start: int, end: int) -> None:
    for d in nots:
        rx = _regex(d.pattern, whole=False)
        for i in range(start, end):
            if rx.search(lines[i]):
                _fail(d, f"found on output line {i + 1}", lines, start)


def _fail(d: Directive, why: str, lines: list[str], pos: int) -> None:
    numbered = "\n".join(f"{i + 1:4}{'>' if i == pos else ' '} {s}" for i, s in enumerate(lines))
    raise CheckError(f"line {d.line}: {d.kind}: {d.pattern}\n  {why} (searching from output "
                     f"line {pos + 1}, marked >)\noutput:\n{numbered}")
