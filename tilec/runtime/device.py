"""Which device launches run on, and moving example data there and back.

Kernels run on the GPU when they get GPU tensors (torch CUDA tensors, CuPy arrays, ...),
and on the CPU interpreter when they get numpy arrays or when TILEC_INTERPRET=1. These
helpers let one script use the GPU when there is one and the interpreter otherwise.
"""
from __future__ import annotations

import sys
from functools import lru_cache
from typing import Any

import numpy as np

import tilec.config as config
from tilec.runtime.tensor import PackedTensor


@lru_cache(maxsize=None)
def _torch_cuda() -> Any:
    """torch, if it is installed and sees a CUDA GPU; else None."""
    try:
        import torch
    except ImportError:
        return None
    try:
        return torch if torch.cuda.is_available() else None
    except Exception:
        return None


def gpu_available() -> bool:
    """True when launches of device tensors can run here (a CUDA GPU, torch, no
    TILEC_INTERPRET)."""
    return not config.interpret() and _torch_cuda() is not None


def device_name() -> str:
    """Where `to_device` data runs: the GPU's name, or "the CPU interpreter"."""
    if not gpu_available():
        return "the CPU interpreter"
    return _torch_cuda().cuda.get_device_name()


def to_device(x: Any) -> Any:
    """A numpy array (or PackedTensor) on the GPU as a torch tensor when one is available,
    else unchanged."""
    torch = _torch_cuda() if gpu_available() else None
    if torch is None:
        return x
    if isinstance(x, PackedTensor):
        return PackedTensor(to_device(x.data), x.dtype, x.shape)
    arr = np.asarray(x)
    if arr.dtype.name == "bfloat16":  # ml_dtypes: torch reads the bits
        return torch.from_numpy(arr.view(np.int16).copy()).view(torch.bfloat16).cuda()
    return torch.from_numpy(np.ascontiguousarray(arr)).cuda()


def to_host(x: Any) -> Any:
    """A numpy copy of a device tensor (numpy arrays are returned as they are)."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, PackedTensor):
        return PackedTensor(to_host(x.data), x.dtype, x.shape)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if t.dtype == torch.bfloat16:
            import ml_dtypes
            return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        return t.numpy()
    return np.asarray(x)
