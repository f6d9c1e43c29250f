"""Warm launch overhead: tilec's Launcher against the bare driver call and Triton.

For each way of launching a trivial kernel, time N launches with time.perf_counter around
them followed by one synchronize, several times, and report the median time per launch.
The kernels run for ~2 us of GPU time, less than a launch costs, so the numbers are the
host's cost of a launch. Rows:

- `ctypes bare`: cuLaunchKernel through ctypes with everything prepared ahead (a fixed
  kernelParams array, the CUfunction and the stream as c_void_p, no argtypes): the floor.
- `ctypes bare (argtypes)`: the same call declared with argtypes, which converts each
  argument on every call.
- `cuda-python`: cuda.bindings.driver.cuLaunchKernel with the same prepared array.
- `tilec Launcher`: `launcher.launch(grid, [tensors..., scalars...])` with torch tensors, which
  reads the tensors and torch's current stream and packs the parameters on every call: in C
  (`tilec/runtime/_native.c`) where the install built it.
- `tilec Launcher (Python path)`: the same through the generated Python function that the C
  path hands unusual arguments to (and that runs where no C compiler was found).
- `tilec kernel[grid]` (vadd only): the user-facing path, a `@tc.kernel` written in the DSL
  launched as `vadd_dsl[(1,)](x, y, out, n, BLOCK=128)`: the fast-path key over the
  arguments, the cached specialisation, then the Launcher (warm: the second call onward).
- `triton`: an equivalent `@triton.jit` kernel launched as `kernel[grid](...)`.

Two kernels: `trivial` (one f32 tensor; writes x[0]) and `vadd` (three f32 tensors and an
i32: out = x + y over n elements, here n = 128, one block).

Writes benchmarks/results/launch_overhead-<date>.json. Needs an NVIDIA GPU, torch, and
optionally triton.
"""
from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

import tilec as tc
from tilec.backends import abi
from tilec.ir.parser import parse_module
from tilec.runtime import cuda as rt_cuda
from tilec.runtime.launcher import Launcher

RESULTS = Path(__file__).resolve().parent / "results"

TRIVIAL_PTX = r"""
.version 7.8
.target sm_80
.address_size 64

.visible .entry trivial(.param .u64 x_ptr, .param .u32 x_size0, .param .u64 x_stride0)
{
    .reg .b64 %rd<2>;
    ld.param.u64 %rd1, [x_ptr];
    cvta.to.global.u64 %rd1, %rd1;
    st.global.f32 [%rd1], 0f3F800000;
    ret;
}
"""

# out[i] = x[i] + y[i] for i < n; the ABI of (x, y, out: tensor<?xf32>, n: i32).
VADD_PTX = r"""
.version 7.8
.target sm_80
.address_size 64

.visible .entry vadd(
    .param .u64 x_ptr, .param .u32 x_size0, .param .u64 x_stride0,
    .param .u64 y_ptr, .param .u32 y_size0, .param .u64 y_stride0,
    .param .u64 out_ptr, .param .u32 out_size0, .param .u64 out_stride0, .param .u32 n)
{
    .reg .pred %p<2>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<16>;
    .reg .f32 %f<4>;

    mov.u32 %r1, %ctaid.x;
    mov.u32 %r2, %ntid.x;
    mov.u32 %r3, %tid.x;
    mad.lo.s32 %r4, %r1, %r2, %r3;
    ld.param.u32 %r5, [n];
    setp.ge.s32 %p1, %r4, %r5;
    @%p1 bra DONE;
    cvt.s64.s32 %rd1, %r4;
    ld.param.u64 %rd2, [x_ptr];
    ld.param.u64 %rd3, [x_stride0];
    mul.lo.s64 %rd3, %rd1, %rd3;
    shl.b64 %rd3, %rd3, 2;
    add.s64 %rd2, %rd2, %rd3;
    cvta.to.global.u64 %rd2, %rd2;
    ld.global.f32 %f1, [%rd2];
    ld.param.u64 %rd4, [y_ptr];
    ld.param.u64 %rd5, [y_stride0];
    mul.lo.s64 %rd5, %rd1, %rd5;
    shl.b64 %rd5, %rd5, 2;
    add.s64 %rd4, %rd4, %rd5;
    cvta.to.global.u64 %rd4, %rd4;
    ld.global.f32 %f2, [%rd4];
    add.f32 %f3, %f1, %f2;
    ld.param.u64 %rd6, [out_ptr];
    ld.param.u64 %rd7, [out_stride0];
    mul.lo.s64 %rd7, %rd1, %rd7;
    shl.b64 %rd7, %rd7, 2;
    add.s64 %rd6, %rd6, %rd7;
    cvta.to.global.u64 %rd6, %rd6;
    st.global.f32 [%rd6], %f3;
DONE:
    ret;
}
"""

