"""Errors a user can cause, with the source location that caused them.

Every error tilec raises on bad input is a `TilecError`. When it knows where in the user's
source the problem is, it prints ``file:line:col``, the source line and a caret under the
column, then what to do instead.
"""
from __future__ import annotations

import linecache
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A point in a user's source: a Python file or a `.tile` file (1-based line and column)."""

    file: str
    line: int
    col: int
    # The text of the line, for sources that are not files on disk (strings parsed as IR).
    text: str | None = None

    def source_line(self) -> str | None:
        if self.text is not None:
            return self.text
        line = linecache.getline(self.file, self.line)
        return line.rstrip("\n") if line else None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class TilecError(Exception):
    """An error in the user's program or input, reported at its source location."""

    def __init__(self, message: str, loc: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.hint = hint

    def __str__(self) -> str:
        head = f"{self.loc}: error: {self.message}" if self.loc else f"error: {self.message}"
        parts = [head]
        src = self.loc.source_line() if self.loc else None
        if src is not None:
            parts.append("    " + src)
            parts.append("    " + " " * max(self.loc.col - 1, 0) + "^")
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)


class DTypeError(TilecError):
    """An unknown dtype name or an invalid dtype definition."""


class LayoutError(TilecError):
    """An invalid layout or an impossible layout operation."""


class IRError(TilecError):
    """Ill-formed IR: a parse error or a failed verification."""


class CompileError(TilecError):
    """A kernel that the frontend cannot compile."""


class LaunchError(TilecError):
    """Wrong arguments at a kernel launch."""
