"""Building IR in code: the Builder infers result types from the op declarations, takes
optional operands by keyword, builds regions, and what it builds verifies, prints and
parses back equal."""
from __future__ import annotations

import pytest

from tilec.errors import IRError, Location
from tilec.ir import dtypes as dt
from tilec.ir.builder import Builder
from tilec.ir.core import Block, Function, Module, Region
from tilec.ir.parser import parse_module
from tilec.ir.printer import print_module
from tilec.ir.types import PointerType, ScalarType, TensorType, TileType
from tilec.ir.verifier import verify

F32 = ScalarType(dt.float32)
I32 = ScalarType(dt.int32)
LOC = Location("kernel.py", 3, 5)


def _masked_scale() -> Module:
    """y[i] = sum over 4 passes of alpha * x[i], for i < n: pointer tiles, a mask, a loop."""
    block = Block([TensorType(dt.float32, 1), TensorType(dt.float32, 1), F32],
                  ["x", "y", "alpha"])
    x, y, alpha = block.args
    func = Function("masked_scale", Region(block), attrs={"BLOCK": 128}, loc=LOC)
    b = Builder.at_end(block, LOC)
    pid = b.op("program_id", attrs={"axis": 0}, names=["pid"])
    n = b.op("tensor_dim", x, attrs={"axis": 0})
    block_size = b.op("constant", attrs={"value": 128}, types=[I32])
    start = b.op("mul", pid, block_size)
    lanes = b.op("arange", attrs={"start": 0, "end": 128})
    tile_i32 = TileType((128,), dt.int32)
    offs = b.op("add", b.op("splat", start, types=[tile_i32]), lanes, names=["offs"])
    mask = b.op("cmp", offs, b.op("splat", n, types=[tile_i32]), attrs={"pred": "lt"})
    ptr_tile = TileType((128,), PointerType(dt.float32))
    x_ptrs = b.op("addptr", b.op("splat", b.op("tensor_ptr", x), types=[ptr_tile]), offs)
    y_ptrs = b.op("addptr", b.op("splat", b.op("tensor_ptr", y), types=[ptr_tile]), offs)
    zero = b.op("constant", attrs={"value": 0.0}, types=[TileType((128,), dt.float32)])
    v = b.op("load", x_ptrs, mask=mask, other=zero, names=["v"])
    scale = b.op("splat", alpha, types=[v.type])
    # for i in range(0, 4): acc = fma(v, scale, acc)
    lb = b.op("constant", attrs={"value": 0}, types=[I32])
    ub = b.op("constant", attrs={"value": 4}, types=[I32])
    step = b.op("constant", attrs={"value": 1}, types=[I32])
    body = Block([I32, v.type], ["i", "acc"])
    with b.inside(body):
        acc_next = b.op("fma", v, scale, body.args[1])
        b.create("yield", [acc_next])
    loop = b.create("for", lb, ub, step, [zero], types=[v.type], regions=[Region(body)])
    b.create("store", y_ptrs, loop.result, mask=mask)
    b.create("return")
    return Module([func])


def test_build_verify_print_parse():
    m = verify(_masked_scale())
    text = print_module(m)
    assert "%v = load %" in text and ", mask %" in text and ", other %" in text
    assert "%pid = program_id {axis = 0} : i32" in text
    m2 = verify(parse_module(text))
    assert m2 == m
    assert print_module(m2) == text


def test_inferred_types():
    m = _masked_scale()
    types = {op.name: op.results[0].type for op in m.walk() if op.results}
    assert types["program_id"] == I32
    assert types["tensor_dim"] == I32
    assert types["arange"] == TileType((128,), dt.int32)
    assert types["cmp"] == TileType((128,), dt.bool_)
    assert types["tensor_ptr"] == PointerType(dt.float32)
    assert types["addptr"] == TileType((128,), PointerType(dt.float32))
    assert types["load"] == TileType((128,), dt.float32)
    assert types["fma"] == TileType((128,), dt.float32)


def test_keyword_operands_land_in_their_groups():
    load = next(op for op in _masked_scale().walk() if op.name == "load")
    assert load.mask.type == TileType((128,), dt.bool_)
    assert load.other.name is None and load.other.type == TileType((128,), dt.float32)
    store = next(op for op in _masked_scale().walk() if op.name == "store")
    assert [spec.name for spec, group in store.operand_groups() if group] == ["ptr", "value", "mask"]


def test_absent_optional_operands_print_nothing():
    block = Block([PointerType(dt.float16)], ["p"])
    b = Builder.at_end(block)
    v = b.op("load", block.args[0])
    b.create("store", block.args[0], v)
    b.create("return")
    m = verify(Module([Function("copy", Region(block))]))
    text = print_module(m)
    assert "mask" not in text and "other" not in text
    assert parse_module(text) == m


def test_builder_locations_survive_printing():
    m = _masked_scale()
    assert all(op.loc == LOC for op in m.walk())
    text = print_module(m, locations=True)
    assert 'loc("kernel.py":3:5)' in text
    assert all((op.loc.file, op.loc.line, op.loc.col) == ("kernel.py", 3, 5)
               for op in parse_module(text).walk())


def test_insert_before():
    m = _masked_scale()
    ret = m.functions[0].body.block.ops[-1]
    store = m.functions[0].body.block.ops[-2]
    b = Builder.before(store)
    b.create("barrier")
    assert [op.name for op in m.functions[0].body.block.ops[-3:]] == ["barrier", "store", "return"]
    assert ret.name == "return"
    verify(m)


def test_builder_errors_are_ir_errors():
    block = Block([F32], ["x"])
    b = Builder.at_end(block, LOC)
    with pytest.raises(IRError, match="unknown op 'ad'"):
        b.op("ad", block.args[0], block.args[0])
    with pytest.raises(IRError, match="missing operand 'rhs'"):
        b.op("add", block.args[0])
    with pytest.raises(IRError, match="too many operands"):
        b.op("neg", block.args[0], block.args[0])
    with pytest.raises(IRError, match="too many operands"):
        b.op("neg", block.args[0], mask=block.args[0])
    with pytest.raises(IRError, match="needs explicit result types"):
        b.op("cast", block.args[0])
    assert block.ops == []


def test_built_type_errors_are_caught_by_the_verifier():
    block = Block([F32, ScalarType(dt.float16)], ["a", "b"])
    b = Builder.at_end(block, LOC)
    b.op("add", *block.args)  # infers from the first operand; the verifier rejects the mix
    b.create("return")
    with pytest.raises(IRError, match="element type mismatch") as info:
        verify(Module([Function("f", Region(block))]))
    assert info.value.loc == LOC
