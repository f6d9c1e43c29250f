"""From `kernel[grid](*args)` to a run: the warm fast path, the GPU and the interpreter.

A call's *fast key* is computed from cheap facts about each argument (a tensor's dtype,
rank, contiguity and alignment; an int's "== 1", "% 16 == 0" and "fits in i32"; a
constexpr's value), exactly the facts the specialisation depends on. A warm launch looks the
key up and hands the arguments to the entry it finds: for a GPU entry, a `Launcher` whose
generated code packs them and calls the driver. A cold call binds and specialises the
arguments in full (with every check and its error messages), compiles, and stores the
entry under the key.
"""
from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np

import tilec.config as config
from tilec.errors import LaunchError
from tilec.backends.abi import stride_bits
from tilec.runtime.tensor import PackedTensor, packed_abi_strides, rows_aligned

# -- fast keys --------------------------------------------------------------------------


class NoFastKey(Exception):
    """The argument is of a kind the fast path does not key; take the slow path."""


def _int_key(v: int) -> tuple:
    return ("i", v == 1, v % 16 == 0, -0x80000000 <= v <= 0x7FFFFFFF)


def _numpy_key(v: np.ndarray) -> tuple:
    contiguous = v.ndim > 0 and (v.strides[-1] == v.itemsize or v.shape[-1] <= 1)
    return ("N", v.dtype, v.ndim, contiguous, rows_aligned(v.ctypes.data, v.strides, 8))


def _torch_key(v: Any) -> tuple:
    n = v.dim()
    strides = v.stride()
    contiguous = n > 0 and (strides[-1] == 1 or v.shape[-1] <= 1)
    return ("T", v.dtype, n, v.is_cuda, contiguous,
            rows_aligned(v.data_ptr(), strides, 8 * v.element_size()))


def _packed_key(v: PackedTensor) -> tuple:
    data = v.data
    if isinstance(data, np.ndarray):
        address = data.ctypes.data
    elif hasattr(data, "data_ptr"):
        address = data.data_ptr()
    else:
        raise NoFastKey
    return ("P", v.dtype, len(v.shape), v.on_device,
            rows_aligned(address, packed_abi_strides(v), stride_bits(v.dtype)))


_KEYERS: dict[type, Callable[[Any], Any]] = {
    int: _int_key,
    float: lambda v: "f",
    bool: lambda v: "b",
    np.ndarray: _numpy_key,
    PackedTensor: _packed_key,
}


def fast_key(v: Any) -> Any:
    keyer = _KEYERS.get(type(v))
    if keyer is None:
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(v, torch.Tensor):
            _KEYERS[type(v)] = keyer = _torch_key
        else:
            raise NoFastKey
    return keyer(v)


# -- where a call runs ------------------------------------------------------------------


def is_gpu_tensor(v: Any) -> bool:
    """A tensor in GPU memory (torch CUDA, __cuda_array_interface__, a packed one of those)."""
    if isinstance(v, PackedTensor):
        return v.on_device
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(v, torch.Tensor):
        return v.is_cuda  # before __cuda_array_interface__, which raises for float8 dtypes
    return hasattr(v, "__cuda_array_interface__")


def runs_on_gpu(tensor_values: list[Any]) -> bool:
    """A launch runs on the GPU when its tensors live there, unless TILEC_INTERPRET is set."""
    return any(is_gpu_tensor(v) for v in tensor_values) and not config.interpret()


def device_of(tensor_values: list[Any]) -> int:
    for v in tensor_values:
        data = getattr(v, "data", v) if not hasattr(v, "device") else v
        device = getattr(data, "device", None)
        index = getattr(device, "index", None)
        if index is not None:
            return int(index)
    return 0


# -- interpreter runs of GPU tensors (TILEC_INTERPRET=1) ----------------------------------


def to_host_copy(v: Any) -> tuple[Any, Callable[[Any], None] | None]:
    """A host (numpy) version of a device tensor and a function that writes results back."""
    from tilec.runtime.device import to_host
    if not is_gpu_tensor(v):
        return v, None
    if isinstance(v, PackedTensor):
        host = PackedTensor(to_host(v.data).copy(), v.dtype, v.shape)
        return host, lambda h: _copy_back(v.data, h.data)
    host = to_host(v).copy()
    return host, lambda h: _copy_back(v, h)


def _copy_back(device_tensor: Any, host: np.ndarray) -> None:
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(device_tensor, torch.Tensor):
        raise LaunchError("TILEC_INTERPRET=1 can write results back only into torch tensors")
    if host.dtype.name == "bfloat16":
        src = torch.from_numpy(host.view(np.int16)).view(torch.bfloat16)
    else:
        src = torch.from_numpy(host)
    device_tensor.copy_(src)
