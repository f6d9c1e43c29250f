"""Host-side helpers of the tilec.lib libraries: argument facts for numpy arrays, torch
tensors and PackedTensors alike, located `LaunchError`s naming the argument, and the
copy-free 2-D views through which the attention kernels read [B, H, S, D]-like tensors."""
from __future__ import annotations

import functools
import sys
from typing import Any, Callable, NamedTuple

import numpy as np

import tilec as tc
from tilec.errors import LaunchError, TilecError
from tilec.frontend.source import caller_location
from tilec.ir import dtypes as dt

_TORCH_NAMES = {"float8_e4m3fn": "float8_e4m3", "float8_e5m2": "float8_e5m2"}


def located(fn: Callable) -> Callable:
    """A library entry point whose argument errors point at the user's call."""
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TilecError as e:
            if e.loc is None:
                e.loc = caller_location(1)
            raise e.with_traceback(None) from None
    return call


def torch() -> Any:
    return sys.modules.get("torch")


def is_torch(x: Any) -> bool:
    """x is a torch tensor, or a PackedTensor whose bytes are one."""
    if isinstance(x, tc.PackedTensor):
        return is_torch(x.data)
    t = torch()
    return t is not None and isinstance(x, t.Tensor)


def device(x: Any) -> Any:
    return device(x.data) if isinstance(x, tc.PackedTensor) else getattr(x, "device", None)


def on_gpu(x: Any) -> bool:
    """Whether `x` is a torch tensor on a CUDA GPU that tilec can launch on."""
    return is_torch(x) and device(x).type == "cuda" and tc.gpu_available()


def on_wgmma_gpu(x: Any) -> bool:
    """Whether `x` is a torch tensor on a GPU that tilec compiles for with wgmma (sm_90a:
    compute capability 9.0)."""
    d = device(x)
    return is_torch(x) and d.type == "cuda" and _capability(d.index) == (9, 0)


@functools.lru_cache(maxsize=None)
def _capability(index: int | None) -> tuple[int, int]:
    return tuple(torch().cuda.get_device_capability(index))


def info(x: Any, name: str, fn: str) -> tuple[dt.DType, tuple[int, ...]]:
    """(tilec dtype, shape) of a tensor argument, or a LaunchError naming it."""
    if isinstance(x, tc.PackedTensor):
        return x.dtype, x.shape
    if is_torch(x):
        tname = str(x.dtype).removeprefix("torch.")
        try:
            d = dt.dtype(_TORCH_NAMES.get(tname, tname))
        except tc.TilecError:
            raise LaunchError(f"{fn}: argument '{name}' has dtype {x.dtype}, which tilec does "
                              "not support") from None
        return d, tuple(int(s) for s in x.shape)
    if isinstance(x, np.ndarray):
        try:
            d = dt.dtype_from_numpy(x.dtype)
        except tc.TilecError:
            raise LaunchError(f"{fn}: argument '{name}' has dtype {x.dtype}, which tilec does "
                              "not support") from None
        return d, tuple(x.shape)
    raise LaunchError(f"{fn}: argument '{name}' must be a tensor (a numpy array or a torch "
                      f"tensor), got {type(x).__name__}")


def same_device(fn: str, first: Any, *others: tuple[str, Any]) -> None:
    for name, x in others:
        if is_torch(x) != is_torch(first) or device(x) != device(first):
            raise LaunchError(f"{fn}: argument '{name}' must live on the same device as the "
                              "first argument")


