"""Count the SASS of quant_gemm's main loop without a GPU: compile the kernel a launch on
aligned contiguous tensors would (sm_90a), find the loop (the backward branch whose body
holds the most FFMA/HFMA2/HMMA) and print its instructions per weight.

    python benchmarks/quant_gemm_sass.py [M] [dtype] [--zeros] [--dump DIR]

Needs cuobjdump and nvdisasm: a CUDA toolkit's, or `pip install nvidia-cuda-cuobjdump
nvidia-cuda-nvdisasm` (put their bin folder on the PATH for nvdisasm).
"""
from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

import numpy as np

import tilec.lib.quant_gemm as qg
from tilec.backends.nvidia import compile_kernel
from tilec.ir import dtypes as dt

# On the PATH (a CUDA toolkit), else the pip package nvidia-cuda-cuobjdump's.
CUOBJDUMP = shutil.which("cuobjdump") or str(
    Path(sysconfig.get_paths()["purelib"]) / "nvidia" / "cu13" / "bin" / "cuobjdump")
_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z0-9_.]+)([^;]*);")
_GUARD: dict[int, bool] = {}   # offset -> whether the instruction is predicated


class _Recorder:
    """Stands in for a kernel: `[grid](*args, **kw)` records the launch instead of running."""

    def __init__(self, kernel):
        self.kernel, self.calls = kernel, []

    def __getitem__(self, grid):
        return lambda *args, **kw: self.calls.append((grid, args, kw))


def launches(m: int, n: int, k: int, d: dt.DType, zeros: bool, group: int = 128,
             config: qg.QuantConfig | None = None) -> list:
    """The (kernel, grid, args, kwargs) quant_gemm would launch for this problem."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float16)
    p, s, z = qg.quantize(rng.standard_normal((n, k)), d, group, zero_point=zeros)
    saved = {name: getattr(qg, name) for name in ("quant_gemm_kernel", "quant_gemv_kernel")}
    recs = {name: _Recorder(kern) for name, kern in saved.items()}
    try:
        for name, rec in recs.items():
            setattr(qg, name, rec)
        qg.quant_gemm(a, p, s, z, group, config=config)
    finally:
        for name, kern in saved.items():
            setattr(qg, name, kern)
    return [(rec.kernel, *call) for rec in recs.values() for call in rec.calls]


def sass(cubin: bytes) -> list[tuple[int, str, str]]:
    """(offset, opcode, operands) of every instruction."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "k.cubin"
        path.write_bytes(cubin)
        text = subprocess.run([CUOBJDUMP, "-sass", str(path)], capture_output=True,
                              text=True, check=True).stdout
    out = []
    for m in _LINE.finditer(text):
        _GUARD[int(m.group(1), 16)] = bool(m.group(2) and "PT" not in m.group(2))
        out.append((int(m.group(1), 16), m.group(3), m.group(4)))
    return out


def main_loop(code: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """The body of the backward branch holding the most math instructions."""
    best: list = []
    score = -1
    for i, (off, op, args) in enumerate(code):
        target = re.search(r"0x([0-9a-f]+)", args)
        if op.startswith("BRA") and target and int(target.group(1), 16) <= off:
            body = [c for c in code if int(target.group(1), 16) <= c[0] <= off]
            math = sum(c[1].split(".")[0] in ("FFMA", "HFMA2", "HMMA", "HADD2", "FMUL")
                       for c in body)
            if math > score:
                best, score = body, math
    return best


def _predicated_memory(code: list, start: int) -> bool:
    """Whether the straight-line run from index `start` holds a predicated global access
    (the per-element fallback of a vector access)."""
    for off, op, args in code[start:]:
        if op.startswith(("LDG", "STG")) and _GUARD.get(off):
            return True
        if op.startswith(("BRA", "EXIT", "BSYNC")):
            return False
    return False


def fast_path(code: list, loop: list) -> list:
    """The instructions one trip of `loop` runs when every access takes its vector path: at
    each conditional branch, the side whose first run has no predicated global access (and
    that stays in the loop)."""
    at = {c[0]: i for i, c in enumerate(code)}
    lo, hi = loop[0][0], loop[-1][0]
    path, i = [], at[lo]
    while len(path) < 10 * len(loop):
        off, op, args = code[i]
        path.append(code[i])
        if off == hi:
            break
        target = re.search(r"0x([0-9a-f]+)", args) if op.startswith("BRA") else None
        if target is None:
            i += 1
            continue
        t = int(target.group(1), 16)
        if not _GUARD.get(off) and "P" not in args.split(",")[0]:
            i = at[t]
            continue
        # Both sides clean: the fall-through (an `if`'s body; its skip is the target).
        options = [j for j in (i + 1, at.get(t)) if j is not None and lo <= code[j][0] <= hi]
        clean = [j for j in options if not _predicated_memory(code, j)]
        i = (clean or options)[0]
    return path


def report(m: int, d: dt.DType, zeros: bool, n: int = 8192, k: int = 8192, config=None,
           dump: str | None = None) -> dict:
    out = {}
    for kernel, grid, args, kw in launches(m, n, k, d, zeros, config=config):
        warps = kw.get("num_warps", 4)
        module = kernel.kernel.ir(*args, **kw) if hasattr(kernel, "kernel") else \
            kernel.ir(*args, **kw)
        name = module.functions[0].name
        ck = compile_kernel(module, name, "sm_90a", warps)
        if dump:
            Path(dump).mkdir(parents=True, exist_ok=True)
            (Path(dump) / f"{name}.ptx").write_text(ck.ptx)
            (Path(dump) / f"{name}.cubin").write_bytes(ck.cubin)
        code = sass(ck.cubin)
        loop = main_loop(code)
        path = fast_path(code, loop) if loop else []
        out[name] = dict(grid=grid, registers=ck.resources.registers,
                         spills=ck.resources.spill_stores + ck.resources.spill_loads,
                         shared=ck.shared_bytes + ck.resources.shared_bytes,
                         total=len(code), loop=len(loop), fast=len(path),
                         ops=collections.Counter(c[1].split(".")[0] for c in path),
                         # an m16n8k16 HMMA multiplies 256 weights by one 8-column block
                         weights=sum(c[1].startswith("HMMA") for c in path) * 256 // 32
                         // max(1, kw.get("BM", 16) // 8),
                         kw={k_: v for k_, v in kw.items() if k_ in ("BM", "BN", "BK")},
                         warps=warps)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("m", type=int, nargs="?", default=1)
    ap.add_argument("dtype", nargs="?", default="int4")
    ap.add_argument("--zeros", action="store_true")
    ap.add_argument("--dump")
    ns = ap.parse_args()
    for name, r in report(ns.m, dt.dtype(ns.dtype), ns.zeros, dump=ns.dump).items():
        print(name, {k: v for k, v in r.items() if k != "ops"})
        if r["weights"]:
            print(f"  {r['fast'] / r['weights']:.2f} SASS instructions per weight")
        print("  fast-path ops:", dict(r["ops"].most_common()))
