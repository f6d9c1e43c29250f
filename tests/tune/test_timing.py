"""The tuner's timing protocol without a GPU: a fake driver records what would be queued, so
the order (warm-up, stall, then event pairs around launches on rotating argument sets), the
early stop of clearly slower candidates and the spread of samples are checked exactly."""
from __future__ import annotations

import contextlib

import pytest

from tilec.tune import timing


class FakeDriver:
    """Records every call; each event pair's elapsed time is the next of `elapsed`."""

    def __init__(self, elapsed: list[float]):
        self.log: list[tuple] = []
        self.elapsed = list(elapsed)
        self.api = type("api", (), {"CUstream": staticmethod(lambda s: ("stream", s))})
        self._events = 0

    @contextlib.contextmanager
    def in_context(self, device):
        yield

    def call(self, name, *args):
        self.log.append((name,) + args)
        if name == "cuEventCreate":
            self._events += 1
            return self._events
        if name == "cuEventElapsedTime":
            return self.elapsed.pop(0)
        return None


def test_time_ms_stalls_the_gpu_before_queueing_the_timed_launches(monkeypatch):
    drv = FakeDriver([1.0, 0.5, 0.6, 0.7, 0.8])   # the probe, then 4 samples
    monkeypatch.setattr(timing.cuda, "driver", lambda: drv)
    order: list = []

    def run(i):
        order.append(("run", i))
        drv.log.append(("run", i))

    times = timing.time_ms(run, 3, 0, 7, warmup=2, reps=4, stall=lambda ms: order.append(
        ("stall", ms)) or drv.log.append(("stall",)), start=1)
    assert times == [0.5, 0.6, 0.7, 0.8]
    # warm-up on sets 0, 1; the probe on set 0; the stall; timed launches from set 1 on
    assert [x for x in order if x[0] == "run"] == [("run", i) for i in (0, 1, 0, 1, 2, 0, 1)]
    kinds = [entry[0] for entry in drv.log]
    first_timed = kinds.index("stall")
    assert kinds[first_timed + 1:first_timed + 4] == ["cuEventRecord", "run", "cuEventRecord"]
    (stall,) = [x for x in order if x[0] == "stall"]
    assert 0.05 <= stall[1] <= timing.MAX_STALL_MS
    # every event created is destroyed
    assert kinds.count("cuEventCreate") == kinds.count("cuEventDestroy") == 10


def test_time_ms_takes_fewer_repeats_of_a_long_launch(monkeypatch):
    drv = FakeDriver([150.0, 150.0, 150.0, 150.0])
    monkeypatch.setattr(timing.cuda, "driver", lambda: drv)
    assert timing.time_ms(lambda i: None, 1, 0, 0, warmup=0, reps=25) == [150.0] * 3


def test_stall_is_long_enough_for_the_batch_and_bounded():
    assert timing.stall_ms_for(0.02, 10) == pytest.approx(timing.STALL_MARGIN * 0.2 + 0.05)
    assert timing.stall_ms_for(5.0, 100) == timing.MAX_STALL_MS


def test_contenders_are_the_candidates_close_to_the_fastest():
    medians = {"a": 1.00, "b": 1.08, "c": 1.2, "d": 0.95}
    assert timing.contenders(medians) == ["d", "a"]          # 0.95 * 1.10 = 1.045
    assert timing.contenders(medians, margin=0.15) == ["d", "a", "b"]
    assert timing.contenders({}) == []


def test_spread_is_the_10th_and_90th_percentile():
    lo, hi = timing.spread([float(x) for x in range(1, 12)])   # 1..11
    assert (lo, hi) == (2.0, 10.0)
    assert timing.spread([3.0]) == (3.0, 3.0)
