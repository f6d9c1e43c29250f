"""Timing candidates on the GPU: CUDA events around each launch (through cuda-python, on the
stream the launches go to), a warm-up, input buffers rotated so that L2 does not keep a small
problem's inputs between launches, and the median of the repeats. Back to back
(`tc.autotune(back_to_back=True)`), the events go around batches of STREAM_BATCH launches
instead: a sample is a launch's share of its batch, which counts what launches of one kind
overlap (a kernel that lets the next one start early: `tc.gdc_launch_dependents`) and not
what a lone launch's latency adds.

The GPU is held back (`stall`, a sleep kernel) while the host queues a batch of launches, so
that the events time the kernels back to back and not the host's launch path (a 60 us kernel
would otherwise measure the Python launch code as much as itself).

A search times its candidates in a `Session`: each one's results checked against the first
valid candidate's, a first few samples each (in as many rounds of candidates as the search
adds), then more for the close ones, interleaved."""
from __future__ import annotations

import abc
import math
import statistics
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

from tilec.errors import LaunchError, TilecError
from tilec.runtime import cuda

if TYPE_CHECKING:
    from tilec.tune.autotuner import Autotuner, Report
    from tilec.tune.space import Config

# Rotate through enough copies of the tensor arguments that one launch's data has left a cache
# this many times the L2's size by the time it comes round again; and never more copies than
# this, nor more bytes of copies than this.
L2_MULTIPLE = 2
MAX_COPIES = 8
MAX_COPY_BYTES = 2 << 30
# The GPU is held back this many times the host's time to queue a batch's launches (the events
# it also queues are not in that estimate).
STALL_MARGIN = 3.0
MAX_STALL_MS = 50.0
# Launches between two events when timing back to back.
STREAM_BATCH = 8


def current_stream(device: int) -> int:
    """The raw stream the kernel launcher uses for torch tensors: torch's current one."""
    torch = sys.modules.get("torch")
    if torch is None:
        return 0
    return int(torch.cuda.current_stream(device).cuda_stream)


