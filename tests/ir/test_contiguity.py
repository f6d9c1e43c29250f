"""tilec/ir/contiguity.py on hand-written IR: how values step along the last dim, and what
divides the first address of each run, for the cases a gather meets (and those it must
refuse: a step of two, a row index that varies along the row, an unaligned offset)."""
from __future__ import annotations

import pytest

from tilec.ir.contiguity import last_dim_step, run_alignment
from tilec.ir.parser import parse_module

IR = """
func @f(%A: tensor<?x?xf16> {aligned = 16}, %U: tensor<?x?xf16>, %n: i32 {divisible = 16},
        %m: i32) {
  %p = tensor_ptr %A : ptr<f16>
  %pu = tensor_ptr %U : ptr<f16>
  %s0 = tensor_stride %A {axis = 0} : i32
  %r = arange {start = 0, end = 64} : tile<64xi32>
  %c = arange {start = 0, end = 32} : tile<32xi32>
  %c4 = arange {start = 4, end = 36} : tile<32xi32>
  %two = constant {value = 2} : tile<32xi32>
  %c2 = mul %c, %two : tile<32xi32>
  %s0t = splat %s0 : tile<64xi32>
  %rows = mul %r, %s0t : tile<64xi32>
  %rows2 = expand_dims %rows {axis = 1} : tile<64x1xi32>
  %rowsb = broadcast %rows2 : tile<64x32xi32>
  %cols2 = expand_dims %c {axis = 0} : tile<1x32xi32>
  %colsb = broadcast %cols2 : tile<64x32xi32>
  %offs = add %rowsb, %colsb : tile<64x32xi32>
  %pt = splat %p : tile<64x32xptr<f16>>
  %ptrs = addptr %pt, %offs : tile<64x32xptr<f16>>
  %put = splat %pu : tile<64x32xptr<f16>>
  %uptrs = addptr %put, %offs : tile<64x32xptr<f16>>
  %c4_2 = expand_dims %c4 {axis = 0} : tile<1x32xi32>
  %c4b = broadcast %c4_2 : tile<64x32xi32>
  %offs4 = add %rowsb, %c4b : tile<64x32xi32>
  %ptrs4 = addptr %pt, %offs4 : tile<64x32xptr<f16>>
  %c2_2 = expand_dims %c2 {axis = 0} : tile<1x32xi32>
  %c2b = broadcast %c2_2 : tile<64x32xi32>
  %offs2 = add %rowsb, %c2b : tile<64x32xi32>
  %back = sub %rowsb, %colsb : tile<64x32xi32>
  %same = sub %offs, %colsb : tile<64x32xi32>
  %nt = splat %n : tile<64xi32>
  %live = cmp %r, %nt {pred = "lt"} : tile<64xbool>
  %live2 = expand_dims %live {axis = 1} : tile<64x1xbool>
  %liveb = broadcast %live2 : tile<64x32xbool>
  %ct = splat %m : tile<32xi32>
  %inside = cmp %c, %ct {pred = "lt"} : tile<32xbool>
  %inside2 = expand_dims %inside {axis = 0} : tile<1x32xbool>
  %insideb = broadcast %inside2 : tile<64x32xbool>
  return
}
"""


@pytest.fixture(scope="module")
def values():
    fn = parse_module(IR).functions[0]
    named = {r.name: r for op in fn.walk() for r in op.results}
    return fn, named


@pytest.mark.parametrize("name, step", [
    ("ptrs", 1),        # row base + consecutive columns
    ("offs4", 1),       # an arange that starts at 4 still steps by one
    ("offs2", None),    # every other column: no runs
    ("rowsb", 0),       # a row's value, broadcast along it
    ("back", None),     # a row minus the column: steps by -1
    ("same", 0),        # (row + column) - column
    ("liveb", 0),       # a row's mask
    ("insideb", None),  # a mask that changes along the row
])
def test_last_dim_step(values, name, step):
    _, v = values
    assert last_dim_step(v[name]) == step


@pytest.mark.parametrize("name, run, align", [
    ("ptrs", 8, 16),    # aligned base, stride in 16-byte units, runs of 8 f16 from column 0
    ("ptrs", 4, 8),     # runs of 4 f16: 8 bytes
    ("ptrs", 1, 2),     # one element: the row index itself is anything
    ("ptrs4", 8, 8),    # columns 4.. : the runs start 8 bytes into 16
    ("uptrs", 8, 2),    # no `aligned` fact: only f16's own alignment
])
def test_run_alignment(values, name, run, align):
    fn, v = values
    assert run_alignment(v[name], run, fn) == align
