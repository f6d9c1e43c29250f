"""The magic numbers of the AMD Target hooks, decoded the way the hardware reads them: DPP
quad_perm and ds_swizzle selectors give lane ^ mask, and num_programs reads the HSA dispatch
packet at the offsets of hsa_kernel_dispatch_packet_t."""
from __future__ import annotations

import ctypes
import re

import pytest
from llvmlite import ir

from tilec.backends.amd.target import _QUAD_PERM, AmdTarget


@pytest.mark.parametrize("mask", sorted(_QUAD_PERM))
def test_dpp_quad_perm_is_lane_xor(mask):
    sel = _QUAD_PERM[mask]
    for lane in range(64):   # lane i of each quad reads quad lane sel[2i+1:2i]
        src = (lane & ~3) + ((sel >> (2 * (lane & 3))) & 3)
        assert src == lane ^ mask


def _kernel_ir(emit) -> str:
    target = AmdTarget("gfx942")
    module = ir.Module()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), []), "k")
    b = ir.IRBuilder(fn.append_basic_block())
    emit(target, b)
    b.ret_void()
    return str(module)


@pytest.mark.parametrize("mask", [4, 8, 16])
def test_ds_swizzle_offset_is_lane_xor(mask):
    text = _kernel_ir(lambda t, b: t.shuffle_xor(b, ir.Constant(ir.IntType(32), 7), mask))
    offset = int(re.search(r"llvm\.amdgcn\.ds\.swizzle\"?\(i32 7, i32 (\d+)\)", text).group(1))
    assert offset < 1 << 15                     # bit 15 clear: bitmask mode
    and_mask, or_mask, xor_mask = offset & 31, (offset >> 5) & 31, (offset >> 10) & 31
    for lane in range(64):                      # within each group of 32 lanes
        assert (lane & ~31) + (((lane & and_mask) | or_mask) ^ xor_mask) == lane ^ mask


def test_lane_xor_32_crosses_halves_with_bpermute():
    text = _kernel_ir(lambda t, b: t.shuffle_xor(b, ir.Constant(ir.IntType(32), 7), 32))
    assert "llvm.amdgcn.ds.bpermute" in text and "xor i32" in text and "shl i32" in text


class DispatchPacket(ctypes.Structure):
    """hsa_kernel_dispatch_packet_t (hsa.h)."""

    _fields_ = [("header", ctypes.c_uint16), ("setup", ctypes.c_uint16),
                ("workgroup_size_x", ctypes.c_uint16), ("workgroup_size_y", ctypes.c_uint16),
                ("workgroup_size_z", ctypes.c_uint16), ("reserved0", ctypes.c_uint16),
                ("grid_size_x", ctypes.c_uint32), ("grid_size_y", ctypes.c_uint32),
                ("grid_size_z", ctypes.c_uint32)]


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_num_programs_reads_the_dispatch_packet(axis):
    text = _kernel_ir(lambda t, b: t.num_blocks(b, axis))
    offsets = [int(x) for x in re.findall(r"getelementptr i8, ptr addrspace\(4\) %\S+, i32 (\d+)",
                                          text)]
    xyz = "xyz"[axis]
    assert offsets == [getattr(DispatchPacket, f"workgroup_size_{xyz}").offset,
                       getattr(DispatchPacket, f"grid_size_{xyz}").offset]
    assert "load i16" in text and "udiv i32" in text
