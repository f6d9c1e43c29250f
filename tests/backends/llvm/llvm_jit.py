"""Test harness: run generated LLVM IR on the host CPU (llvmlite MCJIT) on whole numpy arrays,
and assemble it for NVPTX with ptxas.

`build_array_function` wraps an element-wise body into `void f(src* in, dst* out, i64 n)`.
Values travel through memory as bit patterns in the smallest of u8/u16/u32/u64 that holds
them (bool as a byte), so every dtype, `i3` and `f6e3m2` included, can be read and written
from numpy, and results compare pattern by pattern.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from tilec.backends.llvm.casts import call_intrinsic
from tilec.backends.llvm.dtypes import is_native_float, llvm_type
from tilec.backends.target import Target
from tilec.ir.dtypes import DType

llvm.initialize_all_targets()
llvm.initialize_all_asmprinters()

F32 = ir.FloatType()


@dataclass(frozen=True)
class HostTarget(Target):
    """The host CPU as a tilec target: the fast-math hooks are LLVM's accurate intrinsics.

    With `sloppy=True` every hook result loses its 3 low mantissa bits (truncated), a worse
    error than the GPU's `ex2.approx`/`lg2.approx`/`rsqrt.approx`, so the tests show how much
    the math library depends on its hooks.
    """

    arch: str = "host"
    sloppy: bool = False

    def _hook(self, b: ir.IRBuilder, name: str, x: ir.Value) -> ir.Value:
        y = call_intrinsic(b, f"llvm.{name}.f32", F32, [x])
        if not self.sloppy:
            return y
        bits = b.bitcast(y, ir.IntType(32))
        return b.bitcast(b.and_(bits, ir.Constant(ir.IntType(32), ~7 & 0xFFFFFFFF)), F32)

    def exp2_approx(self, b, x):
        return self._hook(b, "exp2", x)

    def log2_approx(self, b, x):
        return self._hook(b, "log2", x)

    def rsqrt_approx(self, b, x):
        root = call_intrinsic(b, "llvm.sqrt.f32", F32, [x])
        y = b.fdiv(ir.Constant(F32, 1.0), root)
        if not self.sloppy:
            return y
        bits = b.bitcast(y, ir.IntType(32))
        return b.bitcast(b.and_(bits, ir.Constant(ir.IntType(32), ~7 & 0xFFFFFFFF)), F32)

    def sin_approx(self, b, x):
        return self._hook(b, "sin", x)

    def cos_approx(self, b, x):
        return self._hook(b, "cos", x)

    def _unused(self, *args):
        raise NotImplementedError("the host test target has no threads")

    thread_id = block_id = num_blocks = barrier = shuffle_xor = shuffle_idx = _unused
    mark_kernel = emit_assembly = _unused


def container_dtype(dtype: DType) -> np.dtype:
    """The numpy unsigned type that carries one `dtype` pattern through memory."""
    bits = dtype.itemsize_bits
    return np.dtype(next(f"uint{w}" for w in (8, 16, 32, 64) if bits <= w))


def _load(b: ir.IRBuilder, ptr: ir.Value, i: ir.Value, dtype: DType) -> ir.Value:
    ct = ir.IntType(container_dtype(dtype).itemsize * 8)
    raw = b.load(b.gep(b.bitcast(ptr, ct.as_pointer()), [i]))
    bits = ir.IntType(dtype.bits)
    v = b.trunc(raw, bits) if bits.width < ct.width else raw
    return b.bitcast(v, llvm_type(dtype)) if is_native_float(dtype) else v


def _store(b: ir.IRBuilder, ptr: ir.Value, i: ir.Value, dtype: DType, v: ir.Value) -> None:
    ct = ir.IntType(container_dtype(dtype).itemsize * 8)
    if is_native_float(dtype):
        v = b.bitcast(v, ir.IntType(dtype.bits))
    if dtype.bits < ct.width:
        v = b.zext(v, ct)
    b.store(v, b.gep(b.bitcast(ptr, ct.as_pointer()), [i]))


Body = Callable[[ir.IRBuilder, Sequence[ir.Value]], ir.Value]


def build_array_function(module: ir.Module, name: str, srcs: Sequence[DType], dst: DType,
                         body: Body) -> None:
    """Add `void name(src0* in0, ..., dst* out, i64 n)` doing out[i] = body(in0[i], ...)."""
    i64 = ir.IntType(64)
    ptr = ir.IntType(8).as_pointer()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr] * (len(srcs) + 1) + [i64]),
                     name)
    *ins, out, n = fn.args
    entry, loop, done = (fn.append_basic_block(s) for s in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(i64)
    i.add_incoming(ir.Constant(i64, 0), entry)
    values = [_load(b, p, i, d) for p, d in zip(ins, srcs)]
    _store(b, out, i, dst, body(b, values))
    nxt = b.add(i, ir.Constant(i64, 1))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    b.ret_void()


# x86's VCVTNEPS2BF16 (AVX512-BF16) treats subnormal inputs as zero, unlike PTX's
# `cvt.rn.bf16.f32`. Without it LLVM calls compiler-rt's `__truncsfbf2`, which the process
# lacks (libgcc 12 has only the f16 ones); this is that routine: RNE, NaN stays quiet NaN.
_HOST_NO_BF16 = ",-avx512bf16,-avxneconvert"
_TRUNCSFBF2 = r"""
define bfloat @__truncsfbf2(float %x) {
  %b = bitcast float %x to i32
  %hi = lshr i32 %b, 16
  %lsb = and i32 %hi, 1
  %bias = add i32 %lsb, 32767
  %sum = add i32 %b, %bias
  %rounded = lshr i32 %sum, 16
  %quiet = or i32 %hi, 64
  %nan = fcmp uno float %x, %x
  %r = select i1 %nan, i32 %quiet, i32 %rounded
  %t = trunc i32 %r to i16
  %f = bitcast i16 %t to bfloat
  ret bfloat %f
}
"""


class HostJit:
    """Compiles modules for the host and calls their array functions on numpy arrays."""

    def __init__(self, opt: int = 2) -> None:
        target = llvm.Target.from_default_triple()
        self.machine = target.create_target_machine(
            cpu=llvm.get_host_cpu_name(),
            features=llvm.get_host_cpu_features().flatten() + _HOST_NO_BF16,
            opt=opt, jit=True)
        self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), self.machine)
        self.opt = opt
        self.ir_passes = True
        self._keep = []
        runtime = llvm.parse_assembly(_TRUNCSFBF2)
        self.engine.add_module(runtime)
        self.engine.finalize_object()
        self._keep.append(runtime)
        llvm.add_symbol("__truncsfbf2", self.engine.get_function_address("__truncsfbf2"))

    def add(self, module: ir.Module) -> None:
        """Optimise (at the machine's level) and JIT `module`."""
        module.triple = self.machine.triple
        module.data_layout = str(self.machine.target_data)
        mod = llvm.parse_assembly(str(module))
        mod.verify()
        if self.opt and self.ir_passes:
            pto = llvm.create_pipeline_tuning_options(speed_level=self.opt)
            # The vectoriser makes compiling ~10x slower and tests nothing of ours: casts and
            # math are scalar code that the GPU runs one element per thread.
            pto.loop_vectorization = False
            pto.slp_vectorization = False
            pto.loop_unrolling = False
            pb = llvm.create_pass_builder(self.machine, pto)
            pb.getModulePassManager().run(mod, pb)
        self.engine.add_module(mod)
        self.engine.finalize_object()
        self._keep.append(mod)

    def run(self, name: str, inputs: Sequence[np.ndarray], srcs: Sequence[DType],
            dst: DType) -> np.ndarray:
        """Call array function `name` on pattern arrays; returns the output patterns."""
        ins = [np.ascontiguousarray(a, container_dtype(d)) for a, d in zip(inputs, srcs)]
        n = len(ins[0])
        out = np.zeros(n, container_dtype(dst))
        address = self.engine.get_function_address(name)
        assert address, name
        proto = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * (len(ins) + 1), ctypes.c_int64)
        proto(address)(*[a.ctypes.data for a in ins], out.ctypes.data, n)
        return out.astype(np.uint64)


