"""The CUDA runtime on a GPU: hand-written PTX kernels that follow the launch ABI, loaded and
launched through `Launcher` on torch tensors (and other device arrays), against references.

Every test needs an NVIDIA GPU and torch with CUDA: run `pytest -m gpu tests/gpu`.
Outputs are poisoned with NaN (or a sentinel) before each launch; inputs are random.
"""
from __future__ import annotations

import math
import struct
import threading
from dataclasses import dataclass, field

import numpy as np
import pytest

from tilec.backends import abi
from tilec.errors import LaunchError
from tilec.ir.parser import parse_module
from tilec.runtime import cuda
from tilec.runtime.launcher import Launcher
from tilec.runtime.tensor import PackedTensor, pack

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@dataclass
class Kernel:
    """What the NVIDIA backend's CompiledKernel carries, for hand-written PTX."""

    name: str
    arch: str
    num_warps: int
    ptx: str
    cubin: bytes | None
    shared_bytes: int
    params: list
    resources: dict = field(default_factory=dict)


def kernel(signature: str, ptx: str, *, name: str | None = None, num_warps: int = 4,
           shared_bytes: int = 0) -> Kernel:
    """A Kernel whose params are the ABI of the IR `signature` (`func @name(...)`)."""
    fn = parse_module(signature + " {\n  return\n}").functions[0]
    return Kernel(name or fn.name, "sm_80", num_warps, ptx, None, shared_bytes,
                  abi.kernel_params(fn))


VADD_PTX = r""".version 7.8
.target sm_80
.address_size 64

// out[i] = x[i] + y[i] for i < out.size0, each tensor (ptr, size0: i32, stride0: i64).
.visible .entry vadd(
    .param .u64 x_ptr, .param .u32 x_size0, .param .u64 x_stride0,
    .param .u64 y_ptr, .param .u32 y_size0, .param .u64 y_stride0,
    .param .u64 out_ptr, .param .u32 out_size0, .param .u64 out_stride0)
{
    .reg .pred %p<2>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<16>;
    .reg .f32 %f<4>;

    mov.u32 %r1, %ctaid.x;
    mov.u32 %r2, %ntid.x;
    mov.u32 %r3, %tid.x;
    mad.lo.s32 %r4, %r1, %r2, %r3;
    ld.param.u32 %r5, [out_size0];
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

ECHO_PTX = r""".version 7.8
.target sm_80
.address_size 64

// Writes its parameters, each widened to 64 bits, to out[0..12).
.visible .entry echo(
    .param .u64 a_ptr, .param .u32 a_size0, .param .u32 a_size1,
    .param .u64 a_stride0, .param .u64 a_stride1,
    .param .u32 n, .param .u64 m, .param .f32 f, .param .f64 d, .param .u32 b, .param .u64 p,
    .param .u64 out_ptr, .param .u32 out_size0, .param .u64 out_stride0)
{
    .reg .b32 %r<8>;
    .reg .b64 %rd<16>;
    .reg .f32 %f<2>;
    .reg .f64 %fd<2>;

    ld.param.u64 %rd1, [out_ptr];
    cvta.to.global.u64 %rd1, %rd1;
    ld.param.u64 %rd2, [a_ptr];
    st.global.u64 [%rd1], %rd2;
    ld.param.u32 %r1, [a_size0];
    cvt.u64.u32 %rd3, %r1;
    st.global.u64 [%rd1+8], %rd3;
    ld.param.u32 %r2, [a_size1];
    cvt.u64.u32 %rd4, %r2;
    st.global.u64 [%rd1+16], %rd4;
    ld.param.u64 %rd5, [a_stride0];
    st.global.u64 [%rd1+24], %rd5;
    ld.param.u64 %rd6, [a_stride1];
    st.global.u64 [%rd1+32], %rd6;
    ld.param.u32 %r3, [n];
    cvt.u64.u32 %rd7, %r3;
    st.global.u64 [%rd1+40], %rd7;
    ld.param.u64 %rd8, [m];
    st.global.u64 [%rd1+48], %rd8;
    ld.param.f32 %f1, [f];
    mov.b32 %r4, %f1;
    cvt.u64.u32 %rd9, %r4;
    st.global.u64 [%rd1+56], %rd9;
    ld.param.f64 %fd1, [d];
    mov.b64 %rd10, %fd1;
    st.global.u64 [%rd1+64], %rd10;
    ld.param.u32 %r5, [b];
    cvt.u64.u32 %rd11, %r5;
    st.global.u64 [%rd1+72], %rd11;
    ld.param.u64 %rd12, [p];
    st.global.u64 [%rd1+80], %rd12;
    ld.param.u32 %r6, [out_size0];
    cvt.u64.u32 %rd13, %r6;
    st.global.u64 [%rd1+88], %rd13;
    ret;
}
"""

SMEM_PTX = r""".version 7.8
.target sm_80
.address_size 64

