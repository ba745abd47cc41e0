"""Candidate sets: which items each evaluated user ranks, frozen and shared by every model.

`full`: every item (or the split's eval items) minus the user's history. `sampled`: the user's
held-out positives + N negatives drawn once (uniform or by train popularity), seeded per user.
`rerank`: the top-M of a first-stage recommender (built by the runner, see `rerank_candidates`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from harness.splits.base import Split


@dataclass(frozen=True)
class Candidates:
    """`users`: evaluated users; `truth`: users x n_items csr of relevant items. Either shared
    columns `items` with a history mask `exclude` (full), or per-user `lists` (len(users), C)
    of item ids padded with -1 (sampled, rerank)."""

    protocol: str
    users: np.ndarray
    truth: sp.csr_matrix
    items: torch.Tensor | None = None
    exclude: sp.csr_matrix | None = None
    lists: np.ndarray | None = None
    label: str = ""
    fingerprint: str = ""

    @property
    def name(self) -> str:
        return self.label or self.protocol


def history(split: Split, target: str) -> sp.csr_matrix:
    """Items a user must not be shown: train, plus valid when the target is test."""
    h = split.train.csr()
    if target == "test":
        h = (h + split.valid.csr()).tocsr()
        h.data[:] = 1
    return h.tocsr()


def subsample_users(users: np.ndarray, max_users: int | None, seed: int) -> np.ndarray:
    """A seeded, sorted subset of `users` (all of them when max_users is None or larger)."""
    if max_users is None or max_users >= len(users):
        return users
    rng = np.random.default_rng([seed, 7919])
    return np.sort(rng.choice(users, max_users, replace=False))


def _fingerprint(split: Split, target: str, protocol: str, params: dict) -> str:
    blob = json.dumps({"split": split.fingerprint, "target": target, "protocol": protocol,
                       "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def full_candidates(split: Split, target: str = "test", max_users: int | None = None,
                    seed: int = 0, label: str = "") -> Candidates:
    """`full`: all (eval) items minus history, for users with >= 1 target interaction."""
    truth = split.part(target).csr()
    users = subsample_users(np.flatnonzero(np.diff(truth.indptr) > 0), max_users, seed)
    eval_items = split.eval_items.get(target)
    items = (torch.arange(split.dataset.n_items) if eval_items is None
             else torch.as_tensor(eval_items).long())
    fp = _fingerprint(split, target, "full", {"max_users": max_users, "seed": seed})
    return Candidates("full", users, truth, items, history(split, target), None, label, fp)


def sampled_candidates(split: Split, target: str = "test", n_negatives: int = 100,
                       sampling: str = "uniform", seed: int = 0, max_users: int | None = None,
                       label: str = "") -> Candidates:
    """`sampled`: per user, the held-out positives plus `n_negatives` items the user never
    interacted with (in any part), drawn without replacement, uniformly or proportionally to
    train popularity (+1), from an RNG derived from (seed, user). Columns are shuffled so that
    position carries no information."""
    if sampling not in ("uniform", "popularity"):
        raise ValueError(f"sampling must be 'uniform' or 'popularity', got '{sampling}'")
    ds = split.dataset
    truth = split.part(target).csr()
    users = subsample_users(np.flatnonzero(np.diff(truth.indptr) > 0), max_users, seed)
    seen = ds.interactions.csr()
    pool = split.eval_items.get(target)
    pool = np.arange(ds.n_items) if pool is None else np.asarray(pool)
    weights = None
    if sampling == "popularity":
        counts = np.asarray(split.train.csr().sum(0)).ravel()[pool] + 1.0
        weights = counts / counts.sum()
    n_pos = np.diff(truth.indptr)[users]
    lists = np.full((len(users), int(n_pos.max(initial=0)) + n_negatives), -1, np.int64)
    for row, u in enumerate(users):
        rng = np.random.default_rng([seed, int(u), 104729])
        pos = truth.indices[truth.indptr[u]:truth.indptr[u + 1]]
        hist = seen.indices[seen.indptr[u]:seen.indptr[u + 1]]
        size = min(len(pool), n_negatives + len(hist))
        draw = pool[rng.choice(len(pool), size, replace=False, p=weights)]
        neg = draw[~np.isin(draw, hist)][:n_negatives]
        cand = np.concatenate([pos, neg])
        lists[row, :len(cand)] = cand[rng.permutation(len(cand))]
    fp = _fingerprint(split, target, "sampled", {"n_negatives": n_negatives, "seed": seed,
                                                 "sampling": sampling, "max_users": max_users})
    return Candidates("sampled", users, truth, None, None, lists, label, fp)


def lists_from_top(protocol: str, split: Split, target: str, users: np.ndarray,
                   top: np.ndarray, label: str, params: dict) -> Candidates:
    """Candidates from given per-user item lists (rerank: a first stage's top-M)."""
    truth = split.part(target).csr()
    fp = _fingerprint(split, target, protocol,
                      {**params, "lists": hashlib.sha256(top.tobytes()).hexdigest()})
    return Candidates(protocol, users, truth, None, None, top.astype(np.int64), label, fp)