# ---- NVPTX ------------------------------------------------------------------------------------

NVPTX_TRIPLE = "nvptx64-nvidia-cuda"


def nvptx_module() -> ir.Module:
    m = ir.Module()
    m.triple = NVPTX_TRIPLE
    return m


def add_nvptx_kernel(module: ir.Module, name: str, srcs: Sequence[DType], dst: DType,
                     body: Body) -> None:
    """A one-thread kernel `name(in0, ..., out)` computing out[0] = body(in0[0], ...)."""
    ptr = ir.IntType(8).as_pointer(1)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr] * (len(srcs) + 1)), name)
    fn.calling_convention = "ptx_kernel"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    *ins, out = fn.args
    zero = ir.Constant(ir.IntType(64), 0)

    def typed(p, d):
        return b.bitcast(p, ir.IntType(container_dtype(d).itemsize * 8).as_pointer(1))

    values = []
    for p, d in zip(ins, srcs):
        raw = b.load(b.gep(typed(p, d), [zero]))
        v = b.trunc(raw, ir.IntType(d.bits)) if d.bits < raw.type.width else raw
        values.append(b.bitcast(v, llvm_type(d)) if is_native_float(d) else v)
    r = body(b, values)
    if is_native_float(dst):
        r = b.bitcast(r, ir.IntType(dst.bits))
    ct = ir.IntType(container_dtype(dst).itemsize * 8)
    if dst.bits < ct.width:
        r = b.zext(r, ct)
    b.store(r, b.gep(typed(out, dst), [zero]))
    b.ret_void()


def emit_ptx(module: ir.Module, arch: str = "sm_90a") -> str:
    mod = llvm.parse_assembly(str(module))
    mod.verify()
    machine = llvm.Target.from_triple(NVPTX_TRIPLE).create_target_machine(
        cpu=arch, features="+ptx80", opt=2)
    pto = llvm.create_pipeline_tuning_options(speed_level=2)
    pb = llvm.create_pass_builder(machine, pto)
    pb.getModulePassManager().run(mod, pb)
    return machine.emit_assembly(mod)


def ptxas_path() -> str | None:
    return shutil.which("ptxas")


def run_ptxas(ptx: str, arch: str = "sm_90a") -> str:
    """Assemble PTX with ptxas; raises AssertionError with ptxas's message on failure."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "k.ptx"
        src.write_text(ptx)
        proc = subprocess.run([ptxas_path(), f"-arch={arch}", str(src), "-o",
                               str(Path(tmp) / "k.cubin")], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-4000:]
        return proc.stderr
