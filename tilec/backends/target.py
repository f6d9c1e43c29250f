"""What a GPU target plugs into the common LLVM lowering.

The common lowering (`tilec/backends/llvm/`) never asks which vendor it is on: everything
that differs between NVIDIA and AMD (thread and block ids, barriers, cross-lane moves,
address spaces, fast math instructions, matrix instructions, how to emit assembly) is a
method here. Each hook takes an `llvmlite.ir.IRBuilder` positioned where the code goes.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Sequence

from llvmlite import ir

from tilec.errors import TilecError

if TYPE_CHECKING:
    from tilec.ir.mma import MatrixInstr


@dataclass(frozen=True)
class MemoryHints:
    """A load's or store's cache hints (tc.load's `cache_modifier`, `eviction_policy` and
    `volatile`; IR attributes `cache`, `evict`, `volatile`): what a target's accesses take
    besides the address."""

    cache: str = ""        # PTX cache operator without the dot: "cg", "cs", ...; "" default
    evict: str = ""        # "evict_first", "evict_last"; "" default
    volatile: bool = False

    @classmethod
    def of(cls, attrs: dict) -> MemoryHints | None:
        """The hints of an op's attributes; None when it has none."""
        hints = cls(attrs.get("cache", ""), attrs.get("evict", ""),
                    bool(attrs.get("volatile", False)))
        return hints if hints != cls() else None

    @property
    def streaming(self) -> bool:
        """Whether the data is not expected to be read again (LLVM's `!nontemporal`)."""
        return self.cache in ("cs", "lu") or self.evict == "evict_first"


