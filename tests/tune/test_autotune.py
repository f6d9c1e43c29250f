"""tc.autotune on the CPU: the interpreter path (no tuning, the first configuration, said so),
the errors a user can make, compilation in worker processes, pruning by ptxas's report, and
`tilec tune`."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import tilec as tc
import tilec.config as tc_config
from tilec.backends.nvidia.compiler import Resources, ptxas_path
from tilec.cli import main
from tilec.ir.printer import print_module
from tilec.tune import workers
from tilec.tune.autotuner import Autotuner, Report
from tilec.tune.database import TuningDatabase, TuningKey

from tune_support import H100

ROOT = Path(__file__).resolve().parents[2]


@tc.autotune(configs=[tc.Config(BLOCK=32, num_warps=2), tc.Config(BLOCK=64, num_warps=4)],
             key=["n"], prune=lambda configs, args: [c for c in configs
                                                     if c.kwargs["BLOCK"] <= args["n"]])
@tc.kernel
def scale(X: tc.Tensor, Y: tc.Tensor, n: int, BLOCK: tc.constexpr):
    i = tc.program_id(0) * BLOCK + tc.arange(0, BLOCK)
    tc.store(Y.ptr + i, tc.load(X.ptr + i, mask=i < n) * 2.0, mask=i < n)


def test_interpreter_runs_the_first_configuration_and_says_so(caplog):
    tuner = tc.autotune(configs=[tc.Config(BLOCK=16), tc.Config(BLOCK=128)], key=["n"])(
        scale.kernel)
    x = np.arange(100, dtype=np.float32)
    y = np.zeros_like(x)
    grid = lambda meta: (tc.cdiv(100, meta["BLOCK"]),)  # noqa: E731
    with caplog.at_level(logging.WARNING, logger="tilec.tune"):
        tuner[grid](x, y, 100)
        tuner[grid](x, y, 100)
    np.testing.assert_array_equal(y, 2 * x)
    said = [r.getMessage() for r in caplog.records]
    assert said == ["tilec: kernel 'scale' runs on the CPU interpreter: autotuning skipped, "
                    "running its first configuration BLOCK=16 w4 s3"]
    (report,) = tuner.reports.values()
    assert report.method == "interpreter" and report.winner == tc.Config(BLOCK=16)
    assert tuner.tuning_count == 0


@tc.kernel
def _cluster_total(X: tc.Tensor, Y: tc.Tensor, BLOCK: tc.constexpr):
    pid = tc.program_id(0)
    tc.store(Y, (pid,), tc.cluster_reduce(tc.load(X, (pid,), (BLOCK,))))


def test_configurations_may_set_launch_options():
    """A configuration carries launch options besides num_warps and num_stages (num_ctas,
    fast_math): the launch runs with them (here: clusters of 2 programs add up)."""
    tuner = tc.autotune(configs=[tc.Config(BLOCK=16, num_ctas=2, fast_math=True)],
                        key=[])(_cluster_total)
    x = np.arange(64, dtype=np.float32)
    y = np.zeros_like(x)
    tuner[(4,)](x, y)
    np.testing.assert_array_equal(y, np.tile(x[:16] + x[16:32], 2).tolist() +
                                  np.tile(x[32:48] + x[48:], 2).tolist())


def test_prune_hook_chooses_among_what_it_keeps():
    x = np.arange(40, dtype=np.float32)
    y = np.zeros_like(x)
    # n = 40: the hook drops BLOCK=64, so the interpreter's one configuration is BLOCK=32.
    scale[lambda meta: (tc.cdiv(40, meta["BLOCK"]),)](x, y, 40)
    np.testing.assert_array_equal(y, 2 * x)
    assert scale.chosen[(40, "float32", "float32")] == tc.Config(BLOCK=32, num_warps=2)


def test_key_reads_shapes_and_dtypes():
    tuner = tc.autotune(configs=[tc.Config(BLOCK=16)], key=["X.shape[0]", "X.shape", "n",
                                                           "Y.dtype"])(scale.kernel)
    x = np.zeros((7,), np.float32)
    assert tuner.key_values({"X": x, "Y": x, "n": 3, "BLOCK": 16}) == (
        7, (7,), 3, "float32", "float32", "float32")


@tc.kernel
def _scale_by(X: tc.Tensor, Y: tc.Tensor, BLOCK: tc.constexpr, TWICE: tc.constexpr):
    i = tc.program_id(0) * BLOCK + tc.arange(0, BLOCK)
    x = tc.load(X.ptr + i, mask=i < X.shape[0])
    tc.store(Y.ptr + i, x * 2.0 if TWICE else x, mask=i < X.shape[0])


def test_constexprs_the_call_fixes_tune_apart():
    """A constexpr the launch passes (not a tuned one) makes another kernel: it ends the
    key, so its searches and stored winners stay apart."""
    tuner = tc.autotune(configs=[tc.Config(BLOCK=16), tc.Config(BLOCK=32)],
                        key=["X.shape[0]"])(_scale_by)
    x = np.zeros((7,), np.float32)
    keys = {tuner.key_values({"X": x, "Y": x, "BLOCK": 16, "TWICE": t}) for t in (0, 1)}
    assert keys == {(7, "float32", "float32", 0), (7, "float32", "float32", 1)}


def test_launch_kinds_share_one_key():
    """The constexprs a launch kind sets leave the key: the kinds share one winner."""
    tuner = tc.autotune(configs=[tc.Config(BLOCK=16), tc.Config(BLOCK=32)],
                        key=["X.shape[0]"], launch_kinds=[{"TWICE": 1}, {"TWICE": 0}])(
        _scale_by)
    x = np.zeros((7,), np.float32)
    keys = {tuner.key_values({"X": x, "Y": x, "BLOCK": 16, "TWICE": t}) for t in (0, 1)}
    assert keys == {(7, "float32", "float32")}
    assert tuner._timing_said() == "the mean over launches as TWICE=1 and as TWICE=0"
    # another timing is another stored winner
    plain = tc.autotune(configs=[tc.Config(BLOCK=16), tc.Config(BLOCK=32)],
                        key=["X.shape[0]"])(_scale_by)
    assert plain.kernel_id != tuner.kernel_id


def _error(fn) -> tc.TilecError:
    with pytest.raises(tc.TilecError) as info:
        fn()
    return info.value


def test_errors_at_decoration():
    e = _error(lambda: tc.autotune(configs=[tc.Config(BLOK=32)], key=["n"])(scale.kernel))
    assert "configuration value 'BLOK' is not a tc.constexpr parameter of kernel 'scale'" \
        in e.message
    assert e.loc.file.endswith("test_autotune.py") and e.loc.line > 0
    e = _error(lambda: tc.autotune(configs=[tc.Config(BLOCK=32)], key=["X.strides"])(
        scale.kernel))
    assert "cannot read key 'X.strides'" in e.message
    e = _error(lambda: tc.autotune(configs=[tc.Config(BLOCK=32)], space={"BLOCK": [32]}))
    assert "either configs=[tc.Config(...)] or space={...}" in e.message
    assert e.loc.file.endswith("test_autotune.py")
    e = _error(lambda: tc.autotune(configs=[tc.Config(BLOCK=32)])(lambda x: x))
    assert "tc.autotune goes above @tc.kernel" in e.message
    e = _error(lambda: tc.autotune(space={"BLOCK": [32]}, budget=0)(scale.kernel))
    assert "budget must be a positive int" in e.message
    e = _error(lambda: tc.autotune(space={"BLOCK": [32]}, restore=["Z"])(scale.kernel))
    assert "'Z' (reset_to_zero / restore) is not a parameter" in e.message
    e = _error(lambda: tc.autotune(space={"BLOCK": [32]}, compare=["n"])(scale.kernel))
    assert "compare names 'n', which is not a tensor parameter of 'scale'" in e.message
    assert e.loc.file.endswith("test_autotune.py")
    e = _error(lambda: tc.autotune(space={"BLOCK": [32]}, launch_kinds=[{"BLOCK": 16}])(
        _scale_by))
    assert "launch_kinds sets 'BLOCK', which is not an untuned tc.constexpr parameter of " \
        "kernel '_scale_by'" in e.message
    assert e.loc.file.endswith("test_autotune.py")
    e = _error(lambda: tc.autotune(space={"BLOCK": [32]}, launch_kinds=[{"X": 1}])(_scale_by))
    assert "launch_kinds sets 'X'" in e.message
    e = _error(lambda: tc.autotune(space={"BLOCK": [32]}, launch_kinds={"TWICE": 1})(
        _scale_by))
    assert "launch_kinds takes dicts of constexpr values, got 'TWICE'" in e.message


def test_config_says_what_a_launch_runs_with():
    """`tuned.config(grid, *args)`: the configuration the launch with those arguments takes
    (a host sizes buffers or a second launch by it), the prune hook's choice here."""
    x = np.arange(40, dtype=np.float32)
    grid = lambda meta: (tc.cdiv(40, meta["BLOCK"]),)  # noqa: E731
    assert scale.config(grid, x, np.zeros_like(x), 40) == tc.Config(BLOCK=32, num_warps=2)
    e = _error(lambda: scale.config(grid, x, x))
    assert e.loc.file.endswith("test_autotune.py")


