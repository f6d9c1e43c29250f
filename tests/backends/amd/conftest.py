"""AMD backend tests share tests/filecheck.py, the NVIDIA tests' kernel wrapping, and the
compile cache in amd_util."""
from __future__ import annotations

import sys
from pathlib import Path

# tests/ has no __init__.py: put tests/ (filecheck), the NVIDIA test folder (nvidia_util's
# wrap_as_kernel), tests/lib (launch_recorder) and this folder (amd_util) on the path.
HERE = Path(__file__).resolve().parent
for path in (HERE.parents[1], HERE.parent / "nvidia", HERE.parents[1] / "lib", HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
