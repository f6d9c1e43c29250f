"""The `tilec` command line: compile kernels, show layouts, report the environment.

    tilec compile examples/softmax.py::softmax --emit ir
    tilec compile kernel.tile --emit ir --dump-passes
    tilec layout show "spatial(4,8)*local(2,4)"
    tilec info
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
from pathlib import Path

from tilec.errors import TilecError

EMITS = ("ir",)


def _load_kernel(spec: str):
    """`path/to/file.py::name` -> the kernel object defined there."""
    path, _, name = spec.partition("::")
    if not name:
        raise TilecError(f"'{spec}' names no kernel", hint="write FILE.py::KERNEL")
    file = Path(path)
    if not file.is_file():
        raise TilecError(f"no such file: {path}")
    module_spec = importlib.util.spec_from_file_location(f"_tilec_user_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    sys.path.insert(0, str(file.parent.resolve()))
    try:
        module_spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    kernel = getattr(module, name, None)
    if kernel is None or not hasattr(kernel, "compile"):
        raise TilecError(f"{path} defines no kernel named '{name}'")
    return kernel


def _compile(args: argparse.Namespace) -> str:
    from tilec.ir.passes.manager import DEFAULT_PIPELINE, PassOptions, run_passes
    from tilec.ir.printer import print_module
    from tilec.ir.verifier import verify

    if "::" in args.source:
        module = _load_kernel(args.source).compile(args.signature)
    else:
        if args.signature:
            raise TilecError("--signature applies to Python kernels, not .tile files")
        from tilec.ir.parser import parse_file
        if not Path(args.source).is_file():
            raise TilecError(f"no such file: {args.source}")
        module = verify(parse_file(args.source))

    def dump(pass_name: str, text: str) -> None:
        print(f"// ----- after {pass_name}", file=sys.stderr)
        print(text, file=sys.stderr)

    module = run_passes(module, DEFAULT_PIPELINE, PassOptions(), verify=True,
                        dump=dump if args.dump_passes else None)
    return print_module(module, locations=args.locations)


def _write(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    # Write beside the target and rename, so a reader never sees half a file.
    target = Path(out)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, target)


def _layout_show(args: argparse.Namespace) -> str:
    from tilec.ir.layout import parse_layout
    layout = parse_layout(args.layout)
    return layout.draw() + "\n"


def _info(args: argparse.Namespace) -> str:
    import tilec
    lines = [f"tilec {tilec.__version__}, Python {sys.version.split()[0]}"]
    for tool in ("ptxas", "ld.lld", "llc"):
        lines.append(f"{tool:8} {shutil.which(tool) or 'not found'}")
    try:
        import llvmlite
        lines.append(f"llvmlite {llvmlite.__version__}")
    except ImportError:
        lines.append("llvmlite not installed")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tilec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="compile FILE.py::KERNEL or FILE.tile")
    c.add_argument("source", help="FILE.py::KERNEL or FILE.tile")
    c.add_argument("--signature", help='e.g. "X: tensor<?x?xf16>, n: i32, BLOCK=1024"')
    c.add_argument("--emit", choices=EMITS, default="ir")
    c.add_argument("--dump-passes", action="store_true", help="print the IR after each pass")
    c.add_argument("--locations", action="store_true", help="print source locations in the IR")
    c.add_argument("-o", "--output", help="write here instead of stdout")

    lay = sub.add_parser("layout", help="work with layouts")
    lay_sub = lay.add_subparsers(dest="layout_command", required=True)
    show = lay_sub.add_parser("show", help="draw which thread holds which element")
    show.add_argument("layout", help='e.g. "spatial(4,8)*local(2,4)"')

    sub.add_parser("info", help="versions and tools found")

    args = parser.parse_args(argv)
    try:
        if args.command == "compile":
            _write(_compile(args), args.output)
        elif args.command == "layout":
            sys.stdout.write(_layout_show(args))
        else:
            sys.stdout.write(_info(args))
    except TilecError as e:
        print(str(e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
