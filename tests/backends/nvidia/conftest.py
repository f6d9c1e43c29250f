"""NVIDIA backend tests share tests/filecheck.py and the kernel-compiling helpers here."""
from __future__ import annotations

import sys
from pathlib import Path

# tests/ has no __init__.py: put tests/ (filecheck) and this folder (nvidia_util) on the path.
for path in (Path(__file__).resolve().parents[2], Path(__file__).resolve().parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
