"""`@tc.kernel` and `@tc.func`: the kernel object, specialisation, compilation and launch.

    @tc.kernel
    def add(X: tc.Tensor, Y: tc.Tensor, n: int, BLOCK: tc.constexpr): ...

    add[(tc.cdiv(n, 1024),)](x, y, n, BLOCK=1024)   # compile (cached) and run
    add.ir(x, y, n, BLOCK=1024)                    # the frontend's IR module, not run
    add.compile("X: tensor<?xf32>, Y: tensor<?xf32>, n: i32, BLOCK=1024")

A launch specialises on: per tensor parameter its dtype, rank, whether the last dimension
is contiguous and whether every row starts 16-byte aligned (`rows_aligned`); per int
parameter whether it equals 1 (then it is the constant 1 inside the kernel) and whether it
is divisible by 16; the constexpr values; num_warps and num_stages. The facts become
function-argument attributes (`{contiguous = true, aligned = 16}`, `{divisible = 16}`,
`{equal_to_1 = true}`), and constexprs and options become function attributes.
"""
from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from tilec.errors import CompileError, DTypeError, IRError, LaunchError, Location, TilecError
from tilec.backends.abi import is_packed, stride_bits
from tilec.frontend.codegen import CodeGen, JITFunction, get_source
from tilec.frontend.launch import (NoFastKey, device_of, fast_key, is_gpu_tensor,
                                   runs_on_gpu as runtime_on_gpu, to_host_copy)
from tilec.frontend.source import caller_location
from tilec.runtime.launcher import GuardMiss, IntGuard, TensorGuard, native_module
from tilec.runtime.tensor import rows_aligned
from tilec.frontend.values import Emitter, TensorArg, TVal, annotation_kind, constexpr
from tilec.ir import dtypes as dt
from tilec.ir.builder import Builder
from tilec.ir.core import Block, Function, Module, Region
from tilec.ir.dtypes import DType
from tilec.ir.types import ScalarType, TensorType, Type
from tilec.ir.verifier import verify

OPTIONS = ("num_warps", "num_stages", "num_ctas", "fast_math")


