"""On-disk embedding cache keyed by (model, template, texts hash), verified by content hash."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from harness.io import write_json, write_npz


def default_cache_dir() -> Path:
    """$HARNESS_CACHE_DIR, else ~/.cache/recsys-harness."""
    return Path(os.environ.get("HARNESS_CACHE_DIR", Path.home() / ".cache" / "recsys-harness"))


def cache_key(model: str, template: str, texts: list[str], extra: dict) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode() + b"\x00")
    blob = json.dumps({"model": model, "template": template, "texts": h.hexdigest(), **extra},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class EmbeddingCache:
    """`get(key)` -> array or None; `put(key, array)`. A file whose bytes do not match the
    recorded sha256 is reported as corrupt (`get` returns None and counts it)."""

    def __init__(self, directory: Path | None):
        self.dir = Path(directory) if directory else default_cache_dir()
        self.corrupt: list[str] = []

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.dir / f"emb-{key}.npz", self.dir / f"emb-{key}.json"

    def get(self, key: str) -> np.ndarray | None:
        data, meta = self._paths(key)
        if not (data.exists() and meta.exists()):
            return None
        try:
            recorded = json.loads(meta.read_text())["sha256"]
            with np.load(data) as z:
                arr = z["emb"]
        except Exception:  # noqa: BLE001 - unreadable counts as corrupt
            self.corrupt.append(str(data))
            return None
        if hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest() != recorded:
            self.corrupt.append(str(data))
            return None
        return arr

    def put(self, key: str, arr: np.ndarray, info: dict | None = None) -> None:
        data, meta = self._paths(key)
        write_npz(data, emb=arr)
        write_json(meta, {"sha256": hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest(),
                          "shape": list(arr.shape), **(info or {})})
