"""Property tests of the layout algebra on random layouts (any sizes, not only powers of 2)."""
from __future__ import annotations

import math
import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tilec.ir.layout import (
    RegisterLayout,
    column_local,
    column_spatial,
    local,
    parse_layout,
    replicate,
    spatial,
)
from tilec.ir.shared_layout import row_major, strided

PRIMITIVES = [spatial, column_spatial, local, column_local]
SETTINGS = settings(max_examples=60, deadline=None)
ALLOWED = re.compile(r"[A-Za-z0-9_,()\[\]*+\-. ]*")


def footprint(layout: RegisterLayout) -> int:
    return layout.num_threads * layout.local_size


@st.composite
def layouts(draw, rank=None, budget=512, sizes=st.integers(1, 5), reps=st.integers(2, 3)):
    """A product of random primitives (and replications) of one rank, within a budget of
    threads x local elements."""
    rank = draw(st.integers(1, 3)) if rank is None else rank
    result = local(*[1] * rank)
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.integers(0, 4)) == 0:
            factor = replicate(draw(reps))
        else:
            factor = draw(st.sampled_from(PRIMITIVES))(*[draw(sizes) for _ in range(rank)])
        if footprint(result) * footprint(factor) <= budget:
            result = result * factor if draw(st.booleans()) else factor * result
    return result


def pow2_layouts():
    return layouts(sizes=st.sampled_from([1, 2, 4]), budget=1024, reps=st.sampled_from([2, 4]))


def element_counts(layout: RegisterLayout) -> np.ndarray:
    counts = np.zeros(layout.shape, dtype=np.int64)
    c = layout.coords().reshape(-1, layout.rank)
    np.add.at(counts, tuple(c.T), 1)
    return counts


@SETTINGS
@given(layouts())
def test_every_element_covered_replication_times(layout):
    assert (element_counts(layout) == layout.replication).all()
    assert layout.is_bijective() == (layout.replication == 1)
    assert footprint(layout) == math.prod(layout.shape) * layout.replication
    if layout.is_bijective():
        inverse = layout.inverse()
        coords = layout.coords()
        for t in range(0, layout.num_threads, 7):
            for l in range(layout.local_size):
                assert tuple(inverse[tuple(coords[t, l])]) == (t, l)


@SETTINGS
@given(layouts(), st.data())
def test_owners_and_map_agree(layout, data):
    coord = tuple(data.draw(st.integers(0, s - 1)) for s in layout.shape)
    owners = layout.owners(coord)
    assert len(owners) == layout.replication
    assert all(layout.map(t, l) == coord for t, l in owners)


@SETTINGS
@given(st.data())
def test_product_is_the_definition_and_associative(data):
    rank = data.draw(st.integers(1, 3))
    a, b, c = (data.draw(layouts(rank=rank, budget=16)) for _ in range(3))
    ab = a * b
    expected = (a.coords()[:, None, :, None, :] * np.array(b.shape)
                + b.coords()[None, :, None, :, :])
    assert (ab.coords() == expected.reshape(ab.num_threads, ab.local_size, rank)).all()
    assert (a * b) * c == a * (b * c)
    assert hash((a * b) * c) == hash(a * (b * c))


@SETTINGS
@given(st.data())
def test_divide_then_product_gives_back(data):
    rank = data.draw(st.integers(1, 3))
    a, b = (data.draw(layouts(rank=rank, budget=48)) for _ in range(2))
    assert (a * b) / b == a
    assert (a * b).divide(b) * b == a * b
    other = data.draw(layouts(rank=rank, budget=48))
    quotient = (a * b).divide(other)
    if quotient is not None:  # whatever divide returns, it is exact
        assert quotient * other == a * b


