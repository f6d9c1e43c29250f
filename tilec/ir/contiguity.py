"""How a tile's values change along its last dimension, read off the ops that compute it (a
small form of Triton's axis analysis).

`last_dim_step(v)` is 0 when the values do not change along the last dimension (a row's base
pointer, a mask broadcast from a column), 1 when each element is the one before it plus one
(an `arange`, a row pointer plus one: consecutive addresses), None when the ops do not say.
A gather whose pointers step by 1 and whose mask steps by 0 reads whole runs of consecutive
elements, so it can copy them as vectors with no check per element.

`run_alignment(ptr, run, fn)` is the power of two (in bytes) known to divide the address of
the first element of every run of `run` elements along the last dimension (runs starting at
multiples of `run`), from the launch's facts (`aligned = 16`: a tensor's rows start 16-byte
aligned; `divisible = 16` on an int argument) and the arithmetic on them: with 16 the
runs' vector copies need no run-time alignment check. Integer wrap-around is ignored:
address arithmetic that wraps is wrong anyway.
"""
from __future__ import annotations

from tilec.ir.core import Function, Operation, OpResult, Trait, Value
from tilec.ir.types import TileType, element_of

__all__ = ["last_dim_step", "run_alignment"]

_CAP = 1 << 16          # "divisible by anything we ask about" (e.g. the constant 0)


def last_dim_step(v: Value) -> int | None:
    return _step(v, {})


def _step(v: Value, memo: dict[int, int | None]) -> int | None:
    t = v.type
    if not isinstance(t, TileType):
        return 0                     # a scalar is one value for every element
    if t.shape[-1] == 1:
        return 0
    if not isinstance(v, OpResult):
        return None                  # a block argument: nothing known
    if id(v) not in memo:
        memo[id(v)] = None           # cycles (none in SSA, but cheap to rule out)
        memo[id(v)] = _op_step(v, memo)
    return memo[id(v)]


def _op_step(v: OpResult, memo: dict[int, int | None]) -> int | None:
    op = v.owner
    name = op.name
    if name == "arange":
        return 1
    if name == "splat":
        return 0
    if name == "constant":
        return 0 if not hasattr(op.attrs.get("value"), "__len__") else None
    if name == "expand_dims":
        if op.attrs["axis"] == v.type.rank - 1:
            return 0                 # the new last dim has size 1
        return _step(op.operands[0], memo)
    if name == "broadcast":
        src = op.operands[0]
        if src.type.shape[-1] == 1:
            return 0
        return _step(src, memo)
    if name == "convert_layout" or name == "cast" and _int_to_int(op):
        return _step(op.operands[0], memo)
    steps = [_step(x, memo) for x in op.operands]
    if any(s is None for s in steps):
        return None
    if name in ("add", "addptr"):
        total = steps[0] + steps[1]
        return total if total <= 1 else None
    if name == "sub":
        diff = steps[0] - steps[1]
        return diff if diff >= 0 else None
    if op.has_trait(Trait.ELEMENTWISE) and op.has_trait(Trait.PURE) and not any(steps):
        return 0                     # every operand the same along the row: so is the result
    return None


def _int_to_int(op: Operation) -> bool:
    src, dst = (element_of(x.type) for x in (op.operands[0], op.results[0]))
    return getattr(src, "is_int", False) and getattr(dst, "is_int", False)


def run_alignment(ptr: Value, run: int, fn: Function) -> int:
    return _divisor(ptr, run, fn, {})


def _pow2(n: int) -> int:
    return _CAP if n == 0 else min(_CAP, n & -n)


def _divisor(v: Value, run: int, fn: Function, memo: dict) -> int:
    """Power of two dividing `v` at the first element of every run of `run` along the last
    dim (every element, for run 1); an address in bytes for pointers."""
    key = (id(v), run)
    if key not in memo:
        memo[key] = 1
        memo[key] = _op_divisor(v, run, fn, memo)
    return memo[key]


def _op_divisor(v: Value, run: int, fn: Function, memo: dict) -> int:
    if not isinstance(v, OpResult):
        return min(_CAP, int(_facts(fn, v).get("divisible", 1)))
    op = v.owner
    name = op.name
    if name == "constant":
        value = op.attrs.get("value")
        return _pow2(value) if isinstance(value, int) and not isinstance(value, bool) else 1
    if name == "arange":
        return min(_pow2(op.attrs["start"]), run)
    if name in ("tensor_ptr", "tensor_stride"):
        tensor = op.operands[0]
        facts = _facts(fn, tensor)
        d = tensor.type.dtype
        if facts.get("aligned") != 16 or d.bits % 8 or 128 % d.bits:
            return d.bits // 8 if name == "tensor_ptr" and d.bits % 8 == 0 else 1
        if name == "tensor_ptr":
            return 16
        return 128 // d.bits if op.attrs["axis"] < tensor.type.rank - 1 else 1
    if name == "expand_dims" and op.attrs["axis"] == v.type.rank - 1:
        return _divisor(op.operands[0], 1, fn, memo)   # its last dim is now an outer one
    if name in ("splat", "broadcast", "expand_dims", "convert_layout") or (
            name == "cast" and _int_to_int(op)):
        return _divisor(op.operands[0], run, fn, memo)
    if name in ("add", "sub"):
        return min(_divisor(x, run, fn, memo) for x in op.operands)
    if name == "mul":
        a, b = (_divisor(x, run, fn, memo) for x in op.operands)
        return min(_CAP, a * b)
    if name == "addptr":
        pointee = v.type.element.pointee if isinstance(v.type, TileType) else v.type.pointee
        if pointee.bits % 8:
            return 1
        return min(_divisor(op.operands[0], run, fn, memo),
                   _divisor(op.operands[1], run, fn, memo) * (pointee.bits // 8))
    return 1


def _facts(fn: Function, v: Value) -> dict:
    """The launch's facts about `v` when it is one of `fn`'s arguments (else none)."""
    i = next((k for k, a in enumerate(fn.args) if a is v), None)
    return fn.arg_attrs[i] if i is not None and i < len(fn.arg_attrs) else {}
