"""`print` and `assert`: formatting here, the device's printf and abort in the target
(`target.printf(lowering, format, args)`, `target.assert_fail(lowering, message, loc)`).

print: thread 0 prints the scalars once per program instance; every tile element is
printed by the thread that holds it (replica 0), with its coordinate.
assert: each thread checks its own elements and fails if any is false.
"""
from __future__ import annotations

from llvmlite import ir

from tilec.backends.llvm.lower import Lowering, lowers, tile_layout, truth
from tilec.backends.llvm.values import I1, I32, I64, coord, i32
from tilec.ir.core import Operation
from tilec.ir.types import PointerType, element_of

_F64 = ir.DoubleType()


def _printable(lw: Lowering, x: ir.Value, element) -> tuple[str, ir.Value]:
    """A printf conversion and the value promoted as C varargs promote it."""
    b = lw.b
    if isinstance(element, PointerType):
        return "%p", x
    if element.is_bool:
        return "%d", b.zext(x, I32)
    if element.is_float:
        from tilec.backends.llvm import casts
        from tilec.ir import dtypes as dt
        return "%f", casts.cast(b, x, element, dt.float64, lw.target) if x.type != _F64 else x
    signed = element.kind == "int"
    if element.bits <= 32:
        wide = (b.sext if signed else b.zext)(x, I32) if x.type.width < 32 else x
        return ("%d" if signed else "%u"), wide
    wide = (b.sext if signed else b.zext)(x, I64) if x.type.width < 64 else x
    return ("%lld" if signed else "%llu"), wide


def _pid_args(lw: Lowering) -> list[ir.Value]:
    return [lw.target.block_id(lw.b, axis) for axis in range(3)]


def _guarded(lw: Lowering, cond: ir.Value, emit) -> None:
    b = lw.b
    then_bb, done = lw.block("debug.then"), lw.block("debug.end")
    b.cbranch(cond, then_bb, done)
    b.position_at_end(then_bb)
    emit()
    b.branch(done)
    b.position_at_end(done)


@lowers("print")
def _print(lw: Lowering, op: Operation) -> list:
    prefix = op.prefix.replace("%", "%%")
    scalars = [v for v in op.values if tile_layout(v.type) is None]
    tiles = [v for v in op.values if tile_layout(v.type) is not None]
    b = lw.b
    if scalars or not tiles:
        def emit_scalars():
            fmt, args = prefix + "pid (%d, %d, %d):", _pid_args(lw)
            for v in scalars:
                conv, x = _printable(lw, lw.get(v)[0], element_of(v.type))
                fmt += " " + conv
                args.append(x)
            lw.target.printf(lw, fmt + "\n", args)
        _guarded(lw, b.icmp_unsigned("==", lw.thread_id, i32(0)), emit_scalars)
    for v in tiles:
        layout = tile_layout(v.type)
        index = lw.index(layout)
        elements = lw.get(v)

        def emit_tile():
            for local, x in enumerate(elements):
                where = ", ".join(["%d"] * layout.rank)
                conv, value = _printable(lw, x, element_of(v.type))
                fmt = prefix + f"pid (%d, %d, %d) tid %d [{where}]: {conv}\n"
                args = _pid_args(lw) + [lw.thread_id]
                args += [coord(lw.b, index, local, d) for d in range(layout.rank)] + [value]
                lw.target.printf(lw, fmt, args)
        _guarded(lw, index.replica0, emit_tile)
    return []


@lowers("assert")
def _assert(lw: Lowering, op: Operation) -> list:
    b = lw.b
    ok: ir.Value = ir.Constant(I1, 1)
    for x in lw.get(op.cond):
        ok = b.and_(ok, truth(b, x))
    fail_bb, done = lw.block("assert.fail"), lw.block("assert.ok")
    b.cbranch(ok, done, fail_bb)
    b.position_at_end(fail_bb)
    lw.target.assert_fail(lw, op.message, op.loc)
    b.branch(done)
    b.position_at_end(done)
    return []
