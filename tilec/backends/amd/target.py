"""AMD CDNA GPUs (gfx90a, gfx942, gfx950; wave64): the Target hooks as `llvm.amdgcn.*`
intrinsics, checked against LLVM 22's AMDGPU backend.

Sources: LLVM's `llvm/include/llvm/IR/IntrinsicsAMDGPU.td` (intrinsic names and
signatures), LLVM's AMDGPUUsage document (address spaces, memory model, code objects), the
CDNA3 ISA guide (DPP, `ds_swizzle`, `ds_bpermute`, MFMA), and the HSA runtime's
`hsa_kernel_dispatch_packet_t` (the grid size).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from llvmlite import ir

from tilec.backends.target import Target
from tilec.errors import Location, TilecError

if TYPE_CHECKING:
    from tilec.backends.llvm.lower import Lowering
    from tilec.ir.core import Operation
    from tilec.ir.mma import MatrixInstr

ARCHS = ("gfx90a", "gfx942", "gfx950")
TRIPLE = "amdgcn-amd-amdhsa"
# LDS per workgroup: 64 KiB on CDNA2/CDNA3, 160 KiB on CDNA4 (gfx950) (CDNA3 ISA guide,
# "Local Data Share"; LLVM AMDGPUUsage "Processors" / getAddressableLocalMemorySize).
MAX_SHARED = {"gfx90a": 64 * 1024, "gfx942": 64 * 1024, "gfx950": 160 * 1024}
# Address spaces (AMDGPUUsage "Address Spaces"): 1 global, 3 local (LDS), 4 constant.
GLOBAL, LOCAL, CONSTANT = 1, 3, 4

_I1 = ir.IntType(1)
_I16 = ir.IntType(16)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_F32 = ir.FloatType()


def _declare(module: ir.Module, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, list(args)), name)
    return fn


def _call(b: ir.IRBuilder, name: str, ret: ir.Type, args: Sequence[ir.Value]) -> ir.Value:
    return b.call(_declare(b.module, name, ret, [a.type for a in args]), list(args))


def _c(v: int) -> ir.Constant:
    return ir.Constant(_I32, v)


@functools.cache
def data_layout() -> str:
    """The AMDGPU data layout string of the LLVM that llvmlite carries."""
    from tilec.backends.amd.llvm_passes import target_machine
    return str(target_machine("gfx942").target_data)


@dataclass(frozen=True)
class AmdTarget(Target):
    """An AMD GPU architecture, e.g. `AmdTarget("gfx942")`."""

    triple: str = TRIPLE
    data_layout: str = ""
    warp_size: int = 64
    global_addrspace: int = GLOBAL
    shared_addrspace: int = LOCAL
    max_shared_bytes: int = 64 * 1024
    matrix_loads: bool = False   # no ldmatrix: operands go through LDS with ds_read
    async_copies: bool = False
    narrow_int_vectors: bool = False  # <2 x i4> goes through scratch: casts stay per lane
    has_f64_libm: bool = False   # f64 exp/log/... need ROCm's device libraries (not linked)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise TilecError(f"unknown AMD arch {self.arch!r}", hint=f"one of {ARCHS}")
        object.__setattr__(self, "max_shared_bytes", MAX_SHARED[self.arch])
        object.__setattr__(self, "data_layout", data_layout())

    # -- ids and synchronisation -------------------------------------------------------------
    def thread_id(self, b: ir.IRBuilder) -> ir.Value:
        return _call(b, "llvm.amdgcn.workitem.id.x", _I32, [])

    def block_id(self, b: ir.IRBuilder, axis: int) -> ir.Value:
        return _call(b, f"llvm.amdgcn.workgroup.id.{'xyz'[axis]}", _I32, [])

    def num_blocks(self, b: ir.IRBuilder, axis: int) -> ir.Value:
        # hsa_kernel_dispatch_packet_t (hsa.h): u16 workgroup_size_{x,y,z} at bytes 4, 6, 8,
        # u32 grid_size_{x,y,z} at 12, 16, 20, the grid counted in work-items. The dispatch
        # packet exists under every code object version (v5's implicit arguments would also
        # hold the block count, v4's do not).
        packet = _call(b, "llvm.amdgcn.dispatch.ptr", ir.PointerType(addrspace=CONSTANT), [])
        i8 = ir.IntType(8)
        wg_ptr = b.gep(packet, [_c(4 + 2 * axis)], source_etype=i8)
        grid_ptr = b.gep(packet, [_c(12 + 4 * axis)], source_etype=i8)
        wg = b.zext(b.load(wg_ptr, typ=_I16, align=2), _I32)
        grid = b.load(grid_ptr, typ=_I32, align=4)
        return b.udiv(b.add(grid, b.sub(wg, _c(1))), wg)

    # AMDGPUUsage "Memory Scopes": workgroup, agent (the device), system.
    sync_scopes: ClassVar[dict[str, str | None]] = {"cta": "workgroup", "gpu": "agent",
                                                    "sys": None}

    def barrier(self, b: ir.IRBuilder) -> None:
        # s_barrier orders execution only; the workgroup-scope fences around it make LDS
        # (and global) writes before it visible after it (AMDGPUUsage "Memory Model GFX942":
        # a release fence waits for outstanding stores, an acquire fence for loads).
        b.fence("release", "workgroup")
        _call(b, "llvm.amdgcn.s.barrier", ir.VoidType(), [])
        b.fence("acquire", "workgroup")

    def shuffle_xor(self, b: ir.IRBuilder, value: ir.Value, lane_mask: int) -> ir.Value:
        if lane_mask in _QUAD_PERM:
            # DPP quad_perm (CDNA3 ISA "DPP"): each lane reads lane (lane & ~3) + perm[lane & 3]
            # of the same row, no LDS traffic. Row and bank masks 0xf: every lane writes.
            return _call(b, "llvm.amdgcn.update.dpp.i32", _I32,
                         [value, value, _c(_QUAD_PERM[lane_mask]), _c(0xF), _c(0xF),
                          ir.Constant(_I1, 1)])
        if lane_mask < 32:
            # ds_swizzle_b32 in bitmask mode (offset bit 15 = 0): within each group of 32
            # lanes, source = ((lane & and_mask) | or_mask) ^ xor_mask, the masks in offset
            # bits [4:0], [9:5], [14:10] (CDNA3 ISA "DS_SWIZZLE_B32").
            offset = (lane_mask << 10) | 0x1F
            return _call(b, "llvm.amdgcn.ds.swizzle", _I32, [value, _c(offset)])
        lane = _call(b, "llvm.amdgcn.mbcnt.hi", _I32,
                     [_c(-1), _call(b, "llvm.amdgcn.mbcnt.lo", _I32, [_c(-1), _c(0)])])
        return self.shuffle_idx(b, value, b.xor(lane, _c(lane_mask)))

    def shuffle_idx(self, b: ir.IRBuilder, value: ir.Value, src_lane: ir.Value) -> ir.Value:
        # ds_bpermute_b32: each lane reads `value` of the lane whose index is addr / 4 (the
        # address counts bytes; CDNA3 ISA "DS_BPERMUTE_B32"); it goes through the LDS
        # crossbar but touches no LDS memory.
        return _call(b, "llvm.amdgcn.ds.bpermute", _I32, [b.shl(src_lane, _c(2)), value])

    # -- fast math: single VALU transcendental instructions (CDNA3 ISA "VOP1") ---------------
    def exp2_approx(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        return _call(b, "llvm.amdgcn.exp2.f32", _F32, [x])      # v_exp_f32

    def log2_approx(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        return _call(b, "llvm.amdgcn.log.f32", _F32, [x])       # v_log_f32

    def rsqrt_approx(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        return _call(b, "llvm.amdgcn.rsq.f32", _F32, [x])       # v_rsq_f32

    def sin_approx(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        return _call(b, "llvm.amdgcn.sin.f32", _F32, [self._revolutions(b, x)])  # v_sin_f32

    def cos_approx(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        return _call(b, "llvm.amdgcn.cos.f32", _F32, [self._revolutions(b, x)])  # v_cos_f32

    @staticmethod
    def _revolutions(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        # v_sin_f32 / v_cos_f32 take x / (2 pi) and are accurate for |x / 2 pi| <= 256 only:
        # keep the fraction (v_fract_f32), which has the same sine.
        turns = b.fmul(x, ir.Constant(_F32, 0.15915494309189535))
        return _call(b, "llvm.amdgcn.fract.f32", _F32, [turns])

    # -- matrix instructions -------------------------------------------------------------------
    def mma(self, b: ir.IRBuilder, instr: MatrixInstr, a: Sequence[ir.Value],
            b_: Sequence[ir.Value], c: Sequence[ir.Value]) -> list[ir.Value]:
        """`llvm.amdgcn.<instr.name>(A, B, C, cbsz=0, abid=0, blgp=0)` (IntrinsicsAMDGPU.td,
        AMDGPUMfmaIntrinsic): A and B hold the lane's fragment elements, element 0 lowest
        (as `tilec.ir.fragments` numbers them); C and D are vectors of the accumulators."""
        acc_t = c[0].type
        acc_vec = _vector(b, list(c), acc_t)
        a_op, b_op = _mfma_operand(b, a, instr), _mfma_operand(b, b_, instr)
        zero = _c(0)
        d = _call(b, f"llvm.amdgcn.{instr.name}", acc_vec.type, [a_op, b_op, acc_vec, zero,
                                                                 zero, zero])
        return [b.extract_element(d, _c(i)) for i in range(len(c))]

    # -- debugging ---------------------------------------------------------------------------
    @property
    def rules(self) -> dict[str, Any]:
        """Lowering rules this target overrides: `print` (no device printf yet)."""
        return {"print": _no_print}

    def printf(self, lw: Lowering, fmt: str, args: list[ir.Value]) -> None:
        raise TilecError(f"print is not supported on {self.arch} yet")

    def assert_fail(self, lw: Lowering, message: str, loc: Location | None) -> None:
        # No device printf, so no message: s_trap 2 ends the wave and the runtime reports
        # a queue error (AMDGPUUsage "Trap Handler ABI": llvm.trap).
        _call(lw.b, "llvm.trap", ir.VoidType(), [])

    # -- the function and the module -----------------------------------------------------------
    def mark_kernel(self, module: ir.Module, fn: ir.Function, num_threads: int,
                    cluster: int = 1) -> None:
        fn.calling_convention = "amdgpu_kernel"
        # The block size the kernel is compiled for (AMDGPUUsage "LLVM IR Attributes"): the
        # register budget follows from it (the default assumes up to 1024 threads). llvmlite
        # knows only enum attributes, so the string attribute goes into the set directly.
        set.add(fn.attributes, f'"amdgpu-flat-work-group-size"="1,{num_threads}"')
        # One code object version for every kernel (AMDGPUUsage "Code Object Metadata"):
        # v4 unless TILEC_AMD_CODE_OBJECT says 5 (see `code_object_version`).
        from tilec.backends.amd.llvm_passes import code_object_version
        flag = module.add_metadata([_c(1), ir.MetaDataString(module,
                                                             "amdhsa_code_object_version"),
                                    _c(100 * code_object_version())])
        module.add_named_metadata("llvm.module.flags", flag)

    def emit_assembly(self, llvm_ir: str) -> str:
        from tilec.backends.amd.llvm_passes import optimize_and_emit
        return optimize_and_emit(self, llvm_ir)[0]


# quad_perm selectors of the lane XORs inside a quad: lane i reads perm[i] (2 bits each).
_QUAD_PERM = {1: 1 | 0 << 2 | 3 << 4 | 2 << 6, 2: 2 | 3 << 2 | 0 << 4 | 1 << 6,
              3: 3 | 2 << 2 | 1 << 4 | 0 << 6}


def _no_print(lw: Lowering, op: Operation) -> list:
    raise op.error(f"print is not supported on {lw.target.arch} yet (AMD has no device printf "
                   "in tilec)", hint="run the kernel on the CPU interpreter "
                                     "(TILEC_INTERPRET=1) or on NVIDIA to print")


def _vector(b: ir.IRBuilder, values: list[ir.Value], t: ir.Type) -> ir.Value:
    vec: ir.Value = ir.Constant(ir.VectorType(t, len(values)), ir.Undefined)
    for i, v in enumerate(values):
        vec = b.insert_element(vec, v, _c(i))
    return vec


def _mfma_operand(b: ir.IRBuilder, values: Sequence[ir.Value], instr: MatrixInstr) -> ir.Value:
    """A or B as the intrinsic takes it: <4 x half> for f16, <4 x i16> for bf16 (`_1k`),
    and 8-bit elements packed into an i32 (4) or i64 (8), element 0 in the low byte."""
    bits = instr.operand.bits
    if bits == 8:
        ints = [v if v.type == ir.IntType(8) else b.bitcast(v, ir.IntType(8)) for v in values]
        return b.bitcast(_vector(b, ints, ir.IntType(8)), ir.IntType(8 * len(ints)))
    if instr.operand.name == "bf16":
        ints = [v if v.type == _I16 else b.bitcast(v, _I16) for v in values]
        return _vector(b, ints, _I16)
    return _vector(b, list(values), values[0].type)
