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
Every copy is masked by whether its iteration is one of the loop's (`iv_at < ub`): the
copies past the end still commit their groups but read nothing and fill zeros into slots
nobody reads (a split-K slice's would otherwise re-read the next slice's tiles from DRAM).
The interpreter's meaning is unchanged: `copy_async` is the `load_view`, done early.

A tile view the body computes on in its own register layout, not through a dot (packed
weights decoded in registers, say), streams the same way when its rows are whole 16-byte
chunks: the stage buffer is row-major (swizzled where that takes away bank conflicts) and
the view becomes a `shared_load` in its own layout, which lowers to shared loads as wide as
each thread's runs allow (16 bytes for the usual 16-byte runs; 12-byte runs of 3-bit
weights read word by word). That takes the view's latency out of the step: the step waits
only for the barrier.

A gather (`load` through a tile of pointers, e.g. rows picked by an index array or pages
by a block table) streams the same way when its pointers and mask come from the induction
variable, loop-invariant values and loads of memory the loop does not write (the index
reads), its masked-off lanes read 0, and its pointers step by one element along the last
dim with a mask that does not (`contiguity.last_dim_step`): `gather_async` then copies each
thread's 16-byte runs with cp.async. The ops its pointers depend on are cloned for the
iteration copied ahead, their loads and the gather masked by `iv_at < ub`: a pointer past
the loop's end would fault where a view reads zeros.

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

from tilec.ir import dtypes as dt
from tilec.ir import mma
from tilec.ir.builder import Builder
from tilec.ir.contiguity import last_dim_step
from tilec.ir.core import Block, Function, Module, Operation, OpResult, Trait, Value
from tilec.ir.ops.memory import has_hints
from tilec.ir.rewrite import clone_op, replace_all_uses
from tilec.ir.shared_layout import SharedLayout, best_swizzle, contiguous_vector, row_major
from tilec.ir.types import SHARED, PointerType, ScalarType, TileType

if TYPE_CHECKING:
    from tilec.ir.passes.manager import PassOptions

NAME = "pipeline"


@dataclass
class _Stream:
    """One pipelined operand: the load, its conversion (None for a wgmma b, which reads the
    stage itself, through `permute` if set, and for a load read back into its own layout,
    `registers`) and the buffer layout."""

    load: Operation
    convert: Operation | None
    layout: SharedLayout    # of one stage
    slice: list[Operation]  # the ops of the body the offsets depend on, in order
    permute: Operation | None = None
    registers: bool = False


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


def _slice(roots: list[Value], body: Block, reads: bool) -> list[Operation] | None:
    """The body ops `roots` depend on, in body order: region-free, pure or (when `reads`:
    the loop writes no memory) loads, reading only the induction variable, loop-invariant
    values and each other; None when they read anything else (a carried value)."""
    iv = body.args[0]
    needed: dict[int, Operation] = {}
    work = list(roots)
    while work:
        v = work.pop()
        if v is iv or not _defined_in(v, body):
            continue
        if not isinstance(v, OpResult):
            return None  # a carried value
        op = v.owner
        if op.regions or not (op.has_trait(Trait.PURE) or reads and op.name in _READS
                              and not op.attrs.get("volatile")):
            return None
        if id(op) not in needed:
            needed[id(op)] = op
            work.extend(op.operands)
    return [op for op in body.ops if id(op) in needed]


_READS = ("load", "load_view")


def _roots(load: Operation) -> list[Value]:
    """What the addresses (and mask) of a streamed load are computed from."""
    if load.name == "load_view":
        return list(load.offsets)
    return [load.ptr] + ([load.mask] if load.mask is not None else [])


def _runs(load: Operation) -> bool:
    """Whether a gather reads runs of consecutive elements along the last dim, masked as a
    whole (what `gather_async` copies 16 bytes at a time; element by element, a pipelined
    gather would be slower than the load)."""
    return last_dim_step(load.ptr) == 1 and (load.mask is None
                                             or last_dim_step(load.mask) == 0)


def _zero_fill(load: Operation) -> bool:
    """Whether the load's masked-off lanes read 0 (what an asynchronous copy fills)."""
    other = load.other if load.name == "load" else None
    if other is None:
        return True
    op = other.owner if isinstance(other, OpResult) else None
    return op is not None and op.name == "constant" and op.attrs.get("value") == 0