class Func(JITFunction):
    """A device function, inlined wherever a kernel (or another func) calls it."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TilecError(f"@tc.func '{self.__name__}' can only be called inside a @tc.kernel "
                         "or another @tc.func")

    def __repr__(self) -> str:
        return f"<tc.func {self.__name__}>"


def func(fn: Callable) -> Func:
    """Decorator: a device function inlined at each call site (constexpr params allowed)."""
    return Func(fn)


@dataclass(frozen=True)
class Param:
    name: str
    kind: str | None  # 'tensor' | 'int' | 'float' | 'bool' | 'constexpr' | None (from value)
    default: Any = inspect.Parameter.empty


@dataclass
class ArgSpec:
    """How one runtime parameter is specialised: its IR type and what is known about it."""

    name: str
    kind: str
    type: Type
    attrs: dict[str, Any] = field(default_factory=dict)
    contiguous: bool = False
    const: Any = None  # an int parameter equal to 1 becomes this constant

    def key(self) -> tuple:
        return (self.kind, str(self.type), tuple(sorted(self.attrs.items())))


@dataclass
class Compiled:
    """One specialisation: the module after the pass pipeline, and which params it takes."""

    module: Module
    name: str
    runtime_params: list[str]


def _const_key(v: Any) -> Any:
    if isinstance(v, tuple):
        return ("tuple",) + tuple(_const_key(x) for x in v)
    if isinstance(v, (bool, int, float, str, DType)) or v is None:
        return (type(v).__name__, v)
    try:
        hash(v)
    except TypeError:
        raise TypeError(type(v).__name__) from None
    return ("obj", id(v))


def _attr_value(v: Any) -> Any:
    """A constexpr value as an IR attribute (dtypes by name, tuples as lists)."""
    if isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, DType):
        return v.name
    if isinstance(v, tuple):
        return [_attr_value(x) for x in v]
    if v is None:
        return "None"
    return getattr(v, "__name__", type(v).__name__)


def _int_type(value: int, name: str) -> ScalarType:
    if dt.int32.min <= value <= dt.int32.max:
        return ScalarType(dt.int32)
    if dt.int64.min <= value <= dt.int64.max:
        return ScalarType(dt.int64)
    raise LaunchError(f"argument '{name}' = {value} does not fit in 64 bits")


def as_host_tensor(v: Any, name: str) -> Any:
    """A numpy array or PackedTensor for a tensor argument, or a LaunchError naming it."""
    from tilec.runtime.tensor import PackedTensor
    if isinstance(v, (np.ndarray, PackedTensor)):
        return v
    if hasattr(v, "numpy") and callable(v.numpy):
        out = v.numpy()  # torch CPU tensors share memory this way
        if isinstance(out, np.ndarray):
            return out
    if hasattr(v, "__array__") and not isinstance(v, (int, float, bool, np.generic)):
        return np.asarray(v)
    raise LaunchError(f"argument '{name}' must be a tensor (a numpy array, a PackedTensor or "
                      f"an object with __array__), got {type(v).__name__}")


class Kernel(JITFunction):
    """A `@tc.kernel`: launch with `kernel[grid](*args, **constexprs)`."""

    def __init__(self, fn: Callable, signature: str | None = None,
                 options: dict[str, Any] | None = None):
        super().__init__(fn)
        self.signature = signature
        self.default_options = check_options(dict(options or {}), CompileError)
        sig = inspect.signature(fn)
        self.params: list[Param] = []
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise CompileError(f"kernel '{fn.__name__}' cannot take *args or **kwargs")
            if p.name in OPTIONS:
                raise CompileError(f"'{p.name}' is a launch option and cannot be a parameter "
                                   f"of kernel '{fn.__name__}'")
            kind = annotation_kind(p.annotation, fn.__globals__)
            default = p.default.value if isinstance(p.default, constexpr) else p.default
            self.params.append(Param(p.name, kind, default))
        self._cache: dict[tuple, Compiled] = {}
        self._entries: dict[tuple, Callable[..., None]] = {}
        self._hot: _HotLaunch | None = None
        native = native_module()
        self._native_hot = native.Hot(self._slow_launch, GuardMiss) if native else None
        # Fast-path keys: constexprs by value, everything else by what specialisation uses.
        key_of = {p.name: (_const_key if p.kind == "constexpr" else fast_key)
                  for p in self.params}
        self._key_fns = [key_of[p.name] for p in self.params]
        self._kw_key_fns = dict(key_of, **{o: _const_key for o in OPTIONS})
        self.compile_count = 0  # frontend runs (tests check the cache with it)

    def __repr__(self) -> str:
        return f"<tc.kernel {self.__name__}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TilecError(f"kernel '{self.__name__}' needs a grid: {self.__name__}[grid](...)")

    def __getitem__(self, grid: Any) -> Callable[..., None]:
        if self._native_hot is not None:  # the closure below, in C (runtime/_native.c)
            return self._native_hot[grid]

        def launch(*args: Any, **kwargs: Any) -> None:
            # The hot path: the same specialisation as the last GPU launch. The launcher's
            # generated code checks the specialisation's facts while it reads the arguments
            # (GuardMiss when one differs) and calls the driver.
            hot = self._hot
            if hot is not None and grid.__class__ in _PLAIN_GRIDS and len(args) == hot.nargs \
                    and kwargs == hot.kwargs and tuple(map(type, kwargs.values())) == hot.kw_types:
                try:
                    return hot.launch(grid, args)
                except GuardMiss:
                    pass
            self._slow_launch(grid, args, kwargs, depth=2)
        return launch

    def _slow_launch(self, grid: Any, args: tuple, kwargs: dict[str, Any],
                     depth: int = 1) -> None:
        """A launch off the hot path; errors point at the user's launch line, `depth`
        frames up (the C hot path calls this straight from the user's frame)."""
        try:
            self._launch(grid, args, kwargs)
        except TilecError as e:
            if e.loc is None:  # a launch error: point at the user's launch line
                e.loc = caller_location(depth)
            raise e.with_traceback(None) from None

    # -- binding -----------------------------------------------------------------------
    def bind(self, args: tuple, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict]:
        """Parameter name -> value for a call, plus the launch options."""
        kwargs = dict(kwargs)
        options = {k: kwargs.pop(k) for k in OPTIONS if k in kwargs}
        check_options(options, LaunchError)
        options = {**self.default_options, **options}
        names = [p.name for p in self.params]
        if len(args) > len(names):
            raise LaunchError(f"kernel '{self.__name__}' takes {len(names)} arguments "
                              f"({', '.join(names)}) but {len(args)} were given")
        bound = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names:
                raise LaunchError(f"kernel '{self.__name__}' has no parameter '{k}'",
                                  hint=f"its parameters: {', '.join(names)}")
            if k in bound:
                raise LaunchError(f"argument '{k}' of kernel '{self.__name__}' given twice")
            bound[k] = v
        for p in self.params:
            if p.name not in bound:
                if p.default is not inspect.Parameter.empty:
                    bound[p.name] = p.default
                elif p.kind == "constexpr":
                    raise LaunchError(f"missing value for constexpr parameter '{p.name}' of "
                                      f"kernel '{self.__name__}'",
                                      hint=f"pass it by keyword, e.g. {p.name}=128")
                else:
                    raise LaunchError(f"missing argument '{p.name}' of kernel "
                                      f"'{self.__name__}'")
        return {p.name: bound[p.name] for p in self.params}, options

    def specialise(self, values: dict[str, Any]) -> tuple[list[ArgSpec], dict[str, Any]]:
        """ArgSpecs of the runtime params and the constexpr values, from argument values."""
        specs, consts = [], {}
        for p in self.params:
            v = values[p.name]
            kind = p.kind or self._infer_kind(p.name, v)
            if kind == "constexpr":
                if isinstance(v, constexpr):
                    v = v.value
                try:
                    _const_key(v)
                except TypeError:
                    raise LaunchError(f"constexpr parameter '{p.name}' got an unhashable "
                                      f"{type(v).__name__}") from None
                if isinstance(v, np.ndarray):
                    raise LaunchError(f"constexpr parameter '{p.name}' got an array")
                consts[p.name] = v.item() if isinstance(v, np.generic) else v
            elif kind == "tensor":
                specs.append(self._tensor_spec(p.name, v))
            elif kind == "int":
                if isinstance(v, (float, np.floating)) or not isinstance(v, (int, np.integer)):
                    raise LaunchError(f"parameter '{p.name}' is an int but got "
                                      f"{type(v).__name__} {v!r}",
                                      hint="convert it with int(...) or annotate it as float")
                value = int(v)
                attrs: dict[str, Any] = {}
                if value == 1:
                    attrs["equal_to_1"] = True
                if value % 16 == 0:
                    attrs["divisible"] = 16
                specs.append(ArgSpec(p.name, "int", _int_type(value, p.name), attrs,
                                     const=1 if value == 1 else None))
            elif kind == "float":
                if isinstance(v, (bool, np.bool_)) or not isinstance(
                        v, (int, float, np.integer, np.floating)):
                    raise LaunchError(f"parameter '{p.name}' is a float but got "
                                      f"{type(v).__name__} {v!r}")
                specs.append(ArgSpec(p.name, "float", ScalarType(dt.float32)))
            elif kind == "bool":
                if not isinstance(v, (bool, np.bool_)):
                    raise LaunchError(f"parameter '{p.name}' is a bool but got "
                                      f"{type(v).__name__} {v!r}")
                specs.append(ArgSpec(p.name, "bool", ScalarType(dt.bool_)))
        return specs, consts

    @staticmethod
    def _infer_kind(name: str, v: Any) -> str:
        if isinstance(v, (bool, np.bool_)):
            return "bool"
        if isinstance(v, (int, np.integer)):
            return "int"
        if isinstance(v, (float, np.floating)):
            return "float"
        if isinstance(v, constexpr):
            return "constexpr"
        if v is None or isinstance(v, (str, DType, tuple)):
            return "constexpr"
        return "tensor"

    def _tensor_spec(self, name: str, v: Any) -> ArgSpec:
        if is_gpu_tensor(v):
            return self._device_tensor_spec(name, v)
        from tilec.runtime.tensor import tensor_info
        arr = as_host_tensor(v, name)
        try:
            info = tensor_info(arr)
        except DTypeError as e:
            raise LaunchError(f"argument '{name}' has an unsupported dtype: {e.message}",
                              hint=e.hint) from None
        except LaunchError as e:
            raise LaunchError(f"argument '{name}': {e.message}", hint=e.hint) from None
        rank = len(info.shape)
        if rank == 0:
            raise LaunchError(f"argument '{name}' is a 0-d array; tensors need a dimension",
                              hint="pass a Python number for a scalar parameter")
        contiguous = info.strides[-1] == 1 or info.shape[-1] <= 1
        attrs: dict[str, Any] = {}
        if contiguous:
            attrs["contiguous"] = True
        # (hasattr(arr, "data") raises for ml_dtypes arrays: numpy has no buffer format for them)
        data = arr if isinstance(arr, np.ndarray) else getattr(arr, "data", arr)
        if isinstance(data, np.ndarray) and rows_aligned(data.ctypes.data, data.strides, 8):
            attrs["aligned"] = 16  # (numpy strides count bytes)
        return ArgSpec(name, "tensor", TensorType(info.dtype, rank), attrs, contiguous)

    @staticmethod
    def _device_tensor_spec(name: str, v: Any) -> ArgSpec:
        from tilec.runtime.launcher import device_tensor_info
        try:
            dtype, shape, strides, ptr = device_tensor_info(v)
        except LaunchError as e:
            raise LaunchError(f"argument '{name}' {e.message}", hint=e.hint) from None
        if not shape:
            raise LaunchError(f"argument '{name}' is a 0-d tensor; tensors need a dimension",
                              hint="pass a Python number for a scalar parameter")
        attrs: dict[str, Any] = {}
        # The same facts as fast_key's (tilec/frontend/launch.py), so the two agree.
        contiguous = shape[-1] <= 1 or strides[-1] == (dtype.bits if is_packed(dtype) else 1)
        if contiguous:
            attrs["contiguous"] = True
        if rows_aligned(ptr, strides, stride_bits(dtype)):
            attrs["aligned"] = 16
        return ArgSpec(name, "tensor", TensorType(dtype, len(shape)), attrs, contiguous)

    # -- compilation -------------------------------------------------------------------
    def build(self, specs: list[ArgSpec], consts: dict[str, Any],
              options: dict[str, Any] | None = None) -> Module:
        """Run the frontend for one specialisation; the verified module."""
        self.compile_count += 1
        src = get_source(self.fn)
        block_types = [s.type for s in specs]
        func_attrs: dict[str, Any] = {k: _attr_value(v) for k, v in consts.items()}
        func_attrs.update(options or {})
        loc = Location(src.file, src.tree.lineno + src.line_offset,
                       src.tree.col_offset + 1 + src.col_offset)
        f = Function(self.__name__, Region(Block(block_types, [s.name for s in specs])), [],
                     func_attrs, [dict(s.attrs) for s in specs], loc)
        em = Emitter(Builder.at_end(f.body.block))
        scope: dict[str, Any] = {}
        by_name = {s.name: (s, a) for s, a in zip(specs, f.args)}
        for p in self.params:
            if p.name in consts:
                scope[p.name] = consts[p.name]
                continue
            s, a = by_name[p.name]
            if s.kind == "tensor":
                scope[p.name] = TensorArg(a, p.name, s.contiguous)
            elif s.const is not None:
                scope[p.name] = s.const
            else:
                scope[p.name] = TVal(a)
        cg = CodeGen(em, src, scope, (self.fn,), is_kernel=True)
        em.loc = f.loc
        cg.body()
        em.loc = cg.loc(src.tree.body[-1]) if src.tree.body else f.loc
        em.create("return", [])
        module = Module([f], source=src.file)
        try:
            verify(module)
        except IRError as e:
            raise CompileError(f"internal error: the frontend produced invalid IR: {e.message}",
                               e.loc, "please report this as a tilec bug") from e
        return module

    def ir(self, *args: Any, **kwargs: Any) -> Module:
        """The frontend's IR module for these arguments (as a launch would see them)."""
        values, options = self.bind(args, kwargs)
        specs, consts = self.specialise(values)
        return _clean(lambda: self.build(specs, consts, options))

    def compile(self, signature: str | None = None) -> Module:
        """The frontend's IR module for a signature in IR type syntax, e.g.
        "X: tensor<?x?xf16>, n: i32 {divisible = 16}, BLOCK=1024"."""
        text = signature if signature is not None else self.signature
        if text is None:
            raise CompileError(f"kernel '{self.__name__}' has no signature",
                               hint="pass one, or give @tc.kernel(signature=...)")
        specs, consts, options = _clean(lambda: parse_signature(self, text))
        options = {**self.default_options, **options}
        return _clean(lambda: self.build(specs, consts, options))

    # -- launch ------------------------------------------------------------------------
    def launch(self, grid: Any, *args: Any, **kwargs: Any) -> None:
        _clean(lambda: self._launch(grid, args, kwargs))

    def _launch(self, grid: Any, args: tuple, kwargs: dict[str, Any]) -> None:
        try:
            key = (tuple(f(a) for f, a in zip(self._key_fns, args)), len(args),
                   tuple((k, self._kw_key_fns[k](v)) for k, v in kwargs.items()))
        except (NoFastKey, KeyError, TypeError):
            key = None
        entry = self._entries.get(key) if key is not None else None
        if entry is None:
            entry = self._prepare(args, kwargs)
            if key is not None:
                self._entries[key] = entry
        entry(grid, args, kwargs)
        if isinstance(entry, _GpuEntry) and entry.prefix == len(args):
            if self._native_hot is not None:
                self._native_hot.set(entry.launcher.launch, len(args), tuple(kwargs),
                                     tuple(kwargs.values()))
            else:
                self._hot = _HotLaunch(entry.launcher.launch, len(args), dict(kwargs),
                                       tuple(map(type, kwargs.values())))

    def _prepare(self, args: tuple, kwargs: dict[str, Any]) -> Callable[..., None]:
        """Bind, check and specialise a call in full; compile; the entry that runs it."""
        values, options = self.bind(args, kwargs)
        specs, consts = self.specialise(values)
        tensors = [values[s.name] for s in specs if s.kind == "tensor"]
        runtime = [s.name for s in specs]
        if runtime_on_gpu(tensors):
            launcher = self._gpu_launcher(specs, consts, options, device_of(tensors))
            return _GpuEntry(self, launcher, runtime, len(args))
        compiled = self._compile_for_interpreter(specs, consts, options)
        return lambda grid, a, kw: self._interpret(compiled, grid, a, kw)

    def _compile_for_interpreter(self, specs: list[ArgSpec], consts: dict[str, Any],
                                 options: dict[str, Any]) -> Compiled:
        key = (tuple(s.key() for s in specs),
               tuple((k, _const_key(v)) for k, v in consts.items()),
               tuple(sorted(options.items())))
        compiled = self._cache.get(key)
        if compiled is None:
            module = _run_pipeline(self.build(specs, consts, options), options)
            compiled = Compiled(module, self.__name__, [s.name for s in specs])
            self._cache[key] = compiled
        return compiled

    def _interpret(self, compiled: Compiled, grid: Any, args: tuple,
                   kwargs: dict[str, Any]) -> None:
        from tilec.runtime import interpreter
        values, _ = self.bind(args, kwargs)
        g = _grid(grid, values)
        if 0 in g:
            return
        run_args, write_backs = [], []
        for name in compiled.runtime_params:
            v = values[name]
            host, write_back = to_host_copy(v)
            if write_back is not None:
                write_backs.append((write_back, host))
            run_args.append(host)
        run_args = [as_host_tensor(v, n) if hasattr(v, "shape") or hasattr(v, "__array__")
                    else v for v, n in zip(run_args, compiled.runtime_params)]
        try:
            interpreter.run(compiled.module, compiled.name, run_args, g)
        finally:
            for write_back, host in write_backs:
                write_back(host)

    def _gpu_launcher(self, specs: list[ArgSpec], consts: dict[str, Any],
                      options: dict[str, Any], device: int) -> Any:
        from tilec.backends.nvidia.compiler import compile_kernel
        from tilec.runtime import cache, cuda
        from tilec.runtime.launcher import Launcher
        module = self.build(specs, consts, options)
        arch = cuda.device_properties(device).arch
        warps = int(options.get("num_warps", 4))
        key = self.gpu_cache_key(module, specs, options, arch)
        compiled = cache.get(key)
        if compiled is None:
            compiled = compile_kernel(module, self.__name__, arch, warps)
            cache.put(key, compiled)
        return Launcher(compiled, device, arg_types=[s.type for s in specs],
                        guards=[_guard(s) for s in specs])


    @staticmethod
    def gpu_cache_key(module: Module, specs: list[ArgSpec], options: dict[str, Any],
                      arch: str) -> str:
        """The compile cache's key of one GPU specialisation: what a launch looks up (the
        autotuner stores the candidates it compiles in other processes under it)."""
        from tilec.ir.printer import print_module
        from tilec.runtime import cache
        return cache.key(print_module(module), specialization=[s.key() for s in specs],
                         options=options, arch=arch)


def _guard(spec: ArgSpec) -> TensorGuard | IntGuard | None:
    """The facts of an argument that its specialisation depends on, for the launcher."""
    if spec.kind == "tensor":
        return TensorGuard(spec.type.dtype, spec.type.rank, "contiguous" in spec.attrs,
                           "aligned" in spec.attrs)
    if spec.kind == "int":
        return IntGuard("equal_to_1" in spec.attrs, spec.attrs.get("divisible") == 16)
    return None


_PLAIN_GRIDS = frozenset({tuple, int})


@dataclass(frozen=True)
class _HotLaunch:
    """The last GPU launch, to repeat without binding: the launcher's function, how many
    positional arguments it takes and the keyword arguments (constexprs) it had."""

    launch: Callable[..., None]
    nargs: int
    kwargs: dict[str, Any]
    kw_types: tuple[type, ...]


class _GpuEntry:
    """A warm GPU specialisation: picks the runtime arguments and launches."""

    def __init__(self, kernel: Kernel, launcher: Any, runtime: list[str], num_positional: int):
        self.kernel = kernel
        self.launcher = launcher
        names = [p.name for p in kernel.params]
        positions = [names.index(n) for n in runtime]
        # Common case: runtime arguments come first and positionally; constexprs follow.
        self.prefix = len(runtime) if positions == list(range(len(runtime))) and \
            len(runtime) <= num_positional else None
        self.runtime = runtime

    def __call__(self, grid: Any, args: tuple, kwargs: dict[str, Any]) -> None:
        if self.prefix is not None:
            runtime = args[:self.prefix]
        else:
            values, _ = self.kernel.bind(args, kwargs)
            runtime = [values[n] for n in self.runtime]
        if callable(grid):
            values, _ = self.kernel.bind(args, kwargs)
            grid = _grid(grid, values)
        try:
            self.launcher.launch(grid, runtime)
        except GuardMiss as miss:
            # The key matched, so an argument is bad in a way the key does not see: name it.
            self.launcher.validate(runtime)
            raise LaunchError(f"kernel '{self.kernel.__name__}': cannot pass the arguments "
                              f"({miss.__cause__})") from None


def _clean(thunk: Callable[[], Any]) -> Any:
    """Run `thunk`; a tilec error surfaces without the compiler's frames in its traceback."""
    try:
        return thunk()
    except TilecError as e:
        raise e.with_traceback(None) from None


def _run_pipeline(module: Module, options: dict[str, Any]) -> Module:
    from tilec.ir.passes.manager import DEFAULT_PIPELINE, PassOptions, run_passes
    fields = getattr(PassOptions, "__dataclass_fields__", {})
    opts = PassOptions(**{k: v for k, v in options.items() if k in fields})
    return run_passes(module, DEFAULT_PIPELINE, opts)


def _grid(grid: Any, values: dict[str, Any]) -> tuple[int, ...]:
    if callable(grid):
        grid = grid(dict(values))
    if isinstance(grid, (int, np.integer)) and not isinstance(grid, bool):
        grid = (grid,)
    if not isinstance(grid, (tuple, list)) or not 1 <= len(grid) <= 3 or not all(
            isinstance(g, (int, np.integer)) and not isinstance(g, bool) and g >= 0
            for g in grid):
        raise LaunchError(f"the grid must be 1 to 3 non-negative ints (or a callable giving "
                          f"them), got {grid!r}")
    return tuple(int(g) for g in grid)


def kernel(fn: Callable | None = None, *, signature: str | None = None,
           fast_math: bool | None = None) -> Any:
    """Decorator: `@tc.kernel` or `@tc.kernel(signature="X: tensor<?xf32>, BLOCK=256")`.

    `fast_math=True` compiles exp, exp2, log, log2, rsqrt, sin, cos and f32 division to the
    target's approximate instructions (PTX `ex2.approx`, `div.full.f32`, ...: a few ulp, the
    accuracy of Triton's defaults); a launch may override it with `fast_math=`. The default
    is accurate (within 1.5 ulp, division correctly rounded). The interpreter is always exact.
    """
    options = {} if fast_math is None else {"fast_math": fast_math}
    try:
        check_options(options, CompileError)
    except CompileError as e:  # point at the decorator line
        e.loc = caller_location(1)
        raise e.with_traceback(None) from None
    if fn is None:
        return lambda f: Kernel(f, signature, options)
    return Kernel(fn, signature, options)


def check_options(options: dict[str, Any], error: type) -> dict[str, Any]:
    """`options` if each launch option has a valid value, else `error` naming it."""
    for k, v in options.items():
        if k == "fast_math":
            if not isinstance(v, bool):
                raise error(f"fast_math must be True or False, got {v!r}")
        elif isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise error(f"{k} must be a positive int, got {v!r}")
    return options


# ---------------------------------------------------------------------------------------
# signatures in IR type syntax

_ITEM = re.compile(r"\s*(?P<name>[A-Za-z_]\w*)\s*(?::\s*(?P<type>[^{=]+?)\s*"
                   r"(?P<attrs>\{[^}]*\})?|=\s*(?P<value>.+?))\s*$")
_TENSOR = re.compile(r"tensor<(?P<dims>(\?x)+)(?P<dtype>\w+)>")


def _split_items(text: str) -> list[str]:
    items, depth, cur = [], 0, ""
    for ch in text:
        if ch in "<({[":
            depth += 1
        elif ch in ">)}]":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        items.append(cur)
    return items


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        try:
            return dt.dtype(text)
        except DTypeError:
            raise CompileError(f"cannot read the constexpr value {text!r}",
                               hint="use a Python literal or a dtype name") from None


def parse_signature(k: Kernel, text: str) -> tuple[list[ArgSpec], dict[str, Any], dict]:
    given: dict[str, tuple[str | None, str | None, str | None]] = {}
    options: dict[str, Any] = {}
    for item in _split_items(text):
        m = _ITEM.match(item)
        if not m:
            raise CompileError(f"cannot read signature item {item.strip()!r}",
                               hint="write `name: type` (tensor<?x?xf16>, i32, f32, bool) or "
                                    "`NAME=value` for constexprs")
        if m["name"] in OPTIONS:
            options[m["name"]] = _parse_value(m["value"] or "")
            continue
        given[m["name"]] = (m["type"], m["attrs"], m["value"])
    names = {p.name for p in k.params}
    for n in given:
        if n not in names:
            raise CompileError(f"signature names '{n}', which is not a parameter of kernel "
                               f"'{k.__name__}'")
    specs, consts = [], {}
    for p in k.params:
        if p.name not in given:
            if p.default is not inspect.Parameter.empty and p.kind in ("constexpr", None):
                consts[p.name] = p.default
                continue
            raise CompileError(f"the signature does not give parameter '{p.name}' of kernel "
                               f"'{k.__name__}'")
        type_text, attr_text, value_text = given[p.name]
        if value_text is not None:
            if p.kind not in ("constexpr", None):
                raise CompileError(f"parameter '{p.name}' is a {p.kind}, not a constexpr: give "
                                   f"it a type (`{p.name}: ...`)")
            consts[p.name] = _parse_value(value_text)
            continue
        if p.kind == "constexpr":
            raise CompileError(f"parameter '{p.name}' is a tc.constexpr: give its value "
                               f"(`{p.name}=...`)")
        attrs = _parse_attrs(attr_text)
        tm = _TENSOR.fullmatch(type_text.strip())
        if tm:
            if p.kind not in ("tensor", None):
                raise CompileError(f"parameter '{p.name}' is a {p.kind}, not a tensor")
            d = dt.dtype(tm["dtype"])
            rank = tm["dims"].count("?")
            specs.append(ArgSpec(p.name, "tensor", TensorType(d, rank), attrs,
                                 bool(attrs.get("contiguous"))))
            continue
        d = dt.dtype(type_text.strip())
        kind = "bool" if d.is_bool else "int" if d.is_int else "float"
        if p.kind not in (kind, None):
            raise CompileError(f"parameter '{p.name}' is annotated {p.kind} but the signature "
                               f"gives {d}")
        specs.append(ArgSpec(p.name, kind, ScalarType(d), attrs,
                             const=1 if attrs.get("equal_to_1") else None))
    return specs, consts, check_options(options, CompileError)


def _parse_attrs(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    out = {}
    for part in _split_items(text.strip()[1:-1]):
        if "=" not in part:
            raise CompileError(f"cannot read attribute {part.strip()!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = ast.literal_eval(v.strip().replace("true", "True").replace(
            "false", "False"))
    return out

