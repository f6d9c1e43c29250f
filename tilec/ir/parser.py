"""Parse textual tile IR (the format `tilec.ir.printer` writes) into a Module.

Errors carry the file, line and column of the offending text. The parser checks that every
value is defined before it is used; types and shapes are left to the verifier.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
from pathlib import Path

import lark

from tilec.config import cache_dir
from tilec.files import write_atomically
from tilec.errors import DTypeError, IRError, Location, TilecError
from tilec.ir import ops as _ops  # noqa: F401  (registers every op)
from tilec.ir.core import OPS, Block, Function, Module, Operation, Region, SymbolRef, Value
from tilec.ir.dtypes import dtype as parse_dtype
from tilec.ir.types import SHARED, PointerType, ScalarType, TensorType, TileType, Type

_GRAMMAR = (Path(__file__).parent / "grammar.lark").read_text()
_OPTIONS = dict(parser="lalr", propagate_positions=True, maybe_placeholders=True)


@functools.cache
def _parser() -> lark.Lark:
    """The LALR parser, made on first use: building its tables takes ~0.25 s, which every
    `import tilec` and every tuning worker's start-up would pay, so they are kept in the cache
    directory (keyed by the grammar, the options and lark's version) and loaded in ~0.02 s."""
    digest = hashlib.sha256(f"{lark.__version__}\n{_OPTIONS}\n{_GRAMMAR}".encode()).hexdigest()
    path = cache_dir() / f"ir-parser-{digest[:16]}.lark"
    try:
        with open(path, "rb") as f:
            return lark.Lark.load(f)
    except Exception:  # absent, or unreadable: build it (and replace it)
        pass
    parser = lark.Lark(_GRAMMAR, **_OPTIONS)
    data = io.BytesIO()
    parser.save(data)
    try:
        write_atomically(path, data.getvalue())
    except OSError:  # a read-only cache directory costs time, nothing else
        pass
    return parser


def parse_module(text: str, file: str = "<string>") -> Module:
    """Parse a whole `.tile` text; raise IRError with file:line:col on bad input."""
    lines = text.splitlines()
    if not text.endswith("\n"):
        text += "\n"
    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedInput as e:
        line, col = getattr(e, "line", 1), getattr(e, "column", 1)
        if line < 1:  # lark reports the end of input as line -1
            line = len(lines)
            col = len(lines[-1]) + 1 if lines else 1
        raise IRError(f"syntax error: {_unexpected(e, text)}", _loc(file, lines, line, col),
                      _expected(e)) from None
    return _Builder(file, lines).module(tree)


# How syntax errors name the tokens the grammar wanted, instead of lark's terminal names.
_READABLE = {"VALUE": "a %value", "SYMBOL": "an @symbol", "OPNAME": "a name", "_NL": "a new line",
             "SIGNED_INT": "an integer", "INT": "an integer", "FLOAT": "a float",
             "STRING": "a string", "TILE_DIMS": "tile dimensions (64x)",
             "TENSOR_DIMS": "tensor dimensions (?x)", "LAYOUT_TEXT": "a layout", "$END": "the end"}


def _unexpected(e: lark.exceptions.UnexpectedInput, text: str) -> str:
    token = getattr(e, "token", None)
    if token is None:  # no token matched: show the character
        pos = getattr(e, "pos_in_stream", None)
        char = text[pos] if pos is not None and 0 <= pos < len(text) else None
        return f"unexpected character {char!r}" if char else "unexpected character"
    if token.type == "$END":
        return "unexpected end of input (is a '}' missing?)"
    if not str(token).strip():
        return "unexpected end of line"
    shown = str(token).split()[0] if token.type == "LAYOUT_TEXT" else str(token).strip()
    return f"unexpected '{shown}'"


def _expected(e: lark.exceptions.UnexpectedInput) -> str | None:
    names = getattr(e, "expected", None) or getattr(e, "allowed", None) or []
    terminals = {t.name: t for t in _parser().terminals}
    shown = set()
    for n in names:
        t = terminals.get(n)
        if n in _READABLE:
            shown.add(_READABLE[n])
        elif t is not None and t.pattern.type == "str":
            shown.add(f"'{t.pattern.value}'")
        else:
            shown.add(n.lower())
    return f"expected one of: {', '.join(sorted(shown))}" if shown else None


def parse_file(path: str | Path) -> Module:
    path = Path(path)
    return parse_module(path.read_text(), str(path))


def _loc(file: str, lines: list[str], line: int, col: int) -> Location:
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    return Location(file, line, col, text)


class _Builder:
    def __init__(self, file: str, lines: list[str]):
        self.file = file
        self.lines = lines
        self.scope: dict[str, Value] = {}

    def at(self, node) -> Location:
        meta = node.meta if hasattr(node, "meta") else node
        return _loc(self.file, self.lines, getattr(meta, "line", 1), getattr(meta, "column", 1))

    def tok_loc(self, tok: lark.Token) -> Location:
        return _loc(self.file, self.lines, tok.line, tok.column)

    # -- structure -------------------------------------------------------------------
    def module(self, tree) -> Module:
        m = Module(source=self.file)
        names = set()
        for node in tree.children:
            if isinstance(node, lark.Tree) and node.data == "func":
                f = self.function(node)
                if f.name in names:
                    raise IRError(f"function @{f.name} is defined twice", f.loc)
                names.add(f.name)
                m.functions.append(f)
        return m

    def function(self, node) -> Function:
        sym, *rest = node.children
        self.scope = {}
        args, results, attrs, body = [], [], {}, None
        for child in rest:
            if child is None:
                continue
            if isinstance(child, lark.Tree) and child.data == "arg":
                args.append(child)
            elif isinstance(child, lark.Tree) and child.data == "attr_dict":
                attrs = self.attr_dict(child)
            elif isinstance(child, lark.Tree) and child.data == "body":
                body = child
            else:
                results.append(self.type(child))
        block = Block()
        arg_attrs = []
        for a in args:
            block.args.append(self.define_arg(a, block, len(block.args)))
            arg_attrs.append(self.attr_dict(a.children[2]) if a.children[2] is not None else {})
        region = Region(block)
        self.fill(block, body)
        return Function(sym[1:], region, results, attrs, arg_attrs, self.at(node))

    def define_arg(self, node, block: Block, index: int):
        from tilec.ir.core import BlockArgument
        tok, type_node = node.children[0], node.children[1]
        value = BlockArgument(self.type(type_node), block, index, tok[1:])
        self.define(tok, value)
        return value

    def define(self, tok: lark.Token, value: Value) -> None:
        if str(tok) in self.scope:
            raise IRError(f"value {tok} is defined twice", self.tok_loc(tok),
                          "every value name must be unique within its function")
        self.scope[str(tok)] = value

    def use(self, tok: lark.Token) -> Value:
        try:
            return self.scope[str(tok)]
        except KeyError:
            raise IRError(f"use of undefined value {tok}", self.tok_loc(tok)) from None

    def region(self, body) -> Region:
        block = Block()
        header = next((c for c in body.children if isinstance(c, lark.Tree) and c.data == "header"), None)
        if header is not None:
            for a in header.children:
                if a is not None:
                    block.args.append(self.define_arg(a, block, len(block.args)))
        self.fill(block, body)
        return Region(block)

    def fill(self, block: Block, body) -> None:
        for stmt in body.children:
            if isinstance(stmt, lark.Tree) and stmt.data == "stmt":
                block.append(self.stmt(stmt))

    def stmt(self, node) -> Operation:
        results_node, opname, *rest = node.children
        loc = self.tok_loc(opname)
        cls = OPS.get(str(opname))
        if cls is None:
            raise IRError(f"unknown op '{opname}'", loc, _close_ops(str(opname)))
        items, attrs, types, bodies, src_loc = [], {}, [], [], None
        for child in rest:
            if child is None:
                continue
            if isinstance(child, lark.Tree):
                if child.data in ("single", "group", "keyword"):
                    items.append(child)
                elif child.data == "attr_dict":
                    attrs = self.attr_dict(child)
                elif child.data == "body":
                    bodies.append(child)
                elif child.data == "loc":
                    f, line, col = child.children
                    src_loc = Location(json.loads(f), int(line), int(col))
                else:
                    types.append(self.type(child))
        groups = self.operand_groups(cls, items, loc)
        regions = [self.region(b) for b in bodies]
        names = list(results_node.children) if results_node is not None else []
        if len(names) != len(types):
            raise IRError(f"'{opname}' defines {len(names)} value(s) but lists {len(types)} "
                          f"result type(s)", loc, "write the result types after ':'")
        try:
            op = cls(groups, types, attrs, regions, src_loc or loc, [n[1:] for n in names])
        except IRError as e:
            raise IRError(e.message, loc, e.hint) from None
        for tok, r in zip(names, op.results):
            self.define(tok, r)
        return op

    def operand_groups(self, cls, items, loc: Location) -> list:
        keyword = {}
        positional = []
        for it in items:
            if it.data == "keyword":
                keyword[str(it.children[0])] = self.use(it.children[1])
            elif it.data == "single":
                positional.append(("one", self.use(it.children[0])))
            else:
                positional.append(("group", [self.use(t) for t in it.children if t is not None]))
        groups = []
        pos = iter(positional)
        trailing = _trailing_variadic(cls)
        for spec in cls._specs:
            if spec.kind == "optional":
                groups.append(keyword.pop(spec.name, None))
                continue
            if spec is trailing:  # printed bare: the remaining single operands
                rest = list(pos)
                if len(rest) == 1 and rest[0][0] == "group":
                    groups.append(rest[0][1])
                    continue
                if any(kind != "one" for kind, _ in rest):
                    raise IRError(f"'{cls.name}' expects single operands here", loc,
                                  f"operands: {_signature(cls)}")
                groups.append([v for _, v in rest])
                continue
            item = next(pos, None)
            want = "one" if spec.kind == "one" else "group"
            if item is None or item[0] != want:
                form = f"%{spec.name}" if want == "one" else f"[%{spec.name}...]"
                raise IRError(f"'{cls.name}' expects operand {form} here",
                              loc, f"operands: {_signature(cls)}")
            groups.append(item[1])
        if next(pos, None) is not None or keyword:
            extra = f" '{next(iter(keyword))}'" if keyword else ""
            raise IRError(f"too many operands for '{cls.name}'{extra}", loc,
                          f"operands: {_signature(cls)}")
        return groups

    # -- attributes and types -----------------------------------------------------------
    def attr_dict(self, node) -> dict:
        out = {}
        for a in node.children:
            if a is None:
                continue
            key, value = a.children
            if str(key) in out:
                raise IRError(f"attribute '{key}' is given twice", self.tok_loc(key))
            out[str(key)] = self.value(value)
        return out

    def value(self, node):
        kind = node.data
        if kind == "int":
            return int(node.children[0])
        if kind == "float":
            return float(node.children[0])
        if kind in ("true", "false"):
            return kind == "true"
        if kind == "string":
            return json.loads(node.children[0])
        if kind == "symbol":
            return SymbolRef(node.children[0][1:])
        return [self.value(c) for c in node.children if c is not None]

    def dtype(self, tok: lark.Token):
        try:
            return parse_dtype(str(tok))
        except DTypeError as e:
            raise IRError(e.message, self.tok_loc(tok), e.hint) from None

    def type(self, node) -> Type:
        kind = node.data
        if kind == "scalar_type":
            return ScalarType(self.dtype(node.children[0]))
        if kind == "ptr_type":
            return PointerType(self.dtype(node.children[0]))
        if kind == "tensor_type":
            dims, name = node.children
            rank = str(dims).count("?") if dims is not None else 0
            return TensorType(self.dtype(name), rank)
        dims, elem, layout_tok = node.children
        shape = tuple(int(d) for d in str(dims).split("x") if d)
        element = self.type(elem)
        element = element.dtype if isinstance(element, ScalarType) else element
        layout, space = None, "register"
        if layout_tok is not None:
            text = str(layout_tok).strip()
            if text == SHARED or text.startswith(SHARED + " "):
                space, text = SHARED, text[len(SHARED):].strip()
            if text:
                layout = self.layout(text, layout_tok)
        return TileType(shape, element, layout, space)

    def layout(self, text: str, tok: lark.Token):
        from tilec.ir.layout import parse_layout
        try:
            return parse_layout(text)
        except TilecError as e:
            raise IRError(f"bad layout '{text}': {e.message}", self.tok_loc(tok), e.hint) from None


def _trailing_variadic(cls):
    """The variadic group printed without brackets: the last non-optional group."""
    required = [s for s in cls._specs if s.kind != "optional"]
    return required[-1] if required and required[-1].kind == "variadic" else None


def _signature(cls) -> str:
    parts = []
    trailing = _trailing_variadic(cls)
    for s in cls._specs:
        if s is trailing:
            parts.append(f"%{s.name}...")
            continue
        parts.append({"one": f"%{s.name}", "variadic": f"[%{s.name}...]",
                      "optional": f"[{s.name} %v]"}[s.kind])
    return ", ".join(parts) or "none"


def _close_ops(name: str) -> str | None:
    import difflib
    close = difflib.get_close_matches(name, list(OPS), n=3)
    return f"did you mean {', '.join(close)}?" if close else None
