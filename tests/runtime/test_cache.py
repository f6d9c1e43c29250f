"""The on-disk compile cache: keys, hits and misses, corrupted entries, atomic writes and
concurrent writers."""
from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tilec.backends import abi
from tilec.ir.parser import parse_module
from tilec.runtime import cache
from tilec.runtime.cache import KernelCache

FN = parse_module("""func @add(%x: tensor<?xf32>, %y: tensor<?xf32>, %n: i32) {
  return
}""").functions[0]


@dataclass(frozen=True)
class Compiled:
    """Shaped like the NVIDIA backend's CompiledKernel."""

    name: str
    arch: str
    num_warps: int
    ptx: str
    cubin: bytes | None
    shared_bytes: int
    params: list
    resources: dict = field(default_factory=dict)


def compiled(variant: int = 0, size: int = 1000) -> Compiled:
    ptx = f"// variant {variant}\n" + "mov.u32 %r1, %r2;\n" * size
    cubin = bytes((variant + i) % 256 for i in range(size * 7))
    return Compiled("add", "sm_90a", 4, ptx, cubin, 65536 + variant, abi.kernel_params(FN),
                    {"registers": 40, "spills": 0, "notes": ["a", "b"], "pair": (1, 2)})


KEY = cache.key("func @add ...", specialization={"x": "f32"}, options={"num_warps": 4},
                arch="sm_90a")


@pytest.fixture
def store(tmp_path: Path) -> KernelCache:
    return KernelCache(tmp_path / "kernels", kernel_type=Compiled)


# ---- keys ---------------------------------------------------------------------------------

def test_key_is_stable_and_order_independent():
    a = cache.key("ir", specialization={"x": ("f32", 1), "n": 16}, options={"a": 1, "b": 2},
                  arch="sm_90a")
    b = cache.key("ir", specialization={"n": 16, "x": ("f32", 1)}, options={"b": 2, "a": 1},
                  arch="sm_90a")
    assert a == b and len(a) == 64


@pytest.mark.parametrize("change", [
    {"ir": "ir2"}, {"specialization": {"x": ("f16", 1)}}, {"options": {"a": 1, "b": 3}},
    {"arch": "sm_80"}, {"extra": {"fast_math": True}}, {"ptxas": "/no/such/ptxas"}])
def test_key_covers_each_input(change):
    base = {"ir": "ir", "specialization": {"x": ("f32", 1)}, "options": {"a": 1, "b": 2},
            "arch": "sm_90a"}
    assert cache.key(**base) != cache.key(**{**base, **change})


def test_key_covers_toolchain_and_own_source():
    versions = cache.toolchain_versions()
    assert set(versions) == {"tilec", "tilec_source", "llvmlite", "llvm", "ptxas"}
    assert versions["tilec"] == "0.1.0" and len(versions["tilec_source"]) == 64


def test_key_is_the_same_in_another_process(monkeypatch):
    # The source hash is pinned on both sides: this is about the key's canonical form (set
    # order varies with PYTHONHASHSEED), not about files changing between the two runs.
    code = ("from tilec.runtime import cache; cache.source_hash = lambda: 'pinned'; "
            "print(cache.key('ir', specialization={'x': {1, 2, 3}, 'y': frozenset('ab')}, "
            "options={'w': 4}, arch='sm_90a'))")
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.strip()
    monkeypatch.setattr(cache, "source_hash", lambda: "pinned")
    here = cache.key("ir", specialization={"x": {1, 2, 3}, "y": frozenset("ab")},
                     options={"w": 4}, arch="sm_90a")
    assert out == here


# ---- hits and misses -----------------------------------------------------------------------

def test_round_trip(store):
    assert store.get(KEY) is None
    k = compiled()
    assert store.put(KEY, k)
    back = store.get(KEY)
    assert back == k and back.params == abi.kernel_params(FN)
    assert back.resources["pair"] == (1, 2)
    assert (store.stats.hits, store.stats.misses, store.stats.writes) == (1, 1, 1)


