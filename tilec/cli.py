"""The `tilec` command line: compile kernels, show layouts, report the environment.

    tilec compile examples/softmax.py::softmax --emit ir
    tilec compile examples/softmax.py::softmax --target sm_90a --emit ptx -o softmax.ptx
    tilec compile kernel.tile::add --target sm_80 --emit cubin -o add.cubin --dump-passes
    tilec compile examples/matmul.py::matmul --target gfx942 --emit hsaco -o mm.hsaco
    tilec layout show "spatial(4,8)*local(2,4)"
    tilec tune benchmarks/autotune.py::tuned --shapes M=4096,N=4096,K=4096
    tilec tune --show
    tilec info
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from tilec.errors import TilecError

EMITS = ("ir", "llvm", "ptx", "cubin", "amdgcn", "hsaco")
NVIDIA_TARGETS = ("sm_80", "sm_89", "sm_90", "sm_90a")
AMD_TARGETS = ("gfx90a", "gfx942", "gfx950")
_NVIDIA_EMITS, _AMD_EMITS = ("ptx", "cubin"), ("amdgcn", "hsaco")


def _load_kernel(spec: str):
    """`path/to/file.py::name` -> the kernel object defined there."""
    kernel = _load_object(spec)
    if not hasattr(kernel, "compile"):
        raise TilecError(f"{spec.partition('::')[0]} defines no kernel named "
                         f"'{spec.partition('::')[2]}'")
    return kernel


def _load_object(spec: str):
    """`path/to/file.py::name` -> the object of that name defined there."""
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
    found = getattr(module, name, None)
    if found is None:
        raise TilecError(f"{path} defines no kernel named '{name}'")
    return found


def _load_module(args: argparse.Namespace):
    """The IR module and the kernel's name for `FILE.py::KERNEL` or `FILE.tile[::NAME]`."""
    from tilec.ir.parser import parse_file
    from tilec.ir.verifier import verify

    if args.source.partition("::")[0].endswith(".py"):
        kernel = _load_kernel(args.source)
        return kernel.compile(args.signature), kernel.__name__
    if args.signature:
        raise TilecError("--signature applies to Python kernels, not .tile files")
    path, _, name = args.source.partition("::")
    if not Path(path).is_file():
        raise TilecError(f"no such file: {path}")
    module = verify(parse_file(path))
    names = [f.name for f in module.functions]
    if name and name not in names:
        raise TilecError(f"{path} has no function @{name}", hint=f"it has: {', '.join(names)}")
    if not name:
        if args.emit != "ir" and len(names) != 1:
            raise TilecError(f"{path} has {len(names)} functions; say which to compile",
                             hint=f"write {path}::NAME with NAME one of {', '.join(names)}")
        name = names[0] if names else ""
    return module, name


def _compile(args: argparse.Namespace) -> str | bytes:
    from tilec.ir.passes.manager import DEFAULT_PIPELINE, PassOptions, run_passes
    from tilec.ir.printer import print_module

    module, name = _load_module(args)

    def dump(pass_name: str, text: str) -> None:
        print(f"// ----- after {pass_name}", file=sys.stderr)
        print(text, file=sys.stderr)

    if args.emit == "ir" and args.target is None:
        module = run_passes(module, DEFAULT_PIPELINE, PassOptions(), verify=True,
                            dump=dump if args.dump_passes else None)
        return print_module(module, locations=args.locations)
    target = args.target or ("gfx942" if args.emit in _AMD_EMITS else "sm_90a")
    if target not in NVIDIA_TARGETS + AMD_TARGETS:
        raise TilecError(f"unknown target {target!r}", hint="NVIDIA: " + ", ".join(
            NVIDIA_TARGETS) + "; AMD: " + ", ".join(AMD_TARGETS))
    amd = target in AMD_TARGETS
    if args.emit in (_NVIDIA_EMITS if amd else _AMD_EMITS):
        raise TilecError(f"--emit {args.emit} is for {'NVIDIA' if amd else 'AMD'} targets, "
                         f"not {target}", hint="for AMD: --emit llvm|amdgcn|hsaco; for "
                                               "NVIDIA: --emit llvm|ptx|cubin")
    from tilec.backends import compile_kernel
    compiled = compile_kernel(module, name, target, args.num_warps, verify=True,
                              dump=dump if args.dump_passes else None)
    if amd:
        return _amd_output(compiled, args.emit)
    if compiled.resources is not None:
        print(f"// {name} on {target}: {compiled.resources}", file=sys.stderr)
    if args.emit == "cubin":
        if compiled.cubin is None:
            raise TilecError("no ptxas found, so no cubin", hint="install the CUDA toolkit "
                             "or `pip install nvidia-cuda-nvcc-cu12`, or set TILEC_PTXAS")
        return compiled.cubin
    return {"ir": compiled.tile_ir, "llvm": compiled.llvm_ir, "ptx": compiled.ptx}[args.emit]


