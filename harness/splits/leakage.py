"""Leakage checks run on every split; violations raise `LeakageError`."""

from __future__ import annotations

import numpy as np

from harness.errors import LeakageError
from harness.splits.base import Split


def _pairs(split: Split, part: str) -> np.ndarray:
    inter = split.part(part)
    return inter.user.astype(np.int64) * split.dataset.n_items + inter.item


def _in_sorted(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Which `keys` occur in `sorted_keys` (binary search: O(n log n), no hash tables)."""
    if not len(sorted_keys):
        return np.zeros(len(keys), bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys


def check_split(split: Split) -> None:
    """No row in two parts; no held-out (user, item) pair in train; protocol-specific promises."""
    rows = split.rows
    all_rows = np.concatenate([rows["train"], rows["valid"], rows["test"]])
    n_rows = len(split.dataset.interactions)
    if len(all_rows) and np.bincount(all_rows, minlength=n_rows).max() > 1:
        raise LeakageError(f"{split.protocol}: an interaction row is in two parts")
    train = np.sort(_pairs(split, "train"))
    for part in ("valid", "test"):
        overlap = np.unique(_pairs(split, part)[_in_sorted(train, _pairs(split, part))])
        if len(overlap):
            raise LeakageError(f"{split.protocol}: {len(overlap)} {part} (user, item) pairs "
                               "are also in train")
    ts = split.dataset.interactions.timestamp
    if split.protocol == "temporal":
        t_train = ts[rows["train"]]
        for part in ("valid", "test"):
            t_part = ts[rows[part]]
            if len(t_train) and len(t_part) and t_train.max() >= t_part.min():
                raise LeakageError(f"temporal: a train interaction (t={t_train.max()}) is not "
                                   f"before the earliest {part} one (t={t_part.min()})")
    if split.protocol == "leave_one_out":
        user = split.dataset.interactions.user
        latest_train = np.full(split.dataset.n_users, -np.inf)
        np.maximum.at(latest_train, user[rows["train"]], ts[rows["train"]])
        for part in ("valid", "test"):
            if np.any(ts[rows[part]] < latest_train[user[rows[part]]]):
                raise LeakageError(f"leave_one_out: a {part} interaction precedes its user's "
                                   "latest train interaction")
    if split.protocol == "cold_items":
        seen = np.unique(split.dataset.interactions.item[rows["train"]])
        for part in ("valid", "test"):
            leaked = np.intersect1d(seen, split.eval_items[part])
            if len(leaked):
                raise LeakageError(f"cold_items: {len(leaked)} held-out {part} items appear in train")
