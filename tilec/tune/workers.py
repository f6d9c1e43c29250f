"""Work done for the autotuner in worker processes: tile IR travels as text (the frontend runs
in the parent, which holds the kernel's Python function) and comes back as `KernelProfile`s
(after the GPU pass pipeline; one job profiles every candidate that shares the IR, differing
in num_warps and num_stages only, and the parent takes such jobs too, from its own modules)
or a `CompiledKernel` (with its cubin bytes); the parent loads cubins itself. Nothing here
touches the GPU, so workers never create a CUDA context.
"""
from __future__ import annotations

import pickle
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import tilec.config as config

if TYPE_CHECKING:
    from tilec.ir.core import Module


@dataclass(frozen=True)
class Job:
    """One candidate: its IR (text with locations), kernel name, target and options. For
    `analyse`, `variants` are the (num_warps, num_stages) of every candidate with this IR."""

    index: int
    ir: str
    source: str
    name: str
    arch: str
    num_warps: int
    facts: dict[str, Any]
    variants: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Outcome:
    """A job's result: for `analyse`, an Outcome per variant holding its KernelProfile; for
    `compile_job`, a CompiledKernel."""

    index: int
    value: Any = None
    error: str | None = None   # the first line of the error when the job failed


def analyse(job: Job) -> Outcome:
    """`profiles` of the job's IR, read from its text (in a worker process)."""
    try:
        from tilec.ir.parser import parse_module
        module = parse_module(job.ir, job.source)
    except Exception as e:  # a candidate the compiler rejects is reported, not fatal
        return Outcome(job.index, error=_first_line(e))
    return profiles(module, job)


def profiles(module: Module, job: Job) -> Outcome:
    """Each variant's resource and work profile, from `module` (the job's IR, left as it is)
    after the GPU pass pipeline. The passes before layout assignment run once, those before
    software pipelining once per num_warps (they read neither num_stages nor, the first ones,
    num_warps)."""
    from tilec.ir.passes.manager import (FIRST_READING_NUM_STAGES, FIRST_READING_NUM_WARPS,
                                         GPU_PIPELINE, PassOptions, run_passes)
    from tilec.ir.rewrite import clone_module
    from tilec.tune.resources import profile
    by_warps = GPU_PIPELINE.index(FIRST_READING_NUM_WARPS)
    by_stages = GPU_PIPELINE.index(FIRST_READING_NUM_STAGES)

    def run(module: Module, passes: list[str], warps: int, **attrs: int) -> Module:
        module = clone_module(module)  # passes rewrite in place
        module.get(job.name).attrs.update(attrs)
        return run_passes(module, passes, PassOptions(target=job.arch, num_warps=warps))

    try:
        common = run(module, GPU_PIPELINE[:by_warps], job.num_warps)
    except Exception as e:
        return Outcome(job.index, error=_first_line(e))
    laid_out: dict[int, Module] = {}   # num_warps -> the module after layout assignment
    results = []
    for i, (warps, stages) in enumerate(job.variants):
        try:
            if warps not in laid_out:
                laid_out[warps] = run(common, GPU_PIPELINE[by_warps:by_stages], warps,
                                      num_warps=warps)
            module = run(laid_out[warps], GPU_PIPELINE[by_stages:], warps, num_stages=stages)
            results.append(Outcome(i, profile(module.get(job.name), warps, job.facts)))
        except Exception as e:
            results.append(Outcome(i, error=_first_line(e)))
    return Outcome(job.index, results)


def compile_job(job: Job) -> Outcome:
    """The candidate compiled to a cubin (and ptxas's resource report)."""
    try:
        from tilec.backends.nvidia.compiler import compile_kernel
        from tilec.ir.parser import parse_module
        module = parse_module(job.ir, job.source)
        return Outcome(job.index, compile_kernel(module, job.name, job.arch, job.num_warps))
    except Exception as e:
        return Outcome(job.index, error=_first_line(e))


def _first_line(e: BaseException) -> str:
    text = str(getattr(e, "message", None) or e) or type(e).__name__
    return f"{type(e).__name__}: {text.strip().splitlines()[0]}"