def test_no_cubin(store):
    k = Compiled("add", "sm_90a", 4, "ptx text", None, 0, [])
    store.put(KEY, k)
    assert store.get(KEY) == k


def test_default_cache_follows_tilec_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setattr(cache._default, "kernel_type", Compiled)
    assert cache.get(KEY) is None
    cache.put(KEY, compiled())
    assert cache.get(KEY) == compiled()
    assert (tmp_path / "c" / "kernels" / KEY[:2] / f"{KEY}.kernel").exists()


def test_refuses_non_keys(store):
    with pytest.raises(ValueError):
        store.get("../../etc/passwd")


# ---- corrupted entries: removed, reported as misses ------------------------------------------

def _corrupt_byte(data: bytes) -> bytes:
    i = len(data) - 10
    return data[:i] + bytes([data[i] ^ 0x20]) + data[i + 1:]


@pytest.mark.parametrize("damage", [
    lambda d: d[: len(d) // 2],                 # truncated
    _corrupt_byte,                              # a flipped bit in the payload
    lambda d: b"",                              # empty
    lambda d: b"garbage\n" + d,                 # an unreadable header
    lambda d: d.replace(b"tilec-kernel-1", b"tilec-kernel-0", 1),  # an older format
])
def test_corrupted_entry_is_a_miss_and_removed(store, damage, caplog):
    store.put(KEY, compiled())
    path = store.path(KEY)
    path.write_bytes(damage(path.read_bytes()))
    assert store.get(KEY) is None
    assert not path.exists()
    assert store.stats.corrupt == 1 and "removing bad entry" in caplog.text
    store.put(KEY, compiled())  # the caller rebuilds
    assert store.get(KEY) == compiled()


def test_entry_for_another_key_is_a_miss(store):
    other = "ab" * 32
    store.put(KEY, compiled())
    store.path(other).parent.mkdir(parents=True, exist_ok=True)
    store.path(other).write_bytes(store.path(KEY).read_bytes())
    assert store.get(other) is None


# ---- atomic writes ---------------------------------------------------------------------

def test_failed_write_leaves_old_entry_and_no_temp_file(store, monkeypatch, caplog):
    store.put(KEY, compiled(1))

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    assert store.put(KEY, compiled(2)) is False
    assert "cannot write" in caplog.text
    monkeypatch.undo()
    assert store.get(KEY) == compiled(1)
    assert [p.name for p in store.path(KEY).parent.iterdir()] == [f"{KEY}.kernel"]


def test_unwritable_directory_is_not_fatal(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = KernelCache(blocker / "kernels", kernel_type=Compiled)
    assert store.put(KEY, compiled()) is False
    assert store.get(KEY) is None


def _writer(root: str, variant: int, rounds: int) -> None:
    store = KernelCache(Path(root), kernel_type=Compiled)
    for _ in range(rounds):
        store.put(KEY, compiled(variant, size=3000))


def _reader(root: str, rounds: int, queue) -> None:
    store = KernelCache(Path(root), kernel_type=Compiled)
    seen = set()
    for _ in range(rounds):
        k = store.get(KEY)
        if k is not None:
            seen.add(k.shared_bytes - 65536)
    queue.put((store.stats.corrupt, sorted(seen)))


def test_concurrent_writers_never_leave_half_a_file(tmp_path):
    ctx = multiprocessing.get_context("fork")
    root = str(tmp_path / "kernels")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(root, v, 40)) for v in (1, 2)]
    procs.append(ctx.Process(target=_reader, args=(root, 400, queue)))
    for p in procs:
        p.start()
    corrupt, seen = queue.get(timeout=60)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert corrupt == 0
    assert set(seen) <= {1, 2}
    store = KernelCache(Path(root), kernel_type=Compiled)
    assert store.get(KEY) in (compiled(1, 3000), compiled(2, 3000))
    leftovers = [p.name for p in Path(root, KEY[:2]).iterdir()]
    assert leftovers == [f"{KEY}.kernel"]
