"""The on-disk compile cache: compiled kernels under `tilec.config.cache_dir()/kernels`.

`key(...)` hashes everything that changes the compiled output (STYLE.md, "Cache keys cover
everything"): the specialised kernel's IR text, the specialisation, every option, the
target, tilec's version and a hash of its own source files, the llvmlite and LLVM versions
and the ptxas version.

An entry is one file, `kernels/<key[:2]>/<key>.kernel`: a header line of JSON (format, key,
payload length and sha256) and the payload, JSON holding the CompiledKernel's fields (bytes
as base64). It is written to a temporary file in the same directory, fsynced and renamed
over the entry with `os.replace`, so a reader sees the old file or the new one, never half
of one, whatever the number of concurrent writers. A reader that finds an entry whose
payload does not match its header (truncated, corrupted, an older format) removes it and
reports a miss: the caller rebuilds.
"""
from __future__ import annotations

import base64
import dataclasses
import enum
import functools
import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from tilec.config import cache_dir
from tilec.files import write_atomically
from tilec.backends.abi import Param

__all__ = ["key", "get", "put", "KernelCache", "source_hash", "tilec_version",
           "toolchain_versions", "ptxas_version"]

log = logging.getLogger("tilec.cache")

FORMAT = "tilec-kernel-1"
_PACKAGE = Path(__file__).resolve().parent.parent  # tilec/
_SOURCE_SUFFIXES = (".py", ".lark")


# ---- the key ----------------------------------------------------------------------------

@functools.cache
def source_hash() -> str:
    """sha256 over tilec's own source files (path and contents), once per process."""
    h = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*")):
        if path.suffix in _SOURCE_SUFFIXES and "__pycache__" not in path.parts:
            h.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0")
            h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


@functools.cache
def tilec_version() -> str:
    """tilec.__version__, read from the package's __init__.py (the runtime does not import
    the package's top level, which imports the frontend)."""
    text = (_PACKAGE / "__init__.py").read_text()
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.M)
    return match.group(1) if match else "unknown"


@functools.cache
def ptxas_version(ptxas: str | None = None) -> str:
    """The last line of `ptxas --version` for `ptxas` (default: the one on PATH), or "none"."""
    path = ptxas or shutil.which("ptxas")
    if not path:
        return "none"
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return f"error: {e}"
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return f"{path}: {lines[-1] if lines else out.returncode}"


@functools.cache
def _llvm_versions() -> dict[str, str]:
    try:
        import llvmlite
        import llvmlite.binding as llvm
        return {"llvmlite": llvmlite.__version__,
                "llvm": ".".join(map(str, llvm.llvm_version_info))}
    except ImportError:
        return {"llvmlite": "none", "llvm": "none"}


def toolchain_versions(ptxas: str | None = None) -> dict[str, str]:
    """Versions of everything outside the kernel that shapes its compiled output."""
    return {"tilec": tilec_version(), "tilec_source": source_hash(), **_llvm_versions(),
            "ptxas": ptxas_version(ptxas)}


def key(ir: str, *, specialization: Any, options: Mapping[str, Any], arch: str,
        ptxas: str | None = None, extra: Mapping[str, Any] | None = None) -> str:
    """The cache key (sha256 hex) of one compilation.

    `ir` is the specialised kernel's IR text with its callees (or its source and callees'
    sources); `specialization` the argument specialisation (dtypes, ranks, constexprs,
    alignment facts); `options` every compile option (num_warps, num_stages, ...); `arch`
    the target ("sm_90a"); `ptxas` the path of the ptxas the backend runs (default: the one
    on PATH); `extra` anything else that changes the output."""
    document = {
        "format": FORMAT,
        "ir": ir,
        "specialization": _canonical(specialization),
        "options": _canonical(dict(options)),
        "arch": arch,
        "toolchain": toolchain_versions(ptxas),
        "extra": _canonical(dict(extra or {})),
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: Any) -> Any:
    """A JSON value that is the same for equal inputs in every process (sorted mappings and
    sets, dataclasses by their fields, other objects by type and str)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": hashlib.sha256(value).hexdigest()}
    if isinstance(value, Mapping):
        items = [(json.dumps(_canonical(k), sort_keys=True), _canonical(v))
                 for k, v in value.items()]
        return {"map": sorted(items)}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return {"set": sorted(json.dumps(_canonical(v), sort_keys=True) for v in value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__qualname__,
                "fields": {f.name: _canonical(getattr(value, f.name))
                           for f in dataclasses.fields(value)}}
    return {"type": type(value).__qualname__, "str": str(value)}


# ---- serialising a CompiledKernel -----------------------------------------------------------

def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, Param):
        return {"__param__": dataclasses.asdict(value)}
    if isinstance(value, (list, tuple)):
        return {"__tuple__": [_encode(v) for v in value]} if isinstance(value, tuple) \
            else [_encode(v) for v in value]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"cannot cache a mapping with non-string keys: {value!r}")
        return {"__dict__": {k: _encode(v) for k, v in value.items()}}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        return {"__dataclass__": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {f.name: _encode(getattr(value, f.name))
                           for f in dataclasses.fields(value)}}
    raise TypeError(f"cannot cache a value of type {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__bytes__" in value:
        return base64.b64decode(value["__bytes__"], validate=True)
    if "__param__" in value:
        return Param(**value["__param__"])
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: _decode(v) for k, v in value["__dict__"].items()}
    if "__dataclass__" in value:
        cls = _import_class(value["__dataclass__"])
        return cls(**{k: _decode(v) for k, v in value["fields"].items()})
    raise ValueError(f"unknown cached value {value!r}")


def _import_class(path: str) -> type:
    """A dataclass named in an entry; only tilec's own classes are imported from a file."""
    module, _, qualname = path.partition(":")
    if module != "tilec" and not module.startswith("tilec."):
        raise ValueError(f"cached entry names a class outside tilec: {path}")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _default_kernel_type() -> type:
    from tilec.backends.nvidia.compiler import CompiledKernel
    return CompiledKernel