def test_passing_a_tuned_value_at_launch_is_an_error():
    x = np.zeros(8, np.float32)
    e = _error(lambda: scale[(1,)](x, x, 8, BLOCK=8))
    assert "kernel 'scale' is autotuned: do not pass BLOCK" in e.message
    assert e.loc.file.endswith("test_autotune.py")  # the launch line


def test_prune_hook_that_keeps_nothing():
    x = np.zeros(8, np.float32)
    e = _error(lambda: scale[(1,)](x, x, 8))
    assert "the prune hooks of kernel 'scale' left no configuration" in e.message


@pytest.mark.skipif(ptxas_path() is None, reason="needs ptxas (the nvidia-cuda-nvcc wheel)")
def test_worker_processes_compile_to_cubins(monkeypatch):
    monkeypatch.setenv("TILEC_TUNE_JOBS", "2")
    jobs = []
    for i, block in enumerate((32, 64)):
        module = scale.kernel.compile(f"X: tensor<?xf32>, Y: tensor<?xf32>, n: i32, "
                                      f"BLOCK={block}")
        jobs.append(workers.Job(i, print_module(module, locations=True), "<scale>", "scale",
                                "sm_90a", 4, {}))
    jobs.append(workers.Job(2, "func @broken(", "<bad>", "broken", "sm_90a", 4, {}))
    pool = workers.Pool("test")
    try:
        out = pool.map(workers.compile_job, jobs, "compiling")
    finally:
        pool.close()
    assert [o.index for o in out] == [0, 1, 2]
    for o in out[:2]:
        assert o.error is None and o.value.cubin[:4] == b"\x7fELF"
        assert o.value.resources.registers > 0
    assert out[2].value is None and out[2].error.startswith("IRError")


