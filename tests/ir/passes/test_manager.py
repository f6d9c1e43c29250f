"""The pass registry and the pipeline: names, verify-after-each-pass, dumps."""
from __future__ import annotations

import types
from pathlib import Path

import pytest

from tilec.errors import IRError
from tilec.ir.core import Module
from tilec.ir.parser import parse_file, parse_module
from tilec.ir.passes import PASSES
from tilec.ir.passes.canonicalize import PATTERNS
from tilec.ir.passes.manager import DEFAULT_PIPELINE, PassOptions, run_passes
from tilec.ir.printer import print_module
from tilec.ir.verifier import verify

SMALL = """
func @f(%x: i32) -> i32 {
  %one = constant {value = 1} : i32
  %y = mul %x, %one : i32
  return %y
}
"""
CORPUS = sorted((Path(__file__).parents[1] / "corpus").glob("*.tile"))


@pytest.mark.parametrize("name", sorted(PASSES))
def test_registry_names_match_modules(name):
    module = PASSES[name]
    assert module.NAME == name
    assert callable(module.run)
    assert module.__name__ == f"tilec.ir.passes.{name}"
    assert module.__doc__, f"pass {name} needs a module docstring saying what it does"


def test_default_pipeline_is_registered():
    assert DEFAULT_PIPELINE == ["inline", "canonicalize", "cse", "dce"]
    assert all(name in PASSES for name in DEFAULT_PIPELINE)


def test_every_pattern_documents_its_rewrite():
    for pattern in PATTERNS:
        assert pattern.__doc__ and "=>" in pattern.__doc__, pattern.__name__


def test_options_are_frozen_values():
    opts = PassOptions(target="sm_80")
    assert opts == PassOptions(target="sm_80") and hash(opts) == hash(PassOptions(target="sm_80"))
    with pytest.raises(AttributeError):
        opts.target = "gfx942"  # type: ignore[misc]


def _break_return(module: Module, options: PassOptions) -> Module:
    # Drop every function's terminator: the verifier must notice.
    for f in module.functions:
        f.body.block.ops[-1].erase()
    return module


@pytest.fixture
def broken_pass(monkeypatch):
    fake = types.SimpleNamespace(NAME="break_return", run=_break_return)
    monkeypatch.setitem(PASSES, "break_return", fake)
    return fake


def test_verify_after_each_pass_names_the_broken_pass(broken_pass):
    m = parse_module(SMALL)
    with pytest.raises(IRError, match="after pass 'break_return'.*must end with 'return'"):
        run_passes(m, ["canonicalize", "break_return", "dce"], verify=True)


def test_verify_off_lets_a_broken_pass_through(broken_pass, monkeypatch):
    monkeypatch.delenv("TILEC_VERIFY", raising=False)
    run_passes(parse_module(SMALL), ["break_return"])
    run_passes(parse_module(SMALL), ["break_return"], verify=False)


def test_verify_defaults_to_the_environment(broken_pass, monkeypatch):
    monkeypatch.setenv("TILEC_VERIFY", "1")
    with pytest.raises(IRError, match="break_return"):
        run_passes(parse_module(SMALL), ["break_return"])


def test_dump_sees_each_pass_in_order():
    seen = []
    run_passes(parse_module(SMALL), DEFAULT_PIPELINE, verify=True,
               dump=lambda name, text: seen.append((name, text)))
    assert [name for name, _ in seen] == DEFAULT_PIPELINE
    assert "mul" in parse_module(SMALL).__str__()
    assert "mul" not in seen[1][1]  # canonicalize removed x * 1
    for _, text in seen:
        verify(parse_module(text))


def test_dump_env_prints_to_stderr(monkeypatch, capsys):
    monkeypatch.setenv("TILEC_DUMP", "1")
    run_passes(parse_module(SMALL), ["canonicalize"], verify=True)
    err = capsys.readouterr().err
    assert "IR after canonicalize" in err and "func @f" in err


def test_unknown_pass_is_an_error():
    with pytest.raises(IRError, match="unknown pass 'cannonicalize'"):
        run_passes(parse_module(SMALL), ["cannonicalize"])


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_default_pipeline_on_the_corpus(path):
    """Every corpus kernel survives the pipeline verified, prints and parses back, and a
    second run changes nothing."""
    m = run_passes(verify(parse_file(path)), DEFAULT_PIPELINE, verify=True)
    text = print_module(m)
    assert parse_module(text) == m
    again = run_passes(parse_module(text), DEFAULT_PIPELINE, verify=True)
    assert print_module(again) == text
