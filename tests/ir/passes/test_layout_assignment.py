"""Layout assignment: the default layouts, the reshape/view layouts, and the laid-out IR
contract (tilec/ir/passes/layout_assignment.py, docs/backend-contract.md) checked on every
corpus kernel by `check_contract`, which is itself shown to catch broken modules."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilec.errors import IRError
from tilec.ir.core import Module, Operation, Trait, Value
from tilec.ir.layout import RegisterLayout, local, replicate, spatial
from tilec.ir.layout_defaults import (default_layout, replicated_layout, reshape_layout,
                                      vector_width, view_layout)
from tilec.ir.parser import parse_file, parse_module
from tilec.ir.passes.manager import DEFAULT_PIPELINE, GPU_PIPELINE, PassOptions, run_passes
from tilec.ir.printer import print_module
from tilec.ir.shared_layout import SharedLayout
from tilec.ir.types import REGISTER, SHARED, PointerType, TileType
from tilec.ir.verifier import verify

CORPUS = sorted((Path(__file__).parents[1] / "corpus").glob("*.tile"))


# ---------------------------------------------------------------------------------------
# The contract, as a checker


def _bits(t: TileType) -> int:
    return 64 if isinstance(t.element, PointerType) else t.element.itemsize_bits


def _layout(v: Value):
    return v.type.layout


def _tiles(values) -> list[Value]:
    return [v for v in values if isinstance(v.type, TileType) and v.type.space == REGISTER]


def _check_type(t, threads: int, what: str) -> None:
    if not isinstance(t, TileType):
        return
    assert t.layout is not None, f"rule 1: {what} {t} has no layout"
    if t.space == SHARED:
        assert isinstance(t.layout, SharedLayout), f"rule 1: {what} {t} needs a shared layout"
    else:
        assert isinstance(t.layout, RegisterLayout), f"rule 1: {what} {t}: not a register layout"
        assert t.layout.num_threads == threads, (
            f"rule 1: {what} {t} spans {t.layout.num_threads} threads, not {threads}")
    assert tuple(t.layout.shape) == t.shape, f"rule 1: {what} {t}: layout of another shape"


def _linear(layout: RegisterLayout) -> np.ndarray:
    c = layout.coords()
    return np.ravel_multi_index(tuple(c[:, :, d] for d in range(layout.rank)), layout.shape)


def _same(op: Operation, values: list[Value], rule: str) -> None:
    layouts = {str(_layout(v)) for v in values}
    assert len(layouts) <= 1, f"{rule}: '{op.name}' mixes layouts {sorted(layouts)}"


def _check_op(op: Operation, f, threads: int) -> None:
    for r in op.results:
        _check_type(r.type, threads, f"result of '{op.name}'")
    for region in op.regions:
        for a in region.block.args:
            _check_type(a.type, threads, f"block argument of '{op.name}'")
    name = op.name
    if op.has_trait(Trait.ELEMENTWISE) or name in ("load", "store", "atomic_rmw", "atomic_cas",
                                                   "scan"):
        _same(op, _tiles(op.operands) + _tiles(op.results), "rule 2")
    elif name == "dot":
        _same(op, [op.acc, op.result], "rule 2")
    elif name in ("reduce", "argreduce", "reduce_custom"):
        if isinstance(op.result.type, TileType):
            want = _layout(op.x).reduce(op.axis).squeeze(op.axis)
            assert _layout(op.result) == want, f"rule 3: '{name}' gives {_layout(op.result)}"
    elif name == "expand_dims":
        assert _layout(op.result) == _layout(op.x).expand_dims(op.axis), "rule 3: expand_dims"
    elif name == "permute":
        assert _layout(op.result) == _layout(op.x).permute(op.dims), "rule 3: permute"
    elif name == "broadcast":
        out = _layout(op.result)
        for d, (a, b) in enumerate(zip(op.x.type.shape, op.result.type.shape)):
            if a == 1 and b != 1:
                out = out.reduce(d)
        assert out == _layout(op.x), f"rule 3: broadcast of {_layout(op.x)} to {_layout(op.result)}"
    elif name == "reshape":
        a, b = _layout(op.x), _layout(op.result)
        ok = (a.num_threads, a.local_size) == (b.num_threads, b.local_size) and np.array_equal(
            _linear(a), _linear(b))
        assert ok, f"rule 3: reshape {a} -> {b} moves elements"
    elif name == "view":
        a, b = _layout(op.x), _layout(op.result)
        group = math.lcm(_bits(op.x.type), _bits(op.result.type))
        ones = [1] * (a.rank - 1)
        want = (a / local(*ones, group // _bits(op.x.type))) * local(*ones,
                                                                 group // _bits(op.result.type))
        assert b == want, f"rule 3: view {a} -> {b}"
    elif name == "shared_index":
        buf = _layout(op.buffer)
        assert _layout(op.result) == SharedLayout(buf.modes[1:], buf.strides[1:], buf.swizzles), (
            "rule 3: shared_index")
    elif name == "for":
        body = op.regions[0].block
        term = body.ops[-1]
        for i, init in enumerate(op.inits):
            group = [init, body.args[i + 1], term.operands[i], op.results[i]]
            assert len({v.type for v in group}) == 1, f"rule 4: for carries {group}"
    elif name == "while":
        before, after = op.regions[0].block, op.regions[1].block
        cond, term = before.ops[-1], after.ops[-1]
        for i, init in enumerate(op.inits):
            group = [init, before.args[i], term.operands[i]]
            assert len({v.type for v in group}) == 1, "rule 4: while carried value"
        for j, v in enumerate(cond.values):
            group = [v, after.args[j], op.results[j]]
            assert len({v.type for v in group}) == 1, "rule 4: while forwarded value"
    elif name == "if":
        for j, r in enumerate(op.results):
            group = [r] + [region.block.ops[-1].operands[j] for region in op.regions]
            assert len({v.type for v in group}) == 1, "rule 4: if results"
    elif name == "return":
        assert [v.type for v in op.operands] == list(f.result_types), "rule 4: return"
    elif name == "convert_layout":
        assert _layout(op.x) != _layout(op.result), f"rule 5: no-op convert to {_layout(op.x)}"
        inner = getattr(op.x, "owner", None)
        assert inner is None or inner.name != "convert_layout", "rule 5: convert of a convert"


def check_contract(module: Module, warp: int = 32) -> Module:
    """Assert the laid-out IR contract (rules 1-5 of layout_assignment's docstring) for
    warps of `warp` lanes."""
    for f in module.functions:
        assert "num_warps" in f.attrs, f"rule 1: @{f.name} has no num_warps"
        threads = warp * f.attrs["num_warps"]
        for a in f.args:
            _check_type(a.type, threads, "argument")
        for t in f.result_types:
            _check_type(t, threads, "function result")
        for op in f.walk():
            _check_op(op, f, threads)
    return module


def laid_out(text: str, num_warps: int = 4, pipeline=None) -> Module:
    module = parse_module(text)
    names = pipeline or ["layout_assignment"]
    return run_passes(module, names, PassOptions(num_warps=num_warps), verify=True)


# ---------------------------------------------------------------------------------------
# Default layouts


def _covers(layout: RegisterLayout) -> None:
    """Every element is held exactly `replication` times (and nothing outside the tile)."""
    counts = np.bincount(_linear(layout).ravel(), minlength=math.prod(layout.shape))
    assert counts.size == math.prod(layout.shape)
    assert np.all(counts == layout.replication), counts


@pytest.mark.parametrize("shape, bits, warps, expected", [
    ((1024,), 32, 4, "local(2)*spatial(128)*local(4)"),
    ((1, 1024), 16, 4, "spatial(1,128)*local(1,8)"),
    ((128, 64), 16, 4, "local(8,1)*spatial(16,8)*local(1,8)"),
    ((128, 128), 32, 4, "local(32,1)*spatial(4,32)*local(1,4)"),
    ((16, 512), 32, 8, "local(2,4)*spatial(8,32)*local(1,4)"),
    ((64, 32), 8, 4, "spatial(64,2)*local(1,16)"),
    ((64, 64), 4, 4, "spatial(64,2)*local(1,32)"),        # sub-byte: 16 bytes a thread too
    ((16,), 32, 4, "replicate(32)*spatial(4)*local(4)"),  # fewer elements than threads
    ((3, 5), 32, 4, "replicate(128)*local(3,5)"),         # odd sizes: local repeats
    ((100,), 32, 4, "replicate(128)*local(100)"),
    ((8, 8), 64, 1, "spatial(8,4)*local(1,2)"),
])
def test_default_layout_examples(shape, bits, warps, expected):
    layout = default_layout(shape, bits, 32 * warps)
    assert str(layout) == expected
    assert layout.shape == shape and layout.num_threads == 32 * warps
    _covers(layout)


@settings(max_examples=150, deadline=None)
@given(shape=st.lists(st.integers(1, 48), min_size=1, max_size=3).filter(
           lambda s: math.prod(s) <= 8192),
       bits=st.sampled_from([1, 4, 6, 8, 16, 32, 64]),
       warps=st.sampled_from([1, 2, 4, 8]))
def test_default_layout_covers_every_element(shape, bits, warps):
    layout = default_layout(shape, bits, 32 * warps)
    assert layout.shape == tuple(shape) and layout.num_threads == 32 * warps
    _covers(layout)
    v = vector_width(shape[-1], bits)
    assert shape[-1] % v == 0 and v & (v - 1) == 0 and v * bits <= max(128, bits)
    # The innermost factor is the thread's vector along the last dim.
    assert layout.divide(local(*[1] * (len(shape) - 1), v)) is not None
    # Lanes first go along the last dim: thread 1 holds the next vector when lanes fit there.
    if (shape[-1] // v) % 2 == 0:
        assert layout.map(1, 0)[-1] == v


def test_vector_width():
    assert vector_width(1024, 16) == 8 and vector_width(1024, 32) == 4
    assert vector_width(1024, 4) == 32 and vector_width(12, 32) == 4
    assert vector_width(6, 16) == 2 and vector_width(5, 8) == 1 and vector_width(2, 8) == 2


# ---------------------------------------------------------------------------------------
# Reshape and view layouts


@settings(max_examples=100, deadline=None)
@given(shape=st.lists(st.sampled_from([1, 2, 3, 4, 6, 8, 16, 32]), min_size=1, max_size=3),
       split=st.sampled_from([1, 2, 4]), warps=st.sampled_from([1, 4]))
def test_reshape_layout_keeps_every_slot(shape, split, warps):
    layout = default_layout(shape, 16, 32 * warps)
    if shape[-1] % split:
        return
    new = list(shape[:-1]) + ([shape[-1] // split, split] if split > 1 else [shape[-1]])
    for target in (new, [math.prod(shape)]):
        out = reshape_layout(layout, target)
        assert out is not None and out.shape == tuple(target)
        assert np.array_equal(_linear(out), _linear(layout))
        assert reshape_layout(out, shape) == layout


def test_reshape_layout_fallbacks():
    assert str(reshape_layout(local(3, 5) * replicate(128), (5, 3))) == "replicate(128)*local(5,3)"
    # Modes regroup across dims (3*2 threads split as 2x3) ...
    assert str(reshape_layout(spatial(3, 2) * local(1, 2), (2, 6))) == "spatial(2,3)*local(1,2)"
    # ... but not where a new dim ends inside a mode that it does not divide.
    assert reshape_layout(spatial(2, 3) * local(1, 2), (4, 3)) is None
    assert reshape_layout(replicated_layout((6, 4), 32), (4, 6)) == replicated_layout((4, 6), 32)
    with pytest.raises(Exception):
        reshape_layout(local(4), (5,))


def test_view_layout():
    u8 = default_layout((64, 32), 8, 128)
    assert view_layout(u8, 8, 4) == u8 * local(1, 2) == default_layout((64, 64), 4, 128)
    assert view_layout(view_layout(u8, 8, 4), 4, 8) == u8
    assert view_layout(spatial(32) * local(1), 4, 32) is None
    assert view_layout(u8, 8, 8) == u8
    # 3 bytes hold 4 six-bit values: local(1,16) is not a multiple of 3 bytes, local(1,3) is.
    assert view_layout(u8, 8, 6) is None
    assert view_layout(spatial(4, 32) * local(1, 3), 8, 6) == spatial(4, 32) * local(1, 4)


# ---------------------------------------------------------------------------------------
# The pass on the corpus


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_corpus_is_laid_out_by_contract(path: Path):
    module = run_passes(parse_file(path), GPU_PIPELINE, PassOptions(num_warps=4), verify=True)
    check_contract(module)
    text = print_module(module)
    again = parse_module(text)
    assert print_module(again) == text and again == module  # layouts print and parse back
    check_contract(again)
    # Idempotent: the pass (and the whole pipeline) changes nothing the second time.
    assert print_module(run_passes(again, ["layout_assignment"], PassOptions(num_warps=4),
                                   verify=True)) == text


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_corpus_without_inlining(path: Path):
    """Calls and device functions with tile arguments and results, as parsed."""
    module = run_passes(parse_file(path), ["layout_assignment"], PassOptions(num_warps=4),
                        verify=True)
    check_contract(module)


@pytest.mark.parametrize("name", ["softmax", "layernorm", "matmul", "argmax", "dequant_uint4",
                                  "vector_add"])
@pytest.mark.parametrize("warps", [1, 2, 8])
def test_kernels_alone_and_for_other_warp_counts(name, warps):
    module = run_passes(parse_file(Path(__file__).parents[1] / "corpus" / f"{name}.tile"),
                        DEFAULT_PIPELINE, verify=True)
    for f in module.functions:
        f.attrs.pop("num_warps", None)
    once = run_passes(module, ["layout_assignment"], PassOptions(num_warps=warps), verify=True)
    check_contract(once)
    text = print_module(once)
    twice = run_passes(parse_module(text), ["layout_assignment"], PassOptions(num_warps=warps),
                       verify=True)
    assert print_module(twice) == text


@pytest.mark.parametrize("name", ["softmax", "layernorm", "matmul", "argmax", "dequant_uint4",
                                  "vector_add", "flash_attention"])
def test_wave64_targets_lay_out_64_lanes_per_warp(name):
    """On AMD (gfx*) a warp is a 64-lane wavefront: 4 warps are 256 threads, the default
    layouts spread 64 lanes, and dots get MFMA fragments."""
    opts = PassOptions(target="gfx942", num_warps=4)
    assert opts.warp_size == 64 and PassOptions(target="sm_90a").warp_size == 32
    module = run_passes(parse_file(Path(__file__).parents[1] / "corpus" / f"{name}.tile"),
                        GPU_PIPELINE, opts, verify=True)
    check_contract(module, warp=64)
    text = print_module(module)
    assert print_module(run_passes(parse_module(text), ["layout_assignment"], opts,
                                   verify=True)) == text
    if name == "matmul":
        assert "column_spatial(32,2)*local(1,4)" in text    # the MFMA 32x32x8 A fragment


def test_default_layout_for_wave64():
    assert default_layout((64, 64), 16, 256, 64) == local(2, 1) * spatial(4, 1) * \
        spatial(8, 8) * local(1, 8)
    assert default_layout((1024,), 32, 256, 64) == spatial(4) * spatial(64) * local(4)


def test_no_conversions_in_simple_kernels():
    """Where one layout suits the whole kernel, none is inserted (the sinking works)."""
    for name in ("softmax", "layernorm", "vector_add", "dequant_uint4", "argmax"):
        module = run_passes(parse_file(Path(__file__).parents[1] / "corpus" / f"{name}.tile"),
                            GPU_PIPELINE, verify=True)
        assert "convert_layout" not in print_module(module), name


# ---------------------------------------------------------------------------------------
# The checker catches broken modules


BROKEN = {
    "rule 1: ": """
func @f(%x: tensor<?xf32>) attrs {num_warps = 4} {
  %c0 = constant {value = 0} : i32
  %t = load_view %x, [%c0] : tile<128xf32>
  return
}""",
    "rule 1: result of 'load_view' tile<128xf32, spatial(32)*local(4)> spans 32": """
func @f(%x: tensor<?xf32>) attrs {num_warps = 4} {
  %c0 = constant {value = 0} : i32
  %t = load_view %x, [%c0] : tile<128xf32, spatial(32)*local(4)>
  return
}""",
    "rule 2: 'add' mixes": """
func @f(%x: tensor<?xf32>) attrs {num_warps = 1} {
  %c0 = constant {value = 0} : i32
  %a = load_view %x, [%c0] : tile<128xf32, spatial(32)*local(4)>
  %b = load_view %x, [%c0] : tile<128xf32, local(4)*spatial(32)>
  %c = add %a, %b : tile<128xf32, spatial(32)*local(4)>
  return
}""",
    "rule 3: 'reduce' gives": """
func @f(%x: tensor<?x?xf32>) attrs {num_warps = 1} {
  %c0 = constant {value = 0} : i32
  %a = load_view %x, [%c0, %c0] : tile<32x4xf32, spatial(32,1)*local(1,4)>
  %s = reduce %a {axis = 0, kind = "sum"} : tile<4xf32, replicate(8)*spatial(4)>
  return
}""",
    "rule 3: broadcast": """
func @f(%x: tensor<?x?xf32>) attrs {num_warps = 1} {
  %c0 = constant {value = 0} : i32
  %a = load_view %x, [%c0, %c0] : tile<32x1xf32, spatial(32,1)>
  %b = broadcast %a : tile<32x4xf32, spatial(1,4)*local(32,1)*replicate(8)>
  return
}""",
    "rule 3: reshape": """
func @f(%x: tensor<?x?xf32>) attrs {num_warps = 1} {
  %c0 = constant {value = 0} : i32
  %a = load_view %x, [%c0, %c0] : tile<32x4xf32, spatial(32,1)*local(1,4)>
  %b = reshape %a : tile<128xf32, local(4)*spatial(32)>
  return
}""",
    "rule 4: for carries": """
func @f(%x: tensor<?xf32>) attrs {num_warps = 1} {
  %c0 = constant {value = 0} : i32
  %c1 = constant {value = 1} : i32
  %z = constant {value = 0.0} : tile<128xf32, spatial(32)*local(4)>
  %r = for %c0, %c1, %c1, %z : tile<128xf32, spatial(32)*local(4)> {
  ^(%i: i32, %acc: tile<128xf32, spatial(32)*local(4)>):
    %a = load_view %x, [%i] : tile<128xf32, local(4)*spatial(32)>
    yield %a
  }
  return
}""",
    "rule 5: no-op convert": """
func @f(%x: tensor<?xf32>) attrs {num_warps = 1} {
  %c0 = constant {value = 0} : i32
  %a = load_view %x, [%c0] : tile<128xf32, spatial(32)*local(4)>
  %b = convert_layout %a : tile<128xf32, spatial(32)*local(4)>
  return
}""",
    "rule 5: convert of a convert": """
func @f(%x: tensor<?xf32>) attrs {num_warps = 1} {
  %c0 = constant {value = 0} : i32
  %a = load_view %x, [%c0] : tile<128xf32, spatial(32)*local(4)>
  %b = convert_layout %a : tile<128xf32, local(4)*spatial(32)>
  %c = convert_layout %b : tile<128xf32, local(2)*spatial(32)*local(2)>
  return
}""",
}


@pytest.mark.parametrize("message", sorted(BROKEN))
def test_check_contract_catches_broken_modules(message):
    module = verify(parse_module(BROKEN[message]))
    with pytest.raises(AssertionError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("*", r"\*")):
        check_contract(module)
    # ... and the pass repairs each of them.
    f = module.functions[0]
    warps = f.attrs["num_warps"]
    if "spans 32" in message:
        return  # a preset layout for the wrong thread count is an error, tested below
    check_contract(run_passes(module, ["layout_assignment"], PassOptions(num_warps=warps),
                              verify=True))


def test_errors():
    with pytest.raises(IRError, match="spans 32 threads"):
        laid_out(BROKEN["rule 1: result of 'load_view' tile<128xf32, spatial(32)*local(4)> "
                        "spans 32"])
    with pytest.raises(IRError, match="num_warps = 4, but it is being compiled for 8"):
        laid_out(BROKEN["rule 1: "], num_warps=8)


def test_view_of_bytes_as_six_bit_floats():
    """3 bytes hold 4 f6 values: every thread keeps whole groups of 3 bytes."""
    module = laid_out("""
func @f(%x: tensor<?x?xu8>, %y: tensor<?x?xf16>) {
  %c0 = constant {value = 0} : i32
  %b = load_view %x, [%c0, %c0] : tile<64x48xu8>
  %v = view %b : tile<64x64xf6e3m2>
  %h = cast %v : tile<64x64xf16>
  store_view %y, [%c0, %c0], %h
  return
}""")
    check_contract(module)
    assert "tile<64x64xf6e3m2, replicate(2)*spatial(64,1)*local(1,64)>" in print_module(module)
