"""NVIDIA GPUs (sm_80, sm_89, sm_90, sm_90a): the Target hooks as NVVM intrinsics and
inline PTX, checked against LLVM 22's NVPTX backend and ptxas 13.

Sources: the PTX ISA (docs.nvidia.com/cuda/parallel-thread-execution), sections named
below; LLVM's `llvm/include/llvm/IR/IntrinsicsNVVM.td` for the intrinsic names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Sequence

from llvmlite import ir

from tilec.backends.target import MemoryHints, Target
from tilec.errors import Location

if TYPE_CHECKING:
    from tilec.backends.llvm.lower import Lowering
    from tilec.ir.mma import MatrixInstr

ARCHS = ("sm_80", "sm_89", "sm_90", "sm_90a")
# PTX ISA version per arch: sm_90a needs PTX 8.0 (PTX ISA "Release Notes", target sm_90a);
# 8.0 is what LLVM 22 picks by default and what drivers from CUDA 12.0 on accept.
PTX_VERSION = {"sm_80": 80, "sm_89": 80, "sm_90": 80, "sm_90a": 80}
# Shared memory per block (dynamic, opt-in above 48 KB): CUDA C Programming Guide, table
# "Technical Specifications per Compute Capability".
MAX_SHARED = {"sm_80": 163 * 1024, "sm_89": 99 * 1024, "sm_90": 227 * 1024,
              "sm_90a": 227 * 1024}
# Inline PTX that needs a newer PTX ISA than the arch's default: mma with .e4m3/.e5m2
# operands came with PTX ISA 8.4 (PTX ISA "mma", PTX ISA notes).
_PTX_NEEDS = {".row.col.f32.e4m3.e4m3.f32": 84, ".row.col.f32.e5m2.e5m2.f32": 84}
# One-way fences (an atomic's release before it, acquire after it): from PTX ISA 8.6 on sm_90
# LLVM emits them as fence.release / fence.acquire (PTX ISA "membar / fence"), before as
# fence.acq_rel, which is both. On an H100 ptxas makes a release a MEMBAR without the L1
# invalidation and an acquire the invalidation alone: a split-K counter costs ~0.3 us less
# a launch (quant_gemm-notes.md, session 14). Only where ptxas knows PTX 8.6 (CUDA 12.7 on);
# without ptxas the driver compiles the PTX, and 8.0 is what every CUDA 12 driver accepts.
_ONE_WAY_FENCE = re.compile(r'\bfence (?:syncscope\("\w+"\) )?(?:acquire|release)\b')
_ONE_WAY_FENCE_PTX = 86
_ONE_WAY_FENCE_PTXAS = (12, 7)
# NVPTX with 32-bit pointers to shared, constant and local memory (`--nvptx-short-ptr`, set
# in llvm_passes): every shared address is 32-bit arithmetic (the SASS takes 32-bit shared
# addresses anyway): a few percent fewer instructions in a GEMM's main loop.
DATA_LAYOUT = ("e-p3:32:32-p4:32:32-p5:32:32-p6:32:32-p7:32:32-i64:64-i128:128-i256:256-"
               "v16:16-v32:32-n16:32:64")

_I1 = ir.IntType(1)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_F32 = ir.FloatType()
_ASM_REG = {8: "h", 16: "h", 32: "r", 64: "l"}  # inline PTX constraints (NVPTX usage doc)


def _declare(module: ir.Module, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, list(args)), name)
    return fn


def _call(b: ir.IRBuilder, name: str, ret: ir.Type, args: Sequence[ir.Value]) -> ir.Value:
    return b.call(_declare(b.module, name, ret, [a.type for a in args]), list(args))


@dataclass(frozen=True)
class NvidiaTarget(Target):
    """An NVIDIA GPU architecture, e.g. `NvidiaTarget("sm_90a")`."""

    triple: str = "nvptx64-nvidia-cuda"
    data_layout: str = DATA_LAYOUT
    warp_size: int = 32
    global_addrspace: int = 1
    shared_addrspace: int = 3
    max_shared_bytes: int = 227 * 1024
    matrix_loads: bool = True
    async_copies: bool = True
    # f64 exp/log/sin/... need libdevice (`__nv_exp`, ...), which is not linked yet.
    has_f64_libm: bool = False

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            from tilec.errors import TilecError
            raise TilecError(f"unknown NVIDIA arch {self.arch!r}", hint=f"one of {ARCHS}")
        object.__setattr__(self, "max_shared_bytes", MAX_SHARED[self.arch])
        # Clusters of up to 8 programs (the portable size) from sm_90 (CUDA C++
        # Programming Guide, "Thread Block Clusters").
        object.__setattr__(self, "max_cluster", 8 if self.arch.startswith("sm_90") else 1)

    @property
    def ptx_version(self) -> int:
        return PTX_VERSION[self.arch]

    def ptx_version_for(self, llvm_ir: str) -> int:
        """The arch's PTX version, raised to what the module's inline PTX needs, and to 8.6
        for one-way fences on sm_90 where ptxas takes it."""
        need = [v for text, v in _PTX_NEEDS.items() if text in llvm_ir]
        if self.arch.startswith("sm_90") and _ONE_WAY_FENCE.search(llvm_ir):
            from tilec.backends.nvidia.compiler import ptxas_release
            release = ptxas_release()
            if release is not None and release >= _ONE_WAY_FENCE_PTXAS:
                need.append(_ONE_WAY_FENCE_PTX)
        return max([self.ptx_version] + need)

    # -- ids and synchronisation: PTX ISA "Special Registers" (%tid, %ctaid, %nctaid)
    def thread_id(self, b: ir.IRBuilder) -> ir.Value:
        return _call(b, "llvm.nvvm.read.ptx.sreg.tid.x", _I32, [])

    def block_id(self, b: ir.IRBuilder, axis: int) -> ir.Value:
        return _call(b, f"llvm.nvvm.read.ptx.sreg.ctaid.{'xyz'[axis]}", _I32, [])

    def num_blocks(self, b: ir.IRBuilder, axis: int) -> ir.Value:
        return _call(b, f"llvm.nvvm.read.ptx.sreg.nctaid.{'xyz'[axis]}", _I32, [])

    # NVPTX's scopes (LLVM NVPTX "Memory model"): .cta, .gpu, .sys in PTX.
    sync_scopes: ClassVar[dict[str, str | None]] = {"cta": "block", "gpu": "device", "sys": None}

    def barrier(self, b: ir.IRBuilder) -> None:
        # bar.sync 0 (PTX ISA "Parallel Synchronization: bar, barrier"): all threads of the CTA, and it orders
        # shared-memory accesses. LLVM 22 spells it barrier.cta.sync.aligned.all.
        _call(b, "llvm.nvvm.barrier.cta.sync.aligned.all", ir.VoidType(), [ir.Constant(_I32, 0)])

    def grid_dependency(self, b: ir.IRBuilder, action: str) -> None:
        # griddepcontrol.wait / .launch_dependents (PTX ISA 7.8, sm_90): as asm with a memory
        # clobber, so that no load or store moves across it.
        if self.arch.startswith("sm_90"):
            b.asm(ir.FunctionType(ir.VoidType(), []), f"griddepcontrol.{action};", "~{memory}",
                  [], side_effect=True)

    def cluster_barrier(self, b: ir.IRBuilder) -> None:
        # barrier.cluster.arrive (release by default) then barrier.cluster.wait (acquire):
        # PTX ISA "barrier.cluster".
        _call(b, "llvm.nvvm.barrier.cluster.arrive", ir.VoidType(), [])
        _call(b, "llvm.nvvm.barrier.cluster.wait", ir.VoidType(), [])

    def cluster_address(self, b: ir.IRBuilder, ptr: ir.Value, rank: int) -> ir.Value:
        # mapa.shared::cluster (PTX ISA "mapa"): a shared::cluster address, which
        # ld.shared::cluster reads (LLVM's address space 7).
        return _call(b, "llvm.nvvm.mapa.shared.cluster", ir.PointerType(addrspace=7),
                     [ptr, ir.Constant(_I32, rank)])

    def shuffle_xor(self, b: ir.IRBuilder, value: ir.Value, lane_mask: int) -> ir.Value:
        # shfl.sync.bfly.b32 d, a, lane_mask, 0x1f, membermask (PTX ISA "shfl.sync"):
        # c = 0x1f clamps to the whole warp; membermask -1: all lanes take part.
        args = [ir.Constant(_I32, -1), value, ir.Constant(_I32, lane_mask), ir.Constant(_I32, 31)]
        return _call(b, "llvm.nvvm.shfl.sync.bfly.i32", _I32, args)

    def shuffle_idx(self, b: ir.IRBuilder, value: ir.Value, src_lane: ir.Value) -> ir.Value:
        # shfl.sync.idx.b32 d, a, src_lane, 0x1f, membermask (PTX ISA "shfl.sync").
        args = [ir.Constant(_I32, -1), value, src_lane, ir.Constant(_I32, 31)]
        return _call(b, "llvm.nvvm.shfl.sync.idx.i32", _I32, args)

    # -- fast math: PTX ISA "Floating Point Instructions", the .approx.f32 forms ------
    def exp2_approx(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        return _call(b, "llvm.nvvm.ex2.approx.f", _F32, [x])  # ex2.approx.f32

    def log2_approx(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        return _call(b, "llvm.nvvm.lg2.approx.f", _F32, [x])  # lg2.approx.f32

    def div_approx(self, b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
        # div.full.f32: 2 ulp over the full range, where LLVM's approximate fdiv selects
        # div.approx.f32, which returns 0 for |y| above 2**126.
        return b.asm(ir.FunctionType(_F32, [_F32, _F32]), "div.full.f32 $0, $1, $2;",
                     "=f,f,f", [x, y], False)

    def rsqrt_approx(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        return _call(b, "llvm.nvvm.rsqrt.approx.f", _F32, [x])  # rsqrt.approx.f32

    def sin_approx(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        return _call(b, "llvm.nvvm.sin.approx.f", _F32, [x])  # sin.approx.f32

    def cos_approx(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        return _call(b, "llvm.nvvm.cos.approx.f", _F32, [x])  # cos.approx.f32

    # -- predicated global accesses (used by the common lowering when present) ----------------
    def predicated_load(self, b: ir.IRBuilder, ptr: ir.Value, t: ir.Type, pred: ir.Value | None,
                        other: ir.Value | None, hints: MemoryHints | None = None) -> ir.Value:
        """`@p ld.global` of an integer or an integer vector of type `t`, `other` when !p
        (PTX ISA "ld"; "Predicated Execution"); no predicate when `pred` is None. One
        instruction, no branch. The predicate is made inside the asm from a 32-bit flag: a
        thread has few predicate registers, and predicates LLVM computes ahead of many
        accesses would spill."""
        regs = _asm_regs(t)
        n = len(regs)
        outs = ", ".join(f"${i}" for i in range(n))
        outs = f"{{{outs}}}" if n > 1 else outs
        args, types, cons, lines = [ptr], [ptr.type], [], []
        if pred is not None:
            args.append(b.zext(pred, _I32))
            types.append(_I32)
            cons.append("r")
            lines.append(f"setp.ne.b32 %p, ${n + 1}, 0;")
            fills = _split_regs(b, other, t)
            for i, (fill, (reg, asm_t)) in enumerate(zip(fills, regs)):
                args.append(fill)
                types.append(asm_t)
                cons.append(reg)
                lines.append(f"mov.b{asm_t.width} ${i}, ${n + 2 + i};")
        vec = f"v{n}." if n > 1 else ""
        lines += _policy(hints)
        lines.append(f"{'@%p ' if pred is not None else ''}ld{_hint_suffix(hints, 'ld')}."
                     f"{vec}{_width(t)} {outs}, [${n}]{_policy_operand(hints)};")
        ret = regs[0][1] if n == 1 else ir.LiteralStructType([a for _, a in regs])
        text = _asm_block(_declarations(pred, hints), lines)
        out = b.asm(ir.FunctionType(ret, types), text,
                    ",".join([f"={r}" for r, _ in regs] + ["l"] + cons), args,
                    side_effect=True)
        return _join_regs(b, [out] if n == 1 else [b.extract_value(out, i) for i in range(n)],
                          t)

    def predicated_store(self, b: ir.IRBuilder, ptr: ir.Value, value: ir.Value,
                         pred: ir.Value | None, hints: MemoryHints | None = None) -> None:
        """`@p st.global` (PTX ISA "st") of an integer or an integer vector; the predicate as
        in `predicated_load`."""
        regs = _asm_regs(value.type)
        n = len(regs)
        args, types, cons, lines = [ptr], [ptr.type], ["l"], []
        if pred is not None:
            args.append(b.zext(pred, _I32))
            types.append(_I32)
            cons.append("r")
            lines.append("setp.ne.b32 %p, $1, 0;")
        first = len(args)
        args += _split_regs(b, value, value.type)
        types += [a for _, a in regs]
        cons += [r for r, _ in regs]
        ins = ", ".join(f"${first + i}" for i in range(n))
        ins = f"{{{ins}}}" if n > 1 else ins
        vec = f"v{n}." if n > 1 else ""
        lines += _policy(hints)
        lines.append(f"{'@%p ' if pred is not None else ''}st{_hint_suffix(hints, 'st')}."
                     f"{vec}{_width(value.type)} [$0], {ins}{_policy_operand(hints)};")
        text = _asm_block(_declarations(pred, hints), lines)
        b.asm(ir.FunctionType(ir.VoidType(), types), text, ",".join(cons), args,
              side_effect=True)

    def and_xor(self, b: ir.IRBuilder, x: ir.Value, mask: int, flip: int) -> ir.Value:
        """`(x & mask) ^ flip` as one `lop3.b32` (PTX ISA "lop3"; the truth table of
        (a & b) ^ c over a = 0xF0, b = 0xCC, c = 0xAA is 0x6A): LLVM's and + xor with two
        immediates become two LOP3s, as SASS's LOP3 takes one immediate; ptxas keeps the
        other constant in a register outside the loop."""
        fnty = ir.FunctionType(_I32, [_I32])
        return b.asm(fnty, f"lop3.b32 $0, $1, {mask:#x}, {flip:#x}, 0x6a;", "=r,r", [x],
                     side_effect=False)

    def merge_halves(self, b: ir.IRBuilder, low: ir.Value, high: ir.Value) -> ir.Value:
        """`(low & 0xFFFF) | (high & 0xFFFF0000)` as one `prmt.b32` (bytes 0, 1 of low and
        2, 3 of high: selector 0x7610); LLVM's and/and/or becomes two LOP3s, or a zero
        extension and a LOP3 where low is a shift."""
        return self.byte_permute(b, low, high, 0x7610)

    def byte_permute(self, b: ir.IRBuilder, x: ir.Value, y: ir.Value,
                     selector: int) -> ir.Value:
        """`prmt.b32` (PTX ISA "prmt", default mode): result byte k is byte
        `selector >> 4k & 7` of the 8 bytes y:x."""
        fnty = ir.FunctionType(_I32, [_I32, _I32])
        return b.asm(fnty, f"prmt.b32 $0, $1, $2, {selector:#x};", "=r,r,r", [x, y],
                     side_effect=False)

    def load_words(self, b: ir.IRBuilder, ptr: ir.Value, count: int,
                   hints: MemoryHints | None = None) -> list[ir.Value]:
        """`ld.global.v{count}.b32` (count 1, 2 or 4) of an aligned address as one
        instruction: LLVM would narrow a plain vector load whose words are only used in
        small pieces (packed sub-byte elements) into 2-byte loads."""
        t = _I32 if count == 1 else ir.VectorType(_I32, count)
        words = self.predicated_load(b, ptr, t, None, None, hints)
        return [words] if count == 1 else [b.extract_element(words, ir.Constant(_I32, i))
                                           for i in range(count)]

    # -- matrix instructions ----------------------------------------------------------------
    def mma(self, b: ir.IRBuilder, instr: MatrixInstr, a: Sequence[ir.Value],
            b_: Sequence[ir.Value], c: Sequence[ir.Value]) -> list[ir.Value]:
        """`mma.sync.aligned.mMnNkK.row.col.<d>.<a>.<b>.<c>` as inline PTX (PTX ISA 9.7.14.5.14
        "Multiply-and-Accumulate Instruction: mma"): a and b packed into 32-bit registers
        (element 0 in the low bits, as the fragment tables number them), c tied to d."""
        operand = "tf32" if instr.precision == "tf32" else _PTX_TYPE[instr.operand.name]
        acc = _PTX_TYPE[instr.acc.name]
        a_regs = _pack32(b, a, instr.operand.bits)
        b_regs = _pack32(b, b_, instr.operand.bits)
        nc, na, nb = len(c), len(a_regs), len(b_regs)

        def group(start: int, count: int) -> str:
            return "{" + ", ".join(f"${start + i}" for i in range(count)) + "}"
        text = (f"mma.sync.aligned.m{instr.m}n{instr.n}k{instr.k}.row.col.{acc}.{operand}."
                f"{operand}.{acc} {group(0, nc)}, {group(nc, na)}, {group(nc + na, nb)}, "
                f"{group(nc + na + nb, nc)};")
        reg = "f" if acc == "f32" else "r"
        constraints = ",".join([f"={reg}"] * nc + ["r"] * (na + nb)
                               + [str(i) for i in range(nc)])
        out_t = ir.LiteralStructType([c[0].type] * nc)
        fnty = ir.FunctionType(out_t, [_I32] * (na + nb) + [c[0].type] * nc)
        d = b.asm(fnty, text, constraints, list(a_regs) + list(b_regs) + list(c),
                  side_effect=False)
        return [b.extract_value(d, i) for i in range(nc)]

    # PTX ISA 9.7.15 "Asynchronous Warpgroup Level Matrix Multiply-Accumulate Instructions"
    # (sm_90a). Inline PTX: LLVM's NVPTX has intrinsics for the fence, commit and wait but not
    # for wgmma.mma_async itself. The accumulators pass through the fence and the wait as tied
    # operands, so that LLVM cannot move their other uses into the asynchronous window.
    def wgmma(self, b: ir.IRBuilder, n: int, operand: str, a: Sequence[ir.Value],
              b_desc: ir.Value, c: Sequence[ir.Value], trans_b: bool) -> list[ir.Value]:
        """`wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{t}.{t} d, {a0..a3}, b-desc, p, 1, 1,
        trans-b` with p (scale-d) true: d = a @ b + d."""
        t = _PTX_TYPE[operand]
        nd, na = len(c), len(a)
        d = "{" + ", ".join(f"${i}" for i in range(nd)) + "}"
        a_text = "{" + ", ".join(f"${nd + i}" for i in range(na)) + "}"
        text = ("{\n\t.reg .pred %p;\n\tsetp.ne.b32 %p, $" + str(nd + na + 1) + ", 0;\n\t"
                f"wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{t}.{t} {d}, {a_text}, "
                f"${nd + na}, %p, 1, 1, {int(trans_b)};\n\t}}")
        constraints = ",".join(["=f"] * nd + ["r"] * na + ["l", "r"]
                               + [str(i) for i in range(nd)])
        out_t = ir.LiteralStructType([c[0].type] * nd)
        fnty = ir.FunctionType(out_t, [_I32] * na + [_I64, _I32] + [c[0].type] * nd)
        out = b.asm(fnty, text, constraints, list(a) + [b_desc, ir.Constant(_I32, 1)] + list(c),
                    side_effect=True)
        return [b.extract_value(out, i) for i in range(nd)]

    def wgmma_fence(self, b: ir.IRBuilder, values: Sequence[ir.Value]) -> list[ir.Value]:
        return _tied_asm(b, "wgmma.fence.sync.aligned;", values)

    def wgmma_wait(self, b: ir.IRBuilder, values: Sequence[ir.Value]) -> list[ir.Value]:
        return _tied_asm(b, "wgmma.commit_group.sync.aligned;\n\t"
                            "wgmma.wait_group.sync.aligned 0;", values)

    def fence_async_shared(self, b: ir.IRBuilder) -> None:
        """`fence.proxy.async.shared::cta` (PTX ISA 9.7.13.4.18 "membar / fence")."""
        b.asm(ir.FunctionType(ir.VoidType(), []), "fence.proxy.async.shared::cta;",
              "~{memory}", [], side_effect=True)

    def load_matrix(self, b: ir.IRBuilder, ptr: ir.Value, num: int,
                    trans: bool) -> list[ir.Value] | None:
        """`ldmatrix.sync.aligned.m8n8.x{num}{.trans}.shared.b16` (PTX ISA 9.7.14.5.15) through
        LLVM's `llvm.nvvm.ldmatrix.sync.aligned.m8n8.x{num}{.trans}.b16` on a shared pointer
        (IntrinsicsNVVM.td, LDMATRIX_NAME): an intrinsic, so LLVM knows it reads memory and
        keeps it between the barriers."""
        name = f"llvm.nvvm.ldmatrix.sync.aligned.m8n8.x{num}{'.trans' if trans else ''}.b16"
        ret = _I32 if num == 1 else ir.LiteralStructType([_I32] * num)
        out = _call(b, name, ret, [ptr])
        return [out] if num == 1 else [b.extract_value(out, i) for i in range(num)]

    # -- asynchronous copies (sm_80+): PTX ISA 9.7.9.25 "Data Movement and Conversion
    # Instructions: cp.async", through LLVM's intrinsics (IntrinsicsNVVM.td, CP_ASYNC_*), so
    # that LLVM knows they write shared and read global memory.
    def copy_async_16(self, b: ir.IRBuilder, dst: ir.Value, src: ir.Value,
                      src_bytes: ir.Value) -> None:
        """`cp.async.cg.shared.global [dst], [src], 16, src_bytes`: 16 bytes to shared memory,
        of which the first `src_bytes` (0..16) are read from `src` and the rest are zeros."""
        _call(b, "llvm.nvvm.cp.async.cg.shared.global.16.s", ir.VoidType(),
              [dst, src, src_bytes])

    def commit_copies(self, b: ir.IRBuilder) -> None:
        """`cp.async.commit_group`: the thread's copies issued so far form one group."""
        _call(b, "llvm.nvvm.cp.async.commit.group", ir.VoidType(), [])

    def wait_copies(self, b: ir.IRBuilder, pending: int) -> None:
        """`cp.async.wait_group pending`: at most `pending` of the thread's most recent groups
        are still in flight."""
        _call(b, "llvm.nvvm.cp.async.wait.group", ir.VoidType(), [ir.Constant(_I32, pending)])

    # -- debugging: vprintf and __assertfail, system calls (PTX ISA "System Calls")
    def printf(self, lw: Lowering, fmt: str, args: list[ir.Value]) -> None:
        b, module = lw.b, lw.module
        text = _string(module, lw.fresh("fmt"), fmt, self.global_addrspace)
        generic = b.addrspacecast(text, ir.PointerType())
        if args:
            struct = ir.LiteralStructType([a.type for a in args])
            slot = lw.entry.alloca(struct)
            buf = lw.entry.inttoptr(lw.entry.ptrtoint(slot, _I64), ir.PointerType())
            for i, a in enumerate(args):
                b.store(a, b.gep(buf, [ir.Constant(_I32, 0), ir.Constant(_I32, i)],
                                 source_etype=struct))
            arg_ptr = buf
        else:
            arg_ptr = ir.Constant(ir.PointerType(), None)
        vprintf = _declare(module, "vprintf", _I32, [ir.PointerType(), ir.PointerType()])
        b.call(vprintf, [generic, arg_ptr])

    def assert_fail(self, lw: Lowering, message: str, loc: Location | None) -> None:
        b, module = lw.b, lw.module
        generic = lambda name, s: b.addrspacecast(  # noqa: E731
            _string(module, lw.fresh(name), s, self.global_addrspace), ir.PointerType())
        fail = _declare(module, "__assertfail", ir.VoidType(),
                        [ir.PointerType(), ir.PointerType(), _I32, ir.PointerType(), _I64])
        b.call(fail, [generic("msg", message), generic("file", loc.file if loc else "<tile>"),
                      ir.Constant(_I32, loc.line if loc else 0),
                      generic("func", lw.fn.name), ir.Constant(_I64, 1)])

    # -- the function and the module -----------------------------------------------------------------
    def mark_kernel(self, module: ir.Module, fn: ir.Function, num_threads: int,
                    cluster: int = 1) -> None:
        # An entry point: LLVM 22's ptx_kernel calling convention. "maxntidx" in
        # nvvm.annotations is upgraded by LLVM to the "nvvm.maxntid" attribute and printed as
        # .maxntid (PTX ISA "Performance-Tuning Directives"): it lets ptxas budget registers
        # for this block size. "cluster_dim_x/y/z" become .reqnctapercluster: clusters of
        # that many programs, launched by a plain cuLaunchKernel (as __cluster_dims__).
        fn.calling_convention = "ptx_kernel"
        marks = [("maxntidx", num_threads)]
        if cluster > 1:
            marks += [("cluster_dim_x", cluster), ("cluster_dim_y", 1), ("cluster_dim_z", 1)]
        for name, value in marks:
            md = module.add_metadata([fn, ir.MetaDataString(module, name),
                                      ir.Constant(_I32, value)])
            module.add_named_metadata("nvvm.annotations", md)

    def emit_assembly(self, llvm_ir: str) -> str:
        from tilec.backends.nvidia.llvm_passes import optimize_and_emit
        return optimize_and_emit(self, llvm_ir)


