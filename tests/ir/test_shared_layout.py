"""Shared-memory layouts: strides, padding, swizzles, Hopper modes, composition helpers."""
from __future__ import annotations

import re

import numpy as np
import pytest

from tilec.errors import LayoutError
from tilec.ir.layout import column_spatial, local, parse_layout, spatial
from tilec.ir.shared_layout import (
    SharedLayout,
    Swizzle,
    bank_conflicts,
    column_major,
    contiguous_vector,
    hopper_layout,
    row_major,
    strided,
    swizzle_mode,
)


def test_row_and_column_major():
    assert row_major(4, 8).offset((2, 3)) == 2 * 8 + 3
    assert column_major(4, 8).offset((2, 3)) == 3 * 4 + 2
    assert (row_major(4, 8).offsets() == np.arange(32).reshape(4, 8)).all()
    assert row_major(4, 8).size == 32 and row_major(4, 8).is_bijective()
    assert row_major(3, 5, 7).offset((1, 2, 3)) == 1 * 35 + 2 * 7 + 3


def test_padding_is_strides():
    padded = row_major(4, 8, pad=1)
    assert padded == strided([4, 8], [9, 1])
    assert padded.offset((1, 0)) == 9 and padded.size == 3 * 9 + 8
    assert padded.is_injective() and not padded.is_bijective()


def test_canonical_merges_contiguous_modes():
    assert strided([[2, 4], 8], [[32, 8], 1]) == row_major(8, 8)
    assert strided([[1, 8], 1], [[99, 1], 0]) == row_major(8, 1)
    assert row_major(8, 8).swizzle(0, 3, 3) == row_major(8, 8)


def test_swizzle_semantics_match_cutlass():
    # cute::Swizzle<B,M,S>: yyy_msk = ((1<<B)-1) << (M+S); offset ^ ((offset & yyy_msk) >> S)
    for bits, base, shift in [(3, 3, 3), (2, 4, 3), (1, 0, 5), (3, 4, 4)]:
        z = Swizzle(bits, base, shift)
        yyy = ((1 << bits) - 1) << (base + shift)
        for offset in range(4096):
            assert z.apply(offset) == offset ^ ((offset & yyy) >> shift)
            assert z.apply(z.apply(offset)) == offset
    with pytest.raises(LayoutError):
        Swizzle(3, 3, 2)  # overlapping bit fields


def test_swizzled_layout_is_a_permutation_of_its_span():
    layout = row_major(16, 64).swizzle(3, 3, 3)
    assert layout.is_bijective()
    assert sorted(layout.offsets().ravel()) == list(range(16 * 64))
    # 128B swizzle for f16: the 16-byte chunk of row r, chunk c lands in chunk c ^ (r % 8).
    for r in range(16):
        for c in range(8):
            assert layout.offset((r, 8 * c)) == 64 * r + 8 * (c ^ (r % 8))