def _amd_output(compiled, emit: str) -> str | bytes:
    from tilec.backends.amd.hsaco import LLD_HINT
    if compiled.resources is not None:
        print(f"// {compiled.name} on {compiled.arch}: {compiled.resources}", file=sys.stderr)
    if emit == "hsaco":
        if compiled.hsaco is None:
            raise TilecError("no ld.lld found, so no code object", hint=LLD_HINT)
        return compiled.hsaco
    return {"ir": compiled.tile_ir, "llvm": compiled.llvm_ir, "amdgcn": compiled.amdgcn}[emit]


def _write(output: str | bytes, out: str | None) -> None:
    if out is None:
        if isinstance(output, bytes):
            raise TilecError("a cubin or hsaco is binary: write it to a file with -o FILE")
        sys.stdout.write(output)
        return
    # Write beside the target and rename, so a reader never sees half a file.
    target = Path(out)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    if isinstance(output, bytes):
        tmp.write_bytes(output)
    else:
        tmp.write_text(output)
    os.replace(tmp, target)


def _layout_show(args: argparse.Namespace) -> str:
    from tilec.ir.layout import parse_layout
    layout = parse_layout(args.layout)
    return layout.draw() + "\n"


def _info(args: argparse.Namespace) -> str:
    import llvmlite
    import llvmlite.binding as llvm

    import tilec
    from tilec.backends.amd import hsaco
    from tilec.backends.amd.llvm_passes import code_object_version
    from tilec.backends.nvidia.compiler import ptxas_path
    lines = [f"tilec     {tilec.__version__} (Python {sys.version.split()[0]})",
             f"llvmlite  {llvmlite.__version__} (LLVM {'.'.join(map(str, llvm.llvm_version_info))})",
             f"targets   NVIDIA {', '.join(NVIDIA_TARGETS)}; AMD {', '.join(AMD_TARGETS)}"]
    ptxas = ptxas_path()
    lines.append(f"ptxas     {ptxas or 'not found (cubins come from the driver JIT)'}")
    lld = hsaco.lld_path()
    lines.append("ld.lld    " + (f"{lld} ({hsaco.tool_version(lld)}; code object "
                                 f"v{code_object_version()})" if lld else
                                 f"not found: no AMD code objects ({hsaco.LLD_HINT})"))
    objdump = hsaco.objdump_path("gfx942")
    lines.append("objdump   " + (objdump or "no llvm-objdump that knows gfx942 "
                                           "(apt-get install llvm-19)"))
    lines.append("devices   " + ", ".join(_devices()))
    lines.append("AMD GPUs  " + _hip_status())
    return "\n".join(lines) + "\n"


def _parse_shapes(texts: list[str]) -> list[dict[str, object]]:
    """`["M=1,N=2;M=3,N=4"]` -> [{"M": 1, "N": 2}, {"M": 3, "N": 4}] (ints where they read)."""
    shapes = []
    for text in texts:
        for group in filter(None, (g.strip() for g in text.split(";"))):
            shape: dict[str, object] = {}
            for item in filter(None, (i.strip() for i in group.split(","))):
                name, eq, value = item.partition("=")
                if not eq or not name.strip().isidentifier() or not value.strip():
                    raise TilecError(f"cannot read shape item {item!r}",
                                     hint='write --shapes "M=4096,N=4096,K=4096"')
                value = value.strip()
                shape[name.strip()] = int(value) if value.lstrip("-").isdigit() else value
            shapes.append(shape)
    return shapes