def test_children_import_this_tilec_with_one_blas_thread(monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "16")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = tc_config.child_environment("/here")
    assert env["PYTHONPATH"].split(os.pathsep) == ["/here", "/elsewhere"]
    assert env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == "1"


def test_ptxas_report_prunes_spills_and_shared_memory():
    fine = SimpleNamespace(shared_bytes=1024, resources=Resources(40, 0, 0, 0, 0))
    spills = SimpleNamespace(shared_bytes=1024, resources=Resources(255, 0, 96, 96, 96))
    huge = SimpleNamespace(shared_bytes=300 * 1024, resources=Resources(40, 0, 0, 0, 0))
    a, b, c = (tc.Config(BLOCK=v) for v in (1, 2, 3))
    report = Report("timed", a)
    kept = Autotuner._after_ptxas([a, b, c], {a: fine, b: spills, c: huge}, H100, report)
    assert kept == [a]
    assert report.pruned == {"BLOCK=2 w4 s3": "ptxas: spills (96 bytes stored, 255 registers)",
                             "BLOCK=3 w4 s3": "ptxas: shared memory 300 KiB > 227 KiB"}
    # when everything spills, the spilling ones are what is left to time
    assert Autotuner._after_ptxas([b], {b: spills}, H100, Report("timed", b)) == [b]


