"""GPU tests need torch and an NVIDIA GPU; they run on the lent GPU through
`benchmarks/gpu_suite.sh` (`pytest -m gpu tests/gpu`). On a machine without torch (CPU CI)
they are not collected at all, rather than reported as skipped: the `gpu` marker already
deselects them there, and nothing they would test is missing from the CPU suite's view."""
from __future__ import annotations

import importlib.util

collect_ignore_glob = [] if importlib.util.find_spec("torch") else ["test_*.py"]
