"""Register layouts: primitives, product, canonical form, operations, text and drawing."""
from __future__ import annotations

import re

import numpy as np
import pytest

from tilec.errors import LayoutError
from tilec.ir.layout import (
    LinearLayout,
    RegisterLayout,
    column_local,
    column_spatial,
    local,
    main,
    parse_layout,
    replicate,
    spatial,
)

ALLOWED = re.compile(r"[A-Za-z0-9_,()\[\]*+\-. ]*")


def test_primitives():
    assert [spatial(4, 8).map(t, 0) for t in (0, 1, 8, 31)] == [(0, 0), (0, 1), (1, 0), (3, 7)]
    assert [column_spatial(4, 8).map(t, 0) for t in (1, 4, 31)] == [(1, 0), (0, 1), (3, 7)]
    assert [local(2, 4).map(0, i) for i in (1, 4, 7)] == [(0, 1), (1, 0), (1, 3)]
    assert [column_local(2, 4).map(0, i) for i in (1, 2, 7)] == [(1, 0), (0, 1), (1, 3)]
    layout = spatial(4, 8)
    assert (layout.shape, layout.num_threads, layout.local_size) == ((4, 8), 32, 1)
    assert local(3, 5).num_threads == 1 and local(3, 5).local_size == 15
    with pytest.raises(LayoutError):
        spatial(4, 0)


def test_product_definition():
    a, b = column_spatial(2, 3) * local(1, 2), spatial(2, 2) * column_local(3, 1)
    p = a * b
    assert p.shape == (2 * 6, 3 * 2 * 2 * 1)
    for ta in range(a.num_threads):
        for tb in range(b.num_threads):
            for la in range(a.local_size):
                for lb in range(b.local_size):
                    ca, cb = a.map(ta, la), b.map(tb, lb)
                    expected = tuple(x * s + y for x, s, y in zip(ca, b.shape, cb))
                    got = p.map(ta * b.num_threads + tb, la * b.local_size + lb)
                    assert got == expected


def test_canonical_equality():
    assert spatial(2, 1) * spatial(2, 8) == spatial(4, 8)
    assert local(2, 4) * local(1, 2) == local(2, 8)
    assert local(2, 1) * local(3, 1) == local(6, 1)
    assert spatial(1, 4) * spatial(1, 8) == spatial(1, 32)
    assert spatial(1, 1) * local(2, 3) == local(2, 3)
    assert column_spatial(4, 1) == spatial(4, 1)
    assert hash(spatial(2, 1) * spatial(2, 8)) == hash(spatial(4, 8))
    assert replicate(2) * replicate(3) == replicate(6)
    assert spatial(4, 8) != column_spatial(4, 8)
    assert local(2, 4) != column_local(2, 4)
    assert spatial(2, 1) * spatial(1, 2) == spatial(2, 2)  # same function, two spellings
    assert spatial(1, 2) * spatial(2, 1) == column_spatial(2, 2)


def test_replication():
    layout = spatial(4, 1) * replicate(8) * local(2, 2)
    assert layout.num_threads == 32 and layout.replication == 8
    assert not layout.is_bijective()
    assert layout.owners((5, 1)) == [(t, 3) for t in range(16, 24)]
    counts = np.zeros(layout.shape, dtype=int)
    for t, l, (r, c) in ((t, l, layout.map(t, l)) for t in range(32) for l in range(4)):
        counts[r, c] += 1
    assert (counts == 8).all()
    assert str(layout) == "spatial(4,1)*replicate(8)*local(2,2)"
    with pytest.raises(LayoutError):
        layout.inverse()


def test_coords_owners_inverse_agree():
    layout = column_spatial(3, 4) * local(2, 1) * spatial(2, 5)
    coords = layout.coords()
    assert coords.shape == (layout.num_threads, layout.local_size, 2)
    inverse = layout.inverse()
    for t in range(layout.num_threads):
        for l in range(layout.local_size):
            coord = tuple(coords[t, l])
            assert coord == layout.map(t, l)
            assert layout.owners(coord) == [(t, l)]
            assert tuple(inverse[coord]) == (t, l)


def test_divide():
    tile = spatial(4, 8) * local(2, 4)
    assert tile / local(2, 4) == spatial(4, 8)
    assert tile / local(1, 2) == spatial(4, 8) * local(2, 2)  # splits a merged mode
    assert tile / (spatial(2, 8) * local(2, 4)) == spatial(2, 1)
    assert tile.divide(local(4, 1)) is None
    assert tile.divide(column_local(2, 4)) is None
    assert tile.divide(spatial(4, 8)) is None  # not the innermost factor
    with pytest.raises(LayoutError, match="does not divide"):
        tile / local(3, 1)
    replicated = spatial(2, 1) * replicate(4) * local(1, 3)
    assert replicated / (replicate(2) * local(1, 3)) == spatial(2, 1) * replicate(2)
    vec = local(1, 8)
    tile = local(3, 1) * spatial(5, 7) * vec
    assert tile / vec == local(3, 1) * spatial(5, 7) and tile / vec * vec == tile


