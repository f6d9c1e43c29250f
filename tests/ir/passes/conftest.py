"""Pass tests share the FileCheck helper in `tests/filecheck.py`."""
from __future__ import annotations

import sys
from pathlib import Path

# tests/ has no __init__.py (pytest's rootdir-relative "prepend" import mode): put it on the
# path so that `import filecheck` finds the shared helper.
_TESTS = str(Path(__file__).resolve().parents[2])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
