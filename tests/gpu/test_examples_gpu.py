"""Every example script, run as a user would (`python examples/NAME.py`) on a machine with a GPU:
it must say it ran on the GPU and that it matched its reference.

Each example poisons its outputs, draws random inputs and checks against numpy itself; this
test only runs them in a fresh process (so nothing of the test session's state helps them)
and reads what they print.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 6, EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_on_the_gpu(path: Path):
    env = {k: v for k, v in os.environ.items() if k != "TILEC_INTERPRET"}
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env=env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    gpu = torch.cuda.get_device_name()
    assert f"on {gpu}" in proc.stdout, f"{path.name} did not run on the GPU ({gpu}):\n{out}"
    assert "CPU interpreter" not in proc.stdout, out
    said_passed = any(w in proc.stdout for w in ("match", "error"))
    assert said_passed, f"{path.name} did not report a check:\n{out}"