def split_one_mode(layout: RegisterLayout, data) -> RegisterLayout:
    """The same function with one mode split in two (or a size-1 mode inserted)."""
    sizes = [s for m in layout.modes for s in m]
    if not sizes:
        return layout
    m = data.draw(st.integers(0, len(sizes) - 1))
    divisors = [d for d in range(1, sizes[m] + 1) if sizes[m] % d == 0]
    minor = data.draw(st.sampled_from(divisors))
    bump = lambda e: e if e < 0 or e <= m else e + 1  # noqa: E731
    modes, flat = [], 0
    for dim in layout.modes:
        new = []
        for s in dim:
            new += [s // minor, minor] if flat == m else [s]
            flat += 1
        modes.append(tuple(new))
    lists = []
    for entries in (layout.spatial, layout.local):
        out = []
        for e in entries:
            out += [m, m + 1] if e == m else [bump(e)]
        lists.append(tuple(out))
    return RegisterLayout(tuple(modes), lists[0], lists[1])


@SETTINGS
@given(layouts(), st.data())
def test_canonical_form(layout, data):
    same = split_one_mode(split_one_mode(layout, data), data)
    assert same == layout and hash(same) == hash(layout)
    other = data.draw(layouts(rank=layout.rank))
    same_function = (
        other.shape == layout.shape and other.num_threads == layout.num_threads
        and other.local_size == layout.local_size
        and (other.coords() == layout.coords()).all()
    )
    assert (other == layout) == same_function


@SETTINGS
@given(layouts())
def test_print_parse_round_trip(layout):
    text = str(layout)
    assert ALLOWED.fullmatch(text)
    assert parse_layout(text) == layout


@SETTINGS
@given(pow2_layouts())
def test_linear_form_agrees_with_map(layout):
    linear = layout.to_linear()
    coords = layout.coords()
    for t in range(layout.num_threads):
        for l in range(layout.local_size):
            assert linear.apply(l, t % 32, t // 32) == tuple(coords[t, l])
    assert RegisterLayout.from_linear(linear) == layout


@SETTINGS
@given(layouts(), st.data())
def test_reduce_permute_squeeze(layout, data):
    dim = data.draw(st.integers(0, layout.rank - 1))
    reduced = layout.reduce(dim)
    before = {(t, c[:dim] + (0,) + c[dim + 1:]) for t in range(layout.num_threads)
              for c in map(tuple, layout.coords()[t])}
    after = {(t, tuple(c)) for t in range(reduced.num_threads) for c in reduced.coords()[t]}
    assert before == after
    assert reduced.squeeze(dim).expand_dims(dim) == reduced
    perm = data.draw(st.permutations(range(layout.rank)))
    permuted = layout.permute(perm)
    assert (permuted.coords() == layout.coords()[:, :, list(perm)]).all()
    assert permuted.permute(list(np.argsort(perm))) == layout


@st.composite
def swizzled(draw):
    bits = draw(st.integers(0, 3))
    base = draw(st.integers(0, 3))
    shift = draw(st.integers(bits, 4))
    span_bits = bits + base + shift + draw(st.integers(0, 2))
    row_bits = draw(st.integers(0, span_bits))
    return row_major(1 << row_bits, 1 << (span_bits - row_bits)).swizzle(bits, base, shift)


@SETTINGS
@given(swizzled())
def test_swizzles_are_bijective_on_their_span(layout):
    assert layout.is_bijective()
    assert layout.size == math.prod(layout.shape)


@SETTINGS
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 40)), min_size=1, max_size=4),
       st.lists(st.tuples(st.integers(1, 3), st.integers(0, 3), st.integers(3, 5)), max_size=2))
def test_shared_print_parse_round_trip(dims, swizzles):
    layout = strided([s for s, _ in dims], [d for _, d in dims])
    for bits, base, shift in swizzles:
        layout = layout.swizzle(bits, base, shift)
    assert ALLOWED.fullmatch(str(layout))
    assert parse_layout(str(layout)) == layout
    assert (parse_layout(str(layout)).offsets() == layout.offsets()).all()
