"""Every example runs as a user runs it (`python examples/NAME.py`), checks itself against
numpy and says what it computed. Without a GPU they run on the CPU interpreter."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_every_required_example_exists():
    names = {p.stem for p in EXAMPLES}
    assert {"vector_add", "softmax", "layernorm", "matmul", "argmax", "dequant"} <= names


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_and_checks_itself(example):
    r = subprocess.run([sys.executable, str(example)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith(example.stem + ":"), r.stdout