# ---- the cache ------------------------------------------------------------------------

@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    writes: int = 0
    write_errors: int = 0


@dataclass
class KernelCache:
    """Compiled kernels on disk under `root` (default: `config.cache_dir()/kernels`, read at
    each call). `kernel_type` is the class entries are read back as (default: the NVIDIA
    backend's CompiledKernel, a dataclass)."""

    root: Path | None = None
    kernel_type: type | None = None
    stats: CacheStats = field(default_factory=CacheStats)

    def directory(self) -> Path:
        return Path(self.root) if self.root is not None else cache_dir() / "kernels"

    def path(self, key: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{16,128}", key):
            raise ValueError(f"not a cache key: {key!r}")
        return self.directory() / key[:2] / f"{key}.kernel"

    def get(self, key: str) -> Any | None:
        """The kernel cached under `key`, or None (missing, or corrupted and now removed)."""
        path = self.path(key)
        try:
            with open(path, "rb") as f:
                data = f.read()
                identity = os.fstat(f.fileno())
        except FileNotFoundError:
            self.stats.misses += 1
            return None
        except OSError as e:
            log.warning("tilec cache: cannot read %s: %s", path, e)
            self.stats.misses += 1
            return None
        try:
            fields = _read_entry(data, key)
            kernel_type = self.kernel_type or _default_kernel_type()
            kernel = kernel_type(**{k: _decode(v) for k, v in fields.items()})
        except Exception as e:  # anything unreadable is a miss: the caller rebuilds
            log.warning("tilec cache: removing bad entry %s: %s", path, e)
            self._remove_if_same(path, identity)
            self.stats.corrupt += 1
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return kernel

    def put(self, key: str, compiled: Any) -> bool:
        """Store `compiled` (a dataclass) under `key`, atomically; False (with a warning)
        when the entry cannot be written, which costs only a later rebuild."""
        if not dataclasses.is_dataclass(compiled) or isinstance(compiled, type):
            raise TypeError(f"can only cache dataclass kernels, got {type(compiled).__name__}")
        fields = {f.name: _encode(getattr(compiled, f.name))
                  for f in dataclasses.fields(compiled)}
        payload = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
        header = json.dumps({"format": FORMAT, "key": key, "bytes": len(payload),
                             "sha256": hashlib.sha256(payload).hexdigest()},
                            sort_keys=True).encode()
        path = self.path(key)
        try:
            write_atomically(path, header + b"\n" + payload)
        except OSError as e:
            log.warning("tilec cache: cannot write %s: %s", path, e)
            self.stats.write_errors += 1
            return False
        self.stats.writes += 1
        return True

    @staticmethod
    def _remove_if_same(path: Path, identity: os.stat_result) -> None:
        """Remove `path` unless a writer has replaced it since it was read."""
        try:
            now = os.stat(path)
            if (now.st_ino, now.st_dev) == (identity.st_ino, identity.st_dev):
                os.unlink(path)
        except OSError:
            pass


def _read_entry(data: bytes, key: str) -> dict[str, Any]:
    """The fields of an entry's payload; ValueError unless header and payload agree."""
    head, sep, payload = data.partition(b"\n")
    if not sep:
        raise ValueError("no header")
    header = json.loads(head)
    if header.get("format") != FORMAT:
        raise ValueError(f"format {header.get('format')!r}, expected {FORMAT}")
    if header.get("key") != key:
        raise ValueError("entry is for another key")
    if header.get("bytes") != len(payload):
        raise ValueError(f"payload is {len(payload)} bytes, the header says {header.get('bytes')}")
    if header.get("sha256") != hashlib.sha256(payload).hexdigest():
        raise ValueError("payload checksum mismatch")
    fields = json.loads(payload)
    if not isinstance(fields, dict):
        raise ValueError("payload is not an object")
    return fields


_default = KernelCache()


def get(key: str) -> Any | None:
    """The kernel cached under `key` in the default cache (`TILEC_CACHE_DIR`), or None."""
    return _default.get(key)


def put(key: str, compiled: Any) -> bool:
    """Store `compiled` under `key` in the default cache."""
    return _default.put(key, compiled)
