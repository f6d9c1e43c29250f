"""The resource model (what a configuration needs, read off its laid-out IR) and the cost
model's order, on the GEMM library's kernel for sm_90a."""
from __future__ import annotations

import dataclasses

import pytest

import tilec as tc
from tilec.backends.nvidia.compiler import compile_kernel
from tilec.lib.gemm import tuned_gemm
from tilec.tune.autotuner import Report
from tilec.tune.cost import Candidate, RooflineModel
from tilec.tune.resources import DeviceLimits, check
from tilec.tune import workers

from tune_support import H100, _tuned_grid, gemm_profile, gemm_values


@pytest.fixture
def serial(monkeypatch):
    monkeypatch.setenv("TILEC_TUNE_JOBS", "1")


def test_shared_memory_is_what_the_backend_allocates():
    cfg = tc.Config(BM=128, BN=128, BK=32, num_warps=4, num_stages=4)
    p = gemm_profile(cfg)
    # 4 stages of a 128x32 and a 32x128 f16 tile
    assert p.shared_bytes == 4 * (128 * 32 + 32 * 128) * 2
    values = gemm_values(4096, 4096, 4096)
    module, _, _ = tuned_gemm._build(cfg, values)
    assert compile_kernel(module, "gemm_kernel", "sm_90a", 4).shared_bytes == p.shared_bytes


