"""Structured control flow to basic blocks with phi nodes, and the program-state ops.

    for:   pre -> header (phis: iv, carried) -> body ... -> latch -> header | exit
    if:    cond -> then | else -> merge (phis: results)
    while: pre -> before (phis: carried) -> condition ? after -> before : exit

A carried tile is a list of element values, so it becomes one phi per element; layouts of
inits, block arguments, yields and results are identical (the laid-out IR contract, 5).
"""
from __future__ import annotations

from llvmlite import ir

from tilec.backends.abi import is_packed
from tilec.backends.llvm.lower import Lowering, lowers
from tilec.backends.llvm.values import TensorValue
from tilec.ir.core import Operation, Region
from tilec.ir.types import dtype_of


def _phis(lw: Lowering, values: list[list[ir.Value]], incoming: ir.Block) -> list[list[ir.Phi]]:
    out = []
    for elements in values:
        if not isinstance(elements, list):
            raise TypeError("only register tiles and scalars can be carried by loops")
        row = []
        for v in elements:
            phi = lw.b.phi(v.type)
            phi.add_incoming(v, incoming)
            row.append(phi)
        out.append(row)
    return out


def _add_incoming(phis: list[list[ir.Phi]], values: list[list[ir.Value]], block: ir.Block) -> None:
    for row, elements in zip(phis, values):
        for phi, v in zip(row, elements):
            phi.add_incoming(v, block)


def _run_region(lw: Lowering, region: Region, args: list) -> list:
    """Lower a region with its block arguments bound to `args`; its terminator's values."""
    for a, v in zip(region.block.args, args):
        lw.set(a, v)
    term = lw.lower_block(region.block)
    return [lw.get(v) for v in term.operands] if term is not None else []


@lowers("for")
def _for(lw: Lowering, op: Operation) -> list:
    b = lw.b
    (lb,), (ub,), (step,) = lw.get(op.lb), lw.get(op.ub), lw.get(op.step)
    inits = [lw.get(v) for v in op.inits]
    header, body, done = lw.block("for.header"), lw.block("for.body"), lw.block("for.exit")
    pre = b.block
    b.branch(header)
    b.position_at_end(header)
    iv = b.phi(lb.type)
    iv.add_incoming(lb, pre)
    carried = _phis(lw, inits, pre)
    signed = dtype_of(op.lb.type).kind == "int"
    cmp = b.icmp_signed if signed else b.icmp_unsigned
    zero = ir.Constant(step.type, 0)
    # Python's range: up to ub for a positive step, down to it for a negative one.
    going_up = b.icmp_signed(">", step, zero)
    more = b.select(going_up, cmp("<", iv, ub), cmp(">", iv, ub))
    b.cbranch(more, body, done)
    b.position_at_end(body)
    yields = _run_region(lw, op.regions[0], [[iv], *carried])
    iv_next = b.add(iv, step)
    latch = b.block
    iv.add_incoming(iv_next, latch)
    _add_incoming(carried, yields, latch)
    b.branch(header)
    b.position_at_end(done)
    return [list(row) for row in carried]


@lowers("if")
def _if(lw: Lowering, op: Operation) -> list:
    b = lw.b
    (cond,) = lw.get(op.cond)
    then_bb, else_bb, merge = lw.block("if.then"), lw.block("if.else"), lw.block("if.end")
    b.cbranch(cond, then_bb, else_bb)
    ends = []
    for region, bb in zip(op.regions, (then_bb, else_bb)):
        b.position_at_end(bb)
        values = _run_region(lw, region, [])
        ends.append((b.block, values))
        b.branch(merge)
    b.position_at_end(merge)
    results = []
    for i in range(len(op.results)):
        row = []
        for j, v in enumerate(ends[0][1][i]):
            phi = b.phi(v.type)
            for block, values in ends:
                phi.add_incoming(values[i][j], block)
            row.append(phi)
        results.append(row)
    return results


@lowers("while")
def _while(lw: Lowering, op: Operation) -> list:
    b = lw.b
    inits = [lw.get(v) for v in op.inits]
    before, after, done = lw.block("while.before"), lw.block("while.after"), lw.block("while.exit")
    pre = b.block
    b.branch(before)
    b.position_at_end(before)
    carried = _phis(lw, inits, pre)
    cond_and_values = _run_region(lw, op.regions[0], carried)
    (cond,), forwarded = cond_and_values[0], cond_and_values[1:]
    b.cbranch(cond, after, done)
    b.position_at_end(after)
    yields = _run_region(lw, op.regions[1], forwarded)
    _add_incoming(carried, yields, b.block)
    b.branch(before)
    b.position_at_end(done)
    return [list(v) for v in forwarded]


@lowers("call")
def _call(lw: Lowering, op: Operation) -> list:
    raise op.error(f"call to @{op.callee.name} is left in the kernel",
                   hint="run the inline pass before lowering")


# -- program state ------------------------------------------------------------------------------
@lowers("program_id")
def _program_id(lw: Lowering, op: Operation) -> list:
    return [[lw.target.block_id(lw.b, op.axis)]]


@lowers("num_programs")
def _num_programs(lw: Lowering, op: Operation) -> list:
    return [[lw.target.num_blocks(lw.b, op.axis)]]


def _tensor(lw: Lowering, op: Operation) -> TensorValue:
    return lw.get(op.tensor)


@lowers("tensor_dim")
def _tensor_dim(lw: Lowering, op: Operation) -> list:
    return [[_tensor(lw, op).sizes[op.axis]]]


@lowers("tensor_stride")
def _tensor_stride(lw: Lowering, op: Operation) -> list:
    t = _tensor(lw, op)
    stride = t.strides[op.axis]
    if is_packed(t.dtype):  # packed tensors pass strides in bits
        stride = lw.b.sdiv(stride, ir.Constant(stride.type, t.dtype.itemsize_bits))
    return [[lw.b.trunc(stride, ir.IntType(32))]]


@lowers("tensor_ptr")
def _tensor_ptr(lw: Lowering, op: Operation) -> list:
    return [[_tensor(lw, op).ptr]]