@dataclass(frozen=True)
class Target(ABC):
    """A compilation target such as `sm_90a` or `gfx942`."""

    arch: str

    # -- facts ---------------------------------------------------------------------------
    triple: str = ""
    data_layout: str = ""
    warp_size: int = 32
    global_addrspace: int = 1
    shared_addrspace: int = 3
    max_shared_bytes: int = 48 * 1024
    matrix_loads: bool = False  # has `load_matrix` (ldmatrix)
    async_copies: bool = False  # has `copy_async_16`, `commit_copies`, `wait_copies`
    # LLVM keeps sub-byte ints (<2 x i4>, and the vectors its vectorizers build of i4 values)
    # in registers: low-bit casts pair lanes, `view` stays in registers and packed tiles are
    # read as words. AMDGPU legalizes them through scratch memory: there all three go the
    # general way.
    narrow_int_vectors: bool = True
    # The most programs a thread-block cluster may hold (launch option `num_ctas`,
    # `cluster_reduce`); 1: the target has no clusters.
    max_cluster: int = 1

    # -- ids and synchronisation ---------------------------------------------------------------
    @abstractmethod
    def thread_id(self, b: ir.IRBuilder) -> ir.Value:
        """This thread's index in the block (i32), x dimension only: tilec launches 1-D blocks."""

    @abstractmethod
    def block_id(self, b: ir.IRBuilder, axis: int) -> ir.Value:
        """The program id along a grid axis (i32)."""

    @abstractmethod
    def num_blocks(self, b: ir.IRBuilder, axis: int) -> ir.Value:
        """The grid size along an axis (i32)."""

    @abstractmethod
    def barrier(self, b: ir.IRBuilder) -> None:
        """Block-wide barrier that also orders shared-memory accesses."""

    def grid_dependency(self, b: ir.IRBuilder, action: str) -> None:
        """`tc.gdc_wait` / `tc.gdc_launch_dependents` (op grid_dependency): nothing where
        launches on a stream are ordered anyway."""

    def cluster_barrier(self, b: ir.IRBuilder) -> None:
        """Cluster-wide barrier: this program's earlier memory accesses (shared ones
        included) come before the other programs' accesses after it."""
        raise TilecError(f"internal error: {self.arch} has no thread-block clusters")

    def cluster_address(self, b: ir.IRBuilder, ptr: ir.Value, rank: int) -> ir.Value:
        """The address of shared-memory pointer `ptr`'s bytes in the cluster's program of
        rank `rank` (0 .. num_ctas-1), for plain loads (`cluster_reduce`)."""
        raise TilecError(f"internal error: {self.arch} has no thread-block clusters")

    # LLVM sync scope of an atomic's or a fence's scope ("cta", "gpu", "sys"); None is the
    # system scope, LLVM's default.
    sync_scopes: ClassVar[dict[str, str | None]] = {"cta": None, "gpu": None, "sys": None}

    @abstractmethod
    def shuffle_xor(self, b: ir.IRBuilder, value: ir.Value, lane_mask: int) -> ir.Value:
        """The i32 `value` of lane (lane ^ lane_mask) within the warp (all lanes active)."""

    @abstractmethod
    def shuffle_idx(self, b: ir.IRBuilder, value: ir.Value, src_lane: ir.Value) -> ir.Value:
        """The i32 `value` of lane `src_lane` (an i32, 0..warp_size-1) of this warp."""

    # -- fast float math (f32 in, f32 out); the math library builds accurate versions on these
    @abstractmethod
    def exp2_approx(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value: ...

    @abstractmethod
    def log2_approx(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value: ...

    @abstractmethod
    def rsqrt_approx(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value: ...

    @abstractmethod
    def sin_approx(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value: ...

    @abstractmethod
    def cos_approx(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value: ...

    def div_approx(self, b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
        """x / y within a few ulp over the whole f32 range (fast-math division); LLVM's
        approximate fdiv unless the target has a better instruction."""
        return b.fdiv(x, y, flags=("afn", "arcp"))

    # -- matrix instructions (a target without them lowers every dot to FMAs) ----------------
    def mma(self, b: ir.IRBuilder, instr: MatrixInstr, a: Sequence[ir.Value],
            b_: Sequence[ir.Value], c: Sequence[ir.Value]) -> list[ir.Value]:
        """One warp-level matrix multiply-accumulate (`tilec.ir.mma` lists the target's): the
        thread's fragment elements of a, b and c in fragment-local order in, d's out."""
        # Unreachable: tilec.ir.mma.select offers a target only the instructions it lists.
        raise TilecError(f"internal error: {self.arch} has no matrix instruction {instr.name}")

    # Warpgroup matrix instructions (`tilec.ir.mma.wgmma_plan`; only targets where
    # `mma.has_wgmma` holds are asked).
    def wgmma(self, b: ir.IRBuilder, n: int, operand: str, a: Sequence[ir.Value],
              b_desc: ir.Value, c: Sequence[ir.Value], trans_b: bool) -> list[ir.Value]:
        """Start one 64 x n x 16 warpgroup product: a is the thread's A registers (16-bit
        pairs), b a shared-memory matrix descriptor (i64, `trans_b` when N-major), c the
        n/2 accumulator values; d's out (complete after `wgmma_wait`)."""
        raise TilecError(f"internal error: {self.arch} has no wgmma")

    def wgmma_fence(self, b: ir.IRBuilder, values: Sequence[ir.Value]) -> list[ir.Value]:
        """Order the register writes of `values` (accumulators, A registers) before the
        warpgroup products that follow; the values come back for them to use."""
        raise TilecError(f"internal error: {self.arch} has no wgmma")

    def wgmma_wait(self, b: ir.IRBuilder, values: Sequence[ir.Value]) -> list[ir.Value]:
        """Commit the products started so far and wait for them; the accumulators come back
        complete."""
        raise TilecError(f"internal error: {self.arch} has no wgmma")

    def fence_async_shared(self, b: ir.IRBuilder) -> None:
        """Make this thread's shared-memory writes visible to the asynchronous proxy."""
        raise TilecError(f"internal error: {self.arch} has no asynchronous proxy")

    def load_matrix(self, b: ir.IRBuilder, ptr: ir.Value, num: int,
                    trans: bool) -> list[ir.Value] | None:
        """A warp-wide load of `num` 8x8 matrices of 16-bit elements from shared memory, this
        lane addressing one 16-byte row (`tilec.ir.fragments.ldmatrix` says which lane gets
        what): one i32 per matrix; None when the target has no such instruction."""
        return None

    # -- the function and the module ---------------------------------------------------------
    @abstractmethod
    def mark_kernel(self, module: ir.Module, fn: ir.Function, num_threads: int,
                    cluster: int = 1) -> None:
        """Make `fn` an entry point launched with `num_threads` threads per block, in
        clusters of `cluster` blocks (at most `max_cluster`)."""

    @abstractmethod
    def emit_assembly(self, llvm_ir: str) -> str:
        """Optimise and compile LLVM IR text to the target's assembly (PTX, AMDGCN)."""
