"""Software pipelining: dot operands of a `for` loop stream through a ring of shared buffers.

For a function with `num_stages = S >= 2` and a target with matrix instructions, a `for`
loop whose body loads a dot operand with `load_view` (its only use a `convert_layout` into
the dot's ldmatrix-readable fragment layout, its offsets computed from the induction
variable and loop-invariant values by pure ops; the dot may take it through a `permute`)
gets, per such load, a buffer of S stages in the swizzled shared layout that
`mma.ldmatrix_plan` chooses for the conversion, filled `S - 1` iterations ahead by
`copy_async`:

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

A wgmma dot reads its b operand from shared memory itself: a `load_view` used only as the
b of such dots (directly, or through one `permute`: `dot(q, trans(k))`) streams the same
way into a buffer in the Hopper layout of `mma.wgmma_shared_layout`, and the dots take the
stage (`shared_index`, permuted like the load was) as b. The `async_wait` then carries
`fence_async`: the landed bytes are made visible to the asynchronous proxy wgmma reads
through, before the barrier.
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
    """One pipelined operand: the load, its conversion (None for a wgmma b, which reads the
    stage itself, through `permute` if set) and the buffer layout."""

    load: Operation
    convert: Operation | None
    layout: SharedLayout    # of one stage
    slice: list[Operation]  # the ops of the body the offsets depend on, in order
    permute: Operation | None = None


def run(module: Module, options: PassOptions) -> Module:
    if options.target is None or not mma.instructions(options.target):
        return module
    for f in module.functions:
        stages = int(f.attrs.get("num_stages", 1))
        if stages < 2:
            continue
        for op in list(f.walk()):
            if op.name == "for":
                _pipeline(f, op, stages, options)
    return module


def _on_wgmma(dot: Operation, options: PassOptions) -> bool:
    """Whether layout assignment gave `dot` the wgmma layouts."""
    plan = mma.wgmma_plan(options.target, dot.a.type.shape, dot.b.type.shape,
                          dot.a.type.element, dot.acc.type.element, dot.precision,
                          options.num_warps, dot.warps_n)
    return plan is not None and dot.result.type.layout == plan.c


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


def _wgmma_stream(load: Operation, body: Block, options: PassOptions) -> _Stream | None:
    """A load used only as the b of wgmma dots, directly or through one permute."""
    t = load.results[0].type
    uses = load.results[0].uses
    permute = None
    if len(uses) == 1 and uses[0].name == "permute" and uses[0].parent is body:
        permute = uses[0]
        uses = permute.results[0].uses
    value = (permute or load).results[0]
    if not uses or any(d.name != "dot" or d.parent is not body or d.a is value
                       or not _on_wgmma(d, options) for d in uses):
        return None
    if t.rank != 2 or t.element.itemsize_bits != 16 or t.shape[-1] % 8:
        return None
    sliced = _offset_slice(load, body)
    if sliced is None:
        return None
    # The copy runs 16-byte chunks along the tensor's last dim: keep them contiguous.
    return _Stream(load, None, mma.wgmma_shared_layout(t.shape, 1), sliced, permute)


def _stream(load: Operation, body: Block, options: PassOptions) -> _Stream | None:
    if load.name != "load_view" or _defined_in(load.tensor, body):
        return None
    if not isinstance(load.results[0].type.element, PointerType):
        found = _wgmma_stream(load, body, options)
        if found is not None:
            return found
    uses = load.results[0].uses
    if len(uses) != 1 or uses[0].name != "convert_layout" or uses[0].parent is not body:
        return None
    convert = uses[0]
    dots = convert.results[0].uses
    if len(dots) == 1 and dots[0].name == "permute" and dots[0].parent is body:
        dots = dots[0].results[0].uses   # dot(x, trans(load)): the permute stays
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


def _pipeline(f: Function, loop: Operation, stages: int, options: PassOptions) -> None:
    body = loop.regions[0].block
    streams = [s for s in (_stream(op, body, options) for op in list(body.ops))
               if s is not None]
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
    head.create("async_wait", attrs={"pending": len(streams) * (stages - 2),
                                     "fence_async": any(s.convert is None for s in streams)})
    head.create("barrier")
    it = head.op("div", head.op("sub", iv, loop.lb), loop.step)
    n = _const(head, stages, ivt)
    read = head.op("rem", it, n)
    write = head.op("rem", head.op("add", it, _const(head, stages - 1, ivt)), n)
    ahead = head.op("add", iv, head.op("mul", _const(head, stages - 1, ivt), loop.step))
    for s, buf in zip(streams, buffers):
        _issue(head, s, iv, ahead, buf, write)
    # The loads become shared_loads of this iteration's stage (wgmma: the stage itself).
    for s, buf in zip(streams, buffers):
        t = s.load.results[0].type
        inner = _drop_dim0(buf.type.layout)
        if s.convert is None:
            at = Builder.before(s.load)
            value = at.op("shared_index", buf, read,
                          types=[TileType(t.shape, t.element, inner, SHARED)])
            if s.permute is not None:
                value = at.op("permute", value, attrs={"dims": list(s.permute.dims)},
                              types=[TileType(s.permute.results[0].type.shape, t.element,
                                              inner.permute(s.permute.dims), SHARED)])
                replace_all_uses(s.permute.results[0], value)
                s.permute.erase()
            else:
                replace_all_uses(s.load.results[0], value)
            s.load.erase()
            continue
        at = Builder.before(s.convert)
        stage = at.op("shared_index", buf, read,
                      types=[TileType(t.shape, t.element, inner, SHARED)])
        value = at.op("shared_load", stage, types=[s.convert.results[0].type])
        replace_all_uses(s.convert.results[0], value)
        s.convert.erase()
        s.load.erase()
    after = Builder(loop.parent, loop.parent.ops.index(loop) + 1, loop.loc)
    after.create("async_wait", attrs={"pending": 0})
    # Every thread is done with the buffers: another loop's may take their bytes.
    after.create("barrier")