@pytest.mark.parametrize("elem_bits", [4, 8, 16, 32])
@pytest.mark.parametrize("mode,period", [("32B", 2), ("64B", 4), ("128B", 8)])
def test_hopper_swizzle_modes_in_bytes(elem_bits, mode, period):
    # PTX ISA wgmma "Shared Memory Matrix Layout" / TMA swizzle: within a pattern of 8 rows of
    # `mode` bytes (one row = 128 bytes), the 16-byte chunk index is XORed with
    # (byte offset >> 7) % period. Checked here on byte addresses for every element width.
    z = swizzle_mode(mode, elem_bits)
    for offset in range(0, 8192 * 8 // elem_bits):
        byte = offset * elem_bits // 8
        swizzled_byte = z.apply(offset) * elem_bits // 8
        chunk = (byte >> 4) & 7
        expected_chunk = chunk ^ ((byte >> 7) % period)
        assert swizzled_byte >> 4 == ((byte >> 4) & ~7) | expected_chunk
        assert swizzled_byte & 15 == byte & 15
    assert swizzle_mode("none", elem_bits) is None


def test_hopper_layout_tiles_atoms_down_rows_first():
    layout = hopper_layout((64, 128), 16, "128B")  # two 64-column atoms along K
    assert layout.shape == (64, 128) and layout.is_bijective()
    assert layout.offset((0, 64)) == 64 * 64  # the second atom column follows all rows
    assert layout.offset((1, 0)) == (64 ^ (1 << 3))  # row 1, chunk 0 -> chunk 1
    none = hopper_layout((16, 16), 16, "none")  # 8x8 core matrices, M-major order
    assert none.offset((8, 0)) == 64 and none.offset((0, 8)) == 128 and none.offset((1, 1)) == 9
    assert parse_layout(str(layout)) == layout
    with pytest.raises(LayoutError):
        hopper_layout((64, 32), 16, "128B")


def test_print_parse_round_trip():
    layouts = [
        row_major(64, 64),
        column_major(8, 16),
        row_major(64, 64).swizzle(3, 3, 3),
        row_major(4, 8, pad=4),
        strided([[2, 4], 8], [[1000, 8], 1]),
        hopper_layout((64, 256), 8, "64B"),
        row_major(8, 1, 4),
        row_major(32, 32).swizzle(2, 0, 5).swizzle(1, 3, 4),
    ]
    for layout in layouts:
        text = str(layout)
        assert parse_layout(text) == layout, text
        assert re.fullmatch(r"[A-Za-z0-9_,()\[\]*+\-. ]*", text)
    assert str(row_major(64, 64).swizzle(3, 3, 3)) == "row_major(64,64).swizzle(3,3,3)"
    assert str(row_major(4, 8, pad=1)) == "strided([4,8],[9,1])"


def test_permute_gives_the_transposed_view():
    layout = row_major(4, 8)
    assert layout.permute((1, 0)).offset((3, 2)) == layout.offset((2, 3))
    assert layout.permute((1, 0)) == column_major(8, 4)


def test_composition_with_a_register_layout():
    reg = spatial(4, 8) * local(1, 4)
    offs = row_major(4, 32).offsets(reg)
    assert offs.shape == (32, 4)
    assert list(offs[9]) == [1 * 32 + 4, 1 * 32 + 5, 1 * 32 + 6, 1 * 32 + 7]
    assert (reg.compose(row_major(4, 32)) == offs).all()
    with pytest.raises(LayoutError):
        row_major(4, 16).offsets(reg)


def test_contiguous_vector():
    reg = spatial(8, 4) * local(1, 8)  # 8 consecutive columns per thread
    assert contiguous_vector(reg, row_major(8, 32)) == 8
    assert contiguous_vector(reg, (32, 1)) == 8  # strides of a global tensor
    assert contiguous_vector(reg, column_major(8, 32)) == 1
    assert contiguous_vector(reg, (40, 1)) == 8
    assert contiguous_vector(reg, row_major(8, 32).swizzle(2, 2, 3)) == 4
    assert contiguous_vector(spatial(8, 4) * local(1, 6), (24, 1)) == 2  # 6 = 2 * 3
    assert contiguous_vector(spatial(8, 4) * local(1, 2), (9, 1)) == 1  # misaligned rows


def test_bank_conflicts():
    column_read = spatial(32, 1)  # each thread reads one row of column 0
    assert bank_conflicts(column_read * local(1, 32), row_major(32, 32), 32, vector=1) > 0
    assert bank_conflicts(column_read, row_major(32, 1), 32) == 0
    reg = column_read * local(1, 32)
    assert bank_conflicts(reg, row_major(32, 32), 32, vector=1) == 32 * 31
    assert bank_conflicts(reg, row_major(32, 32, pad=1), 32, vector=1) == 0
    assert bank_conflicts(reg, row_major(32, 32).swizzle(5, 0, 5), 32, vector=1) == 0
    # ldmatrix-style 16-byte row reads: thread t reads chunk t//8 of row t%8 of 128-byte rows.
    chunks = column_spatial(8, 8) * local(1, 8)
    assert bank_conflicts(chunks, row_major(8, 64), 16) > 0
    assert bank_conflicts(chunks, hopper_layout((8, 64), 16, "128B"), 16) == 0
    assert bank_conflicts(spatial(8, 4) * local(1, 8), row_major(8, 32), 16) == 0


def test_errors():
    with pytest.raises(LayoutError):
        row_major(4, 0)
    with pytest.raises(LayoutError):
        row_major(4, 4).offset((4, 0))
    with pytest.raises(LayoutError):
        swizzle_mode("256B", 16)
    with pytest.raises(LayoutError):
        SharedLayout(((4,),), ((1,), (1,)))


def test_draw():
    text = row_major(2, 4).swizzle(1, 0, 2).draw()
    assert "row_major(2,4).swizzle(1,0,2)" in text
    assert text.splitlines()[-1].split() == ["1", "5", "4", "7", "6"]


@pytest.mark.parametrize("text", ["spatial(8,4)*local(1,8)", "local(1,32)*spatial(32,1)",
                                  "spatial(2,2)*spatial(8,4)*local(2,2)",
                                  "column_spatial(4,8)*local(8,4)"])
@pytest.mark.parametrize("bits", [8, 16, 32])
def test_bank_conflicts_of_whole_warps_at_once_match_the_loop(text, bits):
    from tilec.ir.shared_layout import (_bank_conflicts_each_warp,
                                        _bank_conflicts_whole_warps, contiguous_vector)
    reg = parse_layout(text)
    for shared in [row_major(*reg.shape)] + [row_major(*reg.shape).swizzle(b, 2, s)
                                              for b in (1, 2, 3) for s in range(b, 5)]:
        offs = shared.offsets(reg)
        widest = min(contiguous_vector(reg, shared), max(1, 128 // bits))
        for vector in {1, widest}:
            nbytes = vector * bits // 8
            phase = 32 if nbytes <= 4 else 128 // nbytes
            assert _bank_conflicts_whole_warps(offs, bits, vector, 32, phase, 32) == \
                _bank_conflicts_each_warp(offs, bits, vector, 32, phase, 32)


def _best_swizzle_by_definition(base, accesses, elem_bits):
    """best_swizzle as its docstring reads: every candidate layout built and measured."""
    low = int(np.log2(128 // elem_bits))
    top = max(1, int(np.log2(base.size)))

    def cost(layout):
        return sum(bank_conflicts(r, layout, elem_bits, vector=v) for r, v in accesses)

    best, best_cost = base, cost(base)
    for bits in (1, 2, 3):
        for shift in range(bits, top - low - bits + 1):
            candidate = base.swizzle(bits, low, shift)
            if candidate.size == base.size and candidate.is_injective() and \
                    cost(candidate) < best_cost:
                best, best_cost = candidate, cost(candidate)
    return best


@pytest.mark.parametrize("writes, reads, bits", [
    ("spatial(8,4)*local(1,8)", "column_spatial(8,4)*local(1,8)", 16),
    ("spatial(16,2)*local(4,16)", "spatial(2,16)*local(32,2)", 16),
    ("spatial(32,1)*local(2,32)", "column_spatial(8,4)*local(8,8)", 8),
    ("spatial(4,8)*local(16,4)", "spatial(32,1)*local(2,32)", 32),
])
def test_best_swizzle_is_the_search_its_definition_describes(writes, reads, bits):
    # best_swizzle swizzles base's offsets instead of building each candidate layout, stops
    # at a conflict-free one and drops a candidate once its conflicts reach the best's: the
    # same choice as the search written out.
    from tilec.ir.shared_layout import best_swizzle
    w, r = parse_layout(writes), parse_layout(reads)
    accesses = [(w, min(contiguous_vector(w, row_major(*w.shape)), 128 // bits)), (r, 1)]
    for base in (row_major(*w.shape), row_major(*w.shape, pad=8 * 32 // bits)):
        assert best_swizzle(base, accesses, bits) == \
            _best_swizzle_by_definition(base, accesses, bits)
    conflict_free = [(spatial(8, 4) * local(1, 8), 8)]
    assert best_swizzle(row_major(8, 32), conflict_free, 16) == row_major(8, 32)
