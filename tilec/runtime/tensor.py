"""Host tensors as kernels see them: dtype, shape and element strides of an argument, and
`PackedTensor` for sub-byte data packed the way global memory holds it (DESIGN.md section 3).

A PackedTensor's bytes live on the host (a numpy array) or on the GPU (a torch CUDA tensor, or
any object with `__cuda_array_interface__`, of uint8); the GPU launcher passes the latter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from tilec.backends.abi import is_packed
from tilec.errors import LaunchError
from tilec.ir import packing
from tilec.ir.dtypes import DType, dtype as to_dtype, dtype_from_numpy

__all__ = ["PackedTensor", "pack", "unpack", "TensorInfo", "tensor_info", "contiguous_strides",
           "rows_aligned", "packed_abi_strides"]


def rows_aligned(address: int, strides: Sequence[int], unit_bits: int) -> bool:
    """The `aligned` specialisation fact: every row of the tensor starts on a 16-byte
    boundary, i.e. its address is 16-byte aligned and each stride but the last spans a
    multiple of 16 bytes (`strides` count units of `unit_bits` bits: elements, or bits for
    packed dtypes). Kernels then read rows in 16-byte vectors without checking each one."""
    return address % 16 == 0 and all(s * unit_bits % 128 == 0 for s in strides[:-1])


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major element strides of `shape`."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


@dataclass(frozen=True, eq=False)
class PackedTensor:
    """A tensor of `dtype` packed into bytes: `data` is uint8 of shape
    (*shape[:-1], row_bytes), elements little-endian in bit order with each row byte aligned
    (what `tilec.ir.packing.pack` produces). `data` is a numpy array (host) or a contiguous
    uint8 GPU array: a torch CUDA tensor or an object with `__cuda_array_interface__`, e.g.
    ``PackedTensor(torch.from_numpy(p.data).cuda(), p.dtype, p.shape)``. The fields are
    fixed; a kernel that writes the tensor updates `data` in place."""

    data: Any
    dtype: DType
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "dtype", to_dtype(self.dtype))
        if isinstance(self.data, np.ndarray):
            if self.data.dtype != np.uint8:
                raise LaunchError("PackedTensor data must be a uint8 array")
            data_shape, contiguous = self.data.shape, self.data.flags.c_contiguous
        else:
            data_shape, contiguous = _device_bytes(self.data)
        if not self.shape:
            raise LaunchError("PackedTensor needs at least one dimension")
        want = (*self.shape[:-1], self.row_bytes)
        if data_shape != want or not contiguous:
            raise LaunchError(
                f"PackedTensor data of shape {data_shape} does not hold a {self.dtype} "
                f"tensor of shape {self.shape}", hint=f"expected contiguous uint8 of shape {want}")

    @property
    def on_device(self) -> bool:
        """Whether `data` is GPU memory (not a numpy array)."""
        return not isinstance(self.data, np.ndarray)

    def host_data(self) -> np.ndarray:
        """The packed bytes as a numpy array (a copy when they live on the GPU)."""
        if isinstance(self.data, np.ndarray):
            return self.data
        if hasattr(self.data, "detach") and hasattr(self.data, "cpu"):  # torch
            return self.data.detach().cpu().numpy()
        if hasattr(self.data, "get"):  # CuPy
            return np.asarray(self.data.get())
        raise LaunchError(f"cannot copy PackedTensor data of type {type(self.data).__name__} "
                          "to the host", hint="use a torch or CuPy array for device data")

    @property
    def row_bytes(self) -> int:
        """Bytes per row (the last axis), each row starting on a byte boundary."""
        return packing.packed_nbytes(self.shape[-1], self.dtype.itemsize_bits)

    @property
    def strides(self) -> tuple[int, ...]:
        """Element strides of the logical (unpacked) tensor, row-major."""
        return contiguous_strides(self.shape)

    def unpack(self) -> np.ndarray:
        return unpack(self)

    def __repr__(self) -> str:
        return f"PackedTensor({self.dtype}, shape={self.shape}, {self.data.nbytes} bytes)"


def pack(array, dtype: DType | str) -> PackedTensor:
    """Encode `array` (rounded or wrapped into `dtype`) and pack it row by row. A torch
    tensor gives a PackedTensor whose bytes are a torch uint8 tensor on the same device
    (packed on the host)."""
    d = to_dtype(dtype)
    if _is_torch_tensor(array):
        host = pack(array.detach().cpu().double().numpy(), d)
        import torch
        return PackedTensor(torch.from_numpy(host.data).to(array.device), d, host.shape)
    a = np.asarray(array)
    if a.ndim == 0:
        a = a.reshape(1)
    return PackedTensor(np.ascontiguousarray(packing.pack(a, d)), d, a.shape)


def unpack(packed: PackedTensor) -> np.ndarray:
    """The values of a PackedTensor, in its dtype's compute_dtype (a numpy array on the
    host, wherever the bytes live)."""
    return packing.unpack(packed.host_data(), packed.dtype, packed.shape)


def _is_torch_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _device_bytes(data: Any) -> tuple[tuple[int, ...], bool]:
    """Shape and C-contiguity of a uint8 GPU array; LaunchError for anything else."""
    if hasattr(data, "data_ptr") and hasattr(data, "is_contiguous"):  # torch
        if str(data.dtype) != "torch.uint8":
            raise LaunchError(f"PackedTensor data must be uint8, got {data.dtype}")
        return tuple(int(n) for n in data.shape), bool(data.is_contiguous())
    cai = getattr(data, "__cuda_array_interface__", None)
    if cai is not None:
        if np.dtype(cai["typestr"]) != np.uint8:
            raise LaunchError(f"PackedTensor data must be uint8, got {cai['typestr']}")
        shape = tuple(int(n) for n in cai["shape"])
        strides = cai.get("strides")
        return shape, strides is None or tuple(strides) == contiguous_strides(shape)
    raise LaunchError(f"PackedTensor data must be a uint8 numpy array, torch tensor or CUDA "
                      f"array, got {type(data).__name__}")


def packed_abi_strides(p: PackedTensor) -> tuple[int, ...]:
    """The strides the launch ABI passes for `p`: in bits for packed widths (each row starts
    on a byte boundary, so a row is `row_bytes * 8` bits apart), else in elements."""
    if not is_packed(p.dtype):
        return p.strides
    strides = [p.dtype.itemsize_bits]
    step = p.row_bytes * 8
    for n in reversed(p.shape[:-1]):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


@dataclass(frozen=True)
class TensorInfo:
    """What a kernel sees of a tensor argument. `strides` are in elements of the logical
    tensor; for a PackedTensor they are row-major and `row_bytes` is the packed row pitch."""

    dtype: DType
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    packed: bool = False
    row_bytes: int | None = None

    @property
    def contiguous(self) -> bool:
        return self.strides == contiguous_strides(self.shape) or math.prod(self.shape) <= 1


def tensor_info(arg) -> TensorInfo:
    """The tilec dtype, shape and element strides of a tensor argument (a numpy array of any
    numpy or ml_dtypes dtype, or a PackedTensor); LaunchError for anything else."""
    if isinstance(arg, PackedTensor):
        return TensorInfo(arg.dtype, arg.shape, arg.strides, True, arg.row_bytes)
    if not isinstance(arg, np.ndarray):
        raise LaunchError(f"expected a numpy array or a PackedTensor, got {type(arg).__name__}",
                          hint="on the CPU interpreter, tensors are numpy arrays")
    d = dtype_from_numpy(arg.dtype)
    size = arg.dtype.itemsize
    if any(s % size for s in arg.strides):
        raise LaunchError(f"array strides {arg.strides} are not multiples of its item size "
                          f"{size}", hint="pass a copy: np.ascontiguousarray(a)")
    return TensorInfo(d, tuple(arg.shape), tuple(s // size for s in arg.strides))