def _tune(args: argparse.Namespace) -> str:
    from tilec.tune import Autotuner, TuningDatabase
    from tilec.tune.show import format_database, format_entry
    db = TuningDatabase()
    if args.show:
        return format_database(db)
    if not args.source:
        raise TilecError("tilec tune needs FILE.py::KERNEL and --shapes, or --show")
    if not args.shapes:
        raise TilecError("tilec tune needs --shapes", hint='e.g. --shapes "M=4096,N=4096,K=4096"')
    tuner = _load_object(args.source)
    if not isinstance(tuner, Autotuner):
        raise TilecError(f"{args.source} is not a @tc.autotune kernel",
                         hint="put @tc.autotune(...) above its @tc.kernel")
    out = []
    for shape in _parse_shapes(args.shapes):
        key, report = tuner.tune_example(force=args.force, **shape)
        entry = db.get(key)
        label = ", ".join(f"{k}={v}" for k, v in shape.items())
        if report is None:
            out.append(f"{label}: already tuned (--force tunes again)")
        if entry is not None:
            out.append(format_entry(entry))
    return "\n\n".join(out) + "\n"


def _devices() -> list[str]:
    from tilec.runtime import cuda
    try:
        count = cuda.driver().device_count()
        props = [cuda.device_properties(i) for i in range(count)]
    except TilecError as e:
        return [f"none ({e.message.splitlines()[0]})"]
    return [f"{i}: {p.name} ({p.arch})" for i, p in enumerate(props)] or ["none"]


def _hip_status() -> str:
    from tilec.runtime import hip
    try:
        count = hip.device_count()
    except TilecError as e:
        return f"none ({e.message.split(' (')[0]})"
    return f"{count} HIP device(s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tilec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="compile FILE.py::KERNEL or FILE.tile[::FUNCTION]")
    c.add_argument("source", help="FILE.py::KERNEL or FILE.tile[::FUNCTION]")
    c.add_argument("--signature", help='e.g. "X: tensor<?x?xf16>, n: i32, BLOCK=1024"')
    c.add_argument("--emit", choices=EMITS, default="ir")
    c.add_argument("--target", help=f"NVIDIA arch: {', '.join(NVIDIA_TARGETS)} (default sm_90a "
                                    f"for llvm/ptx/cubin); AMD arch: {', '.join(AMD_TARGETS)} "
                                    "(default gfx942 for amdgcn/hsaco); --emit ir with a "
                                    "target shows the laid-out IR")
    c.add_argument("--num-warps", type=int, default=None,
                   help="warps per block: 32 threads each on NVIDIA, 64 on AMD (4)")
    c.add_argument("--dump-passes", action="store_true", help="print the IR after each pass")
    c.add_argument("--locations", action="store_true", help="print source locations in the IR")
    c.add_argument("-o", "--output", help="write here instead of stdout")

    lay = sub.add_parser("layout", help="work with layouts")
    lay_sub = lay.add_subparsers(dest="layout_command", required=True)
    show = lay_sub.add_parser("show", help="draw which thread holds which element")
    show.add_argument("layout", help='e.g. "spatial(4,8)*local(2,4)"')

    sub.add_parser("info", help="versions and tools found")

    t = sub.add_parser("tune", help="fill the tuning database ahead of time, or --show it")
    t.add_argument("source", nargs="?", help="FILE.py::KERNEL, a @tc.autotune kernel with an "
                                             "`example`")
    t.add_argument("--shapes", action="append", default=[],
                   help='"M=4096,N=4096,K=4096"; several separated by ";" or repeated')
    t.add_argument("--force", action="store_true", help="tune keys already in the database")
    t.add_argument("--show", action="store_true", help="print the stored winners and why")

    args = parser.parse_args(argv)
    try:
        if args.command == "compile":
            _write(_compile(args), args.output)
        elif args.command == "layout":
            sys.stdout.write(_layout_show(args))
        elif args.command == "tune":
            sys.stdout.write(_tune(args))
        else:
            sys.stdout.write(_info(args))
    except TilecError as e:
        print(str(e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
