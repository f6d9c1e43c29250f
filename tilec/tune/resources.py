"""The resource model: what one configuration of a kernel needs (shared memory, registers,
threads) and does (tensor-core flops, global and shared-memory bytes), read off the kernel's
tile IR after the GPU pass pipeline, and the device limits it must fit.

Shared memory is what the backend will allocate: every `shared_alloc` left by layout
assignment and software pipelining (the staged, multi-buffered operand tiles), sized as the
lowering sizes them (`tilec.backends.llvm.shared.plan_shared`), plus, as an upper bound, a
register-to-register `convert_layout` staged whole through the scratch area. Registers are an
estimate from the assigned layouts: the tiles a loop carries (the accumulator), one k-step of
the mma operand fragments (the lowering reads operands from shared memory at the dot, one
k-step at a time), the largest other tile, and a fixed allowance for addresses and indices.
The estimate only prunes what cannot fit; ptxas's report (`Resources`) prunes the rest after
compiling.

Work is counted per program with loop trip counts evaluated from the launch's actual
argument values (`tensor_dim`, int arguments and constant arithmetic), so the cost model can
compare configurations whose loops step differently.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from tilec.backends.llvm.shared import container_bits, shared_layout_of
from tilec.ir.core import Function, Operation, Value
from tilec.ir.types import TileType

# Addresses, loop indices and predicates that every kernel keeps in registers beside its tiles.
REGISTER_ALLOWANCE = 32


@dataclass(frozen=True)
class DeviceLimits:
    """What a GPU allows and how fast it is. Peak rates are nominal (datasheet-level): the cost
    model only compares configurations with them, so their ratios are what matters."""

    name: str
    arch: str
    sm_count: int
    max_shared_per_block: int              # bytes, after opting in
    shared_per_sm: int                     # bytes
    registers_per_sm: int = 65536
    max_registers_per_thread: int = 255
    max_threads_per_block: int = 1024
    max_threads_per_sm: int = 2048
    max_blocks_per_sm: int = 32
    mma_flops: float = 660e12              # 16-bit tensor-core flop/s with mma.sync
    fma_flops: float = 60e12               # f32 FMA flop/s
    dram_bytes_per_s: float = 3.35e12
    l2_bytes_per_s: float = 10e12
    shared_bytes_per_clock_per_sm: int = 128
    clock_hz: float = 1.755e9
    memory_latency_s: float = 0.5e-6

    @staticmethod
    def for_arch(arch: str, name: str | None = None, sm_count: int | None = None,
                 max_shared_per_block: int | None = None) -> DeviceLimits:
        """Nominal limits of an architecture (sm_80: A100, sm_89: L40S, sm_90: H100 SXM)."""
        base = _ARCHES.get(arch.rstrip("a"), _ARCHES["sm_90"])
        changes: dict[str, Any] = {"arch": arch}
        if name is not None:
            changes["name"] = name
        if sm_count is not None:
            changes["sm_count"] = sm_count
        if max_shared_per_block is not None:
            changes["max_shared_per_block"] = max_shared_per_block
        return DeviceLimits(**{**base.__dict__, **changes})

    @staticmethod
    def of_device(device: int = 0) -> DeviceLimits:
        """The limits of CUDA device `device` (its name, SM count and shared memory from the
        driver; rates from its architecture's nominal values)."""
        from tilec.runtime import cuda
        props = cuda.device_properties(device)
        return DeviceLimits.for_arch(props.arch, props.name, props.sm_count,
                                     props.max_shared_per_block_optin)


_ARCHES = {
    "sm_80": DeviceLimits("A100", "sm_80", 108, 163 * 1024, 164 * 1024,
                          mma_flops=290e12, fma_flops=19.5e12, dram_bytes_per_s=1.9e12,
                          l2_bytes_per_s=5e12, clock_hz=1.41e9),
    "sm_89": DeviceLimits("L40S", "sm_89", 142, 99 * 1024, 100 * 1024,
                          max_threads_per_sm=1536, max_blocks_per_sm=24, mma_flops=180e12,
                          fma_flops=90e12, dram_bytes_per_s=0.86e12, l2_bytes_per_s=4e12,
                          clock_hz=2.5e9),
    "sm_90": DeviceLimits("H100", "sm_90", 132, 227 * 1024, 228 * 1024),
}


@dataclass(frozen=True)
class KernelProfile:
    """What one program of a configuration needs and does."""

    threads: int
    shared_bytes: int             # allocations plus the scratch upper bound
    registers: int                # estimated per thread
    flops: float                  # tensor-core (or FMA for 32-bit dots) flops per program
    dot_bits: int                 # operand width of the dots (16 for f16), 0 without dots
    global_bytes: float           # bytes loaded and stored per program
    shared_read_bytes: float      # bytes read from shared memory per program
    loop_trips: int               # trips of the deepest loop (1 without loops)
    facts: dict[str, Any] = field(default_factory=dict)

    def features(self) -> dict[str, float]:
        """The profile as numbers, for a learned cost model."""
        return {"threads": self.threads, "shared_bytes": self.shared_bytes,
                "registers": self.registers, "flops": self.flops, "dot_bits": self.dot_bits,
                "global_bytes": self.global_bytes, "shared_read_bytes": self.shared_read_bytes,
                "loop_trips": self.loop_trips}


def _tile_bytes(t: TileType) -> int:
    return t.numel * container_bits(t.element) // 8


def _registers(t: Any) -> int:
    """32-bit registers per thread holding a register tile (0 for anything else)."""
    if not isinstance(t, TileType) or t.space != "register" or t.layout is None:
        return 0
    local = getattr(t.layout, "local_size", None)
    if local is None:
        return 0
    return math.ceil(local * container_bits(t.element) / 32)


def _eval_scalar(v: Value, facts: Mapping[str, Any], depth: int = 0) -> int | None:
    """The value of a scalar computed from constants, tensor dimensions and int arguments, or
    None when it depends on anything else (a program id, a load)."""
    owner = getattr(v, "owner", None)
    if owner is None:  # a block argument: an int parameter of the kernel
        value = facts.get(v.name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if depth > 64:
        return None
    name = owner.name
    if name == "constant":
        value = owner.attrs.get("value")
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if name == "tensor_dim":
        shape = facts.get(owner.operands[0].name)
        axis = owner.attrs.get("axis", 0)
        return shape[axis] if isinstance(shape, tuple) and axis < len(shape) else None
    args = [_eval_scalar(x, facts, depth + 1) for x in owner.operands]
    if len(args) != 2 or None in args:
        return None
    a, b = args
    if name == "add":
        return a + b
    if name == "sub":
        return a - b
    if name == "mul":
        return a * b
    if name == "div" and b != 0:
        return int(a / b)  # truncates toward zero, as the IR's div
    if name == "rem" and b != 0:
        return a - b * int(a / b)
    if name == "min":
        return min(a, b)
    if name == "max":
        return max(a, b)
    return None


def _trips(op: Operation, facts: Mapping[str, Any]) -> int:
    lb, ub, step = (_eval_scalar(v, facts) for v in op.operands[:3])
    if lb is None or ub is None or step is None or step <= 0:
        return 1  # unknown: every configuration is counted alike
    return max(0, -(-(ub - lb) // step))


def profile(fn: Function, num_warps: int, facts: Mapping[str, Any]) -> KernelProfile:
    """The profile of kernel `fn` (after the GPU pass pipeline) for `num_warps` warps, with
    `facts` mapping tensor parameters to their shapes and int parameters to their values."""
    totals = {"flops": 0.0, "global": 0.0, "shared_read": 0.0, "trips": 1, "dot_bits": 0}
    allocated = 0
    scratch = 0
    for op in fn.walk():
        if op.name == "shared_alloc":
            allocated = _round_up(allocated, 16) + _shared_bytes(op.results[0].type)
        elif op.name == "convert_layout":
            src, dst = op.operands[0].type, op.results[0].type
            if isinstance(src, TileType) and src.space == dst.space == "register":
                scratch = max(scratch, _tile_bytes(src))
    loop_regs = _walk(fn.body.block.ops, 1, facts, totals)
    regs = REGISTER_ALLOWANCE + loop_regs
    shared = allocated if scratch == 0 else _round_up(allocated, 16) + _round_up(scratch, 16)
    return KernelProfile(threads=32 * num_warps, shared_bytes=shared, registers=regs,
                         flops=totals["flops"], dot_bits=int(totals["dot_bits"]),
                         global_bytes=totals["global"], shared_read_bytes=totals["shared_read"],
                         loop_trips=int(totals["trips"]), facts=dict(facts))


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _shared_bytes(t: TileType) -> int:
    return shared_layout_of(t).size * container_bits(t.element) // 8


def _walk(ops: list[Operation], weight: int, facts: Mapping[str, Any],
          totals: dict[str, Any]) -> int:
    """Add the work of `ops` (each run `weight` times) to `totals`; the registers the block
    needs at its peak."""
    peak = 0
    for op in ops:
        if op.name == "dot":
            a, b = op.operands[0].type, op.operands[1].type
            m, k = a.shape[-2], a.shape[-1]
            batch = math.prod(a.shape[:-2])   # a batched dot: that many products
            totals["flops"] += weight * 2.0 * batch * m * b.shape[-1] * k
            totals["dot_bits"] = max(totals["dot_bits"], container_bits(a.element))
            # The lowering reads each operand at the dot one k-step (256 bits of k per row) at
            # a time, double-buffered: that much of the operands is live beside the
            # accumulator, which mma updates in place (a loop counts it as carried).
            step = 256 // max(1, container_bits(a.element))
            fraction = min(1.0, 2 * step / max(1, k))
            peak = max(peak, sum(int(_registers(x.type) * fraction) for x in op.operands[:2]))
        elif op.name in ("load", "load_view"):
            totals["global"] += weight * _tile_bytes_or_scalar(op.results[0].type)
            peak = max(peak, _registers(op.results[0].type))
        elif op.name == "copy_async":
            totals["global"] += weight * _tile_bytes_or_scalar(op.dst.type)
        elif op.name in ("store", "store_view"):
            value = op.group("value")[0]
            totals["global"] += weight * _tile_bytes_or_scalar(value.type)
            peak = max(peak, _registers(value.type))
        elif op.name == "shared_load":
            t = op.results[0].type
            replication = getattr(t.layout, "replication", 1) if isinstance(t, TileType) else 1
            totals["shared_read"] += weight * _tile_bytes_or_scalar(t) * replication
        elif op.name in ("for", "while") and op.regions:
            trips = _trips(op, facts) if op.name == "for" else 1
            totals["trips"] = max(totals["trips"], trips)
            carried = sum(_registers(r.type) for r in op.results)
            inner = max(_walk(r.block.ops, weight * trips, facts, totals) for r in op.regions)
            peak = max(peak, carried + inner)
            continue
        elif op.regions:
            peak = max(peak, max(_walk(r.block.ops, weight, facts, totals) for r in op.regions))
        elif op.name == "yield":
            continue  # hands the loop its carried values: counted by the loop
        else:
            own = sum(_registers(r.type) for r in op.results) + \
                sum(_registers(x.type) for x in op.operands)
            peak = max(peak, own)
    return peak


def _tile_bytes_or_scalar(t: Any) -> int:
    if isinstance(t, TileType):
        return _tile_bytes(t)
    bits = getattr(getattr(t, "dtype", None), "bits", 32)
    return max(1, bits // 8)


def check(p: KernelProfile, limits: DeviceLimits, registers: bool = True) -> str | None:
    """Why a configuration cannot run on the device, or None when it fits (`registers`:
    whether the register estimate may say so)."""
    if p.threads > limits.max_threads_per_block:
        return f"threads: {p.threads} > {limits.max_threads_per_block} per block"
    if p.shared_bytes > limits.max_shared_per_block:
        return (f"shared memory: {p.shared_bytes // 1024} KiB > "
                f"{limits.max_shared_per_block // 1024} KiB per block")
    if not registers:
        return None
    if p.registers > limits.max_registers_per_thread:
        return f"registers: ~{p.registers} > {limits.max_registers_per_thread} per thread"
    if p.registers * p.threads > limits.registers_per_sm:
        return (f"registers: ~{p.registers} x {p.threads} threads > "
                f"{limits.registers_per_sm} per SM")
    return None
