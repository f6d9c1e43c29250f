"""Software pipelining: dot operands of a `for` loop stream through a ring of shared buffers.

For a function with `num_stages = S >= 2` and a target with matrix instructions, a `for`
loop whose body loads a dot operand with `load_view` (its only use a `convert_layout` into
the dot's ldmatrix-readable fragment layout, its offsets computed from the induction
variable and loop-invariant values by pure ops) gets, per such load, a buffer of S stages
in the swizzled shared layout that `mma.ldmatrix_plan` chooses for the conversion, filled
`S - 1` iterations ahead by `copy_async`:

    %a = load_view %A, %r, %c : tile<128x32xf16, L>              (in the loop)
    %a_cvt = convert_layout %a : tile<128x32xf16, F>
  =>
    %buf = shared_alloc : tile<Sx128x32xf16, shared P>           (before the loop)
    copy_async %A, %r(lb + s*step), %c(...), (shared_index %buf, s)   for s < S - 1
    for ... {
      async_wait {pending = L * (S - 2)}     // this thread's copies of this iteration landed
      barrier                                // everyone's landed; the slot read last
                                             // iteration is free
      copy_async %A, %r(iv + (S-1)*step), ..., (shared_index %buf, (it + S - 1) % S)
      %a_cvt = shared_load (shared_index %buf, it % S) : tile<128x32xf16, F>
      ...
    }
    async_wait {pending = 0}
    barrier                                  // the buffers' bytes may be reused

(`L` loads per iteration; one commit group per `copy_async`, so `pending` counts copies.)
Copies past the end of the loop read out of bounds and fill zeros into slots nobody reads.
The interpreter's meaning is unchanged: `copy_async` is the `load_view`, done early.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tilec.ir import mma
from tilec.ir.builder import Builder
from tilec.ir.core import Block, Function, Module, Operation, OpResult, Trait, Value
from tilec.ir.rewrite import clone_op, replace_all_uses
from tilec.ir.shared_layout import SharedLayout
from tilec.ir.types import SHARED, PointerType, ScalarType, TileType

if TYPE_CHECKING:
    from tilec.ir.passes.manager import PassOptions

NAME = "pipeline"


@dataclass
class _Stream:
    """One pipelined operand: the load, its conversion and the buffer layout."""

    load: Operation
    convert: Operation
    layout: SharedLayout    # of the whole buffer, stage dim first
    slice: list[Operation]  # the ops of the body the offsets depend on, in order


def run(module: Module, options: PassOptions) -> Module:
    if options.target is None or not mma.instructions(options.target):
        return module
    for f in module.functions:
        stages = int(f.attrs.get("num_stages", 1))
        if stages < 2:
            continue
        for op in list(f.walk()):
            if op.name == "for":
                _pipeline(f, op, stages)
    return module


def _defined_in(v: Value, block: Block) -> bool:
    if isinstance(v, OpResult):
        return v.owner.parent is block
    return any(v is a for a in block.args)


def _offset_slice(load: Operation, body: Block) -> list[Operation] | None:
    """The body ops the offsets of `load` depend on (pure, region-free, reading only the
    induction variable, loop-invariant values and each other), in body order; None when
    they read anything else (a carried value, memory)."""
    iv = body.args[0]
    needed: dict[int, Operation] = {}
    work = list(load.offsets)
    while work:
        v = work.pop()
        if v is iv or not _defined_in(v, body):
            continue
        if not isinstance(v, OpResult):
            return None  # a carried value
        op = v.owner
        if not op.has_trait(Trait.PURE) or op.regions:
            return None
        if id(op) not in needed:
            needed[id(op)] = op
            work.extend(op.operands)
    return [op for op in body.ops if id(op) in needed]


def _stream(load: Operation, body: Block) -> _Stream | None:
    if load.name != "load_view" or _defined_in(load.tensor, body):
        return None
    uses = load.results[0].uses
    if len(uses) != 1 or uses[0].name != "convert_layout" or uses[0].parent is not body:
        return None
    convert = uses[0]
    dots = convert.results[0].uses
    if not dots or any(d.name != "dot" or d.parent is not body for d in dots):
        return None
    t, f = load.results[0].type, convert.results[0].type
    if t.rank != 2 or isinstance(t.element, PointerType) or t.element.is_bool:
        return None
    bits = t.element.itemsize_bits
    if bits not in (8, 16, 32) or t.shape[-1] * bits % 128:
        return None
    plan = mma.ldmatrix_plan(t.layout, f.layout, bits)
    if plan is None:
        return None
    sliced = _offset_slice(load, body)
    if sliced is None:
        return None
    return _Stream(load, convert, plan.shared, sliced)


def _buffer_layout(tile: SharedLayout, stages: int) -> SharedLayout:
    """Stages of `tile` one after another, each starting on a whole swizzle period, so
    that the swizzles never touch the stage bits (the lowering adds the stage offset)."""
    period = max([1 << (z.bits + z.base + z.shift) for z in tile.swizzles] + [1])
    stride = -(-tile.size // period) * period
    return SharedLayout(((stages,),) + tile.modes, ((stride,),) + tile.strides, tile.swizzles)


def _const(b: Builder, value: int, t: ScalarType) -> Value:
    return b.op("constant", attrs={"value": value}, types=[t])


def _issue(b: Builder, s: _Stream, iv: Value, iv_at: Value, buffer: Value,
           slot: Value) -> None:
    """copy_async of stream `s`'s tile for induction value `iv_at` into stage `slot`."""
    mapping: dict[Value, Value] = {iv: iv_at}
    for op in s.slice:
        b.insert(clone_op(op, mapping))
    offsets = [mapping.get(v, v) for v in s.load.offsets]
    stage = b.op("shared_index", buffer, slot,
                 types=[TileType(s.load.results[0].type.shape, s.load.results[0].type.element,
                                 _drop_dim0(buffer.type.layout), SHARED)])
    b.create("copy_async", s.load.tensor, offsets, stage)