def test_cli_show_prints_winners_and_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path))
    assert main(["tune", "--show"]) == 0
    assert "no tuning results" in capsys.readouterr().out
    report = Report("timed", tc.Config(BM=128, num_warps=4), considered=72,
                    timed=[(tc.Config(BM=128, num_warps=4), 0.41),
                           (tc.Config(BM=64, num_warps=4), 0.5)],
                    pruned={"a": "resource model: registers: ~416 > 255 per thread",
                            "b": "resource model: registers: ~800 > 255 per thread",
                            "c": "cost model: outside the budget of 12"},
                    failed={"BM=32 w4 s3": "CompileError: no"}, seconds={"total": 6.5},
                    spread={"BM=128 w4 s3": [0.40, 0.43, 40]})
    TuningDatabase().put(TuningKey("gemm_kernel-0123", (4096, 4096, 4096), "NVIDIA H100"),
                         report.winner, report.to_json())
    assert main(["tune", "--show"]) == 0
    out = capsys.readouterr().out
    assert "gemm_kernel-0123  key 4096, 4096, 4096" in out
    assert ("winner   BM=128 w4 s3   0.4100 ms  [0.4000-0.4300, 40 samples]   (timed 2 of 72 "
            "configurations in 6.5 s)") in out
    assert "then     BM=64 w4 s3   0.5000 ms  (x1.22)\n" in out
    assert "pruned   3: 2 resource model: registers, 1 cost model: outside the budget of 12" \
        in out
    assert "failed   1 (e.g. BM=32 w4 s3: CompileError: no)" in out


def test_cli_tune_errors(capsys):
    assert main(["tune"]) == 1
    assert "tilec tune needs FILE.py::KERNEL and --shapes, or --show" in capsys.readouterr().err
    assert main(["tune", f"{ROOT}/examples/softmax.py::softmax", "--shapes", "n=3"]) == 1
    assert "is not a @tc.autotune kernel" in capsys.readouterr().err
    assert main(["tune", f"{ROOT}/tilec/lib/gemm.py::tuned_gemm", "--shapes", "M=1,N"]) == 1
    assert "cannot read shape item 'N'" in capsys.readouterr().err


@pytest.fixture
def as_if_on_a_gpu(monkeypatch, tmp_path):
    """Launches take the device path of the autotuner (database, TILEC_AUTOTUNE) while the
    kernel itself still runs on the interpreter: numpy arguments, an H100's limits."""
    from tilec.tune import autotuner
    from tilec.tune.resources import DeviceLimits
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(autotuner, "runs_on_gpu", lambda tensors: True)
    monkeypatch.setattr(autotuner, "device_of", lambda tensors: 0)
    monkeypatch.setattr(DeviceLimits, "of_device", staticmethod(lambda device=0: H100))
    return tmp_path


def _scale_tuner() -> Autotuner:
    return tc.autotune(configs=[tc.Config(BLOCK=16), tc.Config(BLOCK=64),
                                tc.Config(BLOCK=256)], key=["n"])(scale.kernel)


def test_a_stored_winner_is_used_without_tuning(as_if_on_a_gpu):
    tuner = _scale_tuner()
    x = np.arange(100, dtype=np.float32)
    y = np.zeros_like(x)
    key = TuningKey(tuner.kernel_id, (100, "float32", "float32"), H100.name)
    TuningDatabase().put(key, tc.Config(BLOCK=64), {"method": "timed"})
    tuner[lambda meta: (tc.cdiv(100, meta["BLOCK"]),)](x, y, 100)
    np.testing.assert_array_equal(y, 2 * x)
    assert tuner.chosen == {(100, "float32", "float32"): tc.Config(BLOCK=64)}
    assert tuner.tuning_count == 0 and not tuner.reports


def test_best_ms_reads_the_stored_search(as_if_on_a_gpu):
    """`best_ms`: the winner's time of a search stored by an earlier process (the database),
    None for a key never tuned."""
    tuner = _scale_tuner()
    x = np.arange(100, dtype=np.float32)
    y = np.zeros_like(x)
    assert tuner.best_ms(x, y, 100) is None
    key = TuningKey(tuner.kernel_id, (100, "float32", "float32"), H100.name)
    TuningDatabase().put(key, tc.Config(BLOCK=64), {
        "method": "timed", "timed": [[tc.Config(BLOCK=64).to_json(), 0.012],
                                     [tc.Config(BLOCK=16).to_json(), 0.019]]})
    assert tuner.best_ms(x, y, 100) == 0.012
    assert tuner.best_ms(x, y, 99) is None


def test_best_ms_is_none_without_timing(monkeypatch):
    """The interpreter (no search) has no time to give."""
    tuner = _scale_tuner()
    x = np.arange(100, dtype=np.float32)
    y = np.zeros_like(x)
    tuner[lambda meta: (tc.cdiv(100, meta["BLOCK"]),)](x, y, 100)
    assert tuner.reports and tuner.best_ms(x, y, 100) is None


