"""Python AST -> tile IR: a visitor over a kernel's (or inlined device function's) body.

Compile-time values are Python objects and fold as Python does; runtime values are `TVal`s
built through the `Emitter`. Control flow becomes `for`/`while`/`if` ops whose results are
the variables the body or branches assign; `return` inside an `if` moves the rest of the
body into the other branch. Every error is a CompileError at the node being visited.
"""
from __future__ import annotations

import ast
import inspect
import operator
import types
from typing import Any, Callable

from tilec.errors import CompileError, Location, TilecError
from tilec.frontend import dsl
from tilec.frontend.pybuiltins import PY_BUILTINS, PyBuiltin
from tilec.frontend.source import (BoundMethod, JITFunction, Source, assigned_names,
                                   check_constant, contains_return, discard, get_source)
from tilec.frontend.values import (Emitter, TensorArg, TVal, Undefined, annotation_kind,
                                   constexpr, describe, is_number)
from tilec.ir import dtypes as dt
from tilec.ir.core import Block, Region
from tilec.ir.dtypes import DType
from tilec.ir.types import SHARED, ScalarType, TileType, Type

RET = "$ret"  # the scope slot a function's return value goes to
_MISSING = object()


_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "truediv",
           ast.FloorDiv: "floordiv", ast.Mod: "rem", ast.Pow: "pow", ast.BitAnd: "and",
           ast.BitOr: "or", ast.BitXor: "xor", ast.LShift: "shl", ast.RShift: "shr",
           ast.MatMult: "matmul"}
_PYOPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
          "truediv": operator.truediv, "floordiv": operator.floordiv, "rem": operator.mod,
          "pow": operator.pow, "and": operator.and_, "or": operator.or_, "xor": operator.xor,
          "shl": operator.lshift, "shr": operator.rshift}
_CMPOPS = {ast.Eq: "eq", ast.NotEq: "ne", ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt",
           ast.GtE: "ge"}
_PYCMP = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
          ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
          ast.Is: operator.is_, ast.IsNot: operator.is_not,
          ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}

_UNSUPPORTED = {
    "Break": ("`break` is not supported in kernels",
              "loop with `while cond:` instead, or mask the remaining iterations"),
    "Continue": ("`continue` is not supported in kernels",
                 "put the rest of the loop body under an `if`"),
    "Try": ("`try` is not supported in kernels",
            "kernels cannot catch exceptions; check conditions with `if` or tc.device_assert"),
    "TryStar": ("`try` is not supported in kernels", None),
    "Raise": ("`raise` is not supported in kernels",
              "use tc.device_assert(cond, msg) or tc.static_assert"),
    "With": ("`with` is not supported in kernels", None),
    "AsyncWith": ("`async with` is not supported in kernels", None),
    "AsyncFor": ("`async for` is not supported in kernels", None),
    "ClassDef": ("class definitions are not supported inside kernels",
                 "define classes outside; only constants can cross into a kernel"),
    "FunctionDef": ("nested function definitions are not supported inside kernels",
                    "define it at module level with @tc.func"),
    "AsyncFunctionDef": ("async functions are not supported", None),
    "Lambda": ("`lambda` is not supported inside kernels",
               "define a @tc.func at module level and pass or call it"),
    "Yield": ("`yield` is not supported: kernels are not generators", None),
    "YieldFrom": ("`yield from` is not supported: kernels are not generators", None),
    "Await": ("`await` is not supported in kernels", None),
    "Global": ("`global` is not supported in kernels", None),
    "Nonlocal": ("`nonlocal` is not supported in kernels", None),
    "Delete": ("`del` is not supported in kernels", None),
    "Import": ("`import` is not supported inside kernels", "import at module level"),
    "ImportFrom": ("`import` is not supported inside kernels", "import at module level"),
    "ListComp": ("list comprehensions are not supported inside kernels",
                 "write the tuple out, or loop with tc.static_range"),
    "SetComp": ("set comprehensions are not supported inside kernels", None),
    "DictComp": ("dict comprehensions are not supported inside kernels", None),
    "GeneratorExp": ("generator expressions are not supported inside kernels",
                     "write the tuple out, or loop with tc.static_range"),
    "Dict": ("dicts are not supported inside kernels", "use a tuple"),
    "Set": ("sets are not supported inside kernels", "use a tuple"),
    "JoinedStr": ("f-strings are not supported inside kernels",
                  "tc.print takes a prefix and values: tc.print('x =', x)"),
    "NamedExpr": ("assignment expressions (:=) are not supported in kernels",
                  "assign on a line of its own"),
    "Match": ("`match` is not supported in kernels", "use if/elif"),
}


