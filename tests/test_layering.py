"""Layers only look down: ir imports nothing of tilec above it, runtime never imports the
frontend, the autotuner (tune) sits on the frontend, and nothing but tilec/config.py reads
the environment."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "tilec"

# What each layer may import from tilec (besides itself).
ALLOWED = {
    "ir": {"tilec.errors", "tilec.config", "tilec.files"},
    "backends": {"tilec.errors", "tilec.config", "tilec.files", "tilec.ir"},
    "runtime": {"tilec.errors", "tilec.config", "tilec.files", "tilec.ir", "tilec.backends"},
    "frontend": {"tilec.errors", "tilec.config", "tilec.files", "tilec.ir", "tilec.runtime",
                 "tilec.backends"},
    "tune": {"tilec.errors", "tilec.config", "tilec.files", "tilec.ir", "tilec.runtime",
             "tilec.backends", "tilec.frontend"},
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n for n in names if n == "tilec" or n.startswith("tilec.")}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_below(layer):
    own = f"tilec.{layer}"
    bad = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for name in _imports(path):
            if name == own or name.startswith(own + "."):
                continue
            if not any(name == a or name.startswith(a + ".") for a in ALLOWED[layer]):
                bad.append(f"{path.relative_to(ROOT.parent)} imports {name}")
    assert not bad, "\n".join(bad)


def test_only_config_reads_environment():
    readers = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.name == "config.py":
            continue
        text = path.read_text()
        if "os.environ" in text or "os.getenv" in text:
            readers.append(str(path.relative_to(ROOT.parent)))
    assert not readers, readers
