"""`@tc.autotune`: choose a kernel's configuration per key (problem shape, dtypes) and device.

    @tc.autotune(space={"BM": [64, 128], "BN": [64, 128], "num_warps": [4, 8]},
                 key=["A.shape[0]", "B.shape[1]", "A.shape[1]"], budget=8)
    @tc.kernel
    def matmul(A: tc.Tensor, B: tc.Tensor, C: tc.Tensor, BM: tc.constexpr, BN: tc.constexpr): ...

    matmul[lambda meta: (tc.cdiv(M, meta["BM"]), tc.cdiv(N, meta["BN"]))](a, b, c)

The first launch with a new key on a GPU looks the key up in the tuning database; on a miss
it tunes: prune hooks, then the resource model (candidates that cannot fit the device,
judged from their IR after the GPU passes, run once per tile shape up to layouts and once
per num_warps up to pipelining, in this process and worker processes), then the cost model's
order (the first `budget` candidates go on), then compilation in worker processes and
ptxas's report (spills, shared memory), then timing on the device (tilec.tune.timing: a
first few samples each, more for the close ones, interleaved). Before the close ones are
timed again, a refinement beyond the budget: the untimed neighbours of the best of the best
one or two tile shapes (the same tile shape with the other num_warps and num_stages, which
the cost model knows least well), REFINE_BUDGET at most, are compiled and timed too. A
candidate that fails or whose results differ from the first valid candidate's is discarded.
The winner goes into the database with the search's report and is used from then on, in
this process and later ones.
With TILEC_AUTOTUNE=0 nothing is timed: the stored winner, else the cost model's first
choice. On the CPU interpreter nothing is tuned: the first configuration runs, and a warning
says so.
"""
from __future__ import annotations

import hashlib
import inspect
import logging
import math
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

import tilec.config as config
from tilec.errors import LaunchError, Location, TilecError
from tilec.frontend.kernel import OPTIONS as LAUNCH_OPTIONS
from tilec.frontend.kernel import Kernel
from tilec.frontend.launch import device_of, runs_on_gpu
from tilec.frontend.source import caller_location
from tilec.ir.core import Module
from tilec.tune.cost import DEFAULT_MODEL, Candidate, CostModel
from tilec.tune.database import TuningDatabase, TuningKey
from tilec.tune.resources import DeviceLimits, check
from tilec.tune.space import Config, expand
from tilec.tune import timing, workers

log = logging.getLogger("tilec.tune")

Prune = Callable[[list[Config], dict[str, Any]], Iterable[Config]]
_KEY = re.compile(r"^(?P<name>[A-Za-z_]\w*)(?:\.(?P<attr>shape|dtype)(?:\[(?P<index>\d+)\])?)?$")

@dataclass
class Report:
    """What one search did: shown by `tilec tune --show` and stored with the winner."""

    method: str                                      # "timed", "cost model", "interpreter"
    winner: Config
    considered: int = 0
    timed: list[tuple[Config, float]] = field(default_factory=list)   # (config, median ms)
    pruned: dict[str, str] = field(default_factory=dict)              # config -> why
    failed: dict[str, str] = field(default_factory=dict)              # config -> error
    mismatched: list[str] = field(default_factory=list)
    predicted: list[tuple[Config, float]] = field(default_factory=list)  # cost model order
    seconds: dict[str, float] = field(default_factory=dict)  # per phase, and "total"
    spread: dict[str, list[float]] = field(default_factory=dict)  # config -> [p10, p90, n]
    refined: list[str] = field(default_factory=list)  # beyond the budget: the best's neighbours
    timing: str = ""   # how a sample was taken, where not an event pair around each launch

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "winner": self.winner.to_json(),
                "considered": self.considered,
                "timed": [[c.to_json(), ms] for c, ms in self.timed],
                "pruned": self.pruned, "failed": self.failed, "mismatched": self.mismatched,
                "predicted": [[c.to_json(), s] for c, s in self.predicted[:8]],
                "seconds": self.seconds, "spread": self.spread, "refined": self.refined,
                "timing": self.timing}


