"""Laid-out tile IR -> per-thread LLVM IR: the driver and the rule table.

`lower_kernel(fn, target, num_warps)` builds one LLVM module holding the kernel `fn`, whose
parameters are exactly `abi.kernel_params(fn)`. Each op is lowered by the rule registered
for its name with `@lowers("add", ...)`; a rule receives the `Lowering` (builder, values,
layouts, target) and the op, and returns the op's result values. A target may add or
override rules through a `rules` mapping of its own; the common lowering never asks which
target it is on.

Values: a tile is the list of this thread's element values in layout-local order; a scalar
is a list of one (every thread holds it); a tensor argument is a `TensorValue`; a shared
tile a `SharedTile` (shared.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from llvmlite import ir

from tilec.backends.abi import F32 as ABI_F32
from tilec.backends.abi import F64 as ABI_F64
from tilec.backends.abi import I32 as ABI_I32
from tilec.backends.abi import I64 as ABI_I64
from tilec.backends.abi import POINTER, Param, is_packed, kernel_params, stride_bits
from tilec.backends.llvm import dtypes as ltypes
from tilec.backends.llvm.casts import call_intrinsic
from tilec.backends.llvm.shared import SharedPlan, plan_shared
from tilec.backends.llvm.values import I1, LayoutIndex, TensorValue, element_type
from tilec.backends.target import Target
from tilec.errors import IRError
from tilec.ir import dtypes as dt
from tilec.ir.core import Block, Function, Module, Operation, Value
from tilec.ir.layout import RegisterLayout
from tilec.ir.passes.manager import GPU_PIPELINE, PassOptions, run_passes
from tilec.ir.rewrite import clone_module
from tilec.ir.types import PointerType, ScalarType, TensorType, TileType, Type

Rule = Callable[["Lowering", Operation], list]
RULES: dict[str, Rule] = {}


def lowers(*names: str) -> Callable[[Rule], Rule]:
    """Register the lowering rule of ops `names`: `rule(lowering, op) -> [result values]`."""
    def register(fn: Rule) -> Rule:
        for n in names:
            if n in RULES:
                raise ValueError(f"two lowering rules for '{n}'")
            RULES[n] = fn
        return fn
    return register


_MACHINE = {POINTER: ir.PointerType(addrspace=1), ABI_I32: ir.IntType(32),
            ABI_I64: ir.IntType(64), ABI_F32: ir.FloatType(), ABI_F64: ir.DoubleType()}


@dataclass(frozen=True)
class LoweredKernel:
    """The LLVM module of one kernel and what launching it needs."""

    name: str
    llvm_ir: str
    shared_bytes: int
    params: list[Param]
    num_threads: int


class Lowering:
    """The state of lowering one kernel: LLVM module and builder, SSA values, layouts."""

    def __init__(self, fn: Function, target: Target, num_warps: int):
        self.fn = fn
        self.target = target
        self.num_warps = num_warps
        self.num_threads = num_warps * target.warp_size
        self.cluster = int(fn.attrs.get("num_ctas", 1))   # programs a cluster
        if self.cluster > target.max_cluster:
            have = (f"clusters of at most {target.max_cluster} programs"
                    if target.max_cluster > 1 else "no thread-block clusters")
            raise IRError(f"@{fn.name} asks for clusters of num_ctas = {self.cluster} "
                          f"programs; {target.arch} has {have}", fn.loc,
                          hint="clusters need an NVIDIA GPU of sm_90 or later")
        self.module = ir.Module(name=fn.name)
        self.module.triple = target.triple
        self.module.data_layout = target.data_layout
        self.params = kernel_params(fn)
        fnty = ir.FunctionType(ir.VoidType(), [_MACHINE[p.machine] for p in self.params])
        self.llfn = ir.Function(self.module, fnty, name=fn.name)
        for arg, p in zip(self.llfn.args, self.params):
            arg.name = p.name
        entry_block = self.llfn.append_basic_block("entry")
        body_block = self.llfn.append_basic_block("body")
        # Thread-dependent index arithmetic is hoisted into `entry`, which falls into `body`.
        ir.IRBuilder(entry_block).branch(body_block)
        self.entry = ir.IRBuilder(entry_block)
        self.entry.position_before(entry_block.terminator)
        self.b = ir.IRBuilder(body_block)
        self.thread_id = target.thread_id(self.entry)
        self.env: dict[Value, Any] = {}
        self._indices: dict[RegisterLayout, LayoutIndex] = {}
        self._counter = 0
        self.smem: SharedPlan = plan_shared(self, fn)
        self._rules = {**RULES, **getattr(target, "rules", {})}
        self._bind_arguments()

    # -- values --------------------------------------------------------------------------
    def get(self, v: Value) -> Any:
        return self.env[v]

    def set(self, v: Value, value: Any) -> None:
        self.env[v] = value

    def index(self, layout: RegisterLayout) -> LayoutIndex:
        """The thread parts of `layout`'s coordinates (computed once, in the entry block)."""
        found = self._indices.get(layout)
        if found is None:
            if layout.num_threads != self.num_threads:
                raise IRError(f"layout {layout} spans {layout.num_threads} threads; the kernel "
                              f"runs {self.num_threads}",
                              hint="run layout_assignment with the kernel's num_warps")
            found = self._indices[layout] = LayoutIndex(self, layout)
        return found

    def llvm_type(self, element: Any) -> ir.Type:
        return element_type(element, ltypes.llvm_type)

    def fresh(self, prefix: str) -> str:
        """A name unique in the module (deterministic: a counter)."""
        self._counter += 1
        return f"{prefix}.{self._counter}"

    def block(self, name: str) -> ir.Block:
        return self.llfn.append_basic_block(self.fresh(name))

    # -- arguments -------------------------------------------------------------------------
    def _bind_arguments(self) -> None:
        by_arg: dict[int, list[tuple[Param, ir.Argument]]] = {}
        for p, a in zip(self.params, self.llfn.args):
            by_arg.setdefault(p.arg, []).append((p, a))
        for i, value in enumerate(self.fn.args):
            parts = by_arg[i]
            t = value.type
            if isinstance(t, TensorType):
                sizes = tuple(a for p, a in parts if p.part == "size")
                strides = tuple(a for p, a in parts if p.part == "stride")
                ptr = parts[0][1]
                facts = self.fn.arg_attrs[i] if i < len(self.fn.arg_attrs) else {}
                if facts.get("contiguous") and strides:
                    unit = t.dtype.bits if is_packed(t.dtype) else 1
                    strides = (*strides[:-1], ir.Constant(strides[-1].type, unit))
                aligned = facts.get("aligned") == 16
                if aligned:
                    self._assume_rows_aligned(ptr, strides, t.dtype)
                self.set(value, TensorValue(ptr, sizes, strides, t.dtype, aligned))
            elif isinstance(t, PointerType):
                self.set(value, [parts[0][1]])
            else:
                self.set(value, [self._scalar_argument(parts[0][1], t.dtype)])

    def _assume_rows_aligned(self, ptr: ir.Argument, strides: tuple[ir.Value, ...],
                             d: dt.DType) -> None:
        """Tell LLVM the `aligned` fact (rows start 16-byte aligned): the address's and every
        stride but the last's low bits are zero, so that it can prove the alignment of
        vectors that pointer arithmetic reaches (pointer tiles: `base + rows * stride + d`)
        and fold their run-time checks."""
        ptr.attributes.align = 16
        per16 = 128 // stride_bits(d)  # stride units in 16 bytes
        if per16 <= 1:
            return
        for s in strides[:-1]:
            low = self.entry.and_(s, ir.Constant(s.type, per16 - 1))
            call_intrinsic(self.entry, "llvm.assume", ir.VoidType(),
                           [self.entry.icmp_unsigned("==", low, ir.Constant(s.type, 0))])

    def _scalar_argument(self, a: ir.Value, d: dt.DType) -> ir.Value:
        """A machine parameter (see abi.py) as a value of dtype `d`."""
        b = self.entry
        if d.is_bool:
            return b.icmp_unsigned("!=", a, ir.Constant(a.type, 0))
        want = self.llvm_type(d)
        if d.is_int:
            return a if a.type == want else b.trunc(a, want)
        if d == dt.float32 or d == dt.float64:
            return a
        from tilec.backends.llvm import casts
        return casts.cast(b, a, dt.float32, d, self.target)

    # -- ops ---------------------------------------------------------------------------------
    def lower_block(self, block: Block) -> Operation | None:
        """Lower every op of `block` but its terminator, which is returned."""
        for op in block.ops:
            if op.name in ("yield", "condition", "return"):
                return op
            self.lower_op(op)
        return None

    def lower_op(self, op: Operation) -> None:
        rule = self._rules.get(op.name)
        if rule is None:
            raise op.error(f"the LLVM lowering has no rule for '{op.name}'")
        results = rule(self, op)
        if len(results) != len(op.results):
            raise op.error(f"lowering rule gave {len(results)} results, expected "
                           f"{len(op.results)}")
        for r, v in zip(op.results, results):
            self.set(r, v)

    def run(self) -> LoweredKernel:
        if self.fn.result_types:
            raise IRError(f"@{self.fn.name} returns values; a kernel cannot",
                          self.fn.loc, hint="write results through tensor arguments")
        term = self.lower_block(self.fn.body.block)
        if term is None or term.name != "return":
            raise IRError(f"@{self.fn.name} must end with 'return'", self.fn.loc)
        self.b.ret_void()
        self.target.mark_kernel(self.module, self.llfn, self.num_threads, self.cluster)
        self.smem.finish()
        return LoweredKernel(self.fn.name, str(self.module), self.smem.total_bytes,
                             self.params, self.num_threads)