.extern .shared .align 16 .b8 smem[];

// With W = dynamic shared bytes / 4 words: thread t writes 7t+1 to word W-1-t, and after a
// barrier reads word W-1-(ntid-1-t) into out[t]: out[t] = 7(ntid-1-t)+1, from the top of
// a shared buffer larger than 48 KB.
.visible .entry smem_reverse(.param .u64 out_ptr, .param .u32 out_size0,
                             .param .u64 out_stride0)
{
    .reg .b32 %r<12>;
    .reg .b64 %rd<8>;

    mov.u32 %r1, %tid.x;
    mov.u32 %r2, %ntid.x;
    mov.u32 %r3, %dynamic_smem_size;
    shr.u32 %r3, %r3, 2;              // W
    mad.lo.u32 %r4, %r1, 7, 1;        // 7t+1
    sub.u32 %r5, %r3, 1;
    sub.u32 %r5, %r5, %r1;            // W-1-t
    shl.b32 %r5, %r5, 2;
    mov.u32 %r6, smem;
    add.u32 %r6, %r6, %r5;
    st.shared.u32 [%r6], %r4;
    bar.sync 0;
    sub.u32 %r7, %r2, 1;
    sub.u32 %r7, %r7, %r1;            // ntid-1-t
    sub.u32 %r8, %r3, 1;
    sub.u32 %r8, %r8, %r7;            // W-1-(ntid-1-t)
    shl.b32 %r8, %r8, 2;
    mov.u32 %r9, smem;
    add.u32 %r9, %r9, %r8;
    ld.shared.u32 %r10, [%r9];
    ld.param.u64 %rd1, [out_ptr];
    ld.param.u64 %rd2, [out_stride0];
    cvt.u64.u32 %rd3, %r1;
    mul.lo.u64 %rd3, %rd3, %rd2;
    shl.b64 %rd3, %rd3, 2;
    add.u64 %rd1, %rd1, %rd3;
    cvta.to.global.u64 %rd1, %rd1;
    st.global.u32 [%rd1], %r10;
    ret;
}
"""

TRIVIAL_PTX = r""".version 7.8
.target sm_80
.address_size 64

