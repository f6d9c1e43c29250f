"""The op registry: every op is declared consistently, so that the printer, parser, verifier
and builder (which all read the declarations) can rely on them."""
from __future__ import annotations

import re

import pytest

import tilec.ir.ops  # noqa: F401  (registers every op)
from tilec.ir.core import OPS, Attr, Operation, OperandSpec, Trait

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Words of the textual IR that an op or operand name must not shadow.
GRAMMAR_WORDS = {"func", "attrs", "loc", "true", "false", "ptr", "tensor", "tile"}
NAMES = sorted(OPS)


def test_registry_is_populated():
    assert len(OPS) >= 70
    assert all(isinstance(cls, type) and issubclass(cls, Operation) for cls in OPS.values())


@pytest.mark.parametrize("name", NAMES)
def test_name_matches_key(name: str):
    cls = OPS[name]
    assert cls.name == name
    assert IDENT.match(name) and name not in GRAMMAR_WORDS


def test_names_are_unique_per_class():
    classes = list(OPS.values())
    assert len(set(classes)) == len(classes)


def test_declaring_a_name_twice_is_refused():
    with pytest.raises(TypeError, match="declared twice"):
        type("Impostor", (Operation,), {"name": "add"})
    assert OPS["add"].__name__ == "Add"


def test_two_variadic_groups_are_refused():
    with pytest.raises(TypeError, match="at most one variadic"):
        type("TwoGroups", (Operation,), {"operand_specs": ("a*", "b*")})


@pytest.mark.parametrize("name", NAMES)
def test_operand_specs(name: str):
    cls = OPS[name]
    specs = [OperandSpec.parse(s) for s in cls.operand_specs]
    assert tuple(specs) == cls._specs
    for text, spec in zip(cls.operand_specs, specs):
        suffix = {"one": "", "optional": "?", "variadic": "*"}[spec.kind]
        assert text == spec.name + suffix
        assert IDENT.match(spec.name)
        if spec.kind == "optional":  # written as `name %v` in text
            assert spec.name not in GRAMMAR_WORDS
    assert len({s.name for s in specs}) == len(specs), "operand names must be unique"
    assert sum(s.kind == "variadic" for s in specs) <= 1
    # Operand names and attribute names share `op.field` access: they must not collide.
    assert not {s.name for s in specs} & set(cls.attr_specs)


@pytest.mark.parametrize("name", NAMES)
def test_attribute_specs(name: str):
    cls = OPS[name]
    for key, spec in cls.attr_specs.items():
        assert isinstance(spec, Attr) and IDENT.match(key)
        kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
        assert all(isinstance(k, type) for k in kinds)
        if spec.choices is not None:
            assert len(spec.choices) == len(set(spec.choices)) > 0
            assert all(isinstance(c, kinds) for c in spec.choices), f"{name}.{key} choices"
        if not spec.required:
            assert isinstance(spec.default, kinds), f"{name}.{key} default {spec.default!r}"
            if spec.choices is not None:
                assert spec.default in spec.choices, f"{name}.{key} default not a choice"


@pytest.mark.parametrize("name", NAMES)
def test_documented(name: str):
    cls = OPS[name]
    documented = [k for k in cls.__mro__
                  if k not in (Operation, object) and (k.__dict__.get("__doc__") or "").strip()]
    assert documented, f"op '{name}' ({cls.__name__}) has no docstring, nor has its base class"


@pytest.mark.parametrize("name", NAMES)
def test_traits_are_consistent(name: str):
    cls = OPS[name]
    traits = cls.traits
    assert all(isinstance(t, Trait) for t in traits)
    if Trait.PURE in traits:
        assert not traits & {Trait.READS_MEMORY, Trait.WRITES_MEMORY, Trait.BARRIER}
    if Trait.TERMINATOR in traits:
        assert cls.num_results == 0 and cls.num_regions == 0
    if Trait.COMMUTATIVE in traits:
        assert len(cls._specs) >= 2 and cls._specs[0].kind == cls._specs[1].kind == "one"
    if Trait.CONSTANT in traits:
        assert "value" in cls.attr_specs
    assert cls.num_regions >= 0


def test_terminators():
    assert {n for n, c in OPS.items() if Trait.TERMINATOR in c.traits} == {
        "yield", "return", "condition"}