class Autotuner:
    """A `@tc.kernel` with a configuration chosen per key; launch as `tuned[grid](...)`."""

    def __init__(self, kernel: Kernel, configs: Sequence[Config], key: Sequence[str],
                 budget: int | None = None, prune: Prune | Sequence[Prune] | None = None,
                 reset_to_zero: Sequence[str] = (), restore: Sequence[str] = (),
                 cost_model: CostModel | None = None, example: Callable[..., Any] | None = None,
                 database: TuningDatabase | None = None, warmup: int = 3, reps: int = 25,
                 compare: Sequence[str] | None = None, check_registers: bool = True,
                 back_to_back: bool = False, launch_kinds: Sequence[Mapping[str, Any]] = ()):
        self.kernel = kernel
        self.configs = list(configs)
        self.key = list(key)
        self.budget = budget
        self.prune_hooks: list[Prune] = [] if prune is None else (
            [prune] if callable(prune) else list(prune))
        self.reset_to_zero = list(reset_to_zero)
        self.restore = list(restore)
        self.cost_model = cost_model or DEFAULT_MODEL
        self.example = example
        self.database = database or TuningDatabase()
        self.warmup, self.reps = warmup, reps
        self.compare = None if compare is None else list(compare)
        self.check_registers = check_registers
        self.back_to_back = back_to_back
        self.launch_kinds = list(launch_kinds)
        self.chosen: dict[tuple, Config] = {}
        self.reports: dict[tuple, Report] = {}
        self._check()
        self.kernel_id = self._kernel_id()
        self._tuned_names = frozenset(self.configs[0].all())
        self._key_parts = [(m["name"], m["attr"], None if m["index"] is None else int(m["index"]))
                           for m in map(_KEY.match, self.key)]
        self._param_names = [p.name for p in kernel.params]
        # The constexprs a launch kind sets are left out: every kind shares one choice.
        kinds = {name for kind in self.launch_kinds for name in kind}
        self._fixed_constexprs = [p.name for p in kernel.params if p.kind == "constexpr"
                                  and p.name not in self._tuned_names | kinds]
        self._defaults = [(p.name, p.default) for p in kernel.params
                          if p.default is not inspect.Parameter.empty]
        self.tuning_count = 0     # searches that timed candidates (tests read it)
        self._warned_interpreter = False

    def __repr__(self) -> str:
        return f"<tc.autotune {self.kernel.__name__}: {len(self.configs)} configs>"

    @property
    def __name__(self) -> str:
        return self.kernel.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TilecError(f"kernel '{self.kernel.__name__}' needs a grid: "
                         f"{self.kernel.__name__}[grid](...)")

    # -- checks at decoration --------------------------------------------------------------
    def _location(self) -> Location:
        code = self.kernel.fn.__code__
        return Location(code.co_filename, code.co_firstlineno, 1)

    def _check(self) -> None:
        where = self._location()
        if not self.configs:
            raise TilecError("tc.autotune: no configurations to choose from", where)
        params = {p.name: p for p in self.kernel.params}
        for name in self.compare or ():
            if name not in params or params[name].kind != "tensor":
                raise TilecError(f"tc.autotune: compare names '{name}', which is not a tensor "
                                 f"parameter of '{self.kernel.__name__}'", where)
        for cfg in self.configs:
            for name in cfg.kwargs:
                if name in LAUNCH_OPTIONS:   # num_ctas, fast_math: launch options too
                    continue
                if name not in params or params[name].kind not in ("constexpr", None):
                    raise TilecError(
                        f"tc.autotune: configuration value '{name}' is not a tc.constexpr "
                        f"parameter of kernel '{self.kernel.__name__}'", where,
                        hint="tune constexpr parameters and launch options (num_warps, "
                             "num_stages, num_ctas, fast_math)")
        for expr in self.key:
            m = _KEY.match(expr) if isinstance(expr, str) else None
            if m is None or m["name"] not in params:
                raise TilecError(f"tc.autotune: cannot read key {expr!r}", where,
                                 hint="a key is a parameter name ('M'), 'A.shape', "
                                      "'A.shape[0]' or 'A.dtype'")
        for name in self.reset_to_zero + self.restore:
            if name not in params:
                raise TilecError(f"tc.autotune: '{name}' (reset_to_zero / restore) is not a "
                                 f"parameter of kernel '{self.kernel.__name__}'", where)
        for kind in self.launch_kinds:
            if not isinstance(kind, Mapping):
                raise TilecError(f"tc.autotune: launch_kinds takes dicts of constexpr values, "
                                 f"got {kind!r}", where)
            for name in kind:
                if name not in params or params[name].kind != "constexpr" \
                        or name in self.configs[0].all():
                    raise TilecError(f"tc.autotune: launch_kinds sets '{name}', which is not "
                                     f"an untuned tc.constexpr parameter of kernel "
                                     f"'{self.kernel.__name__}'", where,
                                     hint="a launch kind sets constexprs the call passes")
        if self.budget is not None and (isinstance(self.budget, bool) or
                                        not isinstance(self.budget, int) or self.budget < 1):
            raise TilecError(f"tc.autotune: budget must be a positive int, got {self.budget!r}",
                             where, hint="the most candidates to compile and time")

    def _kernel_id(self) -> str:
        """The kernel's name and a hash of its source, candidate list and timing: a stored
        winner is forgotten when one of them changes."""
        try:
            source = inspect.getsource(self.kernel.fn)
        except (OSError, TypeError):
            source = self.kernel.__name__
        text = source + "\n" + "\n".join(repr(c) for c in self.configs)
        if self.back_to_back or self.launch_kinds:   # another timing: another winner
            text += f"\nback to back {self.back_to_back}, kinds {self.launch_kinds!r}"
        return f"{self.kernel.__name__}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"

    # -- launch ----------------------------------------------------------------------------
    def config(self, grid: Any, *args: Any, **kwargs: Any) -> Config:
        """The configuration a launch `self[grid](*args, **kwargs)` runs with (on a GPU, the
        first such call per key tunes): for hosts that size buffers or launch a second
        kernel by it."""
        try:
            return self._config_of(grid, args, kwargs)
        except TilecError as e:
            if e.loc is None:
                e.loc = caller_location(1)
            raise e.with_traceback(None) from None

    def best_ms(self, *args: Any, **kwargs: Any) -> float | None:
        """The median time (ms) of the winner the search for this launch's key measured, in
        this process or an earlier one (the tuning database); None where none was timed
        (not tuned yet, the interpreter, `TILEC_AUTOTUNE=0`'s cost model)."""
        values = self._bind(args, kwargs, self.configs[0])
        k = self.key_values(values)
        report = self.reports.get(k)
        if report is not None:
            return report.timed[0][1] if report.timed else None
        specs, _ = self.kernel.specialise(values)
        tensors = [values[s.name] for s in specs if s.kind == "tensor"]
        if not runs_on_gpu(tensors):
            return None
        limits = DeviceLimits.of_device(device_of(tensors))
        entry = self.database.get(TuningKey(self.kernel_id, k, limits.name))
        timed = entry.report.get("timed") if entry is not None else None
        return float(timed[0][1]) if timed else None

    def _config_of(self, grid: Any, args: tuple, kwargs: dict[str, Any]) -> Config:
        if not self._tuned_names.intersection(kwargs):
            try:  # a key seen before: no binding (the kernel's launch checks all)
                cfg = self.chosen.get(self.key_values(self._loose_values(args, kwargs)))
            except (AttributeError, IndexError, KeyError, TypeError):
                cfg = None
            if cfg is not None:
                return cfg
        return self._config_for(grid, args, kwargs)

    def __getitem__(self, grid: Any) -> Callable[..., None]:
        def launch(*args: Any, **kwargs: Any) -> None:
            try:
                cfg = self._config_of(grid, args, kwargs)
                self.kernel[grid](*args, **kwargs, **cfg.all())
            except TilecError as e:
                if e.loc is None:
                    e.loc = caller_location(1)
                raise e.with_traceback(None) from None
        return launch

    def _loose_values(self, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Parameter name -> value without any check (KeyError when one is missing)."""
        values = dict(zip(self._param_names, args))
        values.update(kwargs)
        for name, default in self._defaults:
            values.setdefault(name, default)
        return {name: values[name] for name in self._param_names
                if name not in self._tuned_names}

    def _bind(self, args: tuple, kwargs: dict[str, Any], cfg: Config) -> dict[str, Any]:
        tuned = set(self.configs[0].all())
        given = tuned.intersection(kwargs)
        if given:
            raise LaunchError(f"kernel '{self.kernel.__name__}' is autotuned: do not pass "
                              f"{', '.join(sorted(given))}",
                              hint="tc.autotune chooses them; launch without them")
        values, _ = self.kernel.bind(args, {**kwargs, **cfg.all()})
        return values

    def key_values(self, values: Mapping[str, Any]) -> tuple:
        """The key of a launch: the `key` expressions, then every tensor argument's dtype,
        then the constexprs the call fixes (not tuned): each makes another kernel, whose
        winner may differ (a library's weight dtype, a flag), so they tune apart and
        never share a stored winner."""
        out: list[Any] = []
        for name, attr, index in self._key_parts:
            v = values[name]
            if attr == "shape":
                shape = tuple(int(s) for s in v.shape)
                v = shape if index is None else shape[index]
            elif attr == "dtype":
                v = str(v.dtype).removeprefix("torch.")
            elif isinstance(v, np.integer):
                v = int(v)
            elif not isinstance(v, (int, float, bool, str)):
                v = repr(v)
            out.append(v)
        for name in self._param_names:
            v = values.get(name)
            if hasattr(v, "shape") and hasattr(v, "dtype"):
                out.append(str(v.dtype).removeprefix("torch."))
        for name in self._fixed_constexprs:
            if name in values:
                v = values[name]
                out.append(v if isinstance(v, (int, float, bool, str)) else repr(v))
        return tuple(out)

    def _config_for(self, grid: Any, args: tuple, kwargs: dict[str, Any]) -> Config:
        values = self._bind(args, kwargs, self.configs[0])
        k = self.key_values(values)
        cfg = self.chosen.get(k)
        if cfg is not None:
            return cfg
        specs, _ = self.kernel.specialise(values)
        tensors = [values[s.name] for s in specs if s.kind == "tensor"]
        if not runs_on_gpu(tensors):
            cfg = self._interpreter_config(values, k)
        else:
            cfg = self._device_config(grid, args, kwargs, values, k, device_of(tensors))
        self.chosen[k] = cfg
        return cfg

    def _interpreter_config(self, values: dict[str, Any], k: tuple) -> Config:
        candidates = self.candidates(values)
        cfg = candidates[0]
        if not self._warned_interpreter:
            log.warning("tilec: kernel '%s' runs on the CPU interpreter: autotuning skipped, "
                        "running its first configuration %s", self.kernel.__name__, cfg.short())
            self._warned_interpreter = True
        self.reports[k] = Report("interpreter", cfg, considered=len(candidates))
        return cfg

    def _device_config(self, grid: Any, args: tuple, kwargs: dict[str, Any],
                       values: dict[str, Any], k: tuple, device: int) -> Config:
        limits = DeviceLimits.of_device(device)
        tkey = TuningKey(self.kernel_id, k, limits.name)
        entry = self.database.get(tkey)
        if entry is not None:
            return entry.config
        if not config.autotune():
            report = self.rank_only(grid, values, limits)
            self.reports[k] = report
            return report.winner
        report = self.tune(grid, args, kwargs, device, limits)
        self.reports[k] = report
        self.database.put(tkey, report.winner, report.to_json())
        workers.announce(f"tilec tune {self.kernel.__name__}: {report.winner.short()} "
                         f"{report.timed[0][1]:.4f} ms (timed {len(report.timed)}, pruned "
                         f"{len(report.pruned)}) in {report.seconds['total']:.1f} s; "
                         f"`tilec tune --show` says why")
        return report.winner

    # -- the search --------------------------------------------------------------------------
    def candidates(self, values: Mapping[str, Any]) -> list[Config]:
        """The configurations the prune hooks keep for these arguments."""
        kept = list(self.configs)
        given = {k: v for k, v in values.items() if k not in self._tuned_names}
        for hook in self.prune_hooks:
            kept = list(hook(list(kept), dict(given)))
            if not kept:
                raise LaunchError(f"tc.autotune: the prune hooks of kernel "
                                  f"'{self.kernel.__name__}' left no configuration",
                                  hint="a prune hook must keep at least one")
        return kept

    def _build(self, cfg: Config, values: Mapping[str, Any],
               built: dict[tuple, tuple] | None = None) -> tuple[Any, list, dict]:
        """The frontend module of one candidate, its specialisation and options. With
        `built` (one search's memo), the frontend runs once per set of constexpr values:
        candidates differing only in num_warps / num_stages share its body, with their own
        function attributes (the options are nothing but attributes to the frontend)."""
        call = dict(values)
        call.update(cfg.all())
        options = {o: call.pop(o) for o in ("num_warps", "num_stages")}
        group = _group(cfg)
        if built is not None and group in built:
            module, specs = built[group]
            kernel_fn = module.get(self.kernel.__name__)
            fn = replace(kernel_fn, attrs={**kernel_fn.attrs, **options})
            return Module([fn if f is kernel_fn else f for f in module.functions],
                          source=module.source), specs, options
        specs, consts = self.kernel.specialise(call)
        module = self.kernel.build(specs, consts, options)
        if built is not None:
            built[group] = (module, specs)
        return module, specs, options

    def _analyse(self, cands: list[Config], values: Mapping[str, Any], grid: Any,
                 limits: DeviceLimits, pool: workers.Pool, report: Report
                 ) -> tuple[list[tuple[Config, Any, list, dict]], list[float]]:
        """Build, profile and resource-check every candidate; the survivors ordered by the
        cost model, with their predicted times."""
        from tilec.ir.printer import print_module
        facts = _facts(values)
        built, memo = [], {}
        groups: dict[tuple, list[int]] = {}   # constexpr values -> indices into `built`
        for cfg in cands:
            try:
                module, specs, options = self._build(cfg, values, memo)
            except TilecError as e:
                report.failed[cfg.short()] = f"{type(e).__name__}: {e.message}"
                continue
            groups.setdefault(_group(cfg), []).append(len(built))
            built.append((cfg, module, specs, options))
        # One job per group: its candidates share the IR up to layouts (workers.profiles).
        # This process takes jobs too, from its own modules, while the children start up.
        jobs, modules = [], []
        for members in groups.values():
            cfg, module = built[members[0]][:2]
            modules.append(module)
            jobs.append(workers.Job(len(jobs), print_module(module, locations=True),
                                    module.source or "<kernel>", self.kernel.__name__,
                                    limits.arch, cfg.num_warps, facts,
                                    tuple((built[i][0].num_warps, built[i][0].num_stages)
                                          for i in members)))
        outcomes: list[Any] = [None] * len(built)
        analysed = pool.map(workers.analyse, jobs, "analysing",
                            here=lambda job: workers.profiles(modules[job.index], job))
        for members, out in zip(groups.values(), analysed):
            # A job failing as a whole (its IR, its worker) fails each of its candidates.
            for i, result in zip(members, [out] * len(members) if out.error else out.value):
                outcomes[i] = result
        fits, profiles = [], []
        for item, out in zip(built, outcomes):
            cfg = item[0]
            if out.error is not None:
                report.failed[cfg.short()] = out.error
                continue
            why = check(out.value, limits, self.check_registers)
            if why is not None:
                report.pruned[cfg.short()] = f"resource model: {why}"
                continue
            fits.append(item)
            profiles.append(out.value)
        unique = float(sum(timing.nbytes(v) for v in values.values()))
        cands_cost = [Candidate(p, _programs(grid, values, item[0]), unique, item[0].num_stages)
                      for item, p in zip(fits, profiles)]
        predicted = self.cost_model.predict(cands_cost, limits) if fits else []
        order = sorted(range(len(fits)), key=lambda i: (predicted[i], i))
        report.predicted = [(fits[i][0], predicted[i]) for i in order]
        return [fits[i] for i in order], [predicted[i] for i in order]

    def rank_only(self, grid: Any, values: Mapping[str, Any], limits: DeviceLimits) -> Report:
        """The cost model's first choice among the candidates that fit, without timing."""
        start = time.perf_counter()
        cands = self.candidates(values)
        report = Report("cost model", cands[0], considered=len(cands))
        pool = workers.Pool(f"tilec: ranking {self.kernel.__name__}")
        pool.start(len(cands))  # the children start up while this process builds the IR
        try:
            ranked, _ = self._analyse(cands, values, grid, limits, pool, report)
        finally:
            pool.close()
        if ranked:
            report.winner = ranked[0][0]
        report.seconds["total"] = time.perf_counter() - start
        return report

    def tune(self, grid: Any, args: tuple, kwargs: dict[str, Any], device: int,
             limits: DeviceLimits | None = None) -> Report:
        """Search for the best configuration for these arguments on `device` (nothing is
        read from or written to the database here)."""
        start = time.perf_counter()
        limits = limits or DeviceLimits.of_device(device)
        values = self._bind(args, kwargs, self.configs[0])
        cands = self.candidates(values)
        report = Report("timed", cands[0], considered=len(self.configs),
                        timing=self._timing_said())
        for cfg in self.configs:
            if cfg not in cands:
                report.pruned[cfg.short()] = "prune hook"
        pool = workers.Pool(f"tilec tune {self.kernel.__name__}")
        pool.start(len(cands))  # the children start up while this process builds the IR
        try:
            ranked, _ = self._analyse(cands, values, grid, limits, pool, report)
            report.seconds["analyse"] = time.perf_counter() - start
            spare: list[tuple[Config, Any, list, dict]] = []
            if self.budget is not None:
                ranked, spare = _within_budget(ranked, self.budget)
                for cfg, *_ in spare:
                    report.pruned[cfg.short()] = f"cost model: outside the budget of {self.budget}"
            t = time.perf_counter()
            survivors = self._compile_kinds(self._compile(ranked, limits, pool, report),
                                            values, limits, pool, report)
            report.seconds["compile"] = time.perf_counter() - t
            # In the order the user gave them: the first one that runs is the reference result.
            survivors.sort(key=self.configs.index)
            t = time.perf_counter()
            session = self._timing(grid, args, kwargs, device, report)
            session.add(survivors)
            report.seconds["time"] = time.perf_counter() - t
            t = time.perf_counter()
            self._refine(session, spare, values, limits, pool, report)  # compiles, samples
            report.seconds["refine"] = time.perf_counter() - t
        finally:
            pool.close()
        t = time.perf_counter()
        session.finish()
        report.seconds["time"] += time.perf_counter() - t
        report.seconds["total"] = time.perf_counter() - start
        if not report.timed:
            raise LaunchError(f"tc.autotune: no configuration of kernel "
                              f"'{self.kernel.__name__}' ran correctly",
                              hint="; ".join(f"{c}: {e}" for c, e in
                                             list(report.failed.items())[:3]))
        report.timed.sort(key=lambda t: t[1])
        report.winner = report.timed[0][0]
        self.tuning_count += 1
        return report

    def _compile(self, items: list[tuple[Config, Any, list, dict]], limits: DeviceLimits,
                 pool: workers.Pool, report: Report, kept_before: bool = False,
                 judge: bool = True) -> list[Config]:
        """Compile what the compile cache lacks, in the workers, and store it under the key
        a launch looks up (the launches that time it load it); the candidates that
        ptxas's report keeps (`_after_ptxas`; with `judge` False, all that compiled), in
        the order of `items`."""
        from tilec.ir.printer import print_module
        from tilec.runtime import cache
        jobs, keys, compiled = [], [], {}
        for cfg, module, specs, options in items:
            ckey = self.kernel.gpu_cache_key(module, specs, options, limits.arch)
            hit = cache.get(ckey)
            if hit is not None:
                compiled[cfg] = hit
                continue
            keys.append((cfg, ckey))
            jobs.append(workers.Job(len(jobs), print_module(module, locations=True),
                                    module.source or "<kernel>", self.kernel.__name__,
                                    limits.arch, cfg.num_warps, {}))
        for (cfg, ckey), out in zip(keys, pool.map(workers.compile_job, jobs, "compiling")):
            if out.error is not None:
                report.failed[cfg.short()] = out.error
                continue
            cache.put(ckey, out.value)
            compiled[cfg] = out.value
        if not judge:
            return [c for c, *_ in items if c in compiled]
        return self._after_ptxas([c for c, *_ in items if c in compiled], compiled, limits,
                                 report, kept_before)

    def _timing_said(self) -> str:
        """How this tuner takes a sample, in words, where not the default way."""
        said = []
        if self.back_to_back:
            said.append(f"back to back, {timing.STREAM_BATCH} launches an event pair")
        if self.launch_kinds:
            said.append("the mean over launches as " + " and as ".join(
                ", ".join(f"{k}={v!r}" for k, v in kind.items()) for kind in self.launch_kinds))
        return "; ".join(said)

    def _compile_kinds(self, cands: list[Config], values: Mapping[str, Any],
                       limits: DeviceLimits, pool: workers.Pool, report: Report
                       ) -> list[Config]:
        """Compile each launch kind's kernel of `cands` (their constexprs over the call's);
        the candidates whose every kind compiled, in their order (ptxas's report on the
        call's own kernel has judged them)."""
        kept = set(cands)
        for kind in self.launch_kinds:
            if all(values.get(k) == v for k, v in kind.items()):
                continue   # the call's own kernels: compiled already
            memo: dict[tuple, tuple] = {}
            items = []
            for cfg in cands:
                try:
                    items.append((cfg, *self._build(cfg, {**values, **kind}, memo)))
                except TilecError as e:
                    report.failed[cfg.short()] = f"{type(e).__name__}: {e.message}"
            kept &= set(self._compile(items, limits, pool, report, judge=False))
        return [c for c in cands if c in kept]

    def _refine(self, session: timing.Session, spare: list[tuple[Config, Any, list, dict]],
                values: Mapping[str, Any], limits: DeviceLimits, pool: workers.Pool,
                report: Report) -> None:
        """Compile and time, beyond the budget, the neighbours of the best timed candidates
        of the best one or two tile shapes: the same tile shape with the other num_warps and
        num_stages (the cost model is least sure of those), REFINE_BUDGET at most. One
        round: a neighbour that wins is not refined around in turn."""
        medians = session.medians()
        best: list[Config] = []
        for cfg in sorted(medians, key=lambda c: medians[c]):
            if len(best) < REFINE_FROM and all(_group(cfg) != _group(b) for b in best):
                best.append(cfg)
        near = _neighbours(best, [cfg for cfg, *_ in spare])[:REFINE_BUDGET]
        if not near:
            return
        for cfg in near:
            del report.pruned[cfg.short()]
        report.refined = [cfg.short() for cfg in near]
        by_config = {item[0]: item for item in spare}
        session.add(self._compile_kinds(
            self._compile([by_config[cfg] for cfg in near], limits, pool, report,
                          kept_before=True), values, limits, pool, report))

    @staticmethod
    def _after_ptxas(cands: list[Config], compiled: dict[Config, Any], limits: DeviceLimits,
                     report: Report, kept_before: bool = False) -> list[Config]:
        """Drop candidates whose ptxas report spills or whose shared memory does not fit
        (spilling ones stay when nothing else would: none here, and none `kept_before`)."""
        kept, spilling = [], []
        for cfg in cands:
            ck = compiled[cfg]
            res = ck.resources
            if ck.shared_bytes > limits.max_shared_per_block:
                report.pruned[cfg.short()] = (f"ptxas: shared memory {ck.shared_bytes // 1024} "
                                              f"KiB > {limits.max_shared_per_block // 1024} KiB")
            elif res is not None and (res.spill_stores or res.spill_loads):
                spilling.append(cfg)
            else:
                kept.append(cfg)
        if not kept and not kept_before:
            return spilling
        for cfg in spilling:
            res = compiled[cfg].resources
            report.pruned[cfg.short()] = (f"ptxas: spills ({res.spill_stores} bytes stored, "
                                          f"{res.registers} registers)")
        return kept

    def _timing(self, grid: Any, args: tuple, kwargs: dict[str, Any], device: int,
                report: Report) -> timing.Session:
        """The timing session of one search, on the device."""
        values = self._bind(args, kwargs, self.configs[0])
        # A tuple grid: the kernel's launch hot path, so the host keeps ahead of the GPU.
        return timing.DeviceSession(self, lambda cfg: self.kernel[_grid_of(grid, values, cfg)],
                                    values, args, kwargs, device, report)

    # -- ahead of time -----------------------------------------------------------------------
    def tune_example(self, force: bool = False, **shape: Any) -> tuple[TuningKey, Report | None]:
        """Tune for the arguments `example(**shape)` makes (`tilec tune`); stores the winner.
        Returns the key and the report (None when the database already had the key)."""
        if self.example is None:
            raise TilecError(f"tc.autotune: kernel '{self.kernel.__name__}' has no `example`",
                             self._location(),
                             hint="give tc.autotune(example=lambda **shape: (grid, args, "
                                  "kwargs)) to tune it ahead of time")
        grid, args, kwargs = self.example(**shape)
        values = self._bind(tuple(args), dict(kwargs), self.configs[0])
        specs, _ = self.kernel.specialise(values)
        tensors = [values[s.name] for s in specs if s.kind == "tensor"]
        if not runs_on_gpu(tensors):
            raise LaunchError("tilec tune needs a GPU: the example's tensors are not on one")
        device = device_of(tensors)
        limits = DeviceLimits.of_device(device)
        k = self.key_values(values)
        tkey = TuningKey(self.kernel_id, k, limits.name)
        if not force and self.database.get(tkey) is not None:
            return tkey, None
        report = self.tune(grid, tuple(args), dict(kwargs), device, limits)
        self.database.put(tkey, report.winner, report.to_json())
        self.chosen[k] = report.winner
        return tkey, report


def autotune(configs: Sequence[Config] | None = None, *, key: Sequence[str] = (),
             space: Mapping[str, Iterable[Any]] | None = None, budget: int | None = None,
             prune: Prune | Sequence[Prune] | None = None, reset_to_zero: Sequence[str] = (),
             restore: Sequence[str] = (), cost_model: CostModel | None = None,
             example: Callable[..., Any] | None = None,
             compare: Sequence[str] | None = None, check_registers: bool = True,
             back_to_back: bool = False, launch_kinds: Sequence[Mapping[str, Any]] = ()
             ) -> Callable[[Kernel], Autotuner]:
    """Decorator above `@tc.kernel`: tune the kernel's constexprs, num_warps and num_stages
    over `configs` (a list of `tc.Config`) or `space` (name -> values), per distinct `key`
    (parameter names, 'A.shape[0]', 'A.dtype'; tensor dtypes are always part of the key).
    `budget`: the most candidates compiled and timed (the cost model's first ones), before
    the refinement adds up to REFINE_BUDGET neighbours of the best.
    `prune(configs, args) -> configs`: drop candidates before anything else (one or a list).
    `reset_to_zero` / `restore`: tensor parameters zeroed / restored before every run, for
    kernels that accumulate into or write over their inputs. `cost_model`: replaces the
    analytical roofline model. `example(**shape) -> (grid, args, kwargs)`: arguments for
    `tilec tune FILE.py::KERNEL --shapes ...`. `compare`: the tensor parameters whose
    results must agree between candidates (default: every tensor; `()` for kernels whose
    candidates write different things, e.g. split-K or split-KV partials, each checked
    by its own tests). `check_registers=False`: the resource model's register estimate
    prunes nothing (it counts whole tiles live, which overestimates kernels that decode
    operands element by element into a dot); ptxas's report still drops spilling ones.
    `back_to_back=True`: time batches of launches back to back, one event pair a batch
    (tilec.tune.timing), for a short kernel that runs among others of its kind: what they
    overlap counts (a kernel that lets the next one start early, `tc.gdc_launch_dependents`),
    a lone launch's latency does not. `launch_kinds`: the values of untuned constexprs the
    launches come with (e.g. `[{"EARLY": True}, {"EARLY": False}]`, a flag the host sets
    per call) that must share one choice: each candidate is timed as each kind and ranked
    by the mean, and these constexprs are not part of the key."""
    if (configs is None) == (space is None):
        raise TilecError("tc.autotune takes either configs=[tc.Config(...)] or space={...}",
                         caller_location(1))
    if configs is not None:
        if not isinstance(configs, (list, tuple)) or not all(isinstance(c, Config)
                                                              for c in configs):
            raise TilecError("tc.autotune: configs must be a list of tc.Config",
                             caller_location(1))
        chosen = list(configs)
    else:
        try:
            chosen = expand(space)
        except TilecError as e:
            e.loc = e.loc or caller_location(1)
            raise e.with_traceback(None) from None
    if isinstance(key, str):
        key = [key]

    def wrap(kernel: Any) -> Autotuner:
        if not isinstance(kernel, Kernel):
            raise TilecError(f"tc.autotune goes above @tc.kernel, not on "
                             f"{type(kernel).__name__}", caller_location(1),
                             hint="write @tc.autotune(...) on the line above @tc.kernel")
        try:
            return Autotuner(kernel, chosen, key, budget, prune, reset_to_zero, restore,
                             cost_model, example, compare=compare,
                             check_registers=check_registers, back_to_back=back_to_back,
                             launch_kinds=launch_kinds)
        except TilecError as e:
            raise e.with_traceback(None) from None
    return wrap


# Of the candidates sharing constexpr values (differing in num_warps and num_stages only), at
# most this many enter the budget before every other group has had its turn.
PER_GROUP = 2


def _group(cfg: Config) -> tuple:
    """The constexpr values of a candidate: what the candidates differing only in num_warps
    and num_stages share."""
    return tuple(sorted((k, repr(v)) for k, v in cfg.kwargs.items()))


def _within_budget(ranked: list, budget: int) -> tuple[list, list]:
    """The first `budget` candidates of the cost model's order, spread over the constexpr
    values: the model is surest about tile shapes (work, bytes, occupancy) and least about
    warps and pipeline depth, so one tile shape does not take the whole budget. Both parts
    keep the cost model's order."""
    taken: set[int] = set()
    per_group: dict[tuple, int] = {}
    for i, item in enumerate(ranked):
        group = _group(item[0])
        if len(taken) < budget and per_group.get(group, 0) < PER_GROUP:
            taken.add(i)
            per_group[group] = per_group.get(group, 0) + 1
    for i in range(len(ranked)):
        if len(taken) >= budget:
            break
        taken.add(i)
    return [x for i, x in enumerate(ranked) if i in taken], \
        [x for i, x in enumerate(ranked) if i not in taken]


# Refinement: after the budget's candidates are timed, at most REFINE_BUDGET neighbours (same
# constexpr values, other num_warps / num_stages) of the best of the REFINE_FROM best tile
# shapes are compiled and timed too.
REFINE_FROM = 2
REFINE_BUDGET = 4


def _neighbours(best: list[Config], cands: list[Config]) -> list[Config]:
    """The candidates of `cands` sharing constexpr values with one of `best`: those of the
    first before those of the second, each one's differing in one option before those
    differing in both, and otherwise in the order of `cands`."""
    out: list[Config] = []
    for b in best:
        near = [c for c in cands if _group(c) == _group(b) and c not in out]
        near.sort(key=lambda c: (c.num_warps != b.num_warps) + (c.num_stages != b.num_stages))
        out += near
    return out


# -- arguments ---------------------------------------------------------------------------------
def _facts(values: Mapping[str, Any]) -> dict[str, Any]:
    """Shapes of tensor arguments and values of int arguments, for the resource model."""
    facts: dict[str, Any] = {}
    for name, v in values.items():
        if hasattr(v, "shape") and hasattr(v, "dtype"):
            facts[name] = tuple(int(s) for s in v.shape)
        elif isinstance(v, int) and not isinstance(v, bool):
            facts[name] = v
    return facts


def _grid_of(grid: Any, values: Mapping[str, Any], cfg: Config) -> tuple[int, ...]:
    """The grid with `cfg`'s values, as a tuple (a callable grid is called)."""
    g = grid(dict(values, **cfg.kwargs)) if callable(grid) else grid
    return (int(g),) if isinstance(g, (int, np.integer)) else tuple(int(x) for x in g)


def _programs(grid: Any, values: Mapping[str, Any], cfg: Config) -> int:
    """Programs launched by `grid` with `cfg`'s values."""
    return max(1, math.prod(_grid_of(grid, values, cfg)))