def _wgmma_stream(load: Operation, body: Block, reads: bool,
                  options: PassOptions) -> _Stream | None:
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
    sliced = _slice(_roots(load), body, reads)
    if sliced is None:
        return None
    # The copy runs 16-byte chunks along the tensor's last dim: keep them contiguous.
    return _Stream(load, None, mma.wgmma_shared_layout(t.shape, 1), sliced, permute)


def _stream(load: Operation, body: Block, reads: bool, options: PassOptions) -> _Stream | None:
    if has_hints(load):
        return None  # the user asked for this load's own instruction (tc.load's hints)
    if load.name == "load_view":
        if _defined_in(load.tensor, body):
            return None
    elif load.name != "load" or not _zero_fill(load) or not _runs(load):
        return None
    t = load.results[0].type
    if not isinstance(t, TileType) or isinstance(t.element, PointerType):
        return None
    found = _wgmma_stream(load, body, reads, options)
    if found is not None:
        return found
    uses = load.results[0].uses
    if len(uses) != 1 or uses[0].name != "convert_layout" or uses[0].parent is not body:
        return _register_stream(load, body, reads)
    convert = uses[0]
    dots = convert.results[0].uses
    if len(dots) == 1 and dots[0].name == "permute" and dots[0].parent is body:
        dots = dots[0].results[0].uses   # dot(x, trans(load)): the permute stays
    if not dots or any(d.name != "dot" or d.parent is not body for d in dots):
        return _register_stream(load, body, reads)
    f = convert.results[0].type
    if t.rank != 2 or t.element.is_bool:
        return None
    bits = t.element.itemsize_bits
    if bits not in (8, 16, 32) or t.shape[-1] * bits % 128:
        return None
    plan = mma.ldmatrix_plan(t.layout, f.layout, bits)
    if plan is None:
        return None
    sliced = _slice(_roots(load), body, reads)
    if sliced is None:
        return None
    return _Stream(load, convert, plan.shared, sliced)


