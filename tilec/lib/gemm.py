"""GEMM with a fused epilogue: ``C = act(scale * (A @ B) + bias)``, cast to the output dtype.

One `@tc.kernel` template (`gemm_kernel`) serves every dtype and epilogue: the epilogue
(scale, bias, activation), the accumulator dtype and the program ordering are constexpr
switches, folded at compile time, so each combination compiles to a kernel with nothing of
the others in it. `gemm(a, b, ...)` checks its arguments (every mistake is a `LaunchError`
naming the argument, raised before anything is launched), picks a tile configuration for
the shape and launches one program per output tile.

Inputs and accumulation:

=================  ===========  ===================================================
A and B            accumulator  default output
=================  ===========  ===================================================
f16, bf16          f32          A's dtype
f32                f32          f32 (exact: one rounded FMA per product, no tf32)
int8               int32        int32
fp8 e4m3 / e5m2    f32          A's dtype (sm_89 or newer on the GPU)
=================  ===========  ===================================================

A and B may have any strides (a transposed torch or numpy view works as it is: the
kernel's tensor views read through the strides), and so may `out`.

The epilogue runs in f32 (for int8: exactly in int32 when it has no scale, an integer
bias or none, and no activation other than relu). A float result stored to an integer
output is rounded to the nearest integer (halves up); one outside the output's range is
undefined.

On the GPU the autotuner (`tuned_gemm`, tilec.tune) chooses the tile configuration per
shape, dtypes and device, and remembers it; small problems and the interpreter take it from
a table by shape bucket (`pick_config`).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

import tilec as tc
from tilec.errors import LaunchError
from tilec.ir import dtypes as dt
from tilec.lib import _host
from tilec.lib.schedule import swizzle2d

__all__ = ["ACTIVATIONS", "GemmConfig", "gemm", "gemm_kernel", "pick_config", "tuned_gemm"]

ACTIVATIONS = (None, "relu", "gelu", "gelu_tanh", "silu")

@tc.kernel
def gemm_kernel(A: tc.Tensor, B: tc.Tensor, C: tc.Tensor, Bias: tc.Tensor, scale: float,
                BM: tc.constexpr, BN: tc.constexpr, BK: tc.constexpr, GROUP_M: tc.constexpr,
                ACC: tc.constexpr, EPI_F32: tc.constexpr, HAS_SCALE: tc.constexpr,
                HAS_BIAS: tc.constexpr, ACT: tc.constexpr, ROUND: tc.constexpr):
    grid_m = tc.cdiv(A.shape[0], BM)
    grid_n = tc.cdiv(B.shape[1], BN)
    if GROUP_M > 1:
        # Grouped ordering: GROUP_M rows of tiles at a time, for L2 reuse.
        pm, pn = swizzle2d(tc.program_id(0), grid_m, grid_n, GROUP_M)
    else:
        pm = tc.program_id(0) // grid_n
        pn = tc.program_id(0) % grid_n
    acc = tc.zeros((BM, BN), ACC)
    for k in range(tc.cdiv(A.shape[1], BK)):
        a = tc.load(A, (pm, k), (BM, BK))  # out of bounds reads 0
        b = tc.load(B, (k, pn), (BK, BN))
        acc = tc.dot(a, b, acc)
    y = acc
    if EPI_F32:
        y = acc.to(tc.float32)
    if HAS_SCALE:
        y = y * scale
    if HAS_BIAS:
        bias = tc.load(Bias, (pn,), (BN,))
        if EPI_F32:
            bias = bias.to(tc.float32)
        else:
            bias = bias.to(ACC)
        y = y + tc.expand_dims(bias, 0)
    if ACT == "relu":
        y = tc.maximum(y, 0)
    elif ACT == "gelu":
        y = 0.5 * y * (1.0 + tc.erf(y * 0.7071067811865476))  # 1/sqrt(2)
    elif ACT == "gelu_tanh":
        # sqrt(2/pi) * (y + 0.044715 y^3)
        y = 0.5 * y * (1.0 + tc.tanh(0.7978845608028654 * (y + 0.044715 * y * y * y)))
    elif ACT == "silu":
        y = y / (1.0 + tc.exp(-y))
    if ROUND:
        y = tc.floor(y + 0.5)
    tc.store(C, (pm, pn), y.to(C.dtype))  # out of bounds writes are dropped


class GemmConfig(NamedTuple):
    BM: int
    BN: int
    BK: int
    num_warps: int
    num_stages: int
    group_m: int = 8


# Shape buckets -> tile configuration, where the autotuner does not choose.
_DECODE = GemmConfig(64, 64, 32, 4, 4)      # M <= 16: few rows, many programs along N
_LARGE = GemmConfig(128, 128, 32, 4, 4)
_HUGE_N = GemmConfig(128, 256, 64, 8, 3)    # very large N (and enough M to fill the tiles)


def pick_config(m: int, n: int, k: int, itemsize: int = 2) -> GemmConfig:
    """The tile configuration for an MxK @ KxN problem of `itemsize`-byte inputs, from a
    fixed table by shape bucket: for problems too small to tune and on the interpreter
    (`tuned_gemm`, the autotuner, chooses for the others on the GPU)."""
    if m <= 16:
        cfg = _DECODE
    elif n >= 8192 and m >= 256:
        cfg = _HUGE_N
    else:
        cfg = _LARGE
    if itemsize >= 4:  # f32: keep the staged shared-memory footprint the same in bytes
        cfg = cfg._replace(BK=cfg.BK // 2)
    return cfg


# The autotuner's search space (tilec.tune): on the GPU, `gemm` tunes problems of at least
# TUNE_MIN_FLOPS per shape and dtypes (once per device: the winner is stored); smaller ones,
# where a launch costs about as much as the work, and the interpreter use `pick_config`.
TUNING_SPACE = {"BM": [64, 128, 256], "BN": [64, 128, 256], "BK": [32, 64],
                "num_warps": [4, 8], "num_stages": [3, 4]}
TUNING_BUDGET = 16
TUNE_MIN_FLOPS = 1 << 30


def _tuned_grid(m: int, n: int) -> Any:
    return lambda meta: (tc.cdiv(m, meta["BM"]) * tc.cdiv(n, meta["BN"]),)


def _tuning_example(M: int, N: int, K: int, dtype: str = "float16") -> tuple:
    """Arguments of `tuned_gemm` for an MxK @ KxN problem (`tilec tune --shapes M=..,N=..`)."""
    import torch
    a = torch.randn(M, K, device="cuda").to(getattr(torch, dtype))
    b = torch.randn(K, N, device="cuda").to(getattr(torch, dtype))
    c = torch.empty(M, N, device="cuda", dtype=a.dtype)
    acc = dt.int32 if a.dtype == torch.int8 else _F32
    return _tuned_grid(M, N), (a, b, c, a, 1.0), dict(
        GROUP_M=8, ACC=acc, EPI_F32=False, HAS_SCALE=False, HAS_BIAS=False, ACT="none",
        ROUND=False)


tuned_gemm = tc.autotune(space=TUNING_SPACE, key=["A.shape[0]", "B.shape[1]", "A.shape[1]"],
                         budget=TUNING_BUDGET, example=_tuning_example)(gemm_kernel)


# ---------------------------------------------------------------------------------------
# host side

_F32 = dt.float32
_IN_DTYPES = {"f16": dt.float16, "bf16": dt.bfloat16, "f32": dt.float32, "i8": dt.int8,
              "e4m3": dt.float8_e4m3, "e5m2": dt.float8_e5m2}
_OUT_DTYPES = (dt.float16, dt.bfloat16, dt.float32, dt.float8_e4m3, dt.float8_e5m2,
               dt.int32, dt.int8)
_FP8 = (dt.float8_e4m3, dt.float8_e5m2)
def _names(ds) -> str:
    return ", ".join(str(d) for d in ds)


_torch, _is_torch, _device = _host.torch, _host.is_torch, _host.device


def _info(x: Any, name: str) -> tuple[dt.DType, tuple[int, ...]]:
    return _host.info(x, name, "gemm")


def _as_dtype(d: Any, name: str) -> dt.DType:
    if isinstance(d, dt.DType):
        return d
    torch = _torch()
    if torch is not None and isinstance(d, torch.dtype):
        tname = str(d).removeprefix("torch.")
        d = _host._TORCH_NAMES.get(tname, tname)
    elif not isinstance(d, str):
        try:
            return dt.dtype_from_numpy(d)
        except (TypeError, tc.TilecError):
            raise LaunchError(f"gemm: '{name}' must be a dtype, got {d!r}") from None
    try:
        return dt.dtype(d)
    except tc.TilecError:
        raise LaunchError(f"gemm: '{name}' must be a dtype, got {d!r}") from None


_TORCH_OF = {dt.float8_e4m3: "float8_e4m3fn", dt.float8_e5m2: "float8_e5m2",
             dt.float16: "float16", dt.bfloat16: "bfloat16", dt.float32: "float32",
             dt.int32: "int32", dt.int8: "int8"}


def _empty(like: Any, shape: tuple[int, int], d: dt.DType) -> Any:
    """An uninitialised (M, N) tensor of dtype `d` beside `like` (numpy or torch)."""
    name = _TORCH_OF[d]
    if _is_torch(like):
        torch = _torch()
        return torch.empty(shape, dtype=getattr(torch, name), device=_device(like))
    if name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        import ml_dtypes
        return np.empty(shape, dtype=getattr(ml_dtypes, name))
    return np.empty(shape, dtype=name)


@_host.located
def gemm(a: Any, b: Any, out_dtype: Any = None, *, bias: Any = None, activation: str | None = None,
         scale: float | None = None, out: Any = None, config: GemmConfig | None = None) -> Any:
    """``act(scale * (a @ b) + bias)`` cast to `out_dtype`, written to `out` (allocated
    when not given) and returned.

    a: MxK, b: KxN, both f16, both bf16, both f32, both int8 or both fp8 (e4m3 / e5m2; sm_89
    or newer on the GPU; also as 8-bit `tc.PackedTensor`s), with any strides. numpy arrays
    run on the CPU interpreter, torch CUDA tensors on the GPU. out_dtype defaults to a's dtype (int32 for int8 inputs); it, or
    `out`'s dtype, may be f16, bf16, f32, fp8, or for int8 inputs also int32 / int8.
    bias: a length-N vector (any float dtype, or an int dtype for int8 inputs), added to
    every row. activation: None, "relu", "gelu" (erf form), "gelu_tanh" or "silu".
    scale: a Python number multiplying a @ b. `config` overrides the tile configuration
    (else the autotuner chooses on the GPU, `pick_config` for small problems)."""
    da, sa = _info(a, "a")
    db, sb = _info(b, "b")
    if len(sa) != 2:
        raise LaunchError(f"gemm: argument 'a' must be 2-D (MxK), got shape {sa}")
    if len(sb) != 2:
        raise LaunchError(f"gemm: argument 'b' must be 2-D (KxN), got shape {sb}")
    (m, k), (k2, n) = sa, sb
    if k != k2:
        raise LaunchError(f"gemm: inner dimensions do not match: 'a' is {m}x{k} but 'b' is "
                          f"{k2}x{n}", hint="a is MxK and b is KxN")
    if da not in _IN_DTYPES.values():
        raise LaunchError(f"gemm: argument 'a' has unsupported dtype {da}",
                          hint=f"supported: {_names(_IN_DTYPES.values())}")
    if db != da:
        raise LaunchError(f"gemm: arguments 'a' and 'b' must have the same dtype, got {da} "
                          f"and {db}", hint="cast one of them first")
    if _is_torch(a) != _is_torch(b) or _device(a) != _device(b):
        raise LaunchError("gemm: arguments 'a' and 'b' must live on the same device")
    on_gpu = _is_torch(a) and _device(a).type == "cuda" and tc.gpu_available()
    if da in _FP8 and on_gpu:
        cap = _torch().cuda.get_device_capability(_device(a))
        if tuple(cap) < (8, 9):
            raise LaunchError(f"gemm: argument 'a' is {da}, which needs sm_89 or newer; this "
                              f"GPU is sm_{cap[0]}{cap[1]}")
    is_int = da.is_int
    acc = dt.int32 if is_int else _F32

    # output dtype
    if out is not None:
        do, so = _info(out, "out")
        if so != (m, n):
            raise LaunchError(f"gemm: argument 'out' must have shape ({m}, {n}), got {so}")
        if _is_torch(out) != _is_torch(a) or _device(out) != _device(a):
            raise LaunchError("gemm: argument 'out' must live on the same device as 'a'")
        if out_dtype is not None and _as_dtype(out_dtype, "out_dtype") != do:
            raise LaunchError(f"gemm: argument 'out' is {do} but out_dtype is "
                              f"{_as_dtype(out_dtype, 'out_dtype')}")
        od, what = do, "out"
    else:
        od = _as_dtype(out_dtype, "out_dtype") if out_dtype is not None else (
            dt.int32 if is_int else da)
        what = "out_dtype"
    if od not in _OUT_DTYPES or (od.is_int and not is_int):
        allowed = [d for d in _OUT_DTYPES if is_int or not d.is_int]
        raise LaunchError(f"gemm: unsupported '{what}' dtype {od} for {da} inputs",
                          hint=f"supported: {_names(allowed)}")

    # epilogue
    if activation not in ACTIVATIONS:
        raise LaunchError(f"gemm: unknown activation {activation!r}",
                          hint="one of None, 'relu', 'gelu', 'gelu_tanh', 'silu'")
    if scale is not None and (isinstance(scale, bool) or
                              not isinstance(scale, (int, float, np.integer, np.floating))):
        raise LaunchError(f"gemm: argument 'scale' must be a Python number, got "
                          f"{type(scale).__name__}")
    if scale is not None and not math.isfinite(float(scale)):
        raise LaunchError(f"gemm: argument 'scale' must be finite, got {scale}")
    bias_int = False
    if bias is not None:
        dbias, sbias = _info(bias, "bias")
        if sbias != (n,):
            raise LaunchError(f"gemm: argument 'bias' must be a vector of length N = {n}, "
                              f"got shape {sbias}")
        if not (dbias.is_float or (is_int and dbias.is_int)) or dbias.is_bool:
            raise LaunchError(f"gemm: argument 'bias' has unsupported dtype {dbias}",
                              hint="a float vector (or an int one for int8 inputs)")
        if _is_torch(bias) != _is_torch(a) or _device(bias) != _device(a):
            raise LaunchError("gemm: argument 'bias' must live on the same device as 'a'")
        bias_int = dbias.is_int
    epi_f32 = is_int and (scale is not None or activation not in (None, "relu") or
                          (bias is not None and not bias_int) or od.is_float)
    rnd = epi_f32 and od.is_int

    if out is None:
        out = _empty(a, (m, n), od)
    if m == 0 or n == 0:
        return out
    args = (a, b, out, bias if bias is not None else a,
            float(scale) if scale is not None else 1.0)
    flags = dict(ACC=acc, EPI_F32=epi_f32, HAS_SCALE=scale is not None,
                 HAS_BIAS=bias is not None, ACT=activation or "none", ROUND=rnd)
    if config is None and on_gpu and 2 * m * n * k >= TUNE_MIN_FLOPS:
        tuned_gemm[_tuned_grid(m, n)](*args, GROUP_M=8, **flags)
        return out
    cfg = config or pick_config(m, n, k, da.bits // 8)
    grid = (tc.cdiv(m, cfg.BM) * tc.cdiv(n, cfg.BN),)
    gemm_kernel[grid](*args, BM=cfg.BM, BN=cfg.BN, BK=cfg.BK, GROUP_M=cfg.group_m, **flags,
                      num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    return out