class _Child(subprocess.Popen):
    """A worker process; `ready` once it has said that its start-up is done."""

    ready = False


class Pool:
    """Worker processes for a tuning run: children running `serve()`, started on first use,
    given back by `close`, each fed one pickled job at a time over its stdin once it has said
    that its start-up is done (not multiprocessing: its spawn method re-runs the user's main
    script in every child). With one job, or TILEC_TUNE_JOBS=1, the work runs in this
    process. Children given back wait IDLE_SECONDS for the next tuning run of this process
    (another shape, another kernel), which then skips their start-up."""

    def __init__(self, label: str):
        self.label = label
        self.jobs = config.tune_jobs()
        self._children: list[_Child] = []
        self._broken: set[int] = set()     # pids of children whose stream failed

    def start(self, expected_jobs: int) -> None:
        """Start the children now, so that their interpreter start-up and imports (about a
        second) overlap with the parent's own work before the first `map`."""
        if self.jobs > 1 and expected_jobs > 1:
            while len(self._children) < min(self.jobs, expected_jobs, MAX_CHILDREN):
                self._children.append(_take_child())

    def map(self, fn: Callable[[Job], Outcome], jobs: Sequence[Job], what: str,
            here: Callable[[Job], Outcome] | None = None) -> list[Outcome]:
        """fn over jobs, in parallel when there are workers; a progress bar on a terminal.
        With `here` (fn's work from this process's own objects), this process takes jobs too:
        from the start, while the children are still starting up, then beside them."""
        progress = Progress(f"{self.label}: {what}", len(jobs))
        results: list[Outcome] = []
        if self.jobs <= 1 or len(jobs) <= 1:
            for job in jobs:
                results.append((here or fn)(job))
                progress.step()
        else:
            while len(self._children) < min(self.jobs, len(jobs), MAX_CHILDREN):
                self._children.append(_take_child())
            pending = list(enumerate(jobs))
            lock = threading.Lock()

            def serve(child: _Child | None) -> None:
                # A child takes its first job once started up, so that `here` takes the jobs
                # the children are not ready for.
                if child is not None and not _started(child):
                    self._broken.add(child.pid)
                    return  # it took no job: the others take them all
                while True:
                    with lock:
                        if not pending:
                            return
                        _, job = pending.pop(0)
                    out = here(job) if child is None else _ask(child, fn.__name__, job)
                    with lock:
                        results.append(out)
                        progress.step()
                    if child is not None and out.error is not None and \
                            out.error.startswith(_BROKEN):
                        self._broken.add(child.pid)
                        return  # the other children take the remaining jobs

            threads = [threading.Thread(target=serve, args=(c,), daemon=True)
                       for c in self._children[:len(jobs)]]
            for t in threads:
                t.start()
            if here is not None:
                serve(None)
            for t in threads:
                t.join()
            results += [Outcome(job.index, error=f"{_BROKEN}: every worker process failed")
                        for _, job in pending]
        progress.done()
        return sorted(results, key=lambda o: o.index)

    def close(self) -> None:
        """Give the healthy children back to wait for the next run; stop the others."""
        children, self._children = self._children, []
        healthy = [c for c in children if c.poll() is None and c.pid not in self._broken]
        _stop([c for c in children if c not in healthy])
        if healthy:
            with _IDLE_LOCK:
                _IDLE.setdefault(_environment_key(), []).extend(healthy)
                _schedule_retirement()


def _stop(children: list[subprocess.Popen]) -> None:
    """Tell every child to exit at once and return: a child's exit (interpreter and LLVM
    teardown) takes about 0.1 s, which waiting for each in turn would add up. A daemon thread
    reaps them."""
    for child in children:
        try:
            child.stdin.close()
        except OSError:
            pass
    if children:
        threading.Thread(target=_reap, args=(children,), daemon=True).start()


def _reap(children: list[subprocess.Popen]) -> None:
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# Never more worker processes than this, however many CPUs.
MAX_CHILDREN = 32
# Idle children are stopped this long after the last tuning run gave them back (they hold
# memory); they exit with this process in any case (their stdin closes).
IDLE_SECONDS = 30.0
_IDLE: dict[tuple, list[_Child]] = {}   # by the environment they were started in
_IDLE_LOCK = threading.Lock()
_IDLE_TIMER: list[threading.Timer] = []
_BROKEN = "worker process failed"
_READY = "ready"   # what a child says once, when its start-up is done