// x[0] = 1.0: the cheapest kernel that still does something observable.
.visible .entry trivial(.param .u64 x_ptr, .param .u32 x_size0, .param .u64 x_stride0)
{
    .reg .b64 %rd<2>;
    ld.param.u64 %rd1, [x_ptr];
    cvta.to.global.u64 %rd1, %rd1;
    st.global.f32 [%rd1], 0f3F800000;
    ret;
}
"""

VADD_SIG = "func @vadd(%x: tensor<?xf32>, %y: tensor<?xf32>, %out: tensor<?xf32>)"
ECHO_SIG = ("func @echo(%a: tensor<?x?xi4>, %n: i32, %m: u64, %f: f32, %d: f64, %b: bool, "
            "%p: ptr<f32>, %out: tensor<?xi64>)")
SMEM_SIG = "func @smem_reverse(%out: tensor<?xi32>)"


def rand(n: int, **kw):
    return torch.randn(n, device="cuda", **kw) + 0.5  # never all zeros


def poisoned(n: int, dtype=torch.float32):
    return torch.full((n,), float("nan"), device="cuda", dtype=dtype)


def vadd_launch(launcher: Launcher, x, y, out, **kw) -> None:
    launcher.launch((math.ceil(out.shape[0] / launcher.block),), [x, y, out], **kw)


# ---- the device ---------------------------------------------------------------------------

def test_device_properties_match_torch():
    props = cuda.device_properties(0)
    tp = torch.cuda.get_device_properties(0)
    assert props.capability == torch.cuda.get_device_capability(0)
    assert props.sm_count == tp.multi_processor_count
    assert props.name == tp.name
    major, minor = props.capability
    assert props.arch == f"sm_{major}{minor}" + ("a" if major >= 9 else "")
    assert props.max_shared_per_block_optin >= 48 * 1024
    print(props)


# ---- vector add ---------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 1000, 1 << 20])
def test_vector_add(n):
    launcher = Launcher(kernel(VADD_SIG, VADD_PTX))
    x, y, out = rand(n), rand(n), poisoned(n)
    vadd_launch(launcher, x, y, out)
    torch.cuda.synchronize()
    ref = (x.double() + y.double()).float()
    assert not out.isnan().any()
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=0)
    for _ in range(3):  # warm launches, fresh inputs each time
        x, y, out = rand(n), rand(n), poisoned(n)
        vadd_launch(launcher, x, y, out)
        torch.cuda.synchronize()
        torch.testing.assert_close(out, x + y, rtol=1e-6, atol=0)


def test_vector_add_strided_and_other_array_kinds():
    launcher = Launcher(kernel(VADD_SIG, VADD_PTX))
    n = 3000
    x_base = rand(3 * n)
    x = x_base[::3]                      # element stride 3
    y = rand(n)
    out_base = poisoned(2 * n)
    out = out_base[1::2]                 # offset pointer, stride 2

    class CudaArray:                     # __cuda_array_interface__ only (CuPy, Numba)
        def __init__(self, t):
            self.__cuda_array_interface__ = t.__cuda_array_interface__

    class DLPackOnly:                    # __dlpack__ only (JAX, TF ...)
        def __init__(self, t):
            self.t = t

        def __dlpack__(self, **kw):
            return self.t.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.t.__dlpack_device__()

    launcher.launch((math.ceil(n / launcher.block),), [CudaArray(x), DLPackOnly(y), out])
    torch.cuda.synchronize()
    torch.testing.assert_close(out, x + y, rtol=1e-6, atol=0)
    assert out_base[0::2].isnan().all()  # the gaps stay unwritten


def test_cpu_tensor_is_refused_by_name():
    launcher = Launcher(kernel(VADD_SIG, VADD_PTX))
    with pytest.raises(LaunchError, match="argument 'y' is a torch tensor on cpu"):
        launcher.launch((1,), [rand(8), torch.ones(8), poisoned(8)])


# ---- every machine type reaches the kernel as packed ----------------------------------

def test_parameters_reach_the_kernel():
    launcher = Launcher(kernel(ECHO_SIG, ECHO_PTX, num_warps=1))
    host = pack(np.random.default_rng(3).integers(-8, 8, (3, 5)), "i4")
    data = torch.from_numpy(host.data.copy()).cuda()
    a = PackedTensor(data, host.dtype, host.shape)
    out = torch.full((12,), -1, dtype=torch.int64, device="cuda")
    p = torch.empty(4, device="cuda")
    launcher.launch(1, [a, -5, 2**63 + 9, 0.1, -1.25e300, True, p, out])
    torch.cuda.synchronize()
    got = [v & (2**64 - 1) for v in out.tolist()]
    u32 = lambda v: v & 0xFFFFFFFF  # noqa: E731
    assert got == [data.data_ptr(), 3, 5, 24, 4, u32(-5), 2**63 + 9,
                   struct.unpack("<I", struct.pack("<f", 0.1))[0],
                   struct.unpack("<Q", struct.pack("<d", -1.25e300))[0], 1, p.data_ptr(), 12]


# ---- streams -------------------------------------------------------------------------

def _ordered_on(stream_kw, side_stream) -> None:
    """Launch behind a 100 ms sleep on `side_stream`; a snapshot taken on a third stream
    meanwhile must still be NaN (the kernel waited its turn), the result right after."""
    launcher = Launcher(kernel(VADD_SIG, VADD_PTX))
    launcher.load()  # loading a module may wait for the device to go idle: do it first
    n = 1 << 16
    x, y, out = rand(n), rand(n), poisoned(n)
    torch.cuda.synchronize()
    other = torch.cuda.Stream()
    with torch.cuda.stream(side_stream):
        torch.cuda._sleep(200_000_000)  # ~0.1 s of GPU clock cycles
        if stream_kw is None:
            vadd_launch(launcher, x, y, out)           # torch's current stream
        else:
            vadd_launch(launcher, x, y, out, stream=stream_kw)
    with torch.cuda.stream(other):
        snapshot = out.clone()
    other.synchronize()
    assert snapshot.isnan().all(), "the kernel ran before the work queued ahead of it"
    side_stream.synchronize()
    torch.testing.assert_close(out, x + y, rtol=1e-6, atol=0)


def test_launch_follows_torch_current_stream():
    _ordered_on(None, torch.cuda.Stream())


def test_launch_on_explicit_stream():
    s = torch.cuda.Stream()
    _ordered_on(s, s)
    s2 = torch.cuda.Stream()
    _ordered_on(s2.cuda_stream, s2)


def test_launch_from_a_fresh_thread():
    launcher = Launcher(kernel(VADD_SIG, VADD_PTX))
    x, y, out = rand(512), rand(512), poisoned(512)
    vadd_launch(launcher, x, y, out)  # loads on this thread
    out.fill_(float("nan"))
    errors = []

    def work():
        try:
            vadd_launch(launcher, x, y, out)
        except Exception as e:  # reported below
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert not errors, errors
    torch.cuda.synchronize()
    torch.testing.assert_close(out, x + y, rtol=1e-6, atol=0)


# ---- shared memory beyond 48 KB ----------------------------------------------------------

def test_dynamic_shared_memory_over_48kb():
    shared = 100 * 1024
    launcher = Launcher(kernel(SMEM_SIG, SMEM_PTX, num_warps=4, shared_bytes=shared))
    out = torch.full((128,), -1, dtype=torch.int32, device="cuda")
    launcher.launch(1, [out])
    torch.cuda.synchronize()
    t = torch.arange(128, device="cuda", dtype=torch.int32)
    assert torch.equal(out, 7 * (127 - t) + 1)


def test_too_much_shared_memory_is_named():
    limit = cuda.device_properties(0).max_shared_per_block_optin
    launcher = Launcher(kernel(SMEM_SIG, SMEM_PTX, shared_bytes=limit + 1024))
    with pytest.raises(LaunchError, match=f"kernel 'smem_reverse' needs {limit + 1024} bytes"):
        launcher.launch(1, [torch.zeros(128, dtype=torch.int32, device="cuda")])


# ---- driver errors name the kernel and the call ------------------------------------------

def test_bad_ptx_names_kernel_and_shows_jit_log():
    broken = TRIVIAL_PTX.replace("st.global.f32", "st.global.f33").replace("trivial", "broken")
    launcher = Launcher(kernel("func @broken(%x: tensor<?xf32>)", broken))
    with pytest.raises(LaunchError) as info:
        launcher.launch(1, [rand(4)])
    text = str(info.value)
    assert "cuModuleLoadDataEx failed for kernel 'broken'" in text
    assert "CUDA_ERROR_INVALID_PTX" in text
    assert "JIT log" in text and "error" in text.lower(), text


def test_missing_function_names_kernel():
    launcher = Launcher(kernel("func @missing(%x: tensor<?xf32>)", TRIVIAL_PTX))
    with pytest.raises(LaunchError, match="cuModuleGetFunction failed for kernel 'missing': "
                                          "CUDA_ERROR_NOT_FOUND"):
        launcher.launch(1, [rand(4)])


def test_launch_error_names_kernel():
    launcher = Launcher(kernel("func @trivial(%x: tensor<?xf32>)", TRIVIAL_PTX, num_warps=64))
    with pytest.raises(LaunchError, match="cuLaunchKernel failed for kernel 'trivial': "
                                          "CUDA_ERROR_INVALID_VALUE"):
        launcher.launch(1, [rand(4)])  # 2048 threads a block: more than any GPU allows
    ok = Launcher(kernel("func @trivial(%x: tensor<?xf32>)", TRIVIAL_PTX, num_warps=1))
    x = poisoned(4)
    ok.launch(1, [x])  # the context is still usable
    torch.cuda.synchronize()
    assert x[0].item() == 1.0
