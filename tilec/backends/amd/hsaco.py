"""HSA code objects: link a relocatable AMDGPU object into a HSACO with `ld.lld -shared`,
read the kernel metadata back out of it, and disassemble it.

The metadata is the msgpack document in the ELF note of type NT_AMDGPU_METADATA (32, note
name "AMDGPU"); AMDGPUUsage "Code Object V4 Metadata" lists its keys. A few dozen lines of
ELF and msgpack reading here spare tilec a dependency.
"""
from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tilec.config as config
from tilec.errors import TilecError

ROCM_LLD = "/opt/rocm/llvm/bin/ld.lld"
_VERSIONS = range(30, 13, -1)   # versioned Debian/Ubuntu binaries, newest first


class LinkError(TilecError):
    """ld.lld rejected the object (an internal error of the compiler)."""


# -- finding the tools -----------------------------------------------------------------------


def lld_path() -> str | None:
    """TILEC_LLD, else `ld.lld` on PATH, else ROCm's, else the newest `ld.lld-N` on PATH
    (Debian's `lld-19` package installs `ld.lld-19`)."""
    explicit = config.lld()
    if explicit:
        return explicit
    found = shutil.which("ld.lld")
    if found:
        return found
    if Path(ROCM_LLD).is_file():
        return ROCM_LLD
    for v in _VERSIONS:
        found = shutil.which(f"ld.lld-{v}")
        if found:
            return found
    return None


def tool_version(exe: str) -> str:
    """The first line of `exe --version` (part of the compile cache key)."""
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True)
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else ""


LLD_HINT = ("install LLVM's linker: `apt-get install lld` (Debian/Ubuntu), or use ROCm's "
            f"{ROCM_LLD}, or set TILEC_LLD")


def link(obj: bytes, name: str) -> bytes:
    """The HSACO (`ld.lld -shared`) of a relocatable object; a TilecError without ld.lld."""
    exe = lld_path()
    if exe is None:
        raise TilecError(f"no ld.lld found to link the AMD code object of @{name}", hint=LLD_HINT)
    with tempfile.TemporaryDirectory(prefix="tilec-") as tmp:
        src, out = Path(tmp) / "kernel.o", Path(tmp) / "kernel.hsaco"
        src.write_bytes(obj)
        try:
            proc = subprocess.run([exe, "-shared", str(src), "-o", str(out)],
                                  capture_output=True, text=True)
        except OSError as e:
            raise TilecError(f"cannot run ld.lld {exe}: {e}", hint=LLD_HINT) from None
        if proc.returncode != 0:
            raise LinkError(f"ld.lld failed on @{name}:\n{proc.stderr.strip()}",
                            hint="this is a bug in tilec's code generation; please report it")
        return out.read_bytes()


def objdump_path(arch: str) -> str | None:
    """An llvm-objdump that knows `arch` (gfx942 needs LLVM 17 or newer; Debian 12's plain
    llvm-objdump is 14): the newest versioned one first, then the plain one."""
    candidates = [shutil.which(f"llvm-objdump-{v}") for v in _VERSIONS]
    candidates += [f"/usr/lib/llvm-{v}/bin/llvm-objdump" for v in _VERSIONS]
    candidates += [shutil.which("llvm-objdump"), "/opt/rocm/llvm/bin/llvm-objdump"]
    for exe in candidates:
        if exe and Path(exe).is_file() and _knows(exe, arch):
            return exe
    return None


# The first LLVM release whose disassembler knows each arch (LLVM release notes).
_OBJDUMP_SINCE = {"gfx90a": 13, "gfx942": 17, "gfx950": 20}


def _knows(exe: str, arch: str) -> bool:
    m = re.search(r"LLVM version (\d+)", subprocess.run([exe, "--version"], capture_output=True,
                                                        text=True).stdout)
    return m is not None and int(m.group(1)) >= _OBJDUMP_SINCE.get(arch, 1000)


