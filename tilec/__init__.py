"""tilec: a tile-based GPU kernel DSL and compiler."""
from __future__ import annotations

__version__ = "0.1.0"

from tilec.errors import CompileError, LaunchError, TilecError  # noqa: E402,F401
from tilec.frontend.dsl import (  # noqa: E402,F401
    abs, arange, argmax, argmin, atomic_add, atomic_and, atomic_cas, atomic_max, atomic_min,
    atomic_or, atomic_xchg, atomic_xor, barrier, broadcast_to, cast, cdiv, ceil,
    cluster_reduce, copy_async, cos, cummax, cummin, cumprod, cumsum, device_assert,
    device_print, dot, erf, exp, exp2, expand_dims, floor, fma, full, gdc_launch_dependents,
    gdc_wait, load, log, log2, max,
    maximum, min, minimum, num_programs, ones, permute, print, prod, program_id, reduce,
    reshape, rsqrt, scan, shared, shared_load, shared_store, sigmoid, sin, sqrt,
    static_assert, static_range, store, sum, take, tanh, trans, view, wait, where, with_layout,
    zeros, zeros_like)
from tilec.frontend.kernel import Func, Kernel, func, kernel  # noqa: E402,F401
from tilec.frontend.values import Tensor, constexpr  # noqa: E402,F401
from tilec.ir.dtypes import (  # noqa: E402,F401
    DType, bfloat16, bool_, dtype, float3_e1m1, float4_e2m1, float6_e2m3, float6_e3m2,
    float8_e4m3, float8_e5m2, float16, float32, float64, float_, int1, int2, int3, int4, int5,
    int6, int7, int8, int16, int32, int64, int_, uint, uint1, uint2, uint3, uint4, uint5,
    uint6, uint7, uint8, uint16, uint32, uint64)
from tilec.runtime.tensor import PackedTensor, pack, unpack  # noqa: E402,F401
from tilec.runtime.device import device_name, gpu_available, to_device, to_host  # noqa: E402,F401
from tilec.tune import Config, autotune  # noqa: E402,F401
