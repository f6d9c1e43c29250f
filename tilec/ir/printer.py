"""Textual form of the tile IR; `tilec.ir.parser` reads it back.

    func @add(%x: tensor<?xf16>, %y: tensor<?xf16>) attrs {BLOCK = 1024} {
      %pid = program_id {axis = 0} : i32
      %a = load_view %x, [%off] : tile<1024xf16>
      ...
      return
    }

Every op prints the same way: results, mnemonic, operands (a single operand as `%v`, a
variadic group as `[%a, %b]`, an optional one as `keyword %v`), attributes that differ from
their defaults, result types after `:`, then regions. Values keep the names the frontend
gave them where those are unique; `canonical=True` numbers every value instead, which is
what structural equality compares.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

from tilec.ir.core import Function, Module, Operation, Region, SymbolRef, Value

_NAME_OK = re.compile(r"[^A-Za-z0-9_.]")


class _Namer:
    def __init__(self, canonical: bool):
        self.canonical = canonical
        self.names: dict[Value, str] = {}
        self.used: set[str] = set()
        self.counter = 0

    def define(self, v: Value) -> str:
        hint = None if self.canonical else v.name
        if hint:
            base = _NAME_OK.sub("_", hint) or "v"
            name, k = base, 1
            while name in self.used:
                name, k = f"{base}_{k}", k + 1
        else:
            while str(self.counter) in self.used:
                self.counter += 1
            name = str(self.counter)
            self.counter += 1
        self.used.add(name)
        self.names[v] = name
        return "%" + name

    def __call__(self, v: Value) -> str:
        if v not in self.names:  # a use outside its scope: print something, the verifier reports it
            return "%<undefined>"
        return "%" + self.names[v]


def format_attr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    if isinstance(value, SymbolRef):
        return str(value)
    raise TypeError(f"attribute value {value!r} has no textual form")


def format_attr_dict(attrs: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k} = {format_attr(v)}" for k, v in attrs.items()) + "}"


class _Printer:
    def __init__(self, canonical: bool, locations: bool):
        self.namer = _Namer(canonical)
        self.locations = locations
        self.lines: list[str] = []

    def function(self, f: Function) -> None:
        args = []
        for i, a in enumerate(f.args):
            text = f"{self.namer.define(a)}: {a.type}"
            extra = f.arg_attrs[i] if i < len(f.arg_attrs) else {}
            if extra:
                text += " " + format_attr_dict(extra)
            args.append(text)
        head = f"func @{f.name}({', '.join(args)})"
        if f.result_types:
            head += " -> " + ", ".join(map(str, f.result_types))
        if f.attrs:
            head += " attrs " + format_attr_dict(f.attrs)
        self.lines.append(head + " {")
        self.block_ops(f.body, 1)
        self.lines.append("}")

    def block_ops(self, region: Region, depth: int) -> None:
        for op in region.block.ops:
            self.op(op, depth)

    def op(self, op: Operation, depth: int) -> None:
        pad = "  " * depth
        parts = []
        if op.results:
            parts.append(", ".join(self.namer.define(r) for r in op.results) + " =")
        parts.append(op.name)
        items = []
        groups = op.operand_groups()
        trailing = [s for s, _ in groups if s.kind != "optional"][-1:]
        for spec, group in groups:
            if spec.kind == "one":
                items.append(self.namer(group[0]))
            elif spec.kind == "variadic" and [spec] == trailing:
                items.extend(self.namer(v) for v in group)  # last group: no brackets needed
            elif spec.kind == "variadic":
                items.append("[" + ", ".join(self.namer(v) for v in group) + "]")
            elif group:
                items.append(f"{spec.name} {self.namer(group[0])}")
        text = " ".join(parts)
        if items:
            text += " " + ", ".join(items)
        shown = {k: v for k, v in op.attrs.items()
                 if k not in op.attr_specs or op.attr_specs[k].required or v != op.attr_specs[k].default}
        if shown:
            text += " " + format_attr_dict(shown)
        if op.results:
            text += " : " + ", ".join(str(r.type) for r in op.results)
        if not op.regions:
            self.lines.append(pad + text + self.loc(op))
            return
        self.lines.append(pad + text + " {")
        for i, region in enumerate(op.regions):
            block = region.block
            if block.args:
                header = ", ".join(f"{self.namer.define(a)}: {a.type}" for a in block.args)
                self.lines.append(f"{pad}^({header}):")
            self.block_ops(region, depth + 1)
            last = i == len(op.regions) - 1
            self.lines.append(pad + ("}" + self.loc(op) if last else "} {"))

    def loc(self, op: Operation) -> str:
        if not self.locations or op.loc is None:
            return ""
        return f" loc({json.dumps(op.loc.file)}:{op.loc.line}:{op.loc.col})"


def print_function(f: Function, canonical: bool = False, locations: bool = False) -> str:
    p = _Printer(canonical, locations)
    p.function(f)
    return "\n".join(p.lines) + "\n"


def print_module(m: Module, canonical: bool = False, locations: bool = False) -> str:
    """The module as text; `locations=True` adds each op's source location."""
    return "\n".join(print_function(f, canonical, locations) for f in m.functions)


def print_op(op: Operation) -> str:
    """One op (and its regions) for messages; operands defined elsewhere print as %<undefined>."""
    p = _Printer(False, False)
    p.op(op, 0)
    return "\n".join(p.lines)
