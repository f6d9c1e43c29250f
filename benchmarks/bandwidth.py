"""Memory bandwidth of tilec kernels against a device-to-device copy and Triton, in one run.

Rows: vector add (f32, 3 x 128 MiB moved) and fused row softmax (f32 and f16, rows x cols
with cols 1024..8192, 256 MiB in and 256 MiB out for f32). Each row's GB/s counts the fewest
bytes the kernel must move (every input read once, every output written once) over the
median time of 50 runs between CUDA events, after a warm-up; `vs copy` divides it by the
GB/s of `dst.copy_(src)` on 256 MiB (bytes read + written) measured in the same run. Triton's
row is the tutorial kernel (03-... vector add, 02-fused-softmax) with the same block size and
warps. `tilec fast_math` rows are the same softmax compiled with `fast_math=True` (PTX
`ex2.approx`, `div.full.f32`: the accuracy of Triton's `tl.exp` and `/`); plain `tilec` rows
are accurate (exp within 1 ulp, division correctly rounded). Outputs are poisoned and checked
against torch before timing.

What limits each kernel is printed beside it: the PTX's 16-byte vector loads and stores
(`ld.global.v4` / `st.global.v4` in the PTX tilec generates) and ptxas's registers and spills.

Writes benchmarks/results/bandwidth-<date>.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, time_ms, write_result  # noqa: E402

import tilec as tc  # noqa: E402
from tilec.backends.nvidia import compile_kernel  # noqa: E402
from tilec.runtime import cuda as rt_cuda  # noqa: E402

MIB = 1 << 20


@tc.kernel
def vadd(X: tc.Tensor, Y: tc.Tensor, Out: tc.Tensor, BLOCK: tc.constexpr):
    pid = tc.program_id(0)
    a = tc.load(X, (pid,), (BLOCK,))
    b = tc.load(Y, (pid,), (BLOCK,))
    tc.store(Out, (pid,), a + b)


@tc.kernel
def softmax(X: tc.Tensor, Y: tc.Tensor, n_cols: int, BLOCK: tc.constexpr):
    row = tc.program_id(0)
    cols = tc.arange(0, BLOCK)
    mask = cols < n_cols
    x = tc.load(X.ptr + row * X.stride(0) + cols, mask=mask, other=-float("inf"))
    x = tc.cast(x, tc.float32)
    x = x - tc.max(x, axis=0)
    e = tc.exp(x)
    tc.store(Y.ptr + row * Y.stride(0) + cols, e / tc.sum(e, axis=0), mask=mask)


# The same kernel with the target's approximate exp and division (ex2.approx, div.full.f32):
# the accuracy Triton's tl.exp and "/" have by default.
softmax_fast = tc.kernel(fast_math=True)(softmax.fn)


def ptx_ops(ptx: str) -> dict:
    """Counts of the PTX instructions that bound a memory-bound kernel's arithmetic."""
    return {op: ptx.count(op) for op in ("div.rn.f32", "div.full.f32", "rcp.", "ex2.approx",
                                         "fma.rn.f32", "bar.sync", "shfl.sync")}


def triton_kernels():
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return None

    @triton.jit
    def add_kernel(x_ptr, y_ptr, out_ptr, n_elements, BLOCK_SIZE: tl.constexpr):
        pid = tl.program_id(axis=0)
        offsets = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
        mask = offsets < n_elements
        x = tl.load(x_ptr + offsets, mask=mask)
        y = tl.load(y_ptr + offsets, mask=mask)
        tl.store(out_ptr + offsets, x + y, mask=mask)

    @triton.jit
    def softmax_kernel(out_ptr, in_ptr, in_row_stride, out_row_stride, n_cols,
                       BLOCK_SIZE: tl.constexpr):
        row = tl.program_id(0)
        cols = tl.arange(0, BLOCK_SIZE)
        mask = cols < n_cols
        x = tl.load(in_ptr + row * in_row_stride + cols, mask=mask, other=-float("inf"))
        x = x.to(tl.float32)
        x = x - tl.max(x, axis=0)
        num = tl.exp(x)
        y = num / tl.sum(num, axis=0)
        tl.store(out_ptr + row * out_row_stride + cols, y, mask=mask)

    return add_kernel, softmax_kernel, triton.__version__