def _import_root() -> str:
    return str(Path(__file__).resolve().parent.parent.parent)  # where `tilec` is imported from


def _environment_key() -> tuple:
    return tuple(sorted(config.child_environment(_import_root()).items()))


def _take_child() -> _Child:
    """An idle child started in the same environment, else a new one."""
    with _IDLE_LOCK:
        idle = _IDLE.get(_environment_key(), [])
        while idle:
            child = idle.pop()
            if child.poll() is None:
                return child
    return _start_child()


def _schedule_retirement() -> None:
    """(Re)start the idle timer; the caller holds _IDLE_LOCK."""
    for timer in _IDLE_TIMER:
        timer.cancel()
    timer = threading.Timer(IDLE_SECONDS, retire_idle)
    timer.daemon = True
    _IDLE_TIMER[:] = [timer]
    timer.start()


def retire_idle() -> None:
    """Stop every idle child now."""
    with _IDLE_LOCK:
        children = [c for idle in _IDLE.values() for c in idle]
        _IDLE.clear()
    _stop(children)


def _start_child() -> _Child:
    env = config.child_environment(_import_root())
    command = [sys.executable, "-c", "from tilec.tune.workers import serve; serve()"]
    return _Child(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)


def _started(child: _Child) -> bool:
    """Wait for the child's start-up; False when it failed."""
    if not child.ready:
        try:
            child.ready = _receive(child.stdout) == _READY
        except Exception:  # it exited, or wrote something else: a broken child
            return False
    return child.ready


def _ask(child: subprocess.Popen, fn_name: str, job: Job) -> Outcome:
    """Send one job to a child and read its outcome (a failed child fails only this job)."""
    try:
        _send(child.stdin, (fn_name, job))
        return _receive(child.stdout)
    except Exception as e:  # a broken child fails its job, never the tuning run
        return Outcome(job.index, error=f"{_BROKEN}: {type(e).__name__}: {e}")


def _send(stream: Any, obj: Any) -> None:
    data = pickle.dumps(obj)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _receive(stream: Any) -> Any:
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("the worker exited")
    (size,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(size))


def serve() -> None:
    """A worker's loop: jobs from stdin until it closes, outcomes to stdout. The modules every
    job needs are imported before the first job arrives (while the parent builds the jobs)."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed by the compiler must not corrupt the stream
    import tilec.backends.nvidia.compiler  # noqa: F401
    import tilec.ir.parser  # noqa: F401
    import tilec.ir.passes.manager  # noqa: F401
    import tilec.tune.resources  # noqa: F401
    _send(out, _READY)
    fns = {"analyse": analyse, "compile_job": compile_job}
    while True:
        try:
            fn_name, job = _receive(inp)
        except EOFError:
            return
        _send(out, fns[fn_name](job))


class Progress:
    """`label [#####     ] 5/10` on stderr, redrawn in place, only when stderr is a terminal."""

    def __init__(self, label: str, total: int, stream: Any = None):
        self.label = label
        self.total = total
        self.count = 0
        self.stream = stream or sys.stderr
        self.enabled = total > 0 and getattr(self.stream, "isatty", lambda: False)()
        self.start = time.perf_counter()
        self._draw()

    def _draw(self) -> None:
        if not self.enabled:
            return
        width = 24
        filled = width * self.count // max(1, self.total)
        self.stream.write(f"\r{self.label} [{'#' * filled}{' ' * (width - filled)}] "
                          f"{self.count}/{self.total} {time.perf_counter() - self.start:.1f}s")
        self.stream.flush()

    def step(self) -> None:
        self.count += 1
        self._draw()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()



def announce(text: str, stream: Any = None) -> None:
    """One line on stderr when it is a terminal (what a tuning run chose, and in how long)."""
    stream = stream or sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        stream.write(text + "\n")
        stream.flush()