def _register_stream(load: Operation, body: Block, reads: bool) -> _Stream | None:
    """A tile view that the body computes on in its own layout (e.g. packed weights it
    decodes in registers), read back from the stage in that layout, each thread's runs of
    consecutive elements as wide shared loads as they allow (16 bytes for runs of 16): the
    buffer row-major, swizzled where that takes away bank conflicts of the reads. Not a
    tile the loop carries out of the iteration (a hand-written prefetch) and not a gather
    (its index reads stay as written)."""
    if load.name != "load_view" or any(u.parent is not body or u.name == "yield"
                                       for u in load.results[0].uses):
        return None
    t = load.results[0].type
    if t.element.is_bool:
        return None
    bits = t.element.itemsize_bits
    if bits not in (8, 16, 32, 64) or t.shape[-1] * bits % 128:
        return None   # rows of whole 16-byte chunks: what copy_async copies
    layout = row_major(*t.shape)
    vector = min(contiguous_vector(t.layout, layout), 128 // bits)
    # Conflicts left after the swizzle cost a few shared wavefronts a step: still far less
    # than the round trip to L2 that a load in the step waits on.
    layout = best_swizzle(layout, [(t.layout, vector)], bits)
    sliced = _slice(_roots(load), body, reads)
    if sliced is None:
        return None
    return _Stream(load, None, layout, sliced, registers=True)


def _buffer_layout(tile: SharedLayout, stages: int) -> SharedLayout:
    """Stages of `tile` one after another, each starting on a whole swizzle period, so
    that the swizzles never touch the stage bits (the lowering adds the stage offset)."""
    period = max([1 << (z.bits + z.base + z.shift) for z in tile.swizzles] + [1])
    stride = -(-tile.size // period) * period
    return SharedLayout(((stages,),) + tile.modes, ((stride,),) + tile.strides, tile.swizzles)


def _const(b: Builder, value: int, t: ScalarType) -> Value:
    return b.op("constant", attrs={"value": value}, types=[t])


def _issue(b: Builder, loop: Operation, streams: list[_Stream], buffers: list[Value],
           iv_at: Value, slot: Value) -> None:
    """The copies of every stream's tile for induction value `iv_at` into stage `slot`: the
    ops their addresses depend on, cloned once for all streams, then one copy_async
    (load_view) or gather_async (load) each. Loads among those ops and the gathers are
    masked off past the loop's end: unlike a view, a pointer out of range would fault."""
    body = loop.regions[0].block
    iv = body.args[0]
    mapping: dict[Value, Value] = {iv: iv_at}
    ops = {id(op) for s in streams for op in s.slice}
    guard = None
    for op in [op for op in body.ops if id(op) in ops]:
        if op.name == "load":
            guard = guard or _in_range(b, loop, iv_at)
            ptr = mapping.get(op.ptr, op.ptr)
            extra = {} if op.other is None else {"other": mapping.get(op.other, op.other)}
            mapping[op.results[0]] = b.op("load", ptr, mask=_masked(b, guard, op, mapping),
                                          types=[op.results[0].type], attrs=dict(op.attrs),
                                          **extra)
        else:
            b.insert(clone_op(op, mapping))
    for s, buffer in zip(streams, buffers):
        t = s.load.results[0].type
        stage = b.op("shared_index", buffer, slot,
                     types=[TileType(t.shape, t.element, _drop_dim0(buffer.type.layout),
                                     SHARED)])
        guard = guard or _in_range(b, loop, iv_at)
        if s.load.name == "load_view":
            b.create("copy_async", s.load.tensor, [mapping.get(v, v) for v in s.load.offsets],
                     stage, mask=guard)
        else:
            b.create("gather_async", mapping.get(s.load.ptr, s.load.ptr), stage,
                     mask=_masked(b, guard, s.load, mapping))


def _in_range(b: Builder, loop: Operation, iv_at: Value) -> Value:
    """Whether `iv_at` is an iteration of `loop` (its step may be negative)."""
    zero = _const(b, 0, iv_at.type)
    up = b.op("cmp", loop.step, zero, attrs={"pred": "gt"})
    below = b.op("cmp", iv_at, loop.ub, attrs={"pred": "lt"})
    above = b.op("cmp", iv_at, loop.ub, attrs={"pred": "gt"})
    return b.op("select", up, below, above)


def _masked(b: Builder, guard: Value, load: Operation, mapping: dict[Value, Value]) -> Value:
    """The mask of pointer load `load` (as cloned) and `guard`, splat to its shape."""
    t = load.ptr.type
    if isinstance(t, TileType):
        guard = b.op("splat", guard, types=[TileType(t.shape, dt.bool_, t.layout)])
    if load.mask is None:
        return guard
    return b.op("and", mapping.get(load.mask, load.mask), guard)


def _drop_dim0(layout: SharedLayout) -> SharedLayout:
    return SharedLayout(layout.modes[1:], layout.strides[1:], layout.swizzles)


def _pipeline(f: Function, loop: Operation, stages: int, options: PassOptions) -> None:
    body = loop.regions[0].block
    reads = not any(inner.has_trait(Trait.WRITES_MEMORY) for op in body.ops
                    for inner in op.walk())
    streams = [s for s in (_stream(op, body, reads, options) for op in list(body.ops))
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
        _issue(pre, loop, streams, buffers, iv_at, kk)
    # In the loop, first: wait, barrier, the copies stages-1 iterations ahead.
    head = Builder(body, 0, loop.loc)
    head.create("async_wait", attrs={"pending": len(streams) * (stages - 2),
                                     "fence_async": any(s.convert is None and not s.registers
                                                        for s in streams)})
    head.create("barrier")
    it = head.op("div", head.op("sub", iv, loop.lb), loop.step)
    n = _const(head, stages, ivt)
    read = head.op("rem", it, n)
    write = head.op("rem", head.op("add", it, _const(head, stages - 1, ivt)), n)
    ahead = head.op("add", iv, head.op("mul", _const(head, stages - 1, ivt), loop.step))
    _issue(head, loop, streams, buffers, ahead, write)
    # The loads become shared_loads of this iteration's stage (wgmma: the stage itself).
    for s, buf in zip(streams, buffers):
        t = s.load.results[0].type
        inner = _drop_dim0(buf.type.layout)
        if s.registers:
            at = Builder.before(s.load)
            stage = at.op("shared_index", buf, read,
                          types=[TileType(t.shape, t.element, inner, SHARED)])
            replace_all_uses(s.load.results[0], at.op("shared_load", stage, types=[t]))
            s.load.erase()
            continue
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
