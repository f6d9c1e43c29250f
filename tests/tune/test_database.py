"""The tuning database: persistence, keys, damaged files, concurrent writers."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import tilec as tc
from tilec.tune.database import TuningDatabase, TuningKey

ROOT = Path(__file__).resolve().parents[2]


def test_round_trip_and_key_parts(tmp_path):
    db = TuningDatabase(tmp_path)
    key = TuningKey("gemm-abc", (4096, 4096, "float16"), "NVIDIA H100", "0.1.0")
    assert db.get(key) is None
    assert db.put(key, tc.Config(BM=128, num_warps=4), {"timed": [[{"BM": 128}, 0.5]]})
    entry = TuningDatabase(tmp_path).get(key)  # a fresh object reads the file
    assert entry.config == tc.Config(BM=128, num_warps=4)
    assert entry.report["timed"][0][1] == 0.5
    # Any part of the key that differs is another entry.
    for other in (TuningKey("gemm-abd", key.key, key.device, key.version),
                  TuningKey(key.kernel, (4096, 4095, "float16"), key.device, key.version),
                  TuningKey(key.kernel, key.key, "NVIDIA A100", key.version),
                  TuningKey(key.kernel, key.key, key.device, "0.2.0")):
        assert db.get(other) is None
    assert [e.key.kernel for e in db.entries()] == ["gemm-abc"]


def test_default_root_is_beside_the_compile_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path))
    key = TuningKey("k-1", (1,), "dev")
    TuningDatabase().put(key, tc.Config(), {})
    assert TuningDatabase().path(key).parent.parent == tmp_path / "tuning"


def test_damaged_entry_is_a_miss(tmp_path):
    db = TuningDatabase(tmp_path)
    key = TuningKey("k-1", (1,), "dev")
    db.put(key, tc.Config(BM=64), {})
    path = db.path(key)
    document = json.loads(path.read_text())
    document["entry"]["config"]["BM"] = 128  # edited without its checksum
    path.write_text(json.dumps(document))
    assert db.get(key) is None
    path.write_text("{not json")
    assert db.get(key) is None
    assert list(db.entries()) == []


WRITER = """
import sys
import tilec as tc
from tilec.tune.database import TuningDatabase, TuningKey
db = TuningDatabase(sys.argv[1])
me = int(sys.argv[2])
for i in range(150):
    # every writer writes the shared keys (0..49) and its own (1000 * me + i)
    k = i % 50 if i % 3 else 1000 * me + i
    db.put(TuningKey("k-1", (k,), "dev"), tc.Config(BM=16 * (me + 1), num_warps=4),
           {"writer": me, "i": i, "padding": "x" * 4096})
"""


def test_two_processes_writing_at_once(tmp_path):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(me)], env=env,
                              stderr=subprocess.PIPE) for me in (1, 2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    db = TuningDatabase(tmp_path)
    entries = list(db.entries())
    own = {e.key.key[0] for e in entries if int(e.key.key[0]) >= 1000}
    assert len(own) == 2 * 50
    shared = [e for e in entries if int(e.key.key[0]) < 50]
    assert len(shared) == 50
    for e in shared:  # whole entries from one writer or the other, never a mix
        assert e.config.kwargs["BM"] == 16 * (e.report["writer"] + 1)
    assert not list(tmp_path.rglob("*.tmp"))
