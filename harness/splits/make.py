"""Make or load a split: validate parameters, cache on disk, verify fingerprint and hash on load."""

from __future__ import annotations

import inspect
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from harness.errors import CacheError, UserError, did_you_mean
from harness.splits import protocols
from harness.splits.base import Split
from harness.splits.leakage import check_split
from harness.types import Dataset

PROTOCOLS = {
    "random_holdout": protocols.random_holdout,
    "leave_one_out": protocols.leave_one_out,
    "temporal": protocols.temporal,
    "cold_items": protocols.cold_items,
}


def protocol_params(protocol: str) -> dict:
    """The parameters a protocol accepts, with their defaults."""
    fn = PROTOCOLS[protocol]
    return {n: p.default for n, p in inspect.signature(fn).parameters.items()
            if n not in ("ds", "rng")}


def validate_params(protocol: str, params: dict) -> dict:
    """Full parameter dict (defaults filled in); raises UserError naming a bad key or value."""
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown split protocol '{protocol}'{did_you_mean(protocol, PROTOCOLS)}")
    allowed = protocol_params(protocol)
    for key in params:
        if key not in allowed:
            raise UserError(f"split '{protocol}' has no parameter '{key}'"
                            f"{did_you_mean(key, allowed)}")
    full = {**allowed, **params}
    number = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)  # noqa: E731
    if "ratios" in full:
        r = full["ratios"]
        if not isinstance(r, (list, tuple)) or len(r) != 3 or not all(
                number(x) and x >= 0 for x in r):
            raise UserError(f"split '{protocol}': ratios must be 3 non-negative numbers, got {r}")
        if abs(sum(r) - 1.0) > 1e-6:
            raise UserError(f"split '{protocol}': ratios must sum to 1, got {r} (sum {sum(r)})")
        full["ratios"] = list(r)
    if "item_share" in full and not (number(full["item_share"]) and 0 < full["item_share"] < 1):
        raise UserError(f"split 'cold_items': item_share must be a number in (0, 1), "
                        f"got {full['item_share']!r}")
    if "keep_cold_users" in full and not isinstance(full["keep_cold_users"], bool):
        raise UserError(f"split '{protocol}': keep_cold_users must be true or false, "
                        f"got {full['keep_cold_users']!r}")
    return full


def make_split(ds: Dataset, protocol: str, params: dict | None = None, seed: int = 0) -> Split:
    """Compute a split (no cache) and run the leakage checks."""
    params = validate_params(protocol, params or {})
    out = PROTOCOLS[protocol](ds, np.random.default_rng(seed), **params)
    rows = {k: np.sort(np.asarray(out[k], np.int64)) for k in ("train", "valid", "test")}
    split = Split(ds, protocol, params, seed, rows, out.get("eval_items", {}), out.get("notes", {}))
    check_split(split)
    return split


def get_split(ds: Dataset, protocol: str, params: dict | None = None, seed: int = 0,
              cache_dir: Path | None = None) -> Split:
    """Load the split from `cache_dir` when present (verified), else make and store it."""
    params = validate_params(protocol, params or {})
    if cache_dir is None:
        return make_split(ds, protocol, params, seed)
    probe = Split(ds, protocol, params, seed, {})
    path = Path(cache_dir) / f"split-{probe.fingerprint}.npz"
    if path.exists():
        split = _load(path, probe)
        check_split(split)
        return split
    split = make_split(ds, protocol, params, seed)
    _store(path, split)
    return split


def _store(path: Path, split: Split) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"rows_{k}": v for k, v in split.rows.items()}
    arrays.update({f"items_{k}": v for k, v in split.eval_items.items() if v is not None})
    meta = {"fingerprint": split.fingerprint, "content_sha256": split.content_hash(),
            "protocol": split.protocol, "params": split.params, "seed": split.seed,
            "dataset_fingerprint": split.dataset.fingerprint, "notes": split.notes}
    arrays["meta"] = np.frombuffer(json.dumps(meta, default=str).encode(), np.uint8)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _load(path: Path, probe: Split) -> Split:
    try:
        with np.load(path) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            rows = {k: z[f"rows_{k}"] for k in ("train", "valid", "test")}
            items = {k: (z[f"items_{k}"] if f"items_{k}" in z else None)
                     for k in ("train", "valid", "test")}
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a corrupt cache
        raise CacheError(f"split cache {path} is unreadable ({exc}); delete it to re-create") from exc
    if meta.get("fingerprint") != probe.fingerprint:
        raise CacheError(f"split cache {path} has fingerprint {meta.get('fingerprint')}, expected "
                         f"{probe.fingerprint}; delete it to re-create")
    split = Split(probe.dataset, probe.protocol, probe.params, probe.seed, rows, items,
                  meta.get("notes", {}))
    if split.content_hash() != meta.get("content_sha256"):
        raise CacheError(f"split cache {path} content hash does not match its record (corrupted); "
                         "delete it to re-create")
    return split
