"""The IR parser's LALR tables are kept in the cache directory: made once, loaded after, and
a damaged or unwritable cache costs time, never a wrong parse."""
from __future__ import annotations

import lark
import pytest

from tilec.ir import parser
from tilec.ir.printer import print_module

TEXT = """func @k(%x: tensor<?xf32>) {
  %pid = program_id {axis = 0} : i32
  return
}
"""


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path))
    parser._parser.cache_clear()
    yield tmp_path
    parser._parser.cache_clear()


def _stored(root):
    return sorted(p for p in root.iterdir() if p.name.startswith("ir-parser-"))


def test_tables_are_stored_whole_and_loaded(fresh):
    parser._parser()
    (path,) = _stored(fresh)
    assert path.suffix == ".lark" and not list(fresh.glob(".*.tmp"))
    with open(path, "rb") as f:
        assert lark.Lark.load(f).options.propagate_positions
    parser._parser.cache_clear()
    assert print_module(parser.parse_module(TEXT)) == TEXT


def test_damaged_tables_are_rebuilt(fresh):
    parser._parser()
    (path,) = _stored(fresh)
    path.write_bytes(b"not a parser")
    parser._parser.cache_clear()
    assert print_module(parser.parse_module(TEXT)) == TEXT
    with open(path, "rb") as f:  # replaced by a good copy
        lark.Lark.load(f)


def test_unwritable_cache_still_parses(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("TILEC_CACHE_DIR", str(blocker / "cache"))
    parser._parser.cache_clear()
    try:
        assert print_module(parser.parse_module(TEXT)) == TEXT
    finally:
        parser._parser.cache_clear()
