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


def test_time_ms_back_to_back_times_batches(monkeypatch):
    # batch=3: an event pair around each 3 launches (rotating on), a sample its third
    drv = FakeDriver([1.0, 3.0, 6.0, 9.0])   # the probe, then 3 batches
    monkeypatch.setattr(timing.cuda, "driver", lambda: drv)
    ran: list[int] = []
    times = timing.time_ms(ran.append, 4, 0, 0, warmup=1, reps=3, batch=3)
    assert times == [1.0, 2.0, 3.0]
    assert ran == [0, 0] + [0, 1, 2, 3, 0, 1, 2, 3, 0]   # warm-up, probe, 3 batches
    records = [entry[0] for entry in drv.log if entry[0] == "cuEventRecord"]
    assert len(records) == 2 + 3 * 2


def test_a_launch_kind_sets_its_constexprs_positional_or_not():
    names = ["X", "Y", "EARLY", "BLOCK"]
    assert timing._with((1, 2), {"EARLY": 0}, names, {}) == ((1, 2), {"EARLY": 0})
    assert timing._with((1, 2), {"EARLY": 0}, names, {"EARLY": 1}) == ((1, 2), {"EARLY": 1})
    assert timing._with((1, 2, 0), {}, names, {"EARLY": 1}) == ((1, 2, 1), {})


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


def test_a_session_times_the_close_ones_again_interleaved():
    # `add` (once per round of candidates) takes the first samples; `finish` times those
    # within the margin of the fastest again, ROUNDS more batches each, whichever round
    # they came in.
    import tilec as tc
    from tilec.tune.autotuner import Report
    from tune_support import FakeSession
    a, b, c = (tc.Config(BLOCK=v) for v in (1, 2, 3))
    report = Report("timed", a)
    session = FakeSession(report, {a: 1.0, b: 2.0, c: 1.05}.get)
    session.add([a, b])
    session.add([c])
    assert session.medians() == {a: 1.0, b: 2.0, c: 1.05}
    session.finish()
    assert report.timed == [(a, 1.0), (b, 2.0), (c, 1.05)]
    more = timing.ROUNDS * max(timing.FIRST_REPS, 25 // timing.ROUNDS)
    assert {k: n for k, (_, _, n) in report.spread.items()} == {
        a.short(): timing.FIRST_REPS + more, b.short(): timing.FIRST_REPS,
        c.short(): timing.FIRST_REPS + more}


@pytest.mark.torch  # run with the GPU suite (`-m "gpu or torch"`), where torch is installed
@pytest.mark.parametrize("compare", [None, ["X"]])
def test_device_session_checks_results_and_resets_arguments(monkeypatch, compare):
    # The device session's wiring, with CPU tensors standing in for device ones: results
    # checked against the first valid candidate's (those `compare` names: without Y, the
    # candidate that computes another Y is kept), `reset_to_zero` and `restore` before each
    # run on every rotated argument set, and the arguments left as given.
    from types import SimpleNamespace

    import tilec as tc
    from tilec.tune.autotuner import Report
    import torch
    monkeypatch.setattr(timing, "_is_device_tensor", timing._is_torch)
    monkeypatch.setattr(timing.cuda, "device_properties",
                        lambda device: SimpleNamespace(l2_bytes=4096))
    monkeypatch.setattr(timing, "current_stream", lambda device: 0)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    ran: list[int] = []

    def time_ms(run, sets, device, stream, warmup, reps, stall, start, batch):
        for i in range(start, start + reps):
            ran.append(i % sets)
            run(i % sets)
        return [1.0] * reps
    monkeypatch.setattr(timing, "time_ms", time_ms)

    def launcher(cfg):
        def launch(X, Y, *, K, num_warps, num_stages):
            Y.add_(X * K)   # accumulates: needs Y zeroed before each run
            X.add_(1.0)     # writes over its input: needs X restored
        return launch
    x0 = torch.arange(256, dtype=torch.float32)
    x, y = x0.clone(), torch.zeros(256)
    tuner = SimpleNamespace(warmup=3, reps=25, reset_to_zero=["Y"], restore=["X"],
                            compare=compare, back_to_back=False, launch_kinds=[],
                            kernel=SimpleNamespace(params=[SimpleNamespace(name="X"),
                                                           SimpleNamespace(name="Y")]))
    two, also_two, three = (tc.Config(K=k, num_warps=w) for k, w in ((2, 4), (2, 8), (3, 4)))
    report = Report("timed", two)
    session = timing.DeviceSession(tuner, launcher, {"X": x, "Y": y}, (x, y), {}, 0, report)
    assert len(session.sets) == 4     # L2_MULTIPLE x 4096 bytes of L2, 2048 bytes a set
    session.add([two, also_two, three])
    if compare is not None:
        assert report.mismatched == [] and set(session.samples) == {two, also_two, three}
        return
    assert report.mismatched == [three.short()] and set(session.samples) == {two, also_two}
    assert sorted(set(ran)) == [0, 1, 2, 3]
    for a, _ in session.sets[1:]:                      # (the first is the check runs')
        assert torch.equal(a[1], 2 * x0)               # one run after the reset
    session.finish()
    assert [c for c, _ in report.timed] == [two, also_two]
    assert torch.equal(x, x0) and torch.equal(y, torch.zeros(256))


@pytest.mark.torch  # run with the GPU suite (`-m "gpu or torch"`), where torch is installed
def test_device_session_times_each_launch_kind(monkeypatch):
    # With launch kinds, each kind's launches carry its constexprs (the check runs the
    # call's own), back to back in batches, and a sample is the mean over the kinds.
    from types import SimpleNamespace

    import tilec as tc
    from tilec.tune.autotuner import Report
    import torch
    monkeypatch.setattr(timing, "_is_device_tensor", timing._is_torch)
    monkeypatch.setattr(timing.cuda, "device_properties",
                        lambda device: SimpleNamespace(l2_bytes=1 << 30))
    monkeypatch.setattr(timing, "current_stream", lambda device: 0)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    seen: list[int] = []
    batches: list[int] = []

    def time_ms(run, sets, device, stream, warmup, reps, stall, start, batch):
        batches.append(batch)
        run(start % sets)
        return [float(seen[-1] + 1)] * reps     # kind EARLY=0 takes 1, EARLY=1 takes 2
    monkeypatch.setattr(timing, "time_ms", time_ms)

    def launcher(cfg):
        def launch(X, *, EARLY, K, num_warps, num_stages):
            seen.append(EARLY)
        return launch
    x = torch.zeros(64)
    tuner = SimpleNamespace(warmup=3, reps=25, reset_to_zero=[], restore=[], compare=None,
                            back_to_back=True, launch_kinds=[{"EARLY": 1}, {"EARLY": 0}],
                            kernel=SimpleNamespace(params=[SimpleNamespace(name="X"),
                                                           SimpleNamespace(name="EARLY")]))
    cfg = tc.Config(K=2)
    session = timing.DeviceSession(tuner, launcher, {"X": x, "EARLY": 0}, (x,), {"EARLY": 0},
                                   0, Report("timed", cfg))
    session.add([cfg])
    assert seen == [0, 1, 0]   # the check, then the kinds
    assert session.samples[cfg] == [1.5] * timing.FIRST_REPS
    assert batches == [timing.STREAM_BATCH] * 2