def _drop_dim0(layout: SharedLayout) -> SharedLayout:
    return SharedLayout(layout.modes[1:], layout.strides[1:], layout.swizzles)


def _pipeline(f: Function, loop: Operation, stages: int) -> None:
    body = loop.regions[0].block
    streams = [s for s in map(lambda op: _stream(op, body), list(body.ops)) if s is not None]
    if not streams:
        return
    iv = body.args[0]
    ivt = iv.type
    # Before the loop: the buffers and the first stages-1 copies.
    pre = Builder.before(loop)
    buffers = []
    for s in streams:
        t = s.load.results[0].type
        layout = _buffer_layout(s.layout, stages)
        buffers.append(pre.op("shared_alloc", types=[TileType((stages,) + t.shape, t.element,
                                                              layout, SHARED)]))
    for k in range(stages - 1):
        kk = _const(pre, k, ivt)
        iv_at = pre.op("add", loop.lb, pre.op("mul", kk, loop.step))
        for s, buf in zip(streams, buffers):
            _issue(pre, s, iv, iv_at, buf, kk)
    # In the loop, first: wait, barrier, the copies stages-1 iterations ahead.
    head = Builder(body, 0, loop.loc)
    head.create("async_wait", attrs={"pending": len(streams) * (stages - 2)})
    head.create("barrier")
    it = head.op("div", head.op("sub", iv, loop.lb), loop.step)
    n = _const(head, stages, ivt)
    read = head.op("rem", it, n)
    write = head.op("rem", head.op("add", it, _const(head, stages - 1, ivt)), n)
    ahead = head.op("add", iv, head.op("mul", _const(head, stages - 1, ivt), loop.step))
    for s, buf in zip(streams, buffers):
        _issue(head, s, iv, ahead, buf, write)
    # The loads become shared_loads of this iteration's stage.
    for s, buf in zip(streams, buffers):
        at = Builder.before(s.convert)
        t = s.load.results[0].type
        stage = at.op("shared_index", buf, read,
                      types=[TileType(t.shape, t.element, _drop_dim0(buf.type.layout), SHARED)])
        value = at.op("shared_load", stage, types=[s.convert.results[0].type])
        replace_all_uses(s.convert.results[0], value)
        s.convert.erase()
        s.load.erase()
    after = Builder(loop.parent, loop.parent.ops.index(loop) + 1, loop.loc)
    after.create("async_wait", attrs={"pending": 0})
    # Every thread is done with the buffers: another loop's may take their bytes.
    after.create("barrier")