def test_autotune_off_takes_the_cost_models_first_choice(as_if_on_a_gpu, monkeypatch):
    monkeypatch.setenv("TILEC_AUTOTUNE", "0")
    monkeypatch.setenv("TILEC_TUNE_JOBS", "1")
    tuner = _scale_tuner()
    n = 1 << 16
    x = np.arange(n, dtype=np.float32)
    y = np.zeros_like(x)
    tuner[lambda meta: (tc.cdiv(n, meta["BLOCK"]),)](x, y, n)
    np.testing.assert_array_equal(y, 2 * x)
    (report,) = tuner.reports.values()
    assert report.method == "cost model" and not report.timed and tuner.tuning_count == 0
    assert report.winner == report.predicted[0][0]
    assert len(report.predicted) == 3
    assert tuner.best_ms(x, y, n) is None                     # a guess has no time
    assert not list(as_if_on_a_gpu.glob("tuning/*/*.json"))  # a guess is not stored


class _Terminal:
    def __init__(self, tty: bool):
        self.text, self.tty = "", tty

    def write(self, s: str) -> None:
        self.text += s

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self.tty


def test_progress_bar_only_on_a_terminal():
    term = _Terminal(True)
    bar = workers.Progress("tilec tune k: compiling", 2, stream=term)
    bar.step()
    bar.step()
    bar.done()
    assert "\rtilec tune k: compiling [############            ] 1/2" in term.text
    assert "[########################] 2/2" in term.text and term.text.endswith("\n")
    pipe = _Terminal(False)
    bar = workers.Progress("x", 2, stream=pipe)
    bar.step()
    bar.done()
    workers.announce("chosen", stream=pipe)
    assert pipe.text == ""
    workers.announce("chosen", stream=term)
    assert term.text.endswith("chosen\n")


def _broken_jobs(n: int) -> list[workers.Job]:
    return [workers.Job(i, "func @broken(", "<bad>", "broken", "sm_90a", 4, {}) for i in range(n)]


def test_pool_starts_children_early_and_reuses_them(monkeypatch):
    # start(): the children start (and import the compiler) before the first map, which uses
    # those same processes; close() gives them back, the next pool (same environment) takes
    # them, one in another environment does not; retire_idle() stops them.
    monkeypatch.setenv("TILEC_TUNE_JOBS", "2")
    workers.retire_idle()
    pool = workers.Pool("test")
    pool.start(5)
    children = list(pool._children)
    assert len(children) == 2 and all(c.poll() is None for c in children)
    out = pool.map(workers.analyse, _broken_jobs(3), "analysing")
    assert pool._children == children
    assert [o.error.split(":")[0] for o in out] == ["IRError"] * 3
    pool.close()
    assert pool._children == [] and all(c.poll() is None for c in children)
    again = workers.Pool("test")
    again.start(2)
    assert sorted(c.pid for c in again._children) == sorted(c.pid for c in children)
    again.close()
    monkeypatch.setenv("TILEC_TUNE_OTHER_TEST_KNOB", "1")   # another environment
    other = workers.Pool("test")
    other.start(2)
    others = list(other._children)
    assert len(others) == 2 and not {c.pid for c in others} & {c.pid for c in children}
    other.close()
    workers.retire_idle()
    assert [c.wait(timeout=30) for c in children + others] == [0, 0, 0, 0]
    monkeypatch.setenv("TILEC_TUNE_JOBS", "1")
    serial = workers.Pool("test")
    serial.start(5)          # one job at a time: nothing to start
    assert serial._children == []


def test_a_broken_child_is_not_reused(monkeypatch):
    monkeypatch.setenv("TILEC_TUNE_JOBS", "2")
    workers.retire_idle()
    pool = workers.Pool("test")
    pool.start(2)
    jobs = _broken_jobs(4)
    assert all(o.error.startswith("IRError") for o in pool.map(workers.analyse, jobs, "a"))
    victim, survivor = pool._children
    victim.kill()
    victim.wait()
    out = pool.map(workers.analyse, jobs, "analysing")
    # one job fails with the dead child; the survivor does the rest
    assert [o.index for o in out] == [0, 1, 2, 3]
    assert sum(o.error.startswith("worker process failed") for o in out) == 1
    assert sum(o.error.startswith("IRError") for o in out) == 3
    pool.close()
    again = workers.Pool("test")
    again.start(2)
    assert victim not in again._children and survivor in again._children
    again.close()
    workers.retire_idle()
    assert survivor.wait(timeout=30) == 0


