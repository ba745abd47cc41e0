"""Build candidate sets for a suite's cells once, store them on disk, verify them on reuse."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from harness.candidates import (Candidates, full_candidates, lists_from_top,
                                sampled_candidates)
from harness.errors import CacheError
from harness.evaluate import evaluate
from harness.fitting import fit_model
from harness.io import write_npz
from harness.names import file_part
from harness.options import FitOptions
from harness.splits.base import Split
from harness.suite import CandidateSpec, Suite


def _hash(users: np.ndarray, lists: np.ndarray) -> str:
    return hashlib.sha256(users.astype(np.int64).tobytes() + lists.astype(np.int64).tobytes()
                          ).hexdigest()


def _save(path: Path, cand: Candidates) -> None:
    write_npz(path, users=cand.users, lists=cand.lists,
              sha256=np.frombuffer(_hash(cand.users, cand.lists).encode(), np.uint8),
              fingerprint=np.frombuffer(cand.fingerprint.encode(), np.uint8))


def _load(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    try:
        with np.load(path) as z:
            users, lists = z["users"], z["lists"]
            recorded, fp = bytes(z["sha256"]).decode(), bytes(z["fingerprint"]).decode()
    except Exception as exc:  # noqa: BLE001 - unreadable means corrupt
        raise CacheError(f"candidate file {path} is unreadable ({exc}); delete it") from exc
    if _hash(users, lists) != recorded:
        raise CacheError(f"candidate file {path} does not match its recorded hash (corrupted); "
                         "delete it to re-create")
    return users, lists, fp


class CandidateStore:
    """Candidates per (dataset, split, candidate label[, seed for rerank]), memoized."""

    def __init__(self, suite: Suite, cache_dir: Path, run_dir: Path):
        self.suite, self.cache_dir, self.run_dir = suite, Path(cache_dir), Path(run_dir)
        self._memo: dict = {}
        self.records: dict[str, dict] = {}

    @staticmethod
    def _key(dataset: str, split_label: str, spec: CandidateSpec, seed: int) -> tuple:
        return (dataset, split_label, spec.label, seed if spec.protocol == "rerank" else None)

    def get(self, dataset: str, split_label: str, split: Split, spec: CandidateSpec,
            seed: int, options: FitOptions | None = None) -> Candidates:
        """The candidates (built, or loaded and verified); `options` are the fit options of a
        rerank first stage."""
        key = self._key(dataset, split_label, spec, seed)
        if key not in self._memo:
            self._memo[key] = self._build(key, split, spec, seed, options or FitOptions())
            cand = self._memo[key]
            sizes = (np.full(len(cand.users), len(cand.items)) if cand.lists is None
                     else (cand.lists >= 0).sum(1))
            self.records["/".join(str(k) for k in key if k is not None)] = {
                "protocol": spec.protocol, "params": spec.params, "fingerprint": cand.fingerprint,
                "users": int(len(cand.users)), "mean_candidates": float(sizes.mean())
                if len(sizes) else 0.0}
        return self._memo[key]

    def record_of(self, dataset: str, split_label: str, spec: CandidateSpec, seed: int) -> dict:
        """{manifest key: record} of candidates already built by `get`."""
        name = "/".join(str(k) for k in self._key(dataset, split_label, spec, seed)
                        if k is not None)
        return {name: self.records[name]}

    def _build(self, key, split: Split, spec: CandidateSpec, seed: int,
               options: FitOptions) -> Candidates:
        p, target = spec.params, self.suite.target
        if spec.protocol == "full":
            return full_candidates(split, target, p["max_users"], p["seed"], spec.label)
        if spec.protocol == "sampled":
            cand = sampled_candidates(split, target, p["n_negatives"], p["sampling"], p["seed"],
                                      p["max_users"], spec.label)
            path = self.cache_dir / f"cand-{cand.fingerprint}.npz"
            if path.exists():
                users, lists, fp = _load(path)
                if fp != cand.fingerprint or not (np.array_equal(users, cand.users)
                                                  and np.array_equal(lists, cand.lists)):
                    raise CacheError(f"candidate file {path} differs from the candidates its "
                                     "fingerprint describes; delete it to re-create")
            else:
                _save(path, cand)
            return cand
        return self._rerank(key, split, spec, seed, options)

    def _rerank(self, key, split: Split, spec: CandidateSpec, seed: int,
                options: FitOptions) -> Candidates:
        p, target = spec.params, self.suite.target
        first = next(m for m in self.suite.models if m.label == p["first_stage"])
        params = {"first_stage": first.label, "recommender": first.name,
                  "model_params": first.params, "m": p["m"], "seed": seed,
                  "max_users": p["max_users"]}
        path = self.run_dir / "candidates" / ("__".join(file_part(k) for k in key) + ".npz")
        if path.exists():
            users, lists, _ = _load(path)
            return lists_from_top("rerank", split, target, users, lists, spec.label, params)
        base = full_candidates(split, target, p["max_users"], 0)
        model = fit_model(first.name, first.params, seed, split, options)
        ev = evaluate(model.score, base, [p["m"]], ["hit"], self.suite.batch_size,
                      keep_top=True, model=model)
        top = np.where(np.isneginf(ev.top_scores), -1, ev.top_items)
        cand = lists_from_top("rerank", split, target, ev.users, top, spec.label, params)
        _save(path, cand)
        return cand
