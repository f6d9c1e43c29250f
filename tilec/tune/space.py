"""Configurations: one `Config` (constexpr values and launch options), and the expansion of a
search space (`{"BM": [64, 128], "num_warps": [4, 8]}`) into the list of them."""
from __future__ import annotations

import itertools
from typing import Any, Iterable, Mapping

from tilec.errors import TilecError

OPTIONS = ("num_warps", "num_stages")


class Config:
    """One point of a search space: constexpr values (`BM=128`) plus the launch options
    `num_warps` (default 4) and `num_stages` (default 3). Immutable and hashable."""

    __slots__ = ("kwargs", "num_warps", "num_stages")

    def __init__(self, num_warps: int = 4, num_stages: int = 3, **kwargs: Any):
        for name, v in (("num_warps", num_warps), ("num_stages", num_stages)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise TilecError(f"tc.Config: {name} must be a positive int, got {v!r}")
        object.__setattr__(self, "kwargs", dict(sorted(kwargs.items())))
        object.__setattr__(self, "num_warps", num_warps)
        object.__setattr__(self, "num_stages", num_stages)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("tc.Config is immutable")

    def all(self) -> dict[str, Any]:
        """The constexpr values and the options, as the keyword arguments of a launch."""
        return {**self.kwargs, "num_warps": self.num_warps, "num_stages": self.num_stages}

    def _key(self) -> tuple:
        return tuple((k, repr(v)) for k, v in self.all().items())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "Config(" + ", ".join(f"{k}={v!r}" for k, v in self.all().items()) + ")"

    def short(self) -> str:
        """`BM=128 BN=128 BK=32 w4 s4`: for tables."""
        parts = [f"{k}={v}" for k, v in self.kwargs.items()]
        return " ".join(parts + [f"w{self.num_warps}", f"s{self.num_stages}"])

    def to_json(self) -> dict[str, Any]:
        return self.all()

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Config:
        return Config(**dict(d))


def expand(space: Mapping[str, Iterable[Any]]) -> list[Config]:
    """Every combination of a search space, in the order the space lists its values."""
    if not space:
        raise TilecError("tc.autotune: the search space is empty")
    names = list(space)
    values = []
    for name in names:
        vals = list(space[name]) if not isinstance(space[name], (str, bytes)) else None
        if not vals:
            raise TilecError(f"tc.autotune: the search space gives no values for '{name}'",
                             hint=f"write e.g. space={{'{name}': [64, 128], ...}}")
        values.append(vals)
    return [Config(**dict(zip(names, combo))) for combo in itertools.product(*values)]
