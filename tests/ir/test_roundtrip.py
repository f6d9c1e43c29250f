"""Every corpus file parses, verifies, and survives print -> parse unchanged.

The corpus (`tests/ir/corpus/*.tile`) is the format's reader's guide: realistic kernels that
together use every op. A new op without a corpus file that uses it fails
`test_corpus_covers_every_op`.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tilec.ir.core import OPS, Module
from tilec.ir.parser import parse_file, parse_module
from tilec.ir.printer import print_module
from tilec.ir.types import dtype_of
from tilec.ir.verifier import verify

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(CORPUS.glob("*.tile"))


def _ops(m: Module):
    return list(m.walk())


def test_corpus_is_there():
    assert len(FILES) >= 24


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_starts_with_a_comment(path: Path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("// "), f"{path.name} should open with a comment saying what it shows"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_roundtrip(path: Path):
    m = verify(parse_file(path))
    text = print_module(m)
    m2 = verify(parse_module(text, "<printed>"))
    assert m2 == m
    assert print_module(m2) == text  # the printed form is a fixpoint
    # Structural equality must not be vacuous: the canonical text names every op.
    assert print_module(m, canonical=True) == print_module(m2, canonical=True)
    assert len(_ops(m2)) == len(_ops(m)) > 0


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_roundtrip_with_locations(path: Path):
    m = verify(parse_file(path))
    text = print_module(m, locations=True)
    assert "loc(" in text
    m2 = verify(parse_module(text, "<printed>"))
    assert m2 == m
    assert print_module(m2, locations=True) == text
    for a, b in zip(_ops(m), _ops(m2), strict=True):
        assert a.name == b.name
        assert (a.loc.file, a.loc.line, a.loc.col) == (b.loc.file, b.loc.line, b.loc.col)


def test_locations_point_into_the_file():
    path = CORPUS / "matmul.tile"
    lines = path.read_text().splitlines()
    m = parse_file(path)
    for op in m.walk():
        assert op.loc.file == str(path)
        # The op's mnemonic starts at the reported column of the reported line.
        assert lines[op.loc.line - 1][op.loc.col - 1:].startswith(op.name)


def test_explicit_locations_are_kept():
    m = parse_file(CORPUS / "locations.tile")
    add = next(op for op in m.walk() if op.name == "add")
    assert (add.loc.file, add.loc.line, add.loc.col) == ("kernels/add_one.py", 12, 9)


def test_equality_sees_differences():
    # The roundtrip asserts are only as strong as `==`: it must notice a changed attribute,
    # a changed type and a swapped operand, and ignore value names.
    base = ("func @f(%a: tile<4xf32>, %b: tile<4xf32>) -> tile<4xf32> {\n"
            "  %c = sub %a, %b : tile<4xf32>\n  return %c\n}\n")
    m = parse_module(base)
    assert m == parse_module(base.replace("%c", "%renamed"))
    assert m != parse_module(base.replace("sub %a, %b", "sub %b, %a"))
    assert m != parse_module(base.replace("sub", "add"))
    assert m != parse_module(base.replace("f32", "f16"))
    r = parse_module("func @f() {\n  %x = arange {start = 0, end = 4} : tile<4xi32>\n  return\n}\n")
    assert r != parse_module("func @f() {\n  %x = arange {start = 1, end = 5} : tile<4xi32>\n"
                             "  return\n}\n")


def test_corpus_covers_every_op():
    used = set()
    for path in FILES:
        used |= {op.name for op in parse_file(path).walk()}
    assert used == set(OPS), f"ops without a corpus example: {sorted(set(OPS) - used)}"


def test_corpus_covers_every_attribute_choice():
    # Every declared choice of every attribute (reduce kinds, atomic kinds, predicates, ...)
    # appears somewhere in the corpus.
    seen: dict[tuple[str, str], set] = {}
    for path in FILES:
        for op in parse_file(path).walk():
            for key, value in op.attrs.items():
                seen.setdefault((op.name, key), set()).add(
                    value if not isinstance(value, list) else tuple(value))
    missing = []
    for name, cls in OPS.items():
        for key, spec in cls.attr_specs.items():
            for choice in spec.choices or ():
                if choice not in seen.get((name, key), set()):
                    missing.append(f"{name}.{key}={choice!r}")
    assert not missing, f"attribute choices without a corpus example: {missing}"


ODD_DTYPES = {"i3", "u5", "f6e3m2", "f4e2m1", "bf16", "f8e4m3", "f8e5m2"}


def test_corpus_casts_every_odd_dtype():
    # The exotic formats appear in types, and each is cast both to and from.
    cast_to, cast_from = set(), set()
    for path in FILES:
        for op in parse_file(path).walk():
            if op.name == "cast":
                cast_from.add(dtype_of(op.x.type).name)
                cast_to.add(dtype_of(op.results[0].type).name)
    assert ODD_DTYPES <= cast_to, sorted(ODD_DTYPES - cast_to)
    assert ODD_DTYPES <= cast_from, sorted(ODD_DTYPES - cast_from)