@tc.kernel
def vadd_dsl(x: tc.Tensor, y: tc.Tensor, out: tc.Tensor, n: int, BLOCK: tc.constexpr):
    offs = tc.program_id(0) * BLOCK + tc.arange(0, BLOCK)
    mask = offs < n
    tc.store(out.ptr + offs, tc.load(x.ptr + offs, mask=mask) + tc.load(y.ptr + offs, mask=mask),
             mask=mask)


SIGNATURES = {
    "trivial": "func @trivial(%x: tensor<?xf32>)",
    "vadd": "func @vadd(%x: tensor<?xf32>, %y: tensor<?xf32>, %out: tensor<?xf32>, %n: i32)",
}


@dataclass
class Kernel:
    """The fields of a CompiledKernel the launcher reads, for hand-written PTX."""

    name: str
    arch: str
    num_warps: int
    ptx: str
    cubin: bytes | None
    shared_bytes: int
    params: list
    resources: dict = field(default_factory=dict)


def compiled(name: str, ptx: str) -> Kernel:
    fn = parse_module(SIGNATURES[name] + " {\n  return\n}").functions[0]
    return Kernel(name, "sm_80", 4, ptx, None, 0, abi.kernel_params(fn))


def time_per_launch(launch, n: int, repeats: int, warm: bool = True) -> list[float]:
    """Microseconds per launch, one value per repeat (N launches, then a synchronize)."""
    if warm:
        for _ in range(min(n, 2000)):  # warm up: module load, JIT, allocator, caches
            launch()
    torch.cuda.synchronize()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            launch()
        torch.cuda.synchronize()
        out.append((time.perf_counter() - start) / n * 1e6)
    return out


def bare_launchers(launcher: Launcher, args: list) -> dict[str, object]:
    """The driver call with the launcher's own kernel and a parameter array packed once."""
    launcher.load()
    # The Python path's parameter buffer, filled once (the C path keeps its own slots).
    launcher.python_launch(1, args)
    drv = rt_cuda.driver()
    function = ctypes.c_void_p(launcher.loaded.handle)
    params = ctypes.c_void_p(ctypes.addressof(launcher._slots))
    params_int = ctypes.addressof(launcher._slots)
    block = launcher.block
    unchecked, checked = drv.cuLaunchKernel_unchecked, drv.cuLaunchKernel
    out = {
        "ctypes bare": lambda: unchecked(function, 1, 1, 1, block, 1, 1, 0, None, params, None),
        "ctypes bare (argtypes)": lambda: checked(function, 1, 1, 1, block, 1, 1, 0, 0,
                                                  params_int, None),
    }
    api = drv.api
    cu_function, stream = launcher.loaded.function, api.CUstream(0)

    def cuda_python():
        api.cuLaunchKernel(cu_function, 1, 1, 1, block, 1, 1, 0, stream, params_int, 0)

    try:
        err, = api.cuLaunchKernel(cu_function, 1, 1, 1, block, 1, 1, 0, stream, params_int, 0)
        if int(err) == 0:
            out["cuda-python"] = cuda_python
    except Exception as e:  # reported, not fatal: the row is informational
        print(f"cuda-python launch skipped: {e}", file=sys.stderr)
    return out


def triton_launchers(x, y, out, n) -> tuple[dict[str, object], str | None]:
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return {}, None

    @triton.jit
    def trivial(x_ptr):
        tl.store(x_ptr, 1.0)

    @triton.jit
    def vadd(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask) + tl.load(y_ptr + offs,
                                                                            mask=mask), mask=mask)

    return {
        "trivial": lambda: trivial[(1,)](x, num_warps=4),
        "vadd": lambda: vadd[(1,)](x, y, out, n, BLOCK=128, num_warps=4),
    }, triton.__version__