def test_work_is_counted_with_the_loop_trips():
    p = gemm_profile(tc.Config(BM=128, BN=64, BK=32, num_warps=4, num_stages=3),
                     m=512, n=512, k=1000)
    trips = -(-1000 // 32)
    assert p.loop_trips == trips
    assert p.flops == 2 * 128 * 64 * 32 * trips
    assert p.dot_bits == 16
    # A and B tiles per trip and the pipeline's prologue (num_stages - 1 trips ahead), the
    # f16 C tile once
    assert p.global_bytes == (trips + 2) * (128 * 32 + 32 * 64) * 2 + 128 * 64 * 2


def test_resource_model_prunes_what_cannot_fit():
    big_acc = gemm_profile(tc.Config(BM=256, BN=256, BK=32, num_warps=4, num_stages=3))
    assert check(big_acc, H100).startswith("registers: ~")  # 512 f32 accumulators a thread
    big_smem = gemm_profile(tc.Config(BM=256, BN=256, BK=64, num_warps=8, num_stages=4))
    assert big_smem.shared_bytes == 4 * (256 * 64 * 2) * 2
    assert check(big_smem, H100) == "shared memory: 256 KiB > 227 KiB per block"
    fits = gemm_profile(tc.Config(BM=128, BN=256, BK=64, num_warps=8, num_stages=3))
    assert check(fits, H100) is None
    # the same configuration does not fit an A100's 163 KiB
    a100 = DeviceLimits.for_arch("sm_80")
    assert check(gemm_profile(tc.Config(BM=128, BN=256, BK=64, num_warps=8, num_stages=4)),
                 a100).startswith("shared memory: 192 KiB > 163 KiB")
    too_many = dataclasses.replace(fits, threads=2048)
    assert check(too_many, H100) == "threads: 2048 > 1024 per block"
    # check_registers=False (tc.autotune): the estimate prunes nothing, the rest still does
    assert check(big_acc, H100, registers=False) is None
    assert check(big_smem, H100, registers=False).startswith("shared memory")


def _rank(configs, m, n, k, serial_pool=True):
    values = gemm_values(m, n, k)
    report = Report("test", configs[0])
    pool = workers.Pool("test")
    try:
        ranked, predicted = tuned_gemm._analyse(configs, values, _tuned_grid(m, n), H100,
                                                pool, report)
    finally:
        pool.close()
    return [c for c, *_ in ranked], predicted, report


def test_cost_model_orders_large_tiles_first_on_a_large_problem(serial):
    small = tc.Config(BM=64, BN=64, BK=32, num_warps=4, num_stages=3)
    large = tc.Config(BM=128, BN=128, BK=32, num_warps=4, num_stages=4)
    shallow = tc.Config(BM=128, BN=128, BK=32, num_warps=4, num_stages=2)
    order, predicted, _ = _rank([small, shallow, large], 4096, 4096, 4096)
    assert order == [large, shallow, small]
    assert predicted == sorted(predicted)


def test_cost_model_fills_the_machine_on_a_small_problem(serial):
    # A 256x256 output: 128x128 tiles make 4 programs and leave 128 SMs idle; 64x64 tiles
    # make 16, each with a quarter of the tensor-core work.
    small = tc.Config(BM=64, BN=64, BK=64, num_warps=4, num_stages=4)
    large = tc.Config(BM=128, BN=128, BK=64, num_warps=4, num_stages=4)
    order, _, _ = _rank([large, small], 256, 256, 4096)
    assert order == [small, large]


def test_a_learned_model_can_replace_the_roofline(serial):
    class FewestRegisters:
        def predict(self, candidates, limits):
            return [c.profile.registers for c in candidates]
    configs = [tc.Config(BM=128, BN=128, BK=32, num_warps=4, num_stages=3),
               tc.Config(BM=64, BN=64, BK=32, num_warps=4, num_stages=3)]
    tuner = tc.autotune(configs=configs, key=["A.shape[0]"], cost_model=FewestRegisters())(
        tuned_gemm.kernel)
    values = gemm_values(4096, 4096, 4096)
    report = tuner.rank_only(_tuned_grid(4096, 4096), values, H100)
    assert report.method == "cost model"
    assert report.winner == configs[1]


def test_parallel_analysis_matches_serial(monkeypatch):
    configs = [tc.Config(BM=bm, BN=64, BK=32, num_warps=4, num_stages=3) for bm in (64, 128)]
    configs.append(tc.Config(BM=256, BN=256, BK=32, num_warps=4, num_stages=3))
    monkeypatch.setenv("TILEC_TUNE_JOBS", "2")
    par = _rank(configs, 1024, 1024, 1024)
    monkeypatch.setenv("TILEC_TUNE_JOBS", "1")
    ser = _rank(configs, 1024, 1024, 1024)
    assert par[0] == ser[0] and par[1] == ser[1]
    assert par[2].pruned == ser[2].pruned == {
        "BK=32 BM=256 BN=256 w4 s3": "resource model: registers: ~800 > 255 per thread"}


def test_roofline_occupancy():
    p = gemm_profile(tc.Config(BM=128, BN=128, BK=32, num_warps=4, num_stages=4))
    # 64 KiB of shared memory allows 3 a SM; registers (~224 x 128 threads) allow 2
    assert RooflineModel.occupancy(p, H100) == 2
    c = Candidate(p, programs=1024, unique_bytes=3 * 4096 * 4096 * 2, num_stages=4)
    assert RooflineModel().time(c, H100) > 0


def test_budget_spreads_over_tile_shapes():
    from tilec.tune.autotuner import _within_budget
    a = [tc.Config(BM=128, num_warps=w, num_stages=s) for w in (4, 8) for s in (3, 4)]
    b = [tc.Config(BM=64, num_warps=4, num_stages=s) for s in (3, 4)]
    ranked = [(c,) for c in a + b]  # the cost model's order: every BM=128 first
    kept, dropped = _within_budget(ranked, 4)
    assert [c for c, in kept] == a[:2] + b
    assert [c for c, in dropped] == a[2:]
    kept, dropped = _within_budget(ranked, 5)  # the rest fills up in order
    assert [c for c, in kept] == a[:3] + b and not _within_budget(ranked, 10)[1]


def test_frontend_runs_once_per_tile_shape_with_each_candidates_options():
    # The search builds the frontend IR once per set of constexpr values; a candidate that
    # differs only in num_warps / num_stages prints exactly as its own build would.
    from tilec.ir.printer import print_module
    from tune_support import gemm_values
    values = gemm_values(128, 11008, 4096)
    first = tc.Config(BM=64, BN=128, BK=32, num_warps=4, num_stages=3)
    others = [tc.Config(BM=64, BN=128, BK=32, num_warps=8, num_stages=4),
              tc.Config(BM=64, BN=128, BK=32, num_warps=4, num_stages=4)]
    memo: dict = {}
    kernel = tuned_gemm.kernel
    before = kernel.compile_count
    texts = [print_module(tuned_gemm._build(c, values, memo)[0], locations=True)
             for c in [first] + others]
    assert kernel.compile_count == before + 1
    fresh = [print_module(tuned_gemm._build(c, values)[0], locations=True)
             for c in [first] + others]
    assert texts == fresh
    assert len(set(texts)) == 3 and "num_stages = 4" in texts[1]
    assert tuned_gemm._build(first, values, memo)[2] == {"num_warps": 4, "num_stages": 3}


def test_one_job_profiles_a_tile_shape_as_each_candidate_alone():
    # A tile shape's candidates are one analysis job: the passes before layouts run once,
    # those before pipelining once per num_warps. Each profile is the one the whole GPU
    # pipeline gives on the candidate's own IR, whether the job is read from text (a worker)
    # or runs on this process's module, which it leaves as it was.
    from tilec.ir.passes.manager import GPU_PIPELINE, PassOptions, run_passes
    from tilec.ir.printer import print_module
    from tilec.tune.autotuner import _facts
    from tilec.tune.resources import profile
    values = gemm_values(128, 11008, 4096)
    facts = _facts(values)
    for tile in (dict(BM=64, BN=64, BK=64), dict(BM=128, BN=256, BK=32)):
        cfgs = [tc.Config(**tile, num_warps=w, num_stages=s) for w in (4, 8) for s in (3, 4)]
        alone = []
        for cfg in cfgs:
            module, _, _ = tuned_gemm._build(cfg, values)
            module = run_passes(module, GPU_PIPELINE, PassOptions("sm_90a", cfg.num_warps))
            alone.append(profile(module.get("gemm_kernel"), cfg.num_warps, facts))
        assert len({(p.threads, p.shared_bytes) for p in alone}) == 4
        module, _, _ = tuned_gemm._build(cfgs[0], values)
        text = print_module(module, locations=True)
        job = workers.Job(0, text, "<gemm>", "gemm_kernel", "sm_90a", 4, facts,
                          tuple((c.num_warps, c.num_stages) for c in cfgs))
        for out in (workers.analyse(job), workers.profiles(module, job)):
            assert out.error is None
            assert [o.value for o in out.value] == alone
        assert print_module(module, locations=True) == text


def test_a_candidate_failing_its_analysis_fails_alone():
    # A variant the layouts reject (no warps) fails; the others of its job are profiled.
    from tilec.ir.printer import print_module
    from tilec.tune.autotuner import _facts
    values = gemm_values(128, 11008, 4096)
    cfg = tc.Config(BM=64, BN=64, BK=64, num_warps=4, num_stages=3)
    module, _, _ = tuned_gemm._build(cfg, values)
    job = workers.Job(0, print_module(module, locations=True), "<gemm>", "gemm_kernel",
                      "sm_90a", 4, _facts(values), ((4, 3), (0, 3), (4, 4)))
    out = workers.analyse(job)
    assert [o.error is None for o in out.value] == [True, False, True]
    assert out.value[1].error == "LayoutError: num_threads must be positive, got 0"
    assert out.value[2].value == gemm_profile(tc.Config(BM=64, BN=64, BK=64, num_stages=4),
                                              128, 11008, 4096)
