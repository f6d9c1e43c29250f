"""Layout assignment: give every tile value a layout, converting where ops disagree.

Layouts start at anchors (loads take the default layout of `tilec.ir.layout_defaults`;
reductions, expand_dims, permute, reshape and view derive theirs by the algebra), flow
forward through elementwise ops and control flow, and a `convert_layout` is inserted where
an op's operands disagree. Then conversions sink toward their producers while that makes
them vanish or shrink (constants, splats, aranges, broadcasts, expand_dims, permutes,
elementwise chains of those, single-use loads are rebuilt in the wanted layout), and
redundant ones go (`convert` to the same layout => operand; `convert (convert x)` =>
`convert x`).

Layouts already on types are kept (the explicit level: `convert_layout` to a chosen layout,
a `shared_load` into a chosen fragment layout, a shared buffer's swizzle). Where such a
layout disagrees with the rules, a conversion goes next to it, so running the pass again
changes nothing.

Contract of the result (what the lowering may rely on; `T = W * func.attrs["num_warps"]`,
W = `PassOptions.warp_size`: 32 on NVIDIA, 64 on AMD gfx9):

1. Every tile has a layout. A register tile's is a `RegisterLayout` of exactly the tile's
   shape over exactly T threads (`replication` > 1 means several threads hold copies); a
   shared tile's is a `SharedLayout` of its shape (`row_major` unless one was set).
   `func.attrs["num_warps"]` is set to `PassOptions.num_warps` (a function that already
   says another number is an error).
2. Ops that work element by element see one layout: every tile operand and result of an
   ELEMENTWISE op (arithmetic, cmp, select, cast, fma, addptr), of `load`, `store`,
   `atomic_rmw` and `atomic_cas` (pointers, values, masks, `other`), of `scan`, and
   `dot`'s accumulator and result. (`dot`'s a and b, `store_view`, `shared_store`, `print`
   and `assert` accept any layout.)
3. Shape ops follow the algebra: `reduce`/`argreduce`/`reduce_custom` give
   `L.reduce(axis).squeeze(axis)` (a scalar for rank 1), and so does `take`, whose
   operand holds `axis` in registers (`L.is_local(axis)`; else it is converted to
   `L.reduce(axis) * local(..., n, ...)` first); `expand_dims` gives
   `L.expand_dims(axis)`; `permute` gives `L.permute(dims)`; `broadcast` takes any result
   layout R with `R.reduce(d)` == the operand's layout for each broadcast dim d; `reshape`
   keeps each element in its (thread, local) slot (`layout_defaults.reshape_layout`:
   slot i of a thread holds the same row-major index before and after); `view` keeps
   bits in their thread (`layout_defaults.view_layout`: with g = lcm of the two widths,
   operand `Q * local(1,..,g/src_bits)` gives `Q * local(1,..,g/dst_bits)`, so u8 -> u4
   is `L -> L * local(1,..,2)`); `shared_index` drops dim 0 of the buffer's shared layout
   (strides and swizzles of the other dims unchanged).
4. Control flow carries layouts unchanged: for each carried value of `for`/`while` the
   init, the block argument(s), the yielded value and the result have one layout (for
   `while`: before-arguments, inits and the after-yield; the `condition` values, the
   after-arguments and the results); `if` results have the layout both regions yield;
   calls and returns pass the callee's declared types (tile arguments and results of a
   function get the default layout unless they have one).
5. No redundant conversions: a `convert_layout` changes the layout (operand and result
   differ) and its operand is not itself a `convert_layout`.
6. A `dot` whose a, b and accumulator layouts are a matrix instruction's fragments arranged
   over the warps (`tilec.ir.mma.schedule` finds its steps) lowers to that instruction
   (`mma.sync` on sm_80+); any other `dot` lowers to FMAs. With `PassOptions.target` set,
   the pass gives every dot that has an instruction (`mma.select`: f16/bf16 -> f32,
   i8/u8 -> i32, f32 with precision "tf32" -> f32 on sm_80+; f8e4m3/f8e5m2 -> f32 on
   sm_89+; on AMD gfx targets MFMA 32x32, see `mma._amd`) the layouts of
   `mma.dot_layouts`, e.g. for 128x32 @ 32x128 f16 over 4 warps
   (a 2x2 warp grid of 64x64 warp tiles)
       a    spatial(2,1)*replicate(2)*local(4,1)*column_local(2,4)*spatial(8,4)*local(1,2)
       acc  spatial(2,2)*local(4,1)*column_local(2,8)*spatial(8,4)*local(1,2)
   (`spatial(wm,1)*replicate(wn)*local(rm,rk)*mma_m16n8k16_a()` and
   `spatial(wm,wn)*local(rm,rn)*mma_m16n8_c()` in canonical form). A tile that is not a
   whole number of instruction tiles per warp (M a multiple of 16*wm, N of 8*wn, K of the
   instruction's k) is not padded: the dot keeps the FMA path, as does a dot whose result
   layout the input set by hand.
   On sm_90a a dot of f16/bf16 into f32 whose b is loaded straight from a tensor
   (`load_view`, or its `permute`) runs on wgmma instead when the warps form whole
   warpgroups and M splits into 64-row instructions over them (`mma.wgmma_plan`): a and
   the accumulator get the warpgroup layouts, b keeps its load's layout (the pipeline pass
   streams it into shared memory for the instruction to read there). So does a dot whose
   a is loaded and whose b is computed (weights dequantized in registers): the lowering
   stores b into shared memory in 16-byte runs, one round trip that mma.sync pays too
   when b's layout is not its fragments'. A dot with neither operand loaded (the decode
   template's, whose operands already are mma.sync fragments) stays on mma.sync.

Choices where the rules leave freedom (deterministic, so the output is byte-identical):
- constants, splats, aranges, loads, shared_loads: the default layout of their shape and
  element (pointers count 64 bits, bool 8);
- an elementwise op whose operands differ takes the layout of its first operand that is
  not cheap to rebuild (not a constant/splat/arange/broadcast, or expand_dims, permute or
  elementwise op of those), else of its first operand; the others are converted;
- `broadcast` takes the default layout D of its shape (converting the operand to
  `D.reduce(d)`), and when a user wants another layout, the conversion moves onto the
  (smaller) operand;
- `store`/`atomic_*` take their value's layout; an FMA `dot` its accumulator's (an mma
  `dot` rule 6's; a `for`/`while` value that such a dot yields, directly or through
  elementwise ops, is carried in its accumulator layout, so the loop converts nothing,
  and one that a reduction of it yields in the reduced layout); `if` the layout
  of the first region that yields a value that is not cheap to rebuild;
- `reshape` whose operand's modes do not split converts the operand to the default layout
  of its shape if that reshapes, else to `replicated_layout` (every thread holds all).

Known limit: a loop-carried value keeps its init's layout even when the loop body
produces another one that cannot be rebuilt in it (a reduction, a dot): the yield is then
converted on every trip. Give the init that layout explicitly if it matters.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tilec.errors import IRError
from tilec.ir import mma
from tilec.ir.builder import Builder
from tilec.ir.core import BlockArgument, Block, Function, Module, Operation, OpResult, Trait, Value
from tilec.ir.layout import RegisterLayout, local
from tilec.ir.layout_defaults import (default_layout, replicated_layout,
                                      reshape_layout, view_layout)
from tilec.ir.rewrite import replace_all_uses
from tilec.ir.shared_layout import SharedLayout, row_major
from tilec.ir.types import REGISTER, SHARED, PointerType, TileType, Type

if TYPE_CHECKING:
    from tilec.ir.passes.manager import PassOptions

NAME = "layout_assignment"

_SOURCES = ("constant", "splat", "arange")          # no tile operands: rebuilt anywhere
_FOLLOW = ("expand_dims", "permute")                 # cheap iff their operand is
_REDUCTIONS = ("reduce", "argreduce", "reduce_custom")
_SAME_LAYOUT_MEMORY = {"load": "result", "store": "value", "atomic_rmw": "value",
                       "atomic_cas": "value"}        # whose layout the others take


def run(module: Module, options: PassOptions) -> Module:
    warps = options.num_warps
    for f in module.functions:
        if f.attrs.get("num_warps", warps) != warps:
            raise IRError(f"@{f.name} says num_warps = {f.attrs['num_warps']}, but it is being "
                          f"compiled for {warps} warps", f.loc,
                          hint=f"compile with num_warps={f.attrs['num_warps']} (PassOptions)")
        f.attrs["num_warps"] = warps
        _assign_signature(f, options.warp_size * warps, options.warp_size)
    for f in module.functions:
        _Assigner(f, options.warp_size * warps, module, options).run()
    return module


# ---------------------------------------------------------------------------------------
# Helpers


def element_bits(t: TileType) -> int:
    """Bits of one element for choosing vector widths: pointers 64, bool 8."""
    e = t.element
    return 64 if isinstance(e, PointerType) else e.itemsize_bits


def is_register_tile(t: Type) -> bool:
    return isinstance(t, TileType) and t.space == REGISTER


def layout_of(v: Value) -> Any:
    return v.type.layout if isinstance(v.type, TileType) else None


def set_layout(v: Value, layout: Any) -> None:
    """Retype `v` in place with `layout` (shape, element and space unchanged)."""
    v.type = v.type.with_layout(layout)


def default_for(t: TileType, num_threads: int, warp: int) -> Any:
    """The layout a tile gets when nothing decides otherwise (`warp` lanes per warp)."""
    if t.space == SHARED:
        return row_major(*t.shape)
    return default_layout(t.shape, element_bits(t), num_threads, warp)


def _assign_signature(f: Function, num_threads: int, warp: int) -> None:
    for a in f.args:
        if isinstance(a.type, TileType) and a.type.layout is None:
            set_layout(a, default_for(a.type, num_threads, warp))
    f.result_types = [t.with_layout(default_for(t, num_threads, warp))
                      if isinstance(t, TileType) and t.layout is None else t
                      for t in f.result_types]


def _drop_dim0(layout: SharedLayout) -> SharedLayout:
    return SharedLayout(layout.modes[1:], layout.strides[1:], layout.swizzles)


def _broadcast_dims(src: TileType, out: TileType) -> list[int]:
    return [d for d, (a, b) in enumerate(zip(src.shape, out.shape)) if a == 1 and b != 1]


def _reduced(layout: RegisterLayout, dims: list[int]) -> RegisterLayout:
    for d in dims:
        layout = layout.reduce(d)
    return layout


def _inverse(dims: list[int]) -> list[int]:
    inv = [0] * len(dims)
    for i, d in enumerate(dims):
        inv[d] = i
    return inv


def _loaded(v: Value) -> bool:
    """Whether `v` is a tile loaded straight from a tensor, or a transpose of one (a wgmma
    b operand, rule 6)."""
    if isinstance(v, OpResult) and v.owner.name == "permute":
        v = v.owner.x
    return isinstance(v, OpResult) and v.owner.name == "load_view"


# ---------------------------------------------------------------------------------------
# The forward walk


class _Assigner:
    def __init__(self, f: Function, num_threads: int, module: Module, options: PassOptions):
        self.f = f
        self.threads = num_threads
        self.warp = options.warp_size
        self.module = module
        self.options = options
        self.mma_memo: dict[Operation, mma.DotLayouts | None] = {}
        self.staged: set[Operation] = set()     # converts to mma operand layouts
        # Layouts present before the pass: kept (the explicit level), see the module doc.
        self.preset: dict[Value, Any] = {}
        for v in self._values():
            if isinstance(v.type, TileType) and v.type.layout is not None:
                self.check_preset(v)
                self.preset[v] = v.type.layout
        self.cache: dict[tuple[Value, Any], Value] = {}
        self.inserted: set[Operation] = set()   # converts this pass made (not explicit)
        self.touched: set[Operation] = set()    # ops that may end up dead
        self.flexible_memo: dict[Value, bool] = {}
        self.origin: dict[Value, Value] = {}    # a rebuilt copy -> the value it copies

    def _values(self):
        yield from self.f.args
        for op in self.f.walk():
            yield from op.results
            for r in op.regions:
                yield from r.block.args

    def check_preset(self, v: Value) -> None:
        layout = v.type.layout
        if isinstance(layout, RegisterLayout) and layout.num_threads != self.threads:
            raise IRError(
                f"layout {layout} of %{v.name or '?'} spans {layout.num_threads} threads, "
                f"but @{self.f.name} runs {self.threads} ({self.threads // self.warp} warps)",
                self.f.loc, hint=f"write layouts for {self.warp} * num_warps threads, or set "
                                 "num_warps")

    def run(self) -> None:
        self.block(self.f.body.block)
        _cleanup(self)

    def block(self, block: Block) -> None:
        for op in list(block.ops):
            self.visit(op)

    # -- building blocks ---------------------------------------------------------------
    def default(self, t: TileType) -> Any:
        return default_for(t, self.threads, self.warp)

    def convert(self, v: Value, layout: Any) -> Value:
        """`v` in `layout`: itself, or one `convert_layout` placed right after its
        definition (hoisted out of loops, shared by every user that wants it)."""
        if layout_of(v) == layout:
            return v
        key = (v, layout)
        if key not in self.cache or not _alive(self.cache[key]):
            if isinstance(v, BlockArgument):
                b = Builder(v.block, 0)
            else:
                assert isinstance(v, OpResult)
                block = v.owner.parent
                b = Builder(block, block.ops.index(v.owner) + 1, v.owner.loc)
            name = v.name if v.name and v.name.endswith("_cvt") else (
                f"{v.name}_cvt" if v.name else None)
            op = b.create("convert_layout", v, types=[v.type.with_layout(layout)],
                          names=[name])
            self.inserted.add(op)
            self.cache[key] = op.result
        return self.cache[key]

    def want(self, op: Operation, index: int, layout: Any) -> None:
        """Make operand `index` of `op` arrive in `layout`."""
        v = op.operands[index]
        if layout_of(v) != layout:
            op.set_operand(index, self.convert(v, layout))

    def settle(self, v: Value, natural: Any) -> None:
        """Give `v` the layout its op produces; if the input had set another one, convert
        to that right after, for every user."""
        wanted = self.preset.get(v)
        set_layout(v, natural)
        if wanted is None or wanted == natural:
            return
        users = list(dict.fromkeys(v.uses))
        converted = self.convert(v, wanted)
        for user in users:
            for i, operand in enumerate(user.operands):
                if operand is v:
                    user.set_operand(i, converted)

    def chosen(self, v: Value, fallback: Any) -> Any:
        """The layout of a value whose op may produce any layout: preset, else `fallback`."""
        return self.preset.get(v, fallback)

    def flexible(self, v: Value) -> bool:
        """Whether `v` is cheap to rebuild in another layout (see the module doc)."""
        if v in self.flexible_memo:
            return self.flexible_memo[v]
        result = False
        if isinstance(v, OpResult) and v not in self.preset:
            op = v.owner
            tiles = [x for x in op.operands if is_register_tile(x.type)]
            if op.name in _SOURCES or op.name == "broadcast":
                result = True
            elif op.name in _FOLLOW or op in self.inserted or op.has_trait(Trait.ELEMENTWISE):
                result = all(self.flexible(x) for x in tiles)
        self.flexible_memo[v] = result
        return result

    # -- ops -----------------------------------------------------------------------------
    def visit(self, op: Operation) -> None:
        handler = getattr(self, "op_" + op.name, None)
        if handler is not None:
            handler(op)
        elif op.has_trait(Trait.ELEMENTWISE):
            self.elementwise(op)
        else:
            self.generic(op)

    def generic(self, op: Operation) -> None:
        """Ops whose results may take any layout (and operands any): sources, loads of
        shared tiles, calls' results come from the callee."""
        for r in op.regions:
            self.block(r.block)
        for r in op.results:
            if isinstance(r.type, TileType) and r.type.layout is None:
                set_layout(r, self.default(r.type))

    def elementwise(self, op: Operation) -> None:
        tiles = [i for i, v in enumerate(op.operands) if is_register_tile(v.type)]
        if not tiles:
            return self.generic(op)
        result = op.results[0]
        target = self.preset.get(result)
        if target is None:
            anchored = [i for i in tiles if not self.flexible(op.operands[i])]
            target = layout_of(op.operands[(anchored or tiles)[0]])
        for i in tiles:
            self.want(op, i, target)
        set_layout(result, target)

    def same_layout_memory(self, op: Operation) -> None:
        leader = _SAME_LAYOUT_MEMORY[op.name]
        tiles = [i for i, v in enumerate(op.operands) if is_register_tile(v.type)]
        if leader == "result":
            r = op.results[0]
            if not is_register_tile(r.type):
                return
            target = self.chosen(r, self.default(r.type))
        else:
            value = getattr(op, leader)
            if not is_register_tile(value.type):
                return
            target = self.preset.get(op.results[0]) if op.results else None
            target = target or layout_of(value)
        for i in tiles:
            self.want(op, i, target)
        for r in op.results:
            set_layout(r, target)

    op_load = op_store = op_atomic_rmw = op_atomic_cas = same_layout_memory
    op_cluster_reduce = elementwise   # the values stay where they are

    def op_broadcast(self, op: Operation) -> None:
        out = op.result
        target = self.chosen(out, self.default(out.type))
        self.want(op, 0, _reduced(target, _broadcast_dims(op.x.type, out.type)))
        set_layout(out, target)

    def reduction(self, op: Operation) -> None:
        for r in op.regions:
            self.block(r.block)
        out = op.result
        if isinstance(out.type, TileType):
            self.settle(out, layout_of(op.x).reduce(op.axis).squeeze(op.axis))

    op_reduce = op_argreduce = op_reduce_custom = reduction

    def op_expand_dims(self, op: Operation) -> None:
        self.settle(op.result, layout_of(op.x).expand_dims(op.axis))

    def op_take(self, op: Operation) -> None:
        layout = layout_of(op.x)
        if not layout.is_local(op.axis):  # every thread gets the whole axis, then picks
            whole = [1] * layout.rank
            whole[op.axis] = op.x.type.shape[op.axis]
            layout = layout.reduce(op.axis) * local(*whole)
            self.want(op, 0, layout)
        if isinstance(op.result.type, TileType):
            self.settle(op.result, layout.reduce(op.axis).squeeze(op.axis))

    def op_permute(self, op: Operation) -> None:
        self.settle(op.result, layout_of(op.x).permute(op.dims))

    def op_scan(self, op: Operation) -> None:
        target = self.chosen(op.result, layout_of(op.x))
        self.want(op, 0, target)
        set_layout(op.result, target)

    def mma_layouts(self, op: Operation) -> mma.DotLayouts | mma.WgmmaPlan | None:
        """The matrix-instruction layouts of a dot (rule 6), or None for the FMA path: no
        instruction for the target and dtypes, a tile the warps cannot split, or a result
        layout the input set by hand."""
        if op in self.mma_memo:
            return self.mma_memo[op]
        found = None
        a, c = op.a.type, op.acc.type
        if op.result not in self.preset and (_loaded(op.b) or _loaded(op.a)):
            found = mma.wgmma_plan(self.options.target, a.shape, op.b.type.shape, a.element,
                                   c.element, op.precision, self.threads // self.warp,
                                   op.warps_n)
        if op.result not in self.preset and found is None:
            for instr in mma.candidates(self.options.target, a.element, c.element,
                                        op.precision):
                found = mma.dot_layouts(a.shape, op.b.type.shape, instr,
                                        self.threads // self.warp, op.warps_n)
                if found is not None:
                    break
        self.mma_memo[op] = found
        return found

    def op_dot(self, op: Operation) -> None:
        plan = self.mma_layouts(op)
        if plan is not None:
            self.want(op, 0, plan.a)
            if isinstance(plan, mma.DotLayouts):  # wgmma reads b from shared memory
                self.want(op, 1, plan.b)
            self.want(op, 2, plan.c)
            for v in op.operands[:2]:  # staged through shared memory, see _sink
                if isinstance(v, OpResult) and v.owner in self.inserted:
                    self.staged.add(v.owner)
            set_layout(op.result, plan.c)
            return
        target = self.chosen(op.result, layout_of(op.acc))
        self.want(op, 2, target)
        set_layout(op.result, target)

    def carried(self, v: Value, depth: int = 0) -> Any:
        """The layout a loop-carried value should have so that the loop body need not
        convert it on every trip: the accumulator layout of the mma dot that yields it
        (directly or through elementwise ops), else None."""
        if not isinstance(v, OpResult) or depth > 8:
            return None
        op = v.owner
        if op.name == "dot":
            plan = self.mma_layouts(op)
            return plan.c if plan is not None else None
        if op.name in _REDUCTIONS and len(op.results) == 1:
            # A row statistic of a dot result (flash attention's running max and sum).
            found = self.carried(op.x, depth + 1)
            return None if found is None else found.reduce(op.axis).squeeze(op.axis)
        if op.has_trait(Trait.ELEMENTWISE):
            for x in op.operands:
                if is_register_tile(x.type) and x.type.shape == v.type.shape:
                    found = self.carried(x, depth + 1)
                    if found is not None:
                        return found
        return None

    def op_reshape(self, op: Operation) -> None:
        src, out = op.x.type, op.result.type
        natural = reshape_layout(src.layout, out.shape)
        if natural is None:
            natural = self.default(out)
            back = reshape_layout(natural, src.shape)
            if back is None:
                natural = replicated_layout(out.shape, self.threads)
                back = replicated_layout(src.shape, self.threads)
            self.want(op, 0, back)
        self.settle(op.result, natural)

    def op_view(self, op: Operation) -> None:
        src, out = op.x.type, op.result.type
        natural = view_layout(src.layout, element_bits(src), element_bits(out))
        if natural is None:
            natural = self.default(out)
            back = view_layout(natural, element_bits(out), element_bits(src))
            if back is None:
                raise IRError(f"no register layout views {src} as {out}", op.loc)
            self.want(op, 0, back)
        self.settle(op.result, natural)

    def op_convert_layout(self, op: Operation) -> None:
        out = op.result
        set_layout(out, self.chosen(out, layout_of(op.x)))

    def op_shared_alloc(self, op: Operation) -> None:
        out = op.result
        set_layout(out, self.chosen(out, row_major(*out.type.shape)))

    def op_shared_index(self, op: Operation) -> None:
        self.settle(op.result, _drop_dim0(layout_of(op.buffer)))

    def op_for(self, op: Operation) -> None:
        body = op.regions[0].block
        carried = []
        for i, init in enumerate(op.inits):
            arg, result = body.args[i + 1], op.results[i]
            if not isinstance(init.type, TileType):
                carried.append(None)
                continue
            layout = (self.preset.get(arg) or self.carried(body.ops[-1].operands[i])
                      or layout_of(init))
            self.want(op, 3 + i, layout)
            set_layout(arg, layout)
            carried.append(layout)
        self.block(body)
        self._yield(body, carried)
        for result, layout in zip(op.results, carried):
            if layout is not None:
                self.settle(result, layout)

    def op_while(self, op: Operation) -> None:
        before, after = op.regions[0].block, op.regions[1].block
        carried = []
        for i, init in enumerate(op.inits):
            if not isinstance(init.type, TileType):
                carried.append(None)
                continue
            layout = (self.preset.get(before.args[i]) or self.carried(after.ops[-1].operands[i])
                      or layout_of(init))
            self.want(op, i, layout)
            set_layout(before.args[i], layout)
            carried.append(layout)
        self.block(before)
        cond = before.ops[-1]
        forwarded = []
        for j, (value, arg) in enumerate(zip(cond.values, after.args)):
            if not isinstance(value.type, TileType):
                forwarded.append(None)
                continue
            layout = self.preset.get(arg) or layout_of(value)
            self.want(cond, 1 + j, layout)
            set_layout(arg, layout)
            forwarded.append(layout)
        self.block(after)
        self._yield(after, carried)
        for result, layout in zip(op.results, forwarded):
            if layout is not None:
                self.settle(result, layout)

    def op_if(self, op: Operation) -> None:
        for r in op.regions:
            self.block(r.block)
        yields = [r.block.ops[-1] for r in op.regions]
        layouts = []
        for j, result in enumerate(op.results):
            if not isinstance(result.type, TileType):
                layouts.append(None)
                continue
            values = [y.operands[j] for y in yields]
            anchored = [v for v in values if not self.flexible(v)]
            layouts.append(self.preset.get(result) or layout_of((anchored or values)[0]))
        for r in op.regions:
            self._yield(r.block, layouts)
        for result, layout in zip(op.results, layouts):
            if layout is not None:
                set_layout(result, layout)

    def _yield(self, block: Block, layouts: list[Any]) -> None:
        term = block.ops[-1]
        for i, layout in enumerate(layouts):
            if layout is not None:
                self.want(term, i, layout)

    def op_call(self, op: Operation) -> None:
        callee = self.module.get(op.callee.name)
        for i, a in enumerate(callee.args):
            if isinstance(a.type, TileType):
                self.want(op, i, a.type.layout)
        for r, t in zip(op.results, callee.result_types):
            if isinstance(t, TileType):
                set_layout(r, t.layout)

    def op_return(self, op: Operation) -> None:
        for i, t in enumerate(self.f.result_types):
            if isinstance(t, TileType):
                self.want(op, i, t.layout)


# ---------------------------------------------------------------------------------------
# Sinking and removing conversions


def _cleanup(a: _Assigner) -> None:
    """Rewrite conversions until none of the patterns below applies (users first, so that
    chains collapse before their inner links move), erasing what this leaves dead.
    Patterns, each `before => after`:

    `convert_layout %x : L` with %x of layout L => %x
    `convert_layout (convert_layout %x : A) : B` => `convert_layout %x : B`
    `convert_layout %y : L` with %y a rebuilt copy of %x, %x of layout L => %x
    `convert_layout (constant | splat | arange) : L` => the same op built with layout L
    `convert_layout (broadcast %x : R) : L` => `broadcast (convert_layout %x : L.reduce(d)) : L`
    `convert_layout (expand_dims %x) : L` => `expand_dims (convert_layout %x : L.squeeze(axis))`
    `convert_layout (take %x) : L` => `take (convert_layout %x : L.expand_dims(axis) *
        local(.., n, ..))` where every user of %x is a take (the slices of one tile) or
        that conversion
    `convert_layout (permute %x) : L` => `permute (convert_layout %x : L.permute(inverse))`
    `convert_layout (elementwise %a, %b...) : L` with cheap operands (or one costly one,
        the elementwise op used only here) => `elementwise (convert_layout %a : L), ...`
    `convert_layout (load_view ...) : L`, the load used only there => `load_view ... : L`
        (not for the conversion of a dot operand to its mma layout)
    """
    for _ in range(1000):
        changed = False
        for op in reversed([o for o in a.f.walk() if o.name == "convert_layout"]):
            if op.parent is None:
                continue
            if not op.result.uses:
                _erase_dead(a, op, force=True)
                changed = True
            elif _sink(a, op):
                changed = True
        if not changed:
            break
    else:
        raise IRError(f"layout conversions did not settle in @{a.f.name} (internal error)",
                      a.f.loc)
    for op in list(a.touched | a.inserted):
        _erase_dead(a, op)


def _erase_dead(a: _Assigner, op: Operation, force: bool = False) -> None:
    """Erase `op` if nothing uses it and it is one this pass made or left unused (never
    the input's own dead code: that is dce's business); then its producers likewise."""
    if op.parent is None or any(r.uses for r in op.results):
        return
    if not force and op not in a.touched and op not in a.inserted:
        return
    if not (op.has_trait(Trait.PURE) or op.name in ("load", "load_view")):
        return
    producers = [v.owner for v in op.operands if isinstance(v, OpResult)]
    op.erase()
    a.inserted.discard(op)
    for p in producers:
        _erase_dead(a, p)


def _replace(a: _Assigner, op: Operation, value: Value) -> bool:
    """Replace the conversion `op` by `value` (of the same type)."""
    assert value.type == op.result.type, (value.type, op.result.type)
    if op.result in a.preset:  # an explicit layout stays pinned on the value that replaces it
        a.preset[value] = a.preset[op.result]
    x = op.x
    replace_all_uses(op.result, value)
    op.erase()
    a.inserted.discard(op)
    if isinstance(x, OpResult):
        a.touched.add(x.owner)
        _erase_dead(a, x.owner)
    return True


def _rebuild(a: _Assigner, producer: Operation, layout: Any,
             operand_layouts: list[Any] | None = None) -> Value:
    """A copy of the single-result `producer`, right after it, with its result in `layout`
    and its operands converted to `operand_layouts` (None entries: unchanged)."""
    block = producer.parent
    b = Builder(block, block.ops.index(producer) + 1, producer.loc)
    operands = list(producer.operands)
    for i, want in enumerate(operand_layouts or []):
        if want is not None:
            operands[i] = a.convert(operands[i], want)
    # Converts of operands are placed after their definitions, so before `producer`
    # or after it: recompute the position.
    b.index = block.ops.index(producer) + 1
    groups: list[Any] = []
    k = 0
    for spec, values in producer.operand_groups():
        chunk = operands[k:k + len(values)]
        k += len(values)
        groups.append(chunk if spec.kind == "variadic" else (chunk[0] if chunk else None))
    new = type(producer)(groups, [producer.result.type.with_layout(layout)],
                         dict(producer.attrs), [], producer.loc, [producer.result.name])
    b.insert(new)
    a.touched.add(new)
    a.origin[new.result] = a.origin.get(producer.result, producer.result)
    return new.result


def _free(a: _Assigner, v: Value, layout: Any) -> bool:
    """Whether `v` can be had in `layout` without a new data movement: it has it, it is
    cheap to rebuild, it converts a value of that layout, or that conversion exists."""
    if layout_of(v) == layout or a.flexible(v):
        return True
    if isinstance(v, OpResult) and v.owner.name == "convert_layout" and layout_of(
            v.owner.x) == layout:
        return True
    cached = a.cache.get((v, layout))
    return cached is not None and _alive(cached)


def _alive(v: Value) -> bool:
    return not isinstance(v, OpResult) or v.owner.parent is not None


def _sink(a: _Assigner, op: Operation) -> bool:
    x, layout = op.x, op.result.type.layout
    if x.type == op.result.type:
        return _replace(a, op, x)
    if not isinstance(x, OpResult):
        return False
    root = a.origin.get(x)
    if root is not None and _alive(root) and root.type == op.result.type:
        return _replace(a, op, root)  # the copy's original already has the layout
    producer = x.owner
    if producer.name == "convert_layout" and x not in a.preset:
        op.set_operand(0, producer.x)
        a.touched.add(producer)
        return True
    if producer.regions or len(producer.results) != 1:
        return False
    name = producer.name
    if name in _SOURCES:
        return _replace(a, op, _rebuild(a, producer, layout))
    if name == "broadcast":
        dims = _broadcast_dims(producer.x.type, producer.result.type)
        return _replace(a, op, _rebuild(a, producer, layout, [_reduced(layout, dims)]))
    if name == "expand_dims":
        return _replace(a, op, _rebuild(a, producer, layout, [layout.squeeze(producer.axis)]))
    if name == "permute":
        back = layout.permute(_inverse(list(producer.dims)))
        rebuilt = _rebuild(a, producer, layout, [back])
        if op in a.staged:  # `dot(x, trans(load))`: the load's conversion stages too
            a.staged.add(a.cache[(producer.x, back)].owner)
        return _replace(a, op, rebuilt)
    if name == "take":
        # The slices of one tile: converting the tile moves what converting each slice
        # would (and may sink further, into its load); each slice then picks registers.
        whole = [1] * producer.x.type.rank
        whole[producer.axis] = producer.x.type.shape[producer.axis]
        back = layout.expand_dims(producer.axis) * local(*whole)
        if all(u.name == "take" or (u.name == "convert_layout" and
                                    u.result.type.layout == back) for u in producer.x.uses):
            done = _replace(a, op, _rebuild(a, producer, layout, [back]))
            a.touched.add(producer)
            _erase_dead(a, producer)   # so that the tile's last user may be the conversion
            return done
    tiles = [is_register_tile(v.type) for v in producer.operands]
    single_use = len(x.uses) == 1 and x not in a.preset
    if producer.has_trait(Trait.ELEMENTWISE):
        costly = [v for v, t in zip(producer.operands, tiles) if t and not _free(a, v, layout)]
        if not costly or (single_use and len(costly) == 1):
            return _replace(a, op, _rebuild(a, producer, layout,
                                            [layout if t else None for t in tiles]))
    # A load rebuilt in an mma operand layout would read global memory in 4-byte pieces,
    # each element by several warps: it keeps its vectorised layout, and the conversion
    # goes through shared memory (ldmatrix).
    if name in ("load_view", "load") and single_use and op not in a.staged:
        return _replace(a, op, _rebuild(a, producer, layout,
                                        [layout if t else None for t in tiles]))
    return False