# PTX ISA type names of the mma operand and accumulator dtypes.
_PTX_TYPE = {"f16": "f16", "bf16": "bf16", "i8": "s8", "u8": "u8", "f8e4m3": "e4m3",
             "f8e5m2": "e5m2", "f32": "f32", "i32": "s32"}


def _tied_asm(b: ir.IRBuilder, text: str, values: Sequence[ir.Value]) -> list[ir.Value]:
    """Inline PTX `text` that every value passes through unchanged (in and out tied), so
    that their definitions stay before it and their uses after."""
    if not values:
        b.asm(ir.FunctionType(ir.VoidType(), []), text, "~{memory}", [], side_effect=True)
        return []
    kinds = {ir.FloatType: "f", ir.IntType: "r"}
    regs = [("l" if v.type == _I64 else kinds[type(v.type)]) for v in values]
    constraints = ",".join([f"={r}" for r in regs] + [str(i) for i in range(len(values))]
                           + ["~{memory}"])
    out_t = ir.LiteralStructType([v.type for v in values])
    out = b.asm(ir.FunctionType(out_t, [v.type for v in values]), text, constraints,
                list(values), side_effect=True)
    return [b.extract_value(out, i) for i in range(len(values))]


def _pack32(b: ir.IRBuilder, values: Sequence[ir.Value], bits: int) -> list[ir.Value]:
    """Elements of `bits` bits, 32 // bits to an i32, element 0 in the low bits."""
    per = 32 // bits
    out = []
    for g in range(0, len(values), per):
        chunk = values[g:g + per]
        if per == 1:
            v = chunk[0]
            out.append(v if v.type == _I32 else b.bitcast(v, _I32))
            continue
        vec_t = ir.VectorType(chunk[0].type, per)
        vec: ir.Value = ir.Constant(vec_t, ir.Undefined)
        for i, v in enumerate(chunk):
            vec = b.insert_element(vec, v, ir.Constant(_I32, i))
        out.append(b.bitcast(vec, _I32))
    return out