def tile_layout(t: Type) -> RegisterLayout | None:
    """The register layout of a tile type; None for scalars."""
    if isinstance(t, TileType):
        if not isinstance(t.layout, RegisterLayout):
            raise IRError(f"{t} has no register layout",
                          hint="run the layout_assignment pass before lowering")
        return t.layout
    return None


def is_scalar_type(t: Type) -> bool:
    return isinstance(t, (ScalarType, PointerType))


def truth(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    """An i1 from a bool value."""
    return v if v.type == I1 else b.icmp_unsigned("!=", v, ir.Constant(v.type, 0))


def lower_kernel(fn: Function, target: Target, num_warps: int) -> LoweredKernel:
    """Lower laid-out kernel `fn` to an LLVM module (text) for `target`."""
    # Importing the rule modules registers their rules.
    from tilec.backends.llvm import (control, convert, debug, dot, elementwise,  # noqa: F401
                                     memory, reduce)
    return Lowering(fn, target, num_warps).run()


def passes_then_lower(module: Module, name: str, target: Target, num_warps: int | None = None,
                      verify: bool | None = None, dump: Callable[[str, str], None] | None = None
                      ) -> tuple[Module, int, LoweredKernel]:
    """A copy of `module` through the GPU pass pipeline for `target`, and kernel @name of it
    lowered: (the passed module, num_warps, the lowered kernel). `num_warps` defaults to the
    kernel's `num_warps` attribute, else 4; `module` is left unchanged (the passes rewrite
    in place). The front half of both vendors' `compile_kernel`."""
    work = clone_module(module)
    warps = int(num_warps if num_warps is not None else
                work.get(name).attrs.get("num_warps", 4))
    work = run_passes(work, GPU_PIPELINE, PassOptions(target=target.arch, num_warps=warps),
                      verify=verify, dump=dump)
    return work, warps, lower_kernel(work.get(name), target, warps)


__all__ = ["lowers", "RULES", "Lowering", "LoweredKernel", "lower_kernel", "passes_then_lower",
           "tile_layout", "truth"]