def copies_needed(bytes_per_set: int, l2_bytes: int) -> int:
    """How many sets of tensor arguments to rotate through (1: the data alone outgrows L2)."""
    if bytes_per_set <= 0:
        return 1
    wanted = -(-L2_MULTIPLE * l2_bytes // bytes_per_set)
    affordable = max(1, MAX_COPY_BYTES // bytes_per_set)
    return max(1, min(wanted, MAX_COPIES, affordable))


def stall_ms_for(host_ms_per_launch: float, reps: int) -> float:
    """How long to hold the GPU back so that the host can queue `reps` launches (and their
    events) before the first of them runs."""
    return min(MAX_STALL_MS, STALL_MARGIN * host_ms_per_launch * reps + 0.05)


def torch_stall(ms: float) -> None:
    """Keep torch's current stream busy for at least `ms` (a sleep kernel; its cycle count
    assumes a clock of at most 2 GHz, so it lasts at least that long)."""
    torch = sys.modules.get("torch")
    sleep = getattr(getattr(torch, "cuda", None), "_sleep", None)
    if sleep is not None and ms > 0:
        sleep(int(ms * 2e6))


def time_ms(run: Callable[[int], Any], sets: int, device: int, stream: int,
            warmup: int = 3, reps: int = 25, budget_ms: float = 200.0,
            stall: Callable[[float], Any] | None = None, start: int = 0,
            batch: int = 1) -> list[float]:
    """Milliseconds of `run(i)` (a launch on argument set `i % sets`), one CUDA event pair
    around each of `reps` batches of `batch` launches (a sample: the batch's time over
    `batch`) after `warmup` untimed launches. Fewer repeats when one batch is long enough
    that `reps` of them would exceed `budget_ms`. `stall(ms)` holds the stream back for
    `ms` before the timed launches are queued (see above). `start`: the argument set of the
    first timed launch (callers timing in rounds carry on rotating)."""
    drv = cuda.driver()
    api = drv.api
    handle = api.CUstream(stream)
    with drv.in_context(device):
        t = time.perf_counter()
        for i in range(warmup):
            run(i % sets)
        host_ms = (time.perf_counter() - t) * 1e3 / max(1, warmup)
        probe = [drv.call("cuEventCreate", 0) for _ in range(2)]
        drv.call("cuEventRecord", probe[0], handle)
        run(0)
        drv.call("cuEventRecord", probe[1], handle)
        drv.call("cuEventSynchronize", probe[1])
        first = float(drv.call("cuEventElapsedTime", probe[0], probe[1]))
        for e in probe:
            drv.call("cuEventDestroy", e)
        reps = max(3, min(reps, int(budget_ms / max(first * batch, 1e-3))))
        events = [(drv.call("cuEventCreate", 0), drv.call("cuEventCreate", 0))
                  for _ in range(reps)]
        try:
            if stall is not None:
                stall(stall_ms_for(host_ms, reps * batch))
            for i, (begin, end) in enumerate(events):
                drv.call("cuEventRecord", begin, handle)
                for j in range(batch):
                    run((start + i * batch + j) % sets)
                drv.call("cuEventRecord", end, handle)
            drv.call("cuEventSynchronize", events[-1][1])
            return [float(drv.call("cuEventElapsedTime", s, e)) / batch for s, e in events]
        finally:
            for pair in events:
                for e in pair:
                    drv.call("cuEventDestroy", e)


def median(times: list[float]) -> float:
    return statistics.median(times)


def spread(times: list[float]) -> tuple[float, float]:
    """The 10th and 90th percentiles of the samples (the median's neighbourhood)."""
    ordered = sorted(times)
    if len(ordered) < 2:
        return (ordered[0], ordered[0]) if ordered else (math.nan, math.nan)
    q = statistics.quantiles(ordered, n=10, method="inclusive")
    return q[0], q[-1]


# Two-stage timing of a search: every candidate gets FIRST_REPS samples; those within
# CONTENDER_MARGIN of the fastest are timed again, interleaved (one batch of each per round,
# ROUNDS rounds), so that the winner among close candidates is decided by many samples taken
# under the same conditions, and a clearly slower candidate costs few.
FIRST_REPS = 10
CONTENDER_MARGIN = 0.10
ROUNDS = 3


def contenders(medians: dict[Any, float], margin: float = CONTENDER_MARGIN) -> list[Any]:
    """The candidates whose median is within `margin` of the fastest, fastest first."""
    if not medians:
        return []
    best = min(medians.values())
    return sorted((c for c, ms in medians.items() if ms <= best * (1 + margin)),
                  key=lambda c: medians[c])


class Session(abc.ABC):
    """The timing of one search: `add` checks each candidate's results against the first
    valid candidate's and takes FIRST_REPS samples of it (a search adds candidates in
    rounds); `finish` times the close ones again, interleaved, and fills the report. The
    device's part (`check`, `sample`, `close`) is a subclass's."""

    def __init__(self, report: Report, warmup: int, reps: int):
        self.report = report
        self.warmup, self.reps = warmup, reps
        self.samples: dict[Config, list[float]] = {}

    def add(self, cands: list[Config]) -> None:
        for cfg in cands:
            try:
                if not self.check(cfg):
                    self.report.mismatched.append(cfg.short())
                    continue
                self.samples[cfg] = self.sample(cfg, self.warmup,
                                                min(self.reps, FIRST_REPS), 0)
            except TilecError as e:
                self._failed(cfg, e)

    def medians(self) -> dict[Config, float]:
        return {c: median(t) for c, t in self.samples.items()}

    def finish(self) -> None:
        """Early stop for the clearly slower ones; the close ones again, interleaved."""
        close = contenders(self.medians())
        per_round = max(FIRST_REPS, self.reps // ROUNDS)
        for r in range(ROUNDS if len(close) > 1 else 0):
            for cfg in close:
                if cfg not in self.samples:
                    continue
                try:
                    self.samples[cfg] += self.sample(cfg, 1, per_round, r + 1)
                except TilecError as e:
                    self._failed(cfg, e)
                    del self.samples[cfg]
        for cfg, times in self.samples.items():
            self.report.timed.append((cfg, median(times)))
            self.report.spread[cfg.short()] = [*spread(times), len(times)]
        self.close()

    def _failed(self, cfg: Config, e: TilecError) -> None:
        self.report.failed[cfg.short()] = f"{type(e).__name__}: {e.message.splitlines()[0]}"

    @abc.abstractmethod
    def check(self, cfg: Config) -> bool:
        """Run `cfg` once: whether its results agree with the first valid candidate's."""
        ...

    @abc.abstractmethod
    def sample(self, cfg: Config, warmup: int, reps: int, start: int) -> list[float]:
        """Milliseconds of `reps` runs of `cfg` after `warmup`, from argument set `start`."""
        ...

    @abc.abstractmethod
    def close(self) -> None:
        """Leave the arguments as the caller gave them."""
        ...


class DeviceSession(Session):
    """A session on the GPU: `launcher(cfg)` launches the kernel with `cfg`'s grid (call it
    with the arguments and `cfg.all()`); `values` are the tuner's bound arguments. With the
    tuner's `launch_kinds`, a sample is the mean over the kinds of a launch's time, each
    kind's launches timed apart with its constexprs (the results are checked on the call's
    own)."""

    def __init__(self, tuner: Autotuner, launcher: Callable[[Config], Callable[..., None]],
                 values: Mapping[str, Any], args: tuple, kwargs: dict[str, Any], device: int,
                 report: Report):
        super().__init__(report, tuner.warmup, tuner.reps)
        self.torch = sys.modules.get("torch")
        if self.torch is None:
            raise LaunchError("tc.autotune: timing on the GPU needs torch tensors")
        self.launcher, self.values, self.device = launcher, values, device
        self.args, self.kwargs = args, kwargs
        self.reset_to_zero, self.restore = list(tuner.reset_to_zero), list(tuner.restore)
        self.names = [p.name for p in tuner.kernel.params]
        self.saved = {n: _clone(values[n]) for n in self.restore}
        self.tensors = {n for n, v in values.items() if _is_device_tensor(v)}
        self.compared = self.tensors if tuner.compare is None else \
            self.tensors.intersection(tuner.compare)
        l2 = cuda.device_properties(device).l2_bytes
        copies = copies_needed(sum(nbytes(values[n]) for n in self.tensors), l2)
        self.sets = [(args, kwargs)] + [_copy_set(args, kwargs, self.names, self.tensors)
                                        for _ in range(copies - 1)]
        self.stream = current_stream(device)
        self.kinds = list(tuner.launch_kinds) or [{}]
        self.batch = STREAM_BATCH if tuner.back_to_back else 1
        self.runs: dict[Config, list[Callable[[int], None]]] = {}
        self.reference: dict[str, Any] | None = None

    def _prepare(self, call_args: tuple, call_kwargs: dict[str, Any]) -> None:
        bound = dict(zip(self.names, call_args), **call_kwargs)
        for n in self.reset_to_zero:
            _data(bound[n]).zero_()
        for n in self.restore:
            if n in self.saved:
                _data(bound[n]).copy_(_data(self.saved[n]))

    def check(self, cfg: Config) -> bool:
        launch = self.launcher(cfg)
        extra = cfg.all()
        self._prepare(self.args, self.kwargs)
        launch(*self.args, **self.kwargs, **extra)
        self.torch.cuda.synchronize(self.device)
        outputs = {n: _clone(self.values[n]) for n in self.compared}
        if self.reference is None:
            self.reference = outputs
        elif not _agree(self.reference, outputs):
            return False
        prepare_each = bool(self.reset_to_zero or self.restore)

        def runner(kind: Mapping[str, Any]) -> Callable[[int], None]:
            sets = [_with(a, kw, self.names, kind) for a, kw in self.sets]

            def run(i: int) -> None:
                a, kw = sets[i]
                if prepare_each:
                    self._prepare(a, kw)
                launch(*a, **kw, **extra)
            return run
        self.runs[cfg] = [runner(kind) for kind in self.kinds]
        return True

    def sample(self, cfg: Config, warmup: int, reps: int, start: int) -> list[float]:
        per_kind = [time_ms(run, len(self.sets), self.device, self.stream, warmup, reps,
                            stall=torch_stall, start=start, batch=self.batch)
                    for run in self.runs[cfg]]
        return [sum(t) / len(t) for t in zip(*per_kind)]

    def close(self) -> None:
        self._prepare(self.args, self.kwargs)
        self.torch.cuda.synchronize(self.device)


# -- arguments --------------------------------------------------------------------------------
# Results of two candidates agree when every element is within this fraction of the largest
# magnitude of the reference (they round differently, not wrongly).
RELATIVE_TOLERANCE = {8: 0.1, 16: 1e-2, 32: 1e-4}


def _data(x: Any) -> Any:
    """The torch tensor holding a tensor argument (a PackedTensor's bytes)."""
    return getattr(x, "data", x) if not _is_torch(x) else x


def _is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _is_device_tensor(x: Any) -> bool:
    return _is_torch(_data(x)) and _data(x).is_cuda


def _clone(x: Any) -> Any:
    if _is_torch(x):
        return x.clone()
    from tilec.runtime.tensor import PackedTensor
    if isinstance(x, PackedTensor):
        return PackedTensor(x.data.clone(), x.dtype, x.shape)
    return x


def nbytes(x: Any) -> int:
    """Bytes of a tensor argument (0 for anything else)."""
    d = _data(x)
    if _is_torch(d):
        return int(d.numel() * d.element_size())
    return int(getattr(d, "nbytes", 0) or 0)


def _copy_set(args: tuple, kwargs: dict[str, Any], names: list[str],
              tensors: set[str]) -> tuple[tuple, dict[str, Any]]:
    """The call's arguments with every device tensor replaced by a copy."""
    new_args = tuple(_clone(v) if i < len(names) and names[i] in tensors else v
                     for i, v in enumerate(args))
    new_kwargs = {k: _clone(v) if k in tensors else v for k, v in kwargs.items()}
    return new_args, new_kwargs


def _with(args: tuple, kwargs: dict[str, Any], names: list[str],
          kind: Mapping[str, Any]) -> tuple[tuple, dict[str, Any]]:
    """The call's arguments with the parameters `kind` names set to its values."""
    if not kind:
        return args, kwargs
    args = tuple(kind.get(names[i], v) if i < len(names) else v for i, v in enumerate(args))
    given = set(names[:len(args)])
    return args, {**kwargs, **{k: v for k, v in kind.items() if k not in given}}


def _agree(reference: dict[str, Any], outputs: dict[str, Any]) -> bool:
    """Every tensor equal (integers) or close relative to the reference's largest element."""
    torch = sys.modules["torch"]
    for name, ref in reference.items():
        a, b = _data(ref), _data(outputs[name])
        if a.dtype.is_floating_point:
            tol = RELATIVE_TOLERANCE.get(8 * a.element_size(), 1e-2)
            a64, b64 = a.double(), b.double()
            if not torch.equal(torch.isnan(a64), torch.isnan(b64)):
                return False
            a64, b64 = torch.nan_to_num(a64), torch.nan_to_num(b64)
            scale = float(a64.abs().max()) if a64.numel() else 0.0
            if a64.numel() and float((a64 - b64).abs().max()) > tol * max(scale, 1e-30):
                return False
        elif not torch.equal(a, b):
            return False
    return True