def profile_user_path(x, y, out, n: int, launches: int = 20000) -> list[dict]:
    """Where the warm `kernel[grid](...)` call spends its host time: cProfile over many
    launches, the functions with the most own time (us per launch)."""
    import cProfile
    import pstats
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(launches):
        vadd_dsl[(1,)](x, y, out, n, BLOCK=128)
    prof.disable()
    torch.cuda.synchronize()
    stats = pstats.Stats(prof).stats
    rows = [{"function": f"{Path(f).name}:{line}:{name}", "calls_per_launch": nc / launches,
             "own_us_per_launch": tt / launches * 1e6, "cum_us_per_launch": ct / launches * 1e6}
            for (f, line, name), (cc, nc, tt, ct, _) in stats.items()]
    rows.sort(key=lambda r: -r["own_us_per_launch"])
    print("\nkernel[grid] host time by function (cProfile, which inflates every call):")
    for r in rows[:14]:
        print(f"  {r['own_us_per_launch']:6.2f} us own {r['cum_us_per_launch']:6.2f} cum "
              f"{r['calls_per_launch']:4.1f}x  {r['function']}")
    return rows[:30]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": torch.__version__,
           "torch_cuda": str(torch.version.cuda)}
    try:
        import cuda.bindings
        out["cuda-bindings"] = cuda.bindings.__version__
    except (ImportError, AttributeError):
        out["cuda-bindings"] = "unknown"
    api = rt_cuda.driver().api
    err, version = api.cuDriverGetVersion()
    out["cuda_driver_api"] = str(version)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="launches per repeat")
    parser.add_argument("--repeats", type=int, default=15)
    opts = parser.parse_args()

    props = rt_cuda.device_properties(torch.cuda.current_device())
    n_elements = 128
    x = torch.randn(n_elements, device="cuda")
    y = torch.randn(n_elements, device="cuda")
    out = torch.full((n_elements,), float("nan"), device="cuda")

    rows = []
    triton_fns, triton_version = triton_launchers(x, y, out, n_elements)
    for name, ptx, args in (("trivial", TRIVIAL_PTX, [x]),
                            ("vadd", VADD_PTX, [x, y, out, n_elements])):
        launcher = Launcher(compiled(name, ptx))
        methods = bare_launchers(launcher, args)
        # After bare_launchers' first launch, `launcher.launch` is the warm function.
        methods["tilec Launcher"] = lambda launch=launcher.launch, a=args: launch((1,), a)
        methods["tilec Launcher (Python path)"] = \
            lambda launch=launcher.python_launch, a=args: launch((1,), a)
        if name == "vadd":
            vadd_dsl[(1,)](x, y, out, n_elements, BLOCK=128)  # compile: not timed
            torch.cuda.synchronize()
            torch.testing.assert_close(out, x + y)
            out.fill_(float("nan"))
            methods["tilec kernel[grid]"] = lambda: vadd_dsl[(1,)](x, y, out, n_elements,
                                                                   BLOCK=128)
        if name in triton_fns:
            methods["triton"] = triton_fns[name]
        # Methods take turns within each repeat, so the VM's drift spreads over all of them.
        samples = {method: [] for method in methods}
        for fn in methods.values():
            time_per_launch(fn, min(opts.n, 2000), 1)  # warm up
        for _ in range(opts.repeats):
            for method, fn in methods.items():
                samples[method] += time_per_launch(fn, opts.n, 1, warm=False)
        for method, s in samples.items():
            rows.append({"kernel": name, "method": method,
                         "us_per_launch": statistics.median(s), "samples_us": s})
        if name == "vadd":  # the launches above must have computed something real
            torch.cuda.synchronize()
            torch.testing.assert_close(out, x + y)

    profile = profile_user_path(x, y, out, n_elements)

    floor = {r["kernel"]: r["us_per_launch"] for r in rows if r["method"] == "ctypes bare"}
    for r in rows:
        r["vs_ctypes_bare"] = r["us_per_launch"] / floor[r["kernel"]]

    today = datetime.date.today().isoformat()
    result = {
        "benchmark": "launch_overhead",
        "date": today,
        "device": props.name,
        "arch": props.arch,
        "host": platform.node(),
        "versions": {**versions(), "triton": triton_version or "not installed"},
        "launches_per_repeat": opts.n,
        "repeats": opts.repeats,
        "rows": rows,
        "user_path_profile": profile,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"launch_overhead-{today}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")

    print(f"\nwarm launch overhead on {props.name} ({opts.n} launches x {opts.repeats}, "
          "median us per launch)")
    print(f"{'kernel':<9} {'method':<30} {'us/launch':>10} {'vs bare':>8}")
    for r in rows:
        print(f"{r['kernel']:<9} {r['method']:<30} {r['us_per_launch']:>10.2f} "
              f"{r['vs_ctypes_bare']:>7.2f}x")
    for kernel in ("vadd",):
        by = {r["method"]: r["us_per_launch"] for r in rows if r["kernel"] == kernel}
        if "tilec kernel[grid]" in by:
            user = by["tilec kernel[grid]"]
            verdict = "<= 8 us" if user <= 8 else "> 8 us (target missed)"
            if "triton" in by:
                verdict += ", below triton" if user < by["triton"] else ", NOT below triton"
            print(f"{kernel}: tilec kernel[grid] {user:.2f} us: {verdict}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