def ptx_report(kernel, args, consts, arch: str) -> dict:
    """Vector widths and resources of the PTX tilec generates for this launch."""
    try:
        ck = compile_kernel(kernel.ir(*args, **consts), kernel.__name__, arch,
                            consts.get("num_warps"))
    except Exception as e:  # reported in the row, not fatal
        return {"error": f"{type(e).__name__}: {e}"}
    ptx = ck.ptx
    res = ck.resources
    return {"ld_v4": ptx.count("ld.global.v4"), "ld_v2": ptx.count("ld.global.v2"),
            "ld_total": ptx.count("ld.global"), "st_v4": ptx.count("st.global.v4"),
            "st_v2": ptx.count("st.global.v2"), "st_total": ptx.count("st.global"),
            "registers": res.registers if res else None,
            "spill_bytes": (res.spill_stores + res.spill_loads) if res else None,
            "num_warps": ck.num_warps, "ops": ptx_ops(ptx)}


def warps_for(block: int) -> int:
    """The Triton softmax tutorial's choice of warps for a row of `block` columns."""
    return 4 if block < 2048 else 8 if block < 4096 else 16


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    opts = parser.parse_args()
    torch.manual_seed(0)
    arch = rt_cuda.device_properties(torch.cuda.current_device()).arch
    rows_out = []

    def bench(fn) -> float:
        return median(time_ms(fn, warmup=10, repeats=opts.repeats))

    # -- the ceiling: a device-to-device copy of 256 MiB -----------------------------------
    src = torch.randn(64 * MIB, device="cuda")
    dst = torch.empty_like(src)
    copy_ms = bench(lambda: dst.copy_(src))
    copy_gbs = 2 * src.numel() * 4 / copy_ms / 1e6
    rows_out.append({"kernel": "copy", "impl": "torch copy_", "shape": [src.numel()],
                     "dtype": "float32", "bytes": 2 * src.numel() * 4, "ms": copy_ms,
                     "gbs": copy_gbs, "vs_copy": 1.0})
    src = dst = None  # free the copy buffers
    tri = triton_kernels()

    def row(kernel, impl, shape, dtype, nbytes, ms, extra=None):
        gbs = nbytes / ms / 1e6
        r = {"kernel": kernel, "impl": impl, "shape": list(shape), "dtype": dtype,
             "bytes": nbytes, "ms": ms, "gbs": gbs, "vs_copy": gbs / copy_gbs}
        r.update(extra or {})
        rows_out.append(r)

    # -- vector add --------------------------------------------------------------------------
    n = 32 * MIB  # 128 MiB per f32 vector; 384 MiB moved
    x, y = torch.randn(n, device="cuda") + 0.5, torch.randn(n, device="cuda")
    ref = x + y
    for block, warps in ((1024, 4), (2048, 4), (4096, 8)):
        out = torch.full_like(x, float("nan"))
        grid = (tc.cdiv(n, block),)
        fn = lambda out=out, grid=grid, block=block, warps=warps: vadd[grid](  # noqa: E731
            x, y, out, BLOCK=block, num_warps=warps)
        fn()
        torch.cuda.synchronize()
        ok = bool(torch.equal(out, ref))
        info = ptx_report(vadd, (x, y, out), {"BLOCK": block, "num_warps": warps}, arch)
        row("vector_add", f"tilec BLOCK={block} w={warps}", (n,), "float32", 3 * n * 4,
            bench(fn), {"correct": ok, "ptx": info})
    if tri:
        add_kernel = tri[0]
        out = torch.full_like(x, float("nan"))
        fn = lambda: add_kernel[(tc.cdiv(n, 1024),)](x, y, out, n, BLOCK_SIZE=1024)  # noqa
        fn()
        torch.cuda.synchronize()
        row("vector_add", "triton BLOCK=1024 w=4", (n,), "float32", 3 * n * 4, bench(fn),
            {"correct": bool(torch.equal(out, ref))})
    x = y = ref = out = None

    # -- fused row softmax ------------------------------------------------------------------
    for dtype in (torch.float32, torch.float16):
        esize = torch.finfo(dtype).bits // 8
        for cols in (1024, 2048, 4096, 8192):
            rows = (256 * MIB // esize) // cols  # 256 MiB in, 256 MiB out
            xs = torch.randn(rows, cols, device="cuda", dtype=dtype) * 3
            ref = torch.softmax(xs.float(), dim=1)
            nbytes = 2 * rows * cols * esize
            block, warps = cols, warps_for(cols)
            name = str(dtype).removeprefix("torch.")
            ys = torch.full_like(xs, float("nan"))
            fn = lambda xs=xs, ys=ys, cols=cols, block=block, warps=warps: softmax[  # noqa
                (xs.shape[0],)](xs, ys, cols, BLOCK=block, num_warps=warps)
            try:
                fn()
                torch.cuda.synchronize()
                err = float((ys.float() - ref).abs().max() / ref.abs().max())
                ok = bool(not ys.isnan().any()) and err < (1e-5 if esize == 4 else 1e-2)
                info = ptx_report(softmax, (xs, ys, cols), {"BLOCK": block, "num_warps": warps},
                                  arch)
                row("softmax", f"tilec w={warps}", (rows, cols), name, nbytes, bench(fn),
                    {"correct": ok, "max_rel_err": err, "ptx": info})
            except Exception as e:  # a failing row is reported, the others still run
                row("softmax", f"tilec w={warps}", (rows, cols), name, nbytes, float("nan"),
                    {"correct": False, "error": f"{type(e).__name__}: {e}"[:2000]})
            yf = torch.full_like(xs, float("nan"))
            fn = lambda xs=xs, yf=yf, cols=cols, block=block, warps=warps: softmax_fast[  # noqa
                (xs.shape[0],)](xs, yf, cols, BLOCK=block, num_warps=warps)
            try:
                fn()
                torch.cuda.synchronize()
                err = float((yf.float() - ref).abs().max() / ref.abs().max())
                info = ptx_report(softmax_fast, (xs, yf, cols),
                                  {"BLOCK": block, "num_warps": warps}, arch)
                row("softmax", f"tilec fast_math w={warps}", (rows, cols), name, nbytes,
                    bench(fn), {"correct": err < (1e-5 if esize == 4 else 1e-2),
                                "max_rel_err": err, "ptx": info})
            except Exception as e:  # a failing row is reported, the others still run
                row("softmax", f"tilec fast_math w={warps}", (rows, cols), name, nbytes,
                    float("nan"), {"correct": False, "error": f"{type(e).__name__}: {e}"})
            yf = None
            if tri:
                softmax_kernel = tri[1]
                yt = torch.full_like(xs, float("nan"))
                fn = lambda xs=xs, yt=yt, cols=cols, block=block, warps=warps: softmax_kernel[  # noqa
                    (xs.shape[0],)](yt, xs, xs.stride(0), yt.stride(0), cols, BLOCK_SIZE=block,
                                    num_warps=warps)
                fn()
                torch.cuda.synchronize()
                err = float((yt.float() - ref).abs().max() / ref.abs().max())
                row("softmax", f"triton w={warps}", (rows, cols), name, nbytes, bench(fn),
                    {"correct": err < (1e-5 if esize == 4 else 1e-2), "max_rel_err": err})
            xs = ys = ref = None
            torch.cuda.empty_cache()

    path = write_result("bandwidth", {"copy_gbs": copy_gbs, "repeats": opts.repeats,
                                      "rows": rows_out})
    print(f"\nbandwidth on {torch.cuda.get_device_name()} (median of {opts.repeats}; copy "
          f"{copy_gbs:.0f} GB/s = 1.00)")
    print(f"{'kernel':<11} {'impl':<24} {'dtype':<8} {'shape':<14} {'ms':>8} {'GB/s':>7} "
          f"{'vs copy':>7} {'ok':>3}  ptx (ld.v4/ld, st.v4/st, regs, spill)")
    for r in rows_out:
        p = r.get("ptx") or {}
        pt = (f"{p.get('ld_v4')}/{p.get('ld_total')}, {p.get('st_v4')}/{p.get('st_total')}, "
              f"{p.get('registers')}, {p.get('spill_bytes')}") if p and "error" not in p else \
            (p.get("error", "")[:60] if p else "")
        shape = "x".join(str(s) for s in r["shape"])
        print(f"{r['kernel']:<11} {r['impl']:<24} {r['dtype']:<8} {shape:<14} {r['ms']:>8.3f} "
              f"{r['gbs']:>7.0f} {r['vs_copy']:>7.2f} {str(r.get('correct', '')):>3.3}  {pt}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