def disassemble(hsaco: bytes, arch: str) -> str:
    """`llvm-objdump -d` of a code object (for tests and curious users)."""
    exe = objdump_path(arch)
    if exe is None:
        raise TilecError(f"no llvm-objdump that knows {arch}",
                         hint="apt-get install llvm-19 (Debian 12), or use ROCm's")
    with tempfile.TemporaryDirectory(prefix="tilec-") as tmp:
        path = Path(tmp) / "kernel.hsaco"
        path.write_bytes(hsaco)
        proc = subprocess.run([exe, "-d", f"--mcpu={arch}", str(path)], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise TilecError(f"llvm-objdump failed:\n{proc.stderr.strip()}")
        return proc.stdout


# -- the metadata note ---------------------------------------------------------------------


@dataclass(frozen=True)
class KernargField:
    """One entry of a kernel's `.args` metadata."""

    name: str
    offset: int
    size: int
    value_kind: str      # "global_buffer", "by_value", "hidden_..."

    @property
    def hidden(self) -> bool:
        return self.value_kind.startswith("hidden_")


@dataclass(frozen=True)
class KernelMetadata:
    """What the code object says about one kernel (the keys of AMDGPUUsage's tables)."""

    name: str
    symbol: str
    args: tuple[KernargField, ...]
    kernarg_size: int
    kernarg_align: int
    group_segment_bytes: int      # static LDS
    private_segment_bytes: int    # scratch per work-item
    sgprs: int
    vgprs: int
    agprs: int
    sgpr_spills: int
    vgpr_spills: int
    wavefront_size: int
    max_flat_workgroup_size: int


def metadata_document(hsaco: bytes) -> dict[str, Any]:
    """The msgpack document of the code object's NT_AMDGPU_METADATA note."""
    for name, note_type, desc in _notes(hsaco):
        if name == b"AMDGPU" and note_type == NT_AMDGPU_METADATA:
            value, _ = _unpack(desc, 0)
            return value
    raise TilecError("the code object has no AMDGPU metadata note")


def kernel_metadata(hsaco: bytes, name: str) -> KernelMetadata:
    """The metadata of kernel `name` in a code object."""
    for k in metadata_document(hsaco).get("amdhsa.kernels", []):
        if k.get(".name") == name:
            args = tuple(KernargField(a.get(".name", ""), a[".offset"], a[".size"],
                                      a[".value_kind"]) for a in k.get(".args", []))
            return KernelMetadata(
                name=name, symbol=k[".symbol"], args=args,
                kernarg_size=k[".kernarg_segment_size"],
                kernarg_align=k[".kernarg_segment_align"],
                group_segment_bytes=k[".group_segment_fixed_size"],
                private_segment_bytes=k[".private_segment_fixed_size"],
                sgprs=k[".sgpr_count"], vgprs=k[".vgpr_count"], agprs=k.get(".agpr_count", 0),
                sgpr_spills=k.get(".sgpr_spill_count", 0),
                vgpr_spills=k.get(".vgpr_spill_count", 0),
                wavefront_size=k[".wavefront_size"],
                max_flat_workgroup_size=k[".max_flat_workgroup_size"])
    raise TilecError(f"the code object has no kernel named {name}")


NT_AMDGPU_METADATA = 32
_SHT_NOTE = 7


def _notes(elf: bytes):
    """(name, type, desc) of every note in the ELF64 little-endian file's SHT_NOTE sections."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise TilecError("not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
    for i in range(shnum):
        sh_type, = struct.unpack_from("<I", elf, shoff + i * shentsize + 4)
        if sh_type != _SHT_NOTE:
            continue
        offset, size = struct.unpack_from("<QQ", elf, shoff + i * shentsize + 24)
        pos, end = offset, offset + size
        while pos + 12 <= end:
            namesz, descsz, note_type = struct.unpack_from("<III", elf, pos)
            pos += 12
            name = elf[pos:pos + namesz].rstrip(b"\0")
            pos += (namesz + 3) & ~3
            desc = elf[pos:pos + descsz]
            pos += (descsz + 3) & ~3
            yield name, note_type, desc


def _unpack(data: bytes, pos: int) -> tuple[Any, int]:
    """One msgpack value at `pos` (the subset the metadata uses: nil, bools, ints, floats,
    strings, binary, arrays, maps) and the position after it."""
    tag = data[pos]
    pos += 1
    if tag <= 0x7F:
        return tag, pos
    if tag >= 0xE0:
        return tag - 0x100, pos
    if 0x80 <= tag <= 0x8F:
        return _map(data, pos, tag & 0x0F)
    if 0x90 <= tag <= 0x9F:
        return _array(data, pos, tag & 0x0F)
    if 0xA0 <= tag <= 0xBF:
        n = tag & 0x1F
        return data[pos:pos + n].decode("utf-8"), pos + n
    if tag in _FIXED:
        fmt = _FIXED[tag]
        if fmt is None:
            return {0xC0: None, 0xC2: False, 0xC3: True}[tag], pos
        value, = struct.unpack_from(fmt, data, pos)
        return value, pos + struct.calcsize(fmt)
    if tag in _SIZED:
        fmt, kind = _SIZED[tag]
        n, = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        if kind == "str":
            return data[pos:pos + n].decode("utf-8"), pos + n
        if kind == "bin":
            return bytes(data[pos:pos + n]), pos + n
        return (_array if kind == "array" else _map)(data, pos, n)
    raise TilecError(f"unsupported msgpack tag 0x{tag:02x} in the code object metadata")


_FIXED = {0xC0: None, 0xC2: None, 0xC3: None, 0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H",
          0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
_SIZED = {0xC4: (">B", "bin"), 0xC5: (">H", "bin"), 0xC6: (">I", "bin"),
          0xD9: (">B", "str"), 0xDA: (">H", "str"), 0xDB: (">I", "str"),
          0xDC: (">H", "array"), 0xDD: (">I", "array"), 0xDE: (">H", "map"), 0xDF: (">I", "map")}


def _array(data: bytes, pos: int, n: int) -> tuple[list, int]:
    out = []
    for _ in range(n):
        value, pos = _unpack(data, pos)
        out.append(value)
    return out, pos


def _map(data: bytes, pos: int, n: int) -> tuple[dict, int]:
    out = {}
    for _ in range(n):
        key, pos = _unpack(data, pos)
        out[key], pos = _unpack(data, pos)
    return out, pos