def number(x: Any, name: str, fn: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise LaunchError(f"{fn}: '{name}' must be a Python number, got {type(x).__name__}")
    if not np.isfinite(float(x)):
        raise LaunchError(f"{fn}: '{name}' must be finite, got {x}")
    return float(x)


def version_key(x: Any) -> tuple | None:
    """What identifies a torch tensor's contents without reading them: its memory, shape,
    strides and version counter (bumped by every in-place write through torch). None for
    numpy arrays (read every time; they are on the host already)."""
    if not is_torch(x):
        return None
    try:
        version = x._version
    except RuntimeError:  # inference-mode tensors keep no version counter: never cached
        return None
    return (x.data_ptr(), version, tuple(x.shape), tuple(x.stride()), str(x.device))


def host_ints(x: Any) -> np.ndarray:
    """The values of an integer vector on the host (a device sync for CUDA tensors)."""
    if is_torch(x):
        return x.detach().to("cpu").numpy().astype(np.int64)
    return np.asarray(x).astype(np.int64)


def int_vector(x: Any, name: str, fn: str, like: Any, rank: int = 1) -> Any:
    """Check that `x` is an integer tensor of `rank` beside `like`."""
    d, shape = info(x, name, fn)
    if not d.is_int or d.is_bool:
        raise LaunchError(f"{fn}: '{name}' must hold integers, got {d}")
    if len(shape) != rank:
        raise LaunchError(f"{fn}: '{name}' must be {rank}-D, got shape {shape}")
    same_device(fn, like, (name, x))
    return x


def as_int32(x: Any, like: Any) -> Any:
    if is_torch(x):
        t = torch()
        return x.to(t.int32).contiguous()
    return np.ascontiguousarray(np.asarray(x), dtype=np.int32)


_TORCH_OF = {dt.float8_e4m3: "float8_e4m3fn", dt.float16: "float16",
             dt.bfloat16: "bfloat16", dt.float32: "float32", dt.int32: "int32"}


def empty(like: Any, shape: tuple[int, ...], d: dt.DType) -> Any:
    """An uninitialised tensor of dtype `d` beside `like` (numpy or torch)."""
    name = _TORCH_OF[d]
    if is_torch(like):
        t = torch()
        return t.empty(shape, dtype=getattr(t, name), device=device(like))
    if name in ("bfloat16", "float8_e4m3fn"):
        import ml_dtypes
        return np.empty(shape, dtype=getattr(ml_dtypes, name))
    return np.empty(shape, dtype=name)


def dummy_ints(like: Any) -> Any:
    """A one-element int32 tensor for pointer parameters a specialisation does not read."""
    if is_torch(like):
        t = torch()
        return t.zeros((1,), dtype=t.int32, device=device(like))
    return np.zeros((1,), dtype=np.int32)


def dummy_f32(like: Any) -> Any:
    if is_torch(like):
        t = torch()
        return t.zeros((1, 1), dtype=t.float32, device=device(like))
    return np.zeros((1, 1), dtype=np.float32)


def reshape(x: Any, shape: tuple[int, ...]) -> Any:
    return x.reshape(shape)


def _strided(x: Any, shape: tuple[int, int], strides: tuple[int, int]) -> Any:
    if is_torch(x):
        return x.as_strided(shape, strides)
    item = x.dtype.itemsize
    return np.lib.stride_tricks.as_strided(x, shape, (strides[0] * item, strides[1] * item))


def _extent(x: Any) -> int:
    """Elements from x's first element to the end of its allocation."""
    if is_torch(x):
        return x.untyped_storage().nbytes() // x.element_size() - x.storage_offset()
    root = x
    while isinstance(root.base, np.ndarray):
        root = root.base
    _, high = np.lib.array_utils.byte_bounds(root)
    return (high - x.__array_interface__["data"][0]) // x.dtype.itemsize


def _strides(x: Any) -> tuple[int, ...]:
    if is_torch(x):
        return tuple(int(s) for s in x.stride())
    return tuple(s // x.dtype.itemsize for s in x.strides)


class RowsView(NamedTuple):
    """A 2-D [rows, columns] view (row stride: the sequence stride) of a [B, H, S, D] (or [T, H, D]) tensor: element
    (b, h, s, d) is at row start(b) + h * rh + s (start(b) = b * rb, or the cumulative
    length for varlen), column b * cb + h * ch + d. `copied`: the view is of a contiguous
    copy (`source`), since the strides did not decompose."""

    view: Any
    rb: int
    rh: int
    cb: int
    ch: int
    copied: bool
    source: Any


def _decompose(x: Any, varlen: bool) -> RowsView | None:
    shape = tuple(int(s) for s in x.shape)
    strides = _strides(x)
    if varlen:
        (t, h, d), (st, sh, sd) = shape, strides
        b, sb, s, ss = 1, 0, t, st
    else:
        (b, h, s, d), (sb, sh, ss, sd) = shape, strides
    if sd != 1 and d > 1:
        return None
    if s == 1 and ss < d:
        ss = max(d, 1)  # a length-1 sequence: any row stride that keeps rows apart
    if min(sb, sh, ss) < 0 or ss < d or ss == 0:
        return None
    rb, cb = divmod(sb, ss) if b > 1 else (0, 0)
    rh, ch = divmod(sh, ss) if h > 1 else (0, 0)
    cols = (b - 1) * cb + (h - 1) * ch + d   # the view need not reach the row's end
    if cols > ss:
        return None
    rows = (b - 1) * rb + (h - 1) * rh + s
    if (rows - 1) * ss + cols > _extent(x):
        return None
    return RowsView(_strided(x, (rows, cols), (ss, 1)), rb, rh, cb, ch, False, x)


def rows_view(x: Any, varlen: bool, fn: str) -> RowsView:
    """The kernel's 2-D view of `x`, of a contiguous copy when its strides do not allow one."""
    found = _decompose(x, varlen)
    if found is not None:
        return found
    c = x.contiguous() if is_torch(x) else np.ascontiguousarray(x)
    found = _decompose(c, varlen)
    assert found is not None, (fn, x.shape)
    return found._replace(copied=True, source=c)


def copy_into(dst: Any, src: Any) -> None:
    if is_torch(dst):
        dst.copy_(src)
    else:
        dst[...] = src
