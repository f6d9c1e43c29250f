"""The tuning database: one winner per (kernel, key values, device, tilec version), on disk
under `tilec.config.cache_dir()/tuning`, beside the compile cache.

An entry is one JSON file, `tuning/<kernel name>/<sha256 of the key>.json`, holding the key's
parts (so `tilec tune --show` can print them), the winning configuration and the report of
the search that chose it. Files are written with the compile cache's atomic write (a
temporary file, fsync, `os.replace`), so any number of processes may tune and write at once:
a reader sees a whole entry or none, and when two processes tune the same key the last
rename wins with a whole, valid entry. A file that does not parse or whose checksum does not
match is treated as missing.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tilec.config import cache_dir
from tilec.files import write_atomically
from tilec.runtime.cache import tilec_version
from tilec.tune.space import Config

FORMAT = "tilec-tuning-1"
log = logging.getLogger("tilec.tune")


@dataclass(frozen=True)
class TuningKey:
    """What a stored winner is valid for."""

    kernel: str                 # the kernel's name and a hash of its source
    key: tuple                  # the values of the autotuner's `key` (shapes, dtypes, ...)
    device: str                 # the GPU's name
    version: str = field(default_factory=tilec_version)

    def digest(self) -> str:
        text = json.dumps([FORMAT, self.kernel, [repr(v) for v in self.key], self.device,
                           self.version])
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Entry:
    """A stored winner and why it won."""

    key: TuningKey
    config: Config
    report: dict[str, Any]


class TuningDatabase:
    """Winners on disk under `root` (default: `cache_dir()/tuning`, read at each call)."""

    def __init__(self, root: Path | None = None):
        self.root = root

    def directory(self) -> Path:
        return Path(self.root) if self.root is not None else cache_dir() / "tuning"

    def path(self, key: TuningKey) -> Path:
        folder = re.sub(r"[^A-Za-z0-9_.-]", "_", key.kernel)[:100]
        return self.directory() / folder / f"{key.digest()}.json"

    def get(self, key: TuningKey) -> Entry | None:
        """The winner stored for `key`, or None."""
        return _read(self.path(key), key)

    def put(self, key: TuningKey, config: Config, report: dict[str, Any]) -> bool:
        """Store `config` as the winner for `key`, atomically; False (logged) on failure."""
        body = {"kernel": key.kernel, "key": [repr(v) for v in key.key],
                "device": key.device, "version": key.version, "config": config.to_json(),
                "report": report}
        payload = json.dumps(body, sort_keys=True)
        document = {"format": FORMAT, "sha256": hashlib.sha256(payload.encode()).hexdigest(),
                    "entry": body}
        try:
            write_atomically(self.path(key), json.dumps(document, sort_keys=True).encode())
        except OSError as e:
            log.warning("tilec tune: cannot write the tuning database at %s: %s",
                        self.directory(), e)
            return False
        return True

    def entries(self) -> Iterator[Entry]:
        """Every readable entry, sorted by kernel then file name."""
        root = self.directory()
        if not root.is_dir():
            return
        for path in sorted(root.glob("*/*.json")):
            entry = _read(path, None)
            if entry is not None:
                yield entry


def _read(path: Path, expect: TuningKey | None) -> Entry | None:
    try:
        document = json.loads(path.read_bytes())
        body = document["entry"]
        payload = json.dumps(body, sort_keys=True)
        if document.get("format") != FORMAT or \
                document.get("sha256") != hashlib.sha256(payload.encode()).hexdigest():
            raise ValueError("format or checksum mismatch")
        stored = TuningKey(body["kernel"], tuple(body["key"]), body["device"], body["version"])
        if expect is not None and (stored.kernel, stored.key, stored.device, stored.version) != \
                (expect.kernel, tuple(repr(v) for v in expect.key), expect.device,
                 expect.version):
            raise ValueError("entry is for another key")
        return Entry(stored, Config.from_json(body["config"]), body.get("report", {}))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("tilec tune: ignoring unreadable tuning entry %s: %s", path, e)
        return None