def test_a_child_failing_its_start_up_takes_no_job(monkeypatch):
    # A child takes jobs once it has said it started up: one that dies before fails none.
    monkeypatch.setenv("TILEC_TUNE_JOBS", "2")
    workers.retire_idle()
    pool = workers.Pool("test")
    pool.start(2)
    victim, survivor = pool._children
    victim.kill()
    victim.wait()
    out = pool.map(workers.analyse, _broken_jobs(4), "analysing")
    assert [o.error.split(":")[0] for o in out] == ["IRError"] * 4
    pool.close()
    assert victim not in workers._IDLE.get(workers._environment_key(), [])
    workers.retire_idle()
    assert survivor.wait(timeout=30) == 0


def test_this_process_takes_jobs_while_the_children_start_up(monkeypatch):
    # With `here`, this process starts on the jobs at once; the children join once started
    # up (here they never do: their start-up is held back), and nothing is left undone.
    monkeypatch.setenv("TILEC_TUNE_JOBS", "2")
    workers.retire_idle()
    pool = workers.Pool("test")
    pool.start(2)
    release = threading.Event()
    monkeypatch.setattr(workers, "_started", lambda child: release.wait(30) and False)
    done_here = []

    def here(job):
        done_here.append(job.index)
        if len(done_here) == 5:
            release.set()
        return workers.Outcome(job.index, "here")
    out = pool.map(workers.analyse, _broken_jobs(5), "analysing", here=here)
    assert [(o.index, o.value) for o in out] == [(i, "here") for i in range(5)]
    assert done_here == [0, 1, 2, 3, 4]
    pool.close()
    workers.retire_idle()


def test_every_job_has_an_outcome_when_every_child_fails(monkeypatch):
    monkeypatch.setenv("TILEC_TUNE_JOBS", "2")
    workers.retire_idle()
    pool = workers.Pool("test")
    pool.start(2)
    for child in pool._children:
        child.kill()
        child.wait()
    out = pool.map(workers.analyse, _broken_jobs(5), "analysing")
    assert [o.index for o in out] == [0, 1, 2, 3, 4]
    assert all(o.value is None and o.error.startswith("worker process failed") for o in out)
    pool.close()
    assert workers._IDLE.get(workers._environment_key(), []) == []


@pytest.mark.skipif(ptxas_path() is None, reason="needs ptxas (the nvidia-cuda-nvcc wheel)")
def test_search_compiles_what_a_launch_will_look_up(monkeypatch, tmp_path):
    # The whole search up to the timing (which needs a GPU): analysis with one frontend build
    # per tile shape, the budget, compilation in the workers, then the refinement's
    # compilation in the same workers; every candidate handed to the timing has its cubin in
    # the compile cache under the key a fresh launch computes.
    from tilec.lib.gemm import _tuned_grid, tuned_gemm
    from tilec.runtime import cache
    from tune_support import FLAGS, fake_timing, gemm_values
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TILEC_TUNE_JOBS", "2")
    sessions = fake_timing(monkeypatch, lambda cfg: cfg.num_warps + cfg.num_stages / 10)
    space = [tc.Config(BM=64, BN=64, BK=32, num_warps=w, num_stages=s)
             for w in (4, 8) for s in (3, 4)] + [tc.Config(BM=256, BN=256, BK=64, num_warps=4,
                                                          num_stages=4)]
    tuner = Autotuner(tuned_gemm.kernel, space, tuned_gemm.key, budget=2)
    values = gemm_values(128, 256, 256)
    args = tuple(values[n] for n in ("A", "B", "C", "Bias", "scale"))
    report = tuner.tune(_tuned_grid(128, 256), args, dict(FLAGS), 0, H100)
    (session,) = sessions
    budgeted, refined = session.rounds
    assert len(budgeted) == len(refined) == 2 and set(budgeted + refined) == set(space[:4])
    assert report.refined == [c.short() for c in refined]
    assert report.winner == space[0] and len(report.timed) == 4
    assert list(report.pruned) == ["BK=64 BM=256 BN=256 w4 s4"]   # too much shared memory
    assert set(report.seconds) >= {"analyse", "compile", "time", "refine", "total"}
    for cfg in budgeted + refined:
        module, specs, options = tuner._build(cfg, values)        # a fresh build, no memo
        key = tuned_gemm.kernel.gpu_cache_key(module, specs, options, "sm_90a")
        assert cache.get(key) is not None, cfg
    workers.retire_idle()