def _string(module: ir.Module, name: str, text: str, addrspace: int) -> ir.GlobalVariable:
    data = bytearray(text.encode("utf-8")) + b"\0"
    t = ir.ArrayType(ir.IntType(8), len(data))
    g = ir.GlobalVariable(module, t, name, addrspace=addrspace)
    g.global_constant = True
    g.linkage = "internal"
    g.initializer = ir.Constant(t, data)
    return g


# -- inline PTX for global accesses -----------------------------------------------------------
def _asm_regs(t: ir.Type) -> list[tuple[str, ir.IntType]]:
    """The asm operands of an integer or integer vector: (constraint, type) per register
    (bytes travel in 16-bit registers)."""
    elems = [t.element] * t.count if isinstance(t, ir.VectorType) else [t]
    return [(_ASM_REG[e.width], ir.IntType(16) if e.width == 8 else e) for e in elems]


def _width(t: ir.Type) -> str:
    bits = (t.element if isinstance(t, ir.VectorType) else t).width
    return "u8" if bits == 8 else f"b{bits}"


def _split_regs(b: ir.IRBuilder, value: ir.Value, t: ir.Type) -> list[ir.Value]:
    elems = ([b.extract_element(value, ir.Constant(_I32, i)) for i in range(t.count)]
             if isinstance(t, ir.VectorType) else [value])
    return [b.zext(e, ir.IntType(16)) if e.type.width == 8 else e for e in elems]