# ---------------------------------------------------------------------------------------
# the visitor


class CodeGen(ast.NodeVisitor):
    """Visits one function body (a kernel, or a device function being inlined)."""

    def __init__(self, em: Emitter, src: Source, scope: dict[str, Any],
                 stack: tuple[Callable, ...], is_kernel: bool):
        self.em = em
        self.src = src
        self.scope = scope
        self.stack = stack
        self.is_kernel = is_kernel
        self.loop_depth = 0
        self._rest: list[ast.stmt] = []
        # Block arguments of loop-carried variables that started as Python numbers: their
        # type is a guess until the loop settles, so nested loops may retype them too.
        self.provisional: set = set()

    # -- locations and errors -----------------------------------------------------------
    def loc(self, node: ast.AST) -> Location:
        return Location(self.src.file, node.lineno + self.src.line_offset,
                        node.col_offset + 1 + self.src.col_offset)

    def visit(self, node: ast.AST) -> Any:
        saved = self.em.loc
        loc = self.loc(node) if hasattr(node, "lineno") else saved
        self.em.loc = loc
        prev_cg, self.em.codegen = self.em.codegen, self
        try:
            return super().visit(node)
        except CompileError as e:
            if e.loc is None:
                e.loc = loc
            raise
        except TilecError as e:
            raise CompileError(e.message, loc, e.hint) from None
        except RecursionError:
            raise CompileError("this expression nests too deeply to compile", loc) from None
        except Exception as e:
            raise CompileError(f"internal error while compiling this line: "
                               f"{type(e).__name__}: {e}", loc,
                               "please report this as a tilec bug") from e
        finally:
            self.em.loc = saved
            self.em.codegen = prev_cg

    def generic_visit(self, node: ast.AST) -> Any:
        kind = type(node).__name__
        msg, hint = _UNSUPPORTED.get(kind, (f"unsupported Python syntax in a kernel: {kind}",
                                            None))
        raise CompileError(msg, hint=hint)

    # -- blocks ----------------------------------------------------------------------------
    def visit_block(self, stmts: list[ast.stmt]) -> bool:
        """Visit statements in order; True if a `return` ended them (the rest is consumed)."""
        for i, s in enumerate(stmts):
            if isinstance(s, (ast.If, ast.Return)):
                self._rest = list(stmts[i + 1:])
                if self.visit(s):
                    return True
            else:
                self.visit(s)
        return False

    def body(self) -> Any:
        """Visit the whole function body; the returned value (None for kernels)."""
        self.scope.setdefault(RET, None)
        self.visit_block(self.src.tree.body)
        ret = self.scope.get(RET)
        if isinstance(ret, Undefined):
            raise CompileError(f"'{self.src.fn.__name__}' returns a value on some paths only",
                               self.loc(self.src.tree),
                               "return a value (of one type) on every path")
        return ret

    # -- names -----------------------------------------------------------------------------
    def lookup(self, name: str) -> Any:
        if name in self.scope:
            v = self.scope[name]
            if isinstance(v, Undefined):
                raise CompileError(v.reason)
            return v
        if name in self.src.closure:
            return check_constant(name, self.src.closure[name])
        if name in self.src.globals:
            return check_constant(name, self.src.globals[name])
        if name in PY_BUILTINS:
            return PY_BUILTINS[name]
        raise CompileError(f"undefined name '{name}'",
                           hint="kernels see their parameters, local variables, and constants "
                                "or @tc.func functions defined at module level")

    def assign(self, target: ast.expr, value: Any) -> None:
        if isinstance(target, ast.Name):
            if isinstance(value, TVal) and value.value.name is None:
                value.value.name = target.id
            self.scope[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            if not isinstance(value, tuple):
                raise CompileError(f"cannot unpack {describe(value)} into "
                                   f"{len(target.elts)} names")
            if any(isinstance(t, ast.Starred) for t in target.elts):
                raise CompileError("starred assignment (a, *b = ...) is not supported")
            if len(value) != len(target.elts):
                raise CompileError(f"cannot unpack {len(value)} values into "
                                   f"{len(target.elts)} names")
            for t, v in zip(target.elts, value):
                self.assign(t, v)
        elif isinstance(target, ast.Subscript):
            raise CompileError("assignment to an element (x[...] = ...) is not supported",
                               hint="tiles are values: build a new one, e.g. with tc.where")
        else:
            raise CompileError(f"cannot assign to {type(target).__name__}")

    # -- statements ------------------------------------------------------------------------
    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return  # docstring
        self.visit(node.value)

    def visit_Pass(self, node: ast.Pass) -> None:
        return None

    def visit_Assign(self, node: ast.Assign) -> None:
        value = self.visit(node.value)
        for t in node.targets:
            self.assign(t, value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is None:
            raise CompileError("a declaration without a value is not supported in kernels")
        self.assign(node.target, self.visit(node.value))

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if not isinstance(node.target, ast.Name):
            raise CompileError("augmented assignment is supported on names only",
                               hint="tiles are values: x = x + y")
        old = self.lookup(node.target.id)
        self.assign(node.target, self.binop(_BINOPS[type(node.op)], old, self.visit(node.value)))

    def visit_Assert(self, node: ast.Assert) -> None:
        cond = self.visit(node.test)
        msg = self.visit(node.msg) if node.msg is not None else "assertion failed"
        if not isinstance(msg, str):
            raise CompileError("an assert message must be a string constant")
        if isinstance(cond, TVal):
            self.em.create("assert", self.em.to_bool(cond), attrs={"message": msg})
        elif not cond:
            raise CompileError(f"assertion is false at compile time: {msg}")

    def visit_Return(self, node: ast.Return) -> bool:
        self._rest = []
        if self.loop_depth:
            raise CompileError("`return` inside a loop is not supported",
                               hint="only `return` outside loops (e.g. an early bounds check) "
                                    "is supported")
        value = self.visit(node.value) if node.value is not None else None
        if self.is_kernel and value is not None:
            raise CompileError("a kernel cannot return a value",
                               hint="write results to a tensor with tc.store")
        self.scope[RET] = value
        return True

    # -- if ----------------------------------------------------------------------------------
    def visit_If(self, node: ast.If) -> bool:
        rest, self._rest = self._rest, []
        cond = self.visit(node.test)
        if not isinstance(cond, TVal):
            branch = node.body if cond else node.orelse
            if contains_return(branch):
                self.visit_block(list(branch) + rest)
                return True
            return self.visit_block(branch)
        c = self.scalar_condition(cond, "if")
        has_ret = contains_return(node.body) or contains_return(node.orelse)
        if has_ret and self.loop_depth:
            raise CompileError("`return` inside a loop is not supported")
        then_stmts = list(node.body) + (rest if has_ret else [])
        else_stmts = list(node.orelse) + (rest if has_ret else [])
        self.build_if(c, then_stmts, else_stmts, {RET} if has_ret else None, node)
        return has_ret

    def scalar_condition(self, cond: TVal, what: str) -> TVal:
        if cond.is_tile:
            raise CompileError(f"`{what}` needs a scalar condition, got {cond.type}",
                               hint="use tc.where(cond, a, b) to select elementwise, or "
                                    "reduce the condition with tc.max/tc.min")
        return self.em.to_bool(cond)

    def build_if(self, c: TVal, then_stmts: list, else_stmts: list,
                 merge_only: set[str] | None, node: ast.AST) -> None:
        saved = dict(self.scope)
        blocks, scopes = [Block(), Block()], []
        for block, stmts in zip(blocks, (then_stmts, else_stmts)):
            self.scope = dict(saved)
            with self.em.b.inside(block):
                self.visit_block(stmts)
            scopes.append(self.scope)
        self.scope = dict(saved)
        line = self.loc(node).line
        names = [n for n in dict.fromkeys(list(scopes[0]) + list(scopes[1]))
                 if scopes[0].get(n, _MISSING) is not saved.get(n, _MISSING)
                 or scopes[1].get(n, _MISSING) is not saved.get(n, _MISSING)]
        if merge_only is not None:
            names = [n for n in names if n in merge_only]
        merged: list[tuple[str, Any, Any, Type]] = []
        for n in names:
            tv, ev = scopes[0].get(n, _MISSING), scopes[1].get(n, _MISSING)
            if tv is _MISSING or ev is _MISSING or isinstance(tv, Undefined) or isinstance(
                    ev, Undefined):
                what = "returns a value" if n == RET else f"'{n}' is assigned"
                self.scope[n] = Undefined(n, f"{what} in only one branch of the `if` at line "
                                             f"{line}; assign it in both branches (or before "
                                             f"the `if`) to use it afterwards")
                continue
            if tv is ev or (not isinstance(tv, TVal) and not isinstance(ev, TVal)
                            and type(tv) is type(ev) and _same_const(tv, ev)):
                self.scope[n] = tv
                continue
            merged.append((n, tv, ev, self.unify(n, tv, ev, "the two branches of the `if`")))
        for block, i in zip(blocks, (1, 2)):
            with self.em.b.inside(block):
                vals = [self.coerce(m[i], m[3], m[0]) for m in merged]
                self.em.create("yield", vals)
        op = self.em.create("if", c, types=[m[3] for m in merged],
                            regions=[Region(blocks[0]), Region(blocks[1])],
                            names=[_ir_name(m[0]) for m in merged])
        for m, r in zip(merged, op.results):
            self.scope[m[0]] = TVal(r)

    def unify(self, name: str, a: Any, b: Any, where: str) -> Type:
        """The one type a variable takes where two values of it meet."""
        for v in (a, b):
            if not isinstance(v, TVal) and not is_number(v):
                label = "the return value" if name == RET else f"'{name}'"
                raise CompileError(f"{label} is {describe(a)} and {describe(b)} in {where}; "
                                   "only numbers and tiles may differ there")
        if isinstance(a, TVal) and isinstance(b, TVal):
            if a.type != b.type and a.dtype is not None and a.dtype == b.dtype:
                try:  # a scalar on one side and a tile on the other: broadcast the scalar
                    from tilec.frontend.values import broadcast_shapes
                    shape = broadcast_shapes(a.shape, b.shape)
                except CompileError:
                    shape = None
                if shape in (a.shape, b.shape):
                    return a.type if shape == a.shape and a.is_tile else b.type
            if a.type != b.type:
                label = "the return value" if name == RET else f"'{name}'"
                raise CompileError(f"{label} is {a.type} and {b.type} in {where}",
                                   hint="convert one side, e.g. with .to(dtype) or "
                                        "tc.broadcast_to")
            return a.type
        if isinstance(a, TVal) or isinstance(b, TVal):
            return (a if isinstance(a, TVal) else b).type
        d, _ = self.em.common(a, b)
        return ScalarType(d)

    def coerce(self, v: Any, t: Type, name: str) -> TVal:
        if isinstance(v, TVal):
            if v.type == t:
                return v
            d = t.element if isinstance(t, TileType) else t.dtype
            return self.em.broadcast(self.em.cast(v, d), t.shape if isinstance(t, TileType)
                                     else ())
        d = t.element if isinstance(t, TileType) else t.dtype
        if isinstance(v, float) and d.is_int:
            raise CompileError(f"'{name}' holds the float {v!r} where it must be {t}")
        return self.em.constant(v, d, t.shape if isinstance(t, TileType) else ())

    # -- loops -------------------------------------------------------------------------------
    def visit_For(self, node: ast.For) -> None:
        if node.orelse:
            raise CompileError("for/else is not supported in kernels")
        it = node.iter
        if isinstance(it, ast.Call):
            callee = self.visit(it.func)
            args = [self.visit(a) for a in it.args]
            kwargs = {k.arg: self.visit(k.value) for k in it.keywords}
            if callee is dsl.static_range:
                if kwargs or not 1 <= len(args) <= 3:
                    raise CompileError("tc.static_range takes 1 to 3 integer arguments")
                for a in args:
                    dsl.const_int(a, "a static_range bound")
                return self.unroll(node, range(*args))
            if isinstance(callee, PyBuiltin) and callee.name == "range":
                if kwargs or not 1 <= len(args) <= 3:
                    raise CompileError("range takes 1 to 3 arguments")
                return self.range_loop(node, args)
            seq = self.call(callee, args, kwargs)
        else:
            seq = self.visit(it)
        if isinstance(seq, (tuple, range)):
            return self.unroll(node, seq)
        raise CompileError(f"cannot iterate over {describe(seq)}",
                           hint="loop over range(...), tc.static_range(...) or a tuple of "
                                "constants")

    def unroll(self, node: ast.For, values: Any) -> None:
        self.loop_depth += 1
        try:
            for v in values:
                self.assign(node.target, v)
                self.visit_block(node.body)
        finally:
            self.loop_depth -= 1

    def range_loop(self, node: ast.For, args: list[Any]) -> None:
        if not isinstance(node.target, ast.Name):
            raise CompileError("the loop variable of a range loop must be a single name")
        if len(args) == 1:
            args = [0, args[0], 1]
        elif len(args) == 2:
            args = [args[0], args[1], 1]
        for a in args:
            bad = isinstance(a, TVal) and (a.is_tile or a.dtype is None or not a.dtype.is_int)
            if bad or (not isinstance(a, TVal) and (isinstance(a, bool) or not isinstance(a, int))):
                raise CompileError(f"range bounds must be integer scalars, got {describe(a)}")
        if isinstance(args[2], int) and args[2] == 0:
            raise CompileError("range step must not be zero")
        d, _ = self.em.common(*args)
        lb, ub, step = (self.em.value_as(a, d, ()) for a in args)
        target = node.target.id
        iv = ScalarType(d)

        def make_blocks(names, types_):
            return [Block([iv] + types_, [target] + [_ir_name(n) for n in names])]

        def bind(blocks, names):
            self.scope[target] = TVal(blocks[0].args[0])
            for n, a in zip(names, blocks[0].args[1:]):
                self.scope[n] = TVal(a)
            return True

        op = self.loop(node, node.body, make_blocks, bind, None,
                       lambda inits, tys, blocks, names: self.em.create(
                           "for", lb, ub, step, inits, types=tys, regions=[Region(blocks[0])],
                           names=[_ir_name(n) for n in names]), exclude={target})
        del op

    def visit_While(self, node: ast.While) -> None:
        if node.orelse:
            raise CompileError("while/else is not supported in kernels")

        def make_blocks(names, types_):
            labels = [_ir_name(n) for n in names]
            return [Block(types_, labels), Block(types_, labels)]

        def bind(blocks, names):
            for n, a in zip(names, blocks[0].args):
                self.scope[n] = TVal(a)
            with self.em.b.inside(blocks[0]):
                cond = self.visit(node.test)
                if not isinstance(cond, TVal):
                    if cond:
                        raise CompileError("this `while` condition is always true and the "
                                           "loop would never end (`break` is not supported)")
                    return False
                c = self.scalar_condition(cond, "while")
                self.em.create("condition", c, list(blocks[0].args))
            for n, a in zip(names, blocks[1].args):
                self.scope[n] = TVal(a)
            return True

        self.loop(node, node.body, make_blocks, bind, 1,
                  lambda inits, tys, blocks, names: self.em.create(
                      "while", inits, types=tys, regions=[Region(b) for b in blocks],
                      names=[_ir_name(n) for n in names]), exclude=set())

    def loop(self, node, body, make_blocks, bind, body_block, build, exclude) -> Any:
        """Shared by for and while: find the carried variables, settle their types (a
        variable that starts as a Python number takes the type the body gives it), build
        the regions and the op, and bind the results."""
        line = self.loc(node).line
        assigned = [n for n in assigned_names(body) if n not in exclude]
        carried = []
        for n in assigned:
            v = self.scope.get(n, _MISSING)
            if v is _MISSING or isinstance(v, Undefined):
                continue
            if not isinstance(v, TVal) and not is_number(v):
                raise CompileError(f"'{n}' ({describe(v)}) is reassigned inside the loop at line "
                                   f"{line}; only numbers and tiles can change in a loop")
            carried.append(n)
        inits = [self.scope[n] for n in carried]
        types_ = [v.type if isinstance(v, TVal) else ScalarType(self.em.common(v)[0])
                  for v in inits]
        body_index = body_block if body_block is not None else 0
        for _attempt in range(4):
            blocks = make_blocks(carried, types_)
            saved = dict(self.scope)
            try:
                if not bind(blocks, carried):
                    for b in blocks:
                        discard(b)
                    return None
                for n, init in zip(carried, inits):
                    if not isinstance(init, TVal) or init.value in self.provisional:
                        self.provisional.add(self.scope[n].value)
                self.loop_depth += 1
                try:
                    with self.em.b.inside(blocks[body_index]):
                        self.visit_block(body)
                finally:
                    self.loop_depth -= 1
                outs = [self.scope.get(n) for n in carried]
            finally:
                self.scope = saved
            new_types = []
            for n, t, o, init in zip(carried, types_, outs, inits):
                if isinstance(o, Undefined):
                    raise CompileError(o.reason)
                if isinstance(o, TVal) and o.type != t:
                    if isinstance(init, TVal) and init.value not in self.provisional:
                        raise CompileError(
                            f"'{n}' is {t} before the loop at line {line} but {o.type} after "
                            "one iteration; a loop-carried variable keeps one type",
                            hint="initialise it with the type the loop gives it, e.g. "
                                 "tc.zeros(shape, dtype) or .to(dtype)")
                    new_types.append(o.type)
                elif not isinstance(o, TVal) and not is_number(o):
                    raise CompileError(f"'{n}' becomes {describe(o)} inside the loop at line "
                                       f"{line}; only numbers and tiles can change in a loop")
                else:
                    new_types.append(t)
            if new_types == types_:
                with self.em.b.inside(blocks[body_index]):
                    self.em.create("yield", [self.coerce(o, t, n) for n, t, o in
                                             zip(carried, types_, outs)])
                break
            for b in blocks:
                discard(b)
            types_ = new_types
        else:
            raise CompileError("the types of the loop-carried variables do not settle")
        init_vals = [self.coerce(v, t, n) for n, v, t in zip(carried, inits, types_)]
        op = build(init_vals, types_, blocks, carried)
        for n, r in zip(carried, op.results):
            self.scope[n] = TVal(r)
        for n in assigned_names(body):
            if n in carried:
                continue
            prev = self.scope.get(n, _MISSING)
            if prev is _MISSING or isinstance(prev, Undefined) or n in exclude:
                self.scope[n] = Undefined(
                    n, f"'{n}' is assigned inside the loop at line {line} but not defined "
                       "before it; define it before the loop to use it afterwards")
        return op

    # -- expressions -------------------------------------------------------------------------
    def visit_Constant(self, node: ast.Constant) -> Any:
        if isinstance(node.value, (bytes, complex)) or node.value is Ellipsis:
            raise CompileError(f"{type(node.value).__name__} constants are not supported")
        return node.value

    def visit_Name(self, node: ast.Name) -> Any:
        return self.lookup(node.id)

    def visit_Tuple(self, node: ast.Tuple) -> tuple:
        out: list[Any] = []
        for e in node.elts:
            if isinstance(e, ast.Starred):
                v = self.visit(e.value)
                if not isinstance(v, tuple):
                    raise CompileError(f"cannot unpack {describe(v)} with *")
                out.extend(v)
            else:
                out.append(self.visit(e))
        return tuple(out)

    visit_List = visit_Tuple  # lists in kernels are tuples: tc.zeros([BM, BN])

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        obj = self.visit(node.value)
        attr = node.attr
        if isinstance(obj, types.ModuleType):
            if not hasattr(obj, attr):
                raise CompileError(f"module '{obj.__name__}' has no attribute '{attr}'")
            return check_constant(f"{obj.__name__}.{attr}", getattr(obj, attr))
        if isinstance(obj, TensorArg):
            return self.tensor_attr(obj, attr)
        if isinstance(obj, TVal):
            return self.tile_attr(obj, attr)
        if isinstance(obj, DType) and not attr.startswith("_"):
            v = getattr(obj, attr, _MISSING)
            if v is not _MISSING and (is_number(v) or isinstance(v, str)):
                return v
        raise CompileError(f"{describe(obj)} has no attribute '{attr}' usable in a kernel")

    def tensor_attr(self, t: TensorArg, attr: str) -> Any:
        em = self.em
        if attr == "ptr":
            return em.op("tensor_ptr", t)
        if attr == "dtype":
            return t.dtype
        if attr in ("ndim", "rank"):
            return t.rank
        if attr == "shape":
            return tuple(em.op("tensor_dim", t, attrs={"axis": i}) for i in range(t.rank))
        if attr == "strides":
            return tuple(self.tensor_stride(t, i) for i in range(t.rank))
        if attr == "stride":
            return BoundMethod(lambda cg, args, kw: cg.tensor_stride(t, *args, **kw), t, attr)
        raise CompileError(f"tensor parameter {t.name} has no attribute '{attr}'",
                           hint="tensors have .ptr, .shape, .stride(i), .strides, .dtype, "
                                ".ndim")

    def tensor_stride(self, t: TensorArg, axis: Any) -> Any:
        a = dsl.norm_axis(axis, t.rank)
        if t.contiguous and a == t.rank - 1:
            return 1  # specialised: the last dimension is contiguous
        return self.em.op("tensor_stride", t, attrs={"axis": a})

    def tile_attr(self, x: TVal, attr: str) -> Any:
        if attr == "dtype":
            if x.dtype is None:
                raise CompileError(f"{x.type} has no dtype (it holds pointers)")
            return x.dtype
        if attr == "shape":
            return x.shape
        if attr in ("ndim", "rank"):
            return len(x.shape)
        if attr == "numel":
            return x.type.numel if x.is_tile else 1
        if attr == "T":
            return self.call(dsl.trans, [x], {})
        if attr in dsl.TILE_METHODS:
            return BoundMethod(dsl.TILE_METHODS[attr], x, attr)
        raise CompileError(f"{x.type} has no attribute '{attr}'",
                           hint="tiles have .dtype, .shape, .T, .to(), .view(), .reshape(), "
                                ".sum() and the other reductions")

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        obj = self.visit(node.value)
        if isinstance(obj, TVal):
            return self.index_tile(obj, node.slice)
        idx = self.visit(node.slice)
        if isinstance(obj, (tuple, str)):
            if isinstance(idx, TVal):
                raise CompileError("a tuple index must be a compile-time integer")
            try:
                return obj[idx]
            except (IndexError, TypeError) as e:
                raise CompileError(f"bad index {idx!r} into {describe(obj)}: {e}") from None
        raise CompileError(f"{describe(obj)} cannot be indexed")

    def visit_Slice(self, node: ast.Slice) -> slice:
        parts = [self.visit(p) if p is not None else None
                 for p in (node.lower, node.upper, node.step)]
        for p in parts:
            if p is not None and not isinstance(p, int):
                raise CompileError("slice bounds must be compile-time integers")
        return slice(*parts)

    def index_tile(self, x: TVal, sl: ast.expr) -> TVal:
        if x.is_tile and x.type.space == SHARED:
            i = self.visit(sl)
            return self.em.op("shared_index", x, self.em.materialize(i),
                              types=[TileType(x.shape[1:], x.element, None, SHARED)])
        items = sl.elts if isinstance(sl, ast.Tuple) else [sl]
        dim, out = 0, x
        for it in items:
            if isinstance(it, ast.Constant) and it.value is None:
                out = self.call(dsl.expand_dims, [out, dim], {})
                dim += 1
            elif isinstance(it, ast.Slice) and it.lower is None and it.upper is None \
                    and it.step is None:
                dim += 1
            else:
                raise CompileError("tiles can only be indexed with None and ':' (to add "
                                   "dimensions, as in x[:, None])",
                                   hint="select elements with tc.where or reduce them")
        if dim > len(out.shape):
            raise CompileError(f"too many indices for {x.type}")
        return out

    def visit_Call(self, node: ast.Call) -> Any:
        fn = self.visit(node.func)
        args: list[Any] = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                v = self.visit(a.value)
                if not isinstance(v, tuple):
                    raise CompileError(f"cannot unpack {describe(v)} with *")
                args.extend(v)
            else:
                args.append(self.visit(a))
        kwargs: dict[str, Any] = {}
        for k in node.keywords:
            if k.arg is None:
                raise CompileError("**kwargs in calls are not supported in kernels")
            kwargs[k.arg] = self.visit(k.value)
        return self.call(fn, args, kwargs)

    def call(self, fn: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        impl = dsl.impl_of(fn)
        if isinstance(fn, BoundMethod):
            if callable(fn.fn) and dsl.impl_of(fn.fn) is None:
                return fn.fn(self, args, kwargs)
            return self.call(fn.fn, [fn.self_] + list(args), kwargs)
        if impl is not None:
            name = fn.__name__
            try:
                inspect.signature(impl).bind(self.em, *args, **kwargs)
            except TypeError as e:
                raise CompileError(f"tc.{name}(): {e}") from None
            self.em.codegen = self
            return impl(self.em, *args, **kwargs)
        if isinstance(fn, PyBuiltin):
            return fn.fn(self, args, kwargs)
        if isinstance(fn, JITFunction):
            return self.inline(fn, args, kwargs)
        if isinstance(fn, DType):
            if len(args) == 1 and not kwargs:
                return self.call(dsl.cast, [args[0], fn], {})
        raise CompileError(f"cannot call {describe(fn)} inside a kernel",
                           hint="only tc.* operations and @tc.func functions can be called")

    def inline(self, f: JITFunction, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Inline a @tc.func (or another kernel) at this point, with these argument values."""
        fn = f.fn
        if fn in self.stack:
            raise CompileError(f"recursive call to @tc.func '{fn.__name__}': device functions "
                               "are inlined, so they cannot call themselves",
                               hint="rewrite the recursion as a loop")
        sig = inspect.signature(fn)
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as e:
            raise CompileError(f"wrong arguments for {fn.__name__}(): {e}") from None
        bound.apply_defaults()
        src = get_source(fn)
        for name, p in sig.parameters.items():
            kind = annotation_kind(p.annotation, src.globals)
            v = bound.arguments.get(name)
            if kind == "constexpr" and isinstance(v, (TVal, TensorArg)):
                raise CompileError(f"parameter '{name}' of {fn.__name__} is a tc.constexpr "
                                   f"but got the runtime value {describe(v)}")
            if isinstance(v, constexpr):
                bound.arguments[name] = v.value
        scope = dict(bound.arguments)
        cg = CodeGen(self.em, src, scope, self.stack + (fn,), is_kernel=False)
        return cg.body()

    # -- operators ------------------------------------------------------------------------
    def visit_BinOp(self, node: ast.BinOp) -> Any:
        return self.binop(_BINOPS[type(node.op)], self.visit(node.left), self.visit(node.right))

    def binop(self, op: str, a: Any, b: Any) -> Any:
        if not isinstance(a, TVal) and not isinstance(b, TVal):
            if op == "matmul":
                raise CompileError("@ needs tiles")
            try:
                return _PYOPS[op](a, b)
            except ZeroDivisionError:
                raise CompileError("division by zero in a compile-time expression") from None
            except TypeError as e:
                raise CompileError(f"cannot apply '{op}' to {describe(a)} and {describe(b)}: "
                                   f"{e}") from None
        em = self.em
        for x in (a, b):
            if not isinstance(x, TVal) and not is_number(x):
                raise CompileError(f"cannot apply '{op}' to {describe(a)} and {describe(b)}")
        if isinstance(a, TVal) and a.is_pointer or isinstance(b, TVal) and b.is_pointer:
            if op == "add":
                return em.addptr(a, b) if isinstance(a, TVal) and a.is_pointer else em.addptr(b, a)
            if op == "sub" and isinstance(a, TVal) and a.is_pointer:
                return em.addptr(a, b, negate=True)
            raise CompileError(f"pointers support + and - with integer offsets, not '{op}'")
        if op == "truediv":
            return em.truediv(a, b)
        if op == "floordiv":
            return em.floordiv(a, b)
        if op == "matmul":
            return self.call(dsl.dot, [a, b], {})
        if op == "pow":
            return self.power(a, b)
        return em.binary(op, a, b)

    def power(self, a: Any, b: Any) -> Any:
        if isinstance(b, TVal) or isinstance(b, bool) or not isinstance(b, int):
            raise CompileError("** needs a compile-time integer exponent",
                               hint="for other powers use tc.exp2(y * tc.log2(x))")
        x = self.em.materialize(a)
        if b < 0:
            if not x.dtype.is_float:
                raise CompileError("negative powers need a float base")
            return self.em.truediv(1.0, self.power(x, -b))
        if b == 0:
            return self.em.value_as(1, x.dtype, x.shape)
        result, base, n = None, x, b
        while n:
            if n & 1:
                result = base if result is None else self.em.binary("mul", result, base)
            n >>= 1
            if n:
                base = self.em.binary("mul", base, base)
        return result

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        v = self.visit(node.operand)
        em = self.em
        if not isinstance(v, TVal):
            ops = {ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos,
                   ast.Invert: operator.invert}
            try:
                return ops[type(node.op)](v)
            except TypeError as e:
                raise CompileError(f"bad operand: {e}") from None
        if v.is_pointer:
            raise CompileError(f"unary operators do not apply to pointers {v.type}")
        if isinstance(node.op, ast.UAdd):
            return v
        if isinstance(node.op, ast.Not):
            return em.op("not", em.to_bool(v))
        if isinstance(node.op, ast.Invert):
            if v.dtype.is_float:
                raise CompileError(f"~ needs integers or bools, got {v.type}")
            return em.op("not", v)
        if v.dtype.is_bool:
            v = em.cast(v, dt.int32)
        from tilec.frontend.promotion import arith_dtype
        return em.op("neg", em.cast(v, arith_dtype(v.dtype)))

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        is_and = isinstance(node.op, ast.And)
        result = self.visit(node.values[0])
        for e in node.values[1:]:
            if not isinstance(result, TVal):
                if bool(result) != is_and:  # short-circuit at compile time
                    return result
                result = self.visit(e)
                continue
            rhs = self.visit(e)
            if not isinstance(rhs, TVal) and bool(rhs) == is_and:
                result = self.em.to_bool(result)
                continue
            result = self.em.binary("and" if is_and else "or", self.em.to_bool(result),
                                    self.em.to_bool(rhs))
        return result

    def visit_Compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        result = None
        for op, right_node in zip(node.ops, node.comparators):
            right = self.visit(right_node)
            if isinstance(left, TVal) or isinstance(right, TVal):
                if type(op) not in _CMPOPS:
                    raise CompileError(f"'{type(op).__name__}' does not apply to tiles")
                if any(isinstance(x, TVal) and x.is_pointer for x in (left, right)):
                    raise CompileError("pointers cannot be compared")
                r = self.em.compare(_CMPOPS[type(op)], left, right)
            else:
                try:
                    r = _PYCMP[type(op)](left, right)
                except TypeError as e:
                    raise CompileError(f"cannot compare {describe(left)} and "
                                       f"{describe(right)}: {e}") from None
            if result is None:
                result = r
            elif isinstance(result, TVal) or isinstance(r, TVal):
                result = self.em.binary("and", self.em.to_bool(result), self.em.to_bool(r))
            else:
                result = result and r
            left = right
        return result

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        cond = self.visit(node.test)
        if not isinstance(cond, TVal):
            return self.visit(node.body if cond else node.orelse)
        return self.call(dsl.where, [cond, self.visit(node.body), self.visit(node.orelse)], {})


def _same_const(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


def _ir_name(n: str) -> str | None:
    return None if n == RET else n
