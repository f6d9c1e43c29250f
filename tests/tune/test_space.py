"""tc.Config and search spaces."""
from __future__ import annotations

import pytest

import tilec as tc
from tilec.tune.space import expand


def test_config_keeps_options_apart_and_is_hashable():
    c = tc.Config(BM=128, BN=64, num_warps=8, num_stages=4)
    assert c.kwargs == {"BM": 128, "BN": 64}
    assert c.all() == {"BM": 128, "BN": 64, "num_warps": 8, "num_stages": 4}
    assert c == tc.Config(BN=64, BM=128, num_stages=4, num_warps=8)
    assert len({c, tc.Config(BN=64, BM=128, num_stages=4, num_warps=8)}) == 1
    assert tc.Config.from_json(c.to_json()) == c
    assert c.short() == "BM=128 BN=64 w8 s4"
    with pytest.raises(AttributeError):
        c.num_warps = 2


def test_config_rejects_bad_options():
    with pytest.raises(tc.TilecError, match="num_warps must be a positive int"):
        tc.Config(num_warps=0)


def test_space_expands_in_order():
    configs = expand({"BM": [64, 128], "BK": [32], "num_warps": [4, 8]})
    assert [c.short() for c in configs] == ["BK=32 BM=64 w4 s3", "BK=32 BM=64 w8 s3",
                                            "BK=32 BM=128 w4 s3", "BK=32 BM=128 w8 s3"]


def test_space_without_values_is_an_error():
    with pytest.raises(tc.TilecError, match="gives no values for 'BM'"):
        expand({"BM": []})