def test_reduce_squeeze_expand_permute():
    layout = spatial(4, 8) * local(2, 4)
    row_sums = layout.reduce(1)
    assert row_sums.shape == (8, 1) and row_sums.replication == 8
    assert row_sums.owners((3, 0)) == [(t, 1) for t in range(8, 16)]
    assert row_sums.squeeze(1).shape == (8,)
    assert row_sums.squeeze(1).expand_dims(1) == row_sums
    assert layout.expand_dims(0).shape == (1, 8, 32)
    assert layout.expand_dims(-1).shape == (8, 32, 1)
    transposed = layout.permute((1, 0))
    assert transposed == column_spatial(8, 4) * column_local(4, 2)
    assert all(transposed.map(t, l) == layout.map(t, l)[::-1] for t in range(32) for l in range(8))
    with pytest.raises(LayoutError):
        layout.squeeze(0)
    with pytest.raises(LayoutError):
        layout.reduce(2)


def test_linear_form():
    layout = spatial(2, 1) * column_spatial(4, 8) * local(2, 2) * spatial(1, 2)  # 128 threads
    linear = layout.to_linear()
    assert len(linear.register) == 2 and len(linear.lane) == 5 and len(linear.warp) == 2
    for t in range(layout.num_threads):
        for l in range(layout.local_size):
            assert linear.apply(l, t % 32, t // 32) == layout.map(t, l)
    assert RegisterLayout.from_linear(linear) == layout
    # A zero lane basis is a replicated thread bit: lanes 2k and 2k+1 hold element k.
    assert RegisterLayout.from_linear(LinearLayout((2,), (), ((0,), (1,)), ())) == \
        spatial(2) * replicate(2)
    with pytest.raises(LayoutError):
        spatial(3, 4).to_linear()
    with pytest.raises(LayoutError):  # a swizzled basis is not a register layout of ours
        RegisterLayout.from_linear(LinearLayout((2, 2), (), ((1, 1), (0, 1)), ()))


def test_printing():
    assert str(spatial(4, 8) * local(2, 4)) == "spatial(4,8)*local(2,4)"
    assert str(column_spatial(4, 8)) == "column_spatial(4,8)"
    assert str(local(4, 1) * spatial(16, 8) * local(2, 8)) == "local(4,1)*spatial(16,8)*local(2,8)"
    assert str(replicate(4)) == "replicate(4)"
    assert str(spatial(4, 1).reduce(0)) == "local(1,1)*replicate(4)"
    assert str(local()) == "local()"
    assert str(spatial(3, 5, 7)) == "spatial(3,5,7)"


def test_general_form():
    # dim 0 = (2 spatial, 3 local), dim 1 = (5 local, 7 spatial), threads over (7, 2): no
    # product of primitives spells this one.
    odd = RegisterLayout(((2, 3), (5, 7)), (3, -2, 0), (1, 2))
    text = str(odd)
    assert text == "layout(modes[[2,3],[5,7]],spatial[3,rep2,0],local[1,2])"
    assert parse_layout(text) == odd
    assert odd.num_threads == 28 and odd.replication == 2 and odd.local_size == 15


def test_printed_forms_use_only_ir_friendly_characters():
    layouts = [spatial(4, 8) * local(2, 4), replicate(3) * column_local(2, 2),
               RegisterLayout(((2, 3), (5, 7)), (3, -2, 0), (1, 2))]
    for layout in layouts:
        assert ALLOWED.fullmatch(str(layout))
        assert parse_layout(str(layout)) == layout


def test_parse():
    assert parse_layout(" spatial( 4 , 8 ) * local(2,4) ") == spatial(4, 8) * local(2, 4)
    assert parse_layout("replicate(2)*spatial(4)") == replicate(2) * spatial(4)
    with pytest.raises(LayoutError, match="column 14"):
        parse_layout("spatial(4,8)*<2>")
    with pytest.raises(LayoutError, match="column 1: unknown layout 'spatil'"):
        parse_layout("spatil(4,8)")
    with pytest.raises(LayoutError, match="column 14: rank mismatch"):
        parse_layout("spatial(4,8)*local(2)")  # rank mismatch, reported at the factor
    with pytest.raises(LayoutError, match="column 12: expected ',' or '\\)', found the end"):
        parse_layout("spatial(4,8")
    with pytest.raises(LayoutError, match="column 13"):
        parse_layout("spatial(4,8)x")


def test_rank_mismatch():
    with pytest.raises(LayoutError, match="rank"):
        spatial(4, 8) * local(2)


def test_draw_and_main(capsys):
    text = (spatial(2, 2) * local(1, 2)).draw()
    lines = text.splitlines()
    assert lines[2].split() == ["0", "T0:0", "T0:1", "T1:0", "T1:1"]
    assert lines[3].split() == ["1", "T2:0", "T2:1", "T3:0", "T3:1"]
    assert "T0,1:0" in (replicate(2) * local(2)).draw()
    assert "T0(x4):0" in (replicate(4) * local(2)).draw()
    assert main(["column_spatial(4,8)*local(2,1)"]) == 0
    out = capsys.readouterr().out
    assert "T4:1" in out
    assert main(["spatial(4,8"]) == 1
    assert "column 12" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert "thread" in capsys.readouterr().out
    assert main(["row_major(2,4)"]) == 0
