"""tilec: a tile-based GPU kernel DSL and compiler."""
from __future__ import annotations

__version__ = "0.1.0"
