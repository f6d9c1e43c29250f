"""The C launch path (tilec/runtime/_native.c) against the Python one it stands in front of.

A fake `torch` module provides the tensor type and dtypes the C code recognises, and a ctypes
callback stands in for cuLaunchKernel, so the C code runs for real: it must write exactly the
parameters the Python path writes, and hand every case it does not take to the Python path.
The install builds the extension (setup.py); a missing build fails here, it is not skipped.
"""
from __future__ import annotations

import ctypes
import struct
import sys
import types

import numpy as np
import pytest

from tilec.backends import abi
from tilec.errors import LaunchError
from tilec.ir import dtypes as dt
from tilec.runtime import launcher as launcher_mod
from tilec.runtime.launcher import GuardMiss, IntGuard, Launcher, TensorGuard

from test_launcher import ECHO, FakeCompiled

_SIZES = {abi.POINTER: 8, abi.I32: 4, abi.I64: 8, abi.F32: 4, abi.F64: 8}
_DECODE = {abi.POINTER: "<Q", abi.I32: "<i", abi.I64: "<q", abi.F32: "<f", abi.F64: "<d"}
_PROTO = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint,
                          ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint,
                          ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
STREAM = 0x5EED0


class FakeTensor:
    """What the C path reads of a torch CUDA tensor, over a numpy array."""

    def __init__(self, a: np.ndarray, dtype, is_cuda: bool = True):
        self.a, self.dtype, self.is_cuda = a, dtype, is_cuda
        self.shape = tuple(a.shape)
        self.device = "cuda:0" if is_cuda else "cpu"

    def data_ptr(self) -> int:
        return self.a.__array_interface__["data"][0]

    def stride(self) -> tuple:
        return tuple(s // self.a.itemsize for s in self.a.strides)


class FakeTensorSubclass(FakeTensor):
    """Not exactly the tensor type: the C path must hand it on."""


@pytest.fixture
def fake_torch(monkeypatch):
    torch = types.ModuleType("torch")
    torch.Tensor = FakeTensor
    for name in launcher_mod._TORCH_DTYPES:
        setattr(torch, name, types.SimpleNamespace(name=name))
    torch._C = types.SimpleNamespace(_cuda_getCurrentRawStream=lambda device: STREAM)
    monkeypatch.setitem(sys.modules, "torch", torch)
    # The Python path's slow branch asks these of a tensor it does not know.
    monkeypatch.setattr(launcher_mod, "_is_torch_tensor", lambda v: isinstance(v, FakeTensor))
    return torch


class CDriver:
    """A C function pointer that records each launch like the driver would see it."""

    def __init__(self, params, result: int = 0):
        self.params, self.result, self.calls = params, result, []
        self.fn = _PROTO(self._call)

    def _call(self, function, gx, gy, gz, bx, by, bz, smem, stream, kernel_params, extra):
        slots = ctypes.cast(kernel_params, ctypes.POINTER(ctypes.c_void_p))
        raw = [ctypes.string_at(slots[k], _SIZES[p.machine]) for k, p in enumerate(self.params)]
        self.calls.append({"grid": (gx, gy, gz), "block": bx, "smem": smem,
                           "stream": stream or 0, "raw": raw})
        return self.result

    def values(self, call: int = -1) -> dict:
        raw = self.calls[call]["raw"]
        return {p.name: struct.unpack(_DECODE[p.machine], r)[0] for p, r in zip(self.params, raw)}


def make(guards=None, result: int = 0):
    params = abi.kernel_params(ECHO)
    driver = CDriver(params, result)
    launcher = Launcher(FakeCompiled("echo", params, shared_bytes=128), launch_fn=driver.fn,
                        guards=guards)
    launcher.load()
    return launcher, driver


def echo_args(torch, **over):
    x = np.arange(60, dtype=np.float32).reshape(6, 10)
    out = np.zeros(16, np.int64)
    args = {"x": FakeTensor(x, torch.float32), "n": -5, "m": 2**63 + 5, "f": 1.5, "d": -2.25,
            "b": 7, "p": 0xDEAD0000, "out": FakeTensor(out, torch.int64)}
    args.update(over)
    return list(args.values())


def test_extension_is_built_and_used(fake_torch):
    launcher, driver = make()
    assert launcher_mod.native_module() is not None, "the install did not build _native.c"
    assert type(launcher.launch).__name__ == "FastLaunch"
    args = echo_args(fake_torch)
    launcher.launch((3, 2), args)
    (call,) = driver.calls
    assert call["grid"] == (3, 2, 1) and call["block"] == 128 and call["smem"] == 128
    assert call["stream"] == STREAM  # torch's current stream, since a torch tensor was passed
    v = driver.values()
    assert v["x.ptr"] == args[0].data_ptr() and (v["x.size0"], v["x.size1"]) == (6, 10)
    assert (v["x.stride0"], v["x.stride1"]) == (10, 1)
    assert (v["n"], v["m"] & (2**64 - 1), v["f"], v["d"], v["b"]) == (-5, 2**63 + 5, 1.5, -2.25, 7)
    assert v["p"] == 0xDEAD0000 and v["out.ptr"] == args[7].data_ptr()
    # The slots the C code wrote are the ones launched (not the Python path's buffer).
    assert launcher.launch.slots()[0] == args[0].data_ptr()


@pytest.mark.parametrize("case", ["strided", "negative_int", "stream_int", "grid_int"])
def test_c_path_writes_what_the_python_path_writes(fake_torch, monkeypatch, case):
    x = np.arange(200, dtype=np.float32).reshape(10, 20)
    over = {"strided": {"x": FakeTensor(x[::2, 1::3], fake_torch.float32)},
            "negative_int": {"n": -(2**31), "m": -7},
            "stream_int": {}, "grid_int": {}}[case]
    launch_args = {"stream_int": ((4,), 77), "grid_int": (5, None)}.get(case, ((1, 2, 3), None))
    results = []
    for native in ("1", "0"):
        monkeypatch.setenv("TILEC_NATIVE_LAUNCH", native)
        launcher, driver = make()
        assert (type(launcher.launch).__name__ == "FastLaunch") == (native == "1")
        grid, stream = launch_args
        launcher.launch(grid, echo_args(fake_torch, **over), stream)
        (call,) = driver.calls
        results.append((call["grid"], call["stream"], call["raw"]))
    assert results[0] == results[1]


class _Attribute(ctypes.Structure):   # CUlaunchAttribute
    _fields_ = [("id", ctypes.c_int), ("pad", ctypes.c_char * 4), ("value", ctypes.c_int * 16)]


class _Config(ctypes.Structure):      # CUlaunchConfig
    _fields_ = [("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3),
                ("smem", ctypes.c_uint), ("stream", ctypes.c_void_p),
                ("attrs", ctypes.POINTER(_Attribute)), ("num_attrs", ctypes.c_uint)]


_PROTO_EX = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                             ctypes.c_void_p)


@pytest.mark.parametrize("native", ["1", "0"])
def test_programmatic_kernel_launches_with_its_attribute(fake_torch, monkeypatch, native):
    """A kernel whose PTX has griddepcontrol goes through cuLaunchKernelEx with programmatic
    stream serialization (CUlaunchAttributeID 6, value 1), on the C path and the Python
    one, with the parameters the plain launch writes."""
    monkeypatch.setenv("TILEC_NATIVE_LAUNCH", native)
    params = abi.kernel_params(ECHO)
    plain, plain_driver = make()
    args = echo_args(fake_torch)
    plain.launch((3, 2), args)
    seen = []

    def launch_ex(config, function, kernel_params, extra):
        c = ctypes.cast(config, ctypes.POINTER(_Config)).contents
        slots = ctypes.cast(kernel_params, ctypes.POINTER(ctypes.c_void_p))
        raw = [ctypes.string_at(slots[k], _SIZES[p.machine]) for k, p in enumerate(params)]
        attrs = [(c.attrs[i].id, c.attrs[i].value[0]) for i in range(c.num_attrs)]
        seen.append((tuple(c.grid), tuple(c.block), c.smem, c.stream or 0, attrs, raw))
        return 0
    fn = _PROTO_EX(launch_ex)
    ptx = ".entry echo(\n)\n{\n\tgriddepcontrol.launch_dependents;\n\tgriddepcontrol.wait;\n}"
    launcher = Launcher(FakeCompiled("echo", params, shared_bytes=128, ptx=ptx), launch_fn=fn)
    launcher.load()
    assert launcher.programmatic and not plain.programmatic
    assert (type(launcher.launch).__name__ == "FastLaunch") == (native == "1")
    launcher.launch((3, 2), args)
    (call,) = seen
    assert call[:5] == ((3, 2, 1), (128, 1, 1), 128, STREAM, [(6, 1)])
    assert call[5] == plain_driver.calls[0]["raw"]


@pytest.mark.parametrize("arg", ["host_tensor", "subclass", "bool", "numpy_int", "float_for_int",
                                 "f32_overflow"])
def test_what_c_does_not_take_goes_to_python(fake_torch, arg):
    x = np.ones((6, 10), np.float32)
    over = {"host_tensor": {"x": FakeTensor(x, fake_torch.float32, is_cuda=False)},
            "subclass": {"x": FakeTensorSubclass(x, fake_torch.float32)},
            "bool": {"n": True}, "numpy_int": {"n": np.int32(4)},
            "float_for_int": {"n": 2.5}, "f32_overflow": {"f": 1e300}}[arg]
    launcher, driver = make()
    args = echo_args(fake_torch, **over)
    if arg in ("host_tensor", "float_for_int", "f32_overflow"):  # the Python path reports these
        with pytest.raises(LaunchError, match={"host_tensor": "'x'", "float_for_int": "'n'",
                                               "f32_overflow": "'f'"}[arg]):
            launcher.launch((1,), args)
        assert driver.calls == []
    else:
        launcher.launch((1,), args)
        assert len(driver.calls) == 1
        assert driver.values()["n"] == {"bool": 1, "numpy_int": 4}.get(arg, -5)
    if arg in ("host_tensor", "subclass"):  # x comes first: the C path wrote nothing
        assert launcher.launch.slots()[0] == 0


def _guards():
    # x's rows (10 f32) are 40 bytes apart: they do not all start 16-byte aligned
    return [TensorGuard(dt.float32, 2, True, False), IntGuard(False, False), None, None, None,
            None, None, TensorGuard(dt.int64, 1, True, True)]


@pytest.mark.parametrize("change", ["dtype", "rank", "strided", "rows_aligned", "int_is_1",
                                    "int_div16", "int_over_i32"])
def test_guard_miss_in_c_launches_nothing(fake_torch, change):
    launcher, driver = make(_guards())
    launcher.launch((1,), echo_args(fake_torch))
    assert len(driver.calls) == 1
    x = np.zeros((6, 10), np.float32)
    over = {"dtype": {"x": FakeTensor(x, fake_torch.float64)},
            "rank": {"x": FakeTensor(x.reshape(-1), fake_torch.float32)},
            "strided": {"x": FakeTensor(x[:, ::2], fake_torch.float32)},
            "rows_aligned": {"x": FakeTensor(np.zeros((6, 12), np.float32), fake_torch.float32)},
            "int_is_1": {"n": 1}, "int_div16": {"n": 32}, "int_over_i32": {"n": 2**40}}[change]
    with pytest.raises(GuardMiss):
        launcher.launch((1,), echo_args(fake_torch, **over))
    assert len(driver.calls) == 1


def test_driver_error_is_reported_by_the_python_path(fake_torch):
    launcher, driver = make(result=701)  # CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES
    with pytest.raises(LaunchError, match="cuLaunchKernel failed for kernel 'echo'"):
        launcher.launch((1,), echo_args(fake_torch))
    assert len(driver.calls) == 2  # the C attempt, then the Python path's


def test_a_launch_inside_a_launch_does_not_touch_the_outer_slots(fake_torch):
    """While the C path's slots are in use (here: the driver call re-enters, as a finalizer
    that launches might), a second launch takes the Python path and its own buffer."""
    params = abi.kernel_params(ECHO)
    calls = []

    def driver(function, gx, gy, gz, bx, by, bz, smem, stream, kernel_params, extra):
        if gx == 1:  # the outer launch: launch again before reading its parameters
            launcher.launch((2,), echo_args(fake_torch, n=222))
        slots = ctypes.cast(kernel_params, ctypes.POINTER(ctypes.c_void_p))
        n = struct.unpack("<i", ctypes.string_at(slots[5], 4))[0]
        calls.append((gx, n))
        return 0

    fn = _PROTO(driver)
    launcher = Launcher(FakeCompiled("echo", params), launch_fn=fn)
    launcher.load()
    launcher.launch((1,), echo_args(fake_torch, n=111))
    assert calls == [(2, 222), (1, 111)]


def test_empty_grid_is_no_error(fake_torch):
    launcher, driver = make(result=1)  # the driver calls an empty grid invalid
    launcher.launch((0,), echo_args(fake_torch))
    assert len(driver.calls) == 1  # the Python path's call only: C does not take empty grids


# ---- kernel[grid]: the frontend's hot path ----------------------------------------------

class Miss(Exception):
    pass


class Recorder:
    def __init__(self, raises=None):
        self.calls, self.raises = [], raises

    def __call__(self, *a):
        self.calls.append(a)
        if self.raises is not None:
            raise self.raises


def _hot():
    native = launcher_mod.native_module()
    slow, fast = Recorder(), Recorder()
    hot = native.Hot(slow, Miss)
    return hot, slow, fast


def test_hot_launches_the_remembered_call_shape_at_once():
    hot, slow, fast = _hot()
    a, b = object(), object()
    hot[(2,)](a, b, BLOCK=128)
    assert slow.calls == [((2,), (a, b), {"BLOCK": 128})] and fast.calls == []
    hot.set(fast, 2, ("BLOCK",), (128,))
    hot[(3, 1)](a, b, BLOCK=128)
    hot[7](b, a, BLOCK=128)
    assert fast.calls == [((3, 1), (a, b)), (7, (b, a))] and len(slow.calls) == 1


@pytest.mark.parametrize("call", ["value", "type", "name", "extra_kw", "nargs", "grid"])
def test_hot_sends_any_other_call_shape_to_the_slow_path(call):
    hot, slow, fast = _hot()
    hot.set(fast, 2, ("BLOCK", "W"), (128, True))
    grid, args, kw = (1,), (1, 2), {"BLOCK": 128, "W": True}
    grid, args, kw = {"value": (grid, args, {"BLOCK": 64, "W": True}),
                      "type": (grid, args, {"BLOCK": 128, "W": 1}),  # True == 1, not the same
                      "name": (grid, args, {"W": True, "BLOCK": 128}),
                      "extra_kw": (grid, args, {**kw, "num_warps": 8}),
                      "nargs": (grid, (1,), kw),
                      "grid": (lambda meta: (1,), args, kw)}[call]
    hot[grid](*args, **kw)
    assert fast.calls == [] and slow.calls == [(grid, args, kw)]


def test_hot_guard_miss_goes_to_the_slow_path_and_other_errors_propagate():
    hot, slow, _ = _hot()
    hot.set(Recorder(Miss()), 1, (), ())
    hot[(1,)](5)
    assert slow.calls == [((1,), (5,), {})]
    hot.set(Recorder(ValueError("boom")), 1, (), ())
    with pytest.raises(ValueError, match="boom"):
        hot[(1,)](5)
    assert len(slow.calls) == 1


def test_a_kernel_and_its_hot_path_are_collected():
    import gc
    import weakref
    import tilec as tc

    def body(X: tc.Tensor):
        pass

    k = tc.kernel(body)
    assert k._native_hot is not None
    ref = weakref.ref(k)
    del k
    gc.collect()
    assert ref() is None
