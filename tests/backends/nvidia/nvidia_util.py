"""Helpers for the NVIDIA backend tests: compile kernels (ptxas always runs), wrap device
functions with tile arguments into kernels."""
from __future__ import annotations

from tilec.backends.nvidia import CompiledKernel, compile_kernel
from tilec.ir.core import Function, Module
from tilec.ir.parser import parse_module
from tilec.ir.printer import print_module
from tilec.ir.types import PointerType, ScalarType, TensorType, TileType

ARCHS = ("sm_80", "sm_90a")



def is_kernel(fn: Function) -> bool:
    """Kernels take no tiles and return nothing."""
    return not fn.result_types and not any(isinstance(a.type, TileType) for a in fn.args)


def compile_checked(module: Module, name: str, arch: str, **kw) -> CompiledKernel:
    """compile_kernel, and check that ptxas assembled the PTX."""
    k = compile_kernel(module, name, arch=arch, **kw)
    assert k.cubin, f"ptxas produced no cubin for @{name} on {arch}"
    assert k.resources is not None and k.resources.registers > 0
    assert f".target {arch}" in k.ptx
    return k


def _tensor_of(t) -> str:
    elem = t.element if isinstance(t, TileType) else t.dtype
    rank = t.rank if isinstance(t, TileType) else 1
    return "tensor<" + "?x" * rank + elem.name + ">"


def wrap_as_kernel(module: Module, fn: Function) -> tuple[Module, str]:
    """A module with a kernel @<fn>_kernel that load_views each tile argument from a
    tensor, passes scalars through, calls @fn and store_views (tiles) or stores (scalars)
    its results into tensors. The inline pass then removes the call."""
    params, lines, call_args = [], ["  %c0 = constant {value = 0} : i32"], []
    for i, a in enumerate(fn.args):
        t = a.type
        if isinstance(t, TileType):
            params.append(f"%in{i}: {_tensor_of(t)}")
            zeros = ", ".join(["%c0"] * t.rank)
            lines.append(f"  %a{i} = load_view %in{i}, [{zeros}] : {TileType(t.shape, t.element)}")
            call_args.append(f"%a{i}")
        else:
            assert isinstance(t, (ScalarType, PointerType, TensorType))
            params.append(f"%s{i}: {t}")
            call_args.append(f"%s{i}")
    results = [f"%r{j}" for j in range(len(fn.result_types))]
    types = ", ".join(str(TileType(t.shape, t.element)) if isinstance(t, TileType) else str(t)
                      for t in fn.result_types)
    call = f"call {', '.join(call_args)} {{callee = @{fn.name}}}"
    lines.append(f"  {', '.join(results)} = {call} : {types}" if results else f"  {call}")
    for j, t in enumerate(fn.result_types):
        params.append(f"%out{j}: {_tensor_of(t)}")
        if isinstance(t, TileType):
            zeros = ", ".join(["%c0"] * t.rank)
            lines.append(f"  store_view %out{j}, [{zeros}], %r{j}")
        else:
            lines.append(f"  %p{j} = tensor_ptr %out{j} : ptr<{t}>")
            lines.append(f"  store %p{j}, %r{j}")
    name = f"{fn.name}_kernel"
    text = (f"func @{name}({', '.join(params)}) {{\n" + "\n".join(lines) + "\n  return\n}\n")
    return parse_module(print_module(module) + "\n" + text), name