def _join_regs(b: ir.IRBuilder, regs: list[ir.Value], t: ir.Type) -> ir.Value:
    if not isinstance(t, ir.VectorType):
        return b.trunc(regs[0], t) if t.width == 8 else regs[0]
    acc = ir.Constant(t, None)
    for i, r in enumerate(regs):
        acc = b.insert_element(acc, b.trunc(r, t.element) if t.element.width == 8 else r,
                               ir.Constant(_I32, i))
    return acc


def _hint_suffix(hints: MemoryHints | None, instr: str) -> str:
    """What follows `ld`/`st` (PTX ISA "ld", "st"): `.volatile.global`, or `.global` then
    the cache operator, else L1's eviction priority, then `.L2::cache_hint` (an L2 policy
    operand) with an eviction policy. L1's priority and a cache operator exclude each other
    (two forms of the instruction), and an L2 priority of its own needs 256-bit accesses
    (sm_100): the policy carries it instead, as for `createpolicy`."""
    if hints is None:
        return ".global"
    if hints.volatile:
        return ".volatile.global"
    text = ".global"
    if hints.cache:
        text += f".{hints.cache}"
    elif hints.evict:
        text += f".L1::{hints.evict}"
    return text + (".L2::cache_hint" if hints.evict else "")


def _policy(hints: MemoryHints | None) -> list[str]:
    """The L2 cache policy an eviction hint loads and stores with (PTX ISA "createpolicy":
    the whole access at that priority)."""
    if hints is None or not hints.evict:
        return []
    return [f"createpolicy.fractional.L2::{hints.evict}.b64 %pol, 1.0;"]


def _policy_operand(hints: MemoryHints | None) -> str:
    return ", %pol" if hints is not None and hints.evict else ""


def _declarations(pred: ir.Value | None, hints: MemoryHints | None) -> list[str]:
    return ([".reg .pred %p;"] if pred is not None else []) + \
        ([".reg .b64 %pol;"] if hints is not None and hints.evict else [])


def _asm_block(declarations: list[str], lines: list[str]) -> str:
    """Instructions, in a scope of their own where they declare registers."""
    if not declarations:
        return "\n\t".join(lines)
    return "{\n\t" + "\n\t".join(declarations + lines) + "\n\t}"