def test_refinement_times_the_best_ones_untimed_neighbours(monkeypatch, tmp_path):
    # The budget (4; the cost model below puts s3 first, and two of a tile shape at most go
    # in before every shape has had its turn) leaves s4 out. The refinement takes the
    # untimed neighbours of the best (one option away before two), then those of the best
    # of the second best tile shape, REFINE_BUDGET at most; the best's s4 sibling, fastest
    # of all, wins.
    from tilec.lib.gemm import _tuned_grid, tuned_gemm
    from tilec.tune import autotuner
    from tilec.tune.show import format_entry
    from tune_support import FLAGS, fake_compiler, fake_timing, gemm_values
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(autotuner, "REFINE_BUDGET", 3)
    fake_compiler(monkeypatch)
    small, large = ([tc.Config(BM=bm, BN=bm, BK=64, num_warps=w, num_stages=s)
                     for w in (4, 8) for s in (3, 4)] for bm in (64, 128))
    ms = {small[0]: 1.0, small[2]: 1.1, large[0]: 1.2, large[2]: 2.0,    # w4 s3, w8 s3
          small[1]: 0.7, small[3]: 0.9, large[1]: 1.1, large[3]: 1.3}   # w4 s4, w8 s4
    sessions = fake_timing(monkeypatch, ms.get)

    class StagesFirst:
        def predict(self, candidates, limits):
            return [c.num_stages + c.profile.threads / 1e4 for c in candidates]
    values = gemm_values(128, 256, 256)
    args = tuple(values[n] for n in ("A", "B", "C", "Bias", "scale"))
    tuner = Autotuner(tuned_gemm.kernel, small + large, tuned_gemm.key, budget=4,
                      cost_model=StagesFirst())
    report = tuner.tune(_tuned_grid(128, 256), args, dict(FLAGS), 0, H100)
    (session,) = sessions
    assert session.rounds == [[small[0], small[2], large[0], large[2]],
                              [small[1], small[3], large[1]]]
    assert report.refined == [c.short() for c in (small[1], small[3], large[1])]
    assert report.winner == small[1] and len(report.timed) == 7
    assert report.pruned == {large[3].short(): "cost model: outside the budget of 4"}
    entry = SimpleNamespace(key=TuningKey(tuner.kernel_id, (128,), "H100"),
                            config=report.winner, report=report.to_json())
    assert ("refined  3 timed beyond the budget: neighbours of the best (other num_warps / "
            "num_stages); the winner is one of them") in format_entry(entry)
    # With no budget every candidate is timed at once: nothing to refine.
    exhaustive = Autotuner(tuned_gemm.kernel, small + large, tuned_gemm.key)
    report = exhaustive.tune(_tuned_grid(128, 256), args, dict(FLAGS), 0, H100)
    assert len(sessions[1].rounds) == 1 and not report.refined
    assert report.winner == small[1] and len(report.timed) == 8


def test_search_compiles_each_launch_kind(monkeypatch, tmp_path):
    # With launch kinds, every timed candidate is compiled once per kind (its constexprs over
    # the call's), under the key the kind's launch looks up; the timing is said in the
    # report.
    from tilec.runtime import cache
    from tune_support import fake_compiler, fake_timing
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path))
    fake_compiler(monkeypatch)
    sessions = fake_timing(monkeypatch, lambda cfg: cfg.kwargs["BLOCK"])
    space = [tc.Config(BLOCK=b) for b in (32, 64)]
    tuner = Autotuner(_scale_by, space, ["X.shape[0]"], back_to_back=True,
                      launch_kinds=[{"TWICE": 1}, {"TWICE": 0}])
    x = np.zeros((256,), np.float32)
    grid = lambda meta: (tc.cdiv(256, meta["BLOCK"]),)  # noqa: E731
    report = tuner.tune(grid, (x, x), {"TWICE": 1}, 0, H100)
    assert report.winner == space[0] and len(sessions[0].rounds[0]) == 2
    assert report.timing == ("back to back, 8 launches an event pair; the mean over launches "
                             "as TWICE=1 and as TWICE=0")
    for cfg in space:
        for twice in (0, 1):
            values = tuner._bind((x, x), {"TWICE": twice}, cfg)
            module, specs, options = tuner._build(cfg, values)
            key = _scale_by.gpu_cache_key(module, specs, options, "sm_90a")
            assert cache.get(key) is not None, (cfg, twice)
    workers.retire_idle()
