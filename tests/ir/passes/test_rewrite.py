"""The IR surgery helpers in tilec/ir/rewrite.py, and the FileCheck helper the pass tests
use."""
from __future__ import annotations

import pytest
from filecheck import CheckError, filecheck, split_cases

from tilec.errors import IRError
from tilec.ir.core import Function, Module
from tilec.ir.parser import parse_module
from tilec.ir.rewrite import (apply_patterns, clone_module, clone_region,
                              inline_region_before, replace_all_uses, replace_op)
from tilec.ir.verifier import verify

LOOP = """
func @f(%x: f32, %n: i32, %t: tensor<?xf32>) -> f32 {
  %c0 = constant {value = 0} : i32
  %c1 = constant {value = 1} : i32
  %r = for %c0, %n, %c1, %x : f32 {
  ^(%i: i32, %acc: f32):
    %e = exp %acc : f32
    %v = splat %e : tile<4xf32>
    %m = constant {value = true} : tile<4xbool>
    %p = tensor_ptr %t : ptr<f32>
    %ps = splat %p : tile<4xptr<f32>>
    %l = load %ps, mask %m, other %v : tile<4xf32>
    %s = reduce %l {axis = 0, kind = "sum"} : f32
    yield %s
  }
  return %r
}
"""


def test_clone_region_is_a_deep_copy():
    m = parse_module(LOOP)
    f = m.functions[0]
    copy = Function("f", clone_region(f.body, {}), list(f.result_types))
    assert Module([copy]) == m
    # The copy shares nothing with the original: gutting the original leaves it whole.
    loop = f.body.block.ops[2]
    replace_op(loop, [f.args[0]])
    assert Module([copy]) == parse_module(LOOP)
    verify(Module([copy]))
    assert all(op.parent is not None for op in copy.walk())


def test_clone_module_is_a_deep_copy():
    m = parse_module(LOOP)
    copy = clone_module(m)
    assert copy == m
    # Rewriting the copy, body and attributes, leaves the original whole.
    f = copy.functions[0]
    f.attrs["num_stages"] = 4
    replace_op(f.body.block.ops[2], [f.args[0]])
    assert m == parse_module(LOOP) and "num_stages" not in m.functions[0].attrs
    verify(m)


def test_clone_maps_outer_values():
    m = parse_module(LOOP)
    loop = m.functions[0].body.block.ops[2]
    body = loop.regions[0]
    y = m.functions[0].args[0]
    mapping = {}
    clone = clone_region(body, mapping)
    assert mapping[body.block.args[1]] is clone.block.args[1]
    assert all(v is not y for v in mapping)


def test_replace_all_uses_handles_repeated_operands():
    m = parse_module("""
func @f(%x: i32, %y: i32) -> i32 {
  %a = add %x, %x : i32
  return %a
}
""")
    x, y = m.functions[0].args
    replace_all_uses(x, y)
    assert not x.uses and len(y.uses) == 2
    assert "add %y, %y" in str(m)


def test_inline_region_before_returns_the_yielded_values():
    m = parse_module("""
func @f(%x: f32, %c: bool) -> f32 {
  %r = if %c : f32 {
    %e = exp %x : f32
    yield %e
  } {
    yield %x
  }
  return %r
}
""")
    op = m.functions[0].body.block.ops[0]
    replace_op(op, inline_region_before(op.regions[0], op, []))
    verify(m)
    assert str(m).splitlines()[1:3] == ["  %e = exp %x : f32", "  return %e"]


def test_replace_op_checks_the_count():
    m = parse_module(LOOP)
    op = m.functions[0].body.block.ops[0]
    with pytest.raises(IRError, match="internal error"):
        replace_op(op, [])


def test_patterns_that_undo_each_other_are_reported():
    m = parse_module("""
func @f(%x: i32, %y: i32) -> i32 {
  %a = add %x, %y : i32
  return %a
}
""")

    def swap(op):
        if op.name != "add":
            return False
        a, b = op.operands
        op.set_operand(0, b)
        op.set_operand(1, a)
        return True

    with pytest.raises(IRError, match="did not converge"):
        apply_patterns(m, [swap], max_sweeps=5)


def test_patterns_skip_erased_ops():
    m = parse_module(LOOP)
    visited = []

    def erase_loops(op):
        visited.append(op.name)
        if op.name == "for":
            replace_op(op, [op.inits[0]])
            return True
        return False

    assert apply_patterns(m, [erase_loops])
    assert "exp" not in visited  # the loop's body went with the loop, before its turn
    verify(m)


# ---------------------------------------------------------------------------------------
# FileCheck

OUT = """func @f() {
  %a = add %x, %y : i32
  %b = mul %a, %a : i32
  return
}"""


def test_filecheck_accepts():
    filecheck(OUT, "// CHECK: %a = add %x,   %y : i32\n// CHECK-NEXT: %b = mul %a, %a : i32")
    filecheck(OUT, "// CHECK: func @f() {\n// CHECK-NOT: sub\n// CHECK: return")
    filecheck(OUT, "// CHECK: %{{[a-z]}} = mul {{.*}} : i32")


@pytest.mark.parametrize("checks", [
    "// CHECK: %a = add %x",                       # whole lines only
    "// CHECK: %b = mul %a, %a : i32\n// CHECK: %a = add %x, %y : i32",   # order
    "// CHECK: func @f() {\n// CHECK-NEXT: %b = mul %a, %a : i32",       # not next
    "// CHECK: func @f() {\n// CHECK-NOT: mul\n// CHECK: return",         # forbidden
    "// CHECK: %b = mul %a, %a : i32\n// CHECK-NOT: return",              # trailing NOT
    "no directives",
])
def test_filecheck_rejects(checks):
    with pytest.raises(CheckError):
        filecheck(OUT, checks)


def test_split_cases_keeps_line_numbers():
    text = "a\n// -----\nb\nc\n  // -----  \nd\n"
    cases = split_cases(text)
    assert [(n, c.strip()) for n, c in cases] == [(1, "a"), (2, "b\nc"), (5, "d")]
