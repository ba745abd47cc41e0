"""Split protocols. Each maps (dataset, params, rng) to row indices for train/valid/test."""

from __future__ import annotations

import numpy as np

from harness.types import Dataset


def _holdout_counts(n: np.ndarray, r_valid: float, r_test: float) -> tuple[np.ndarray, ...]:
    """Per-user (train, valid, test) counts: floor of ratio * n, then, as RecBole's RO split does,
    a part whose share is in (0, 1) interactions gets one (test first) while train keeps >= 2."""
    valid = np.floor(r_valid * n).astype(np.int64)
    test = np.floor(r_test * n).astype(np.int64)
    train = n - valid - test
    for ratio, part in ((r_test, test), (r_valid, valid)):
        bump = (train > 1) & (ratio * n > 0) & (ratio * n < 1)
        part += bump
        train -= bump
    return train, valid, test


def random_holdout(ds: Dataset, rng: np.random.Generator, ratios=(0.8, 0.1, 0.1)) -> dict:
    """Per user, shuffle interactions and cut them by `ratios` (train/valid/test)."""
    user = ds.interactions.user
    order = np.lexsort((rng.random(len(user)), user))
    n = np.bincount(user, minlength=ds.n_users)
    _, n_valid, n_test = _holdout_counts(n, ratios[1], ratios[2])
    return _assign_by_rank(user, order, n, n_valid, n_test)


def _assign_by_rank(user, order, n, n_valid, n_test) -> dict:
    """Within each user's ordering, the last n_test rows go to test, the n_valid before to valid."""
    starts = np.concatenate([[0], np.cumsum(n)[:-1]])
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(starts, n)
    from_end = n[user] - rank  # 1 for the last row
    is_test = from_end <= n_test[user]
    is_valid = ~is_test & (from_end <= n_test[user] + n_valid[user])
    return {"train": np.flatnonzero(~is_test & ~is_valid), "valid": np.flatnonzero(is_valid),
            "test": np.flatnonzero(is_test)}


def leave_one_out(ds: Dataset, rng: np.random.Generator) -> dict:
    """By timestamp per user: last -> test, second-last -> valid (users with >= 3 interactions;
    with 2, only test; with 1, only train). Ties keep file order."""
    inter = ds.interactions
    if inter.timestamp is None:
        raise ValueError("leave_one_out needs timestamps")
    order = np.lexsort((np.arange(len(inter)), inter.timestamp, inter.user))
    n = np.bincount(inter.user, minlength=ds.n_users)
    n_test = (n >= 2).astype(np.int64)
    n_valid = (n >= 3).astype(np.int64)
    return _assign_by_rank(inter.user, order, n, n_valid, n_test)


def temporal(ds: Dataset, rng: np.random.Generator, ratios=(0.8, 0.1, 0.1),
             keep_cold_users: bool = False) -> dict:
    """One global time cutoff per boundary (quantiles of timestamps): train < t1 <= valid < t2 <=
    test. Valid/test rows of users with no training interaction are dropped unless kept."""
    inter = ds.interactions
    if inter.timestamp is None:
        raise ValueError("temporal needs timestamps")
    ts = inter.timestamp
    q = np.clip([ratios[0], ratios[0] + ratios[1]], 0.0, 1.0)  # sums may exceed 1 by rounding
    t1, t2 = np.quantile(ts, q, method="lower")
    t2 = max(t2, t1)
    train = ts < t1
    valid = (ts >= t1) & (ts < t2)
    test = ts >= t2
    notes = {"cutoffs": [float(t1), float(t2)]}
    if not keep_cold_users:
        warm = np.zeros(ds.n_users, bool)
        warm[inter.user[train]] = True
        for name, mask in (("valid", valid), ("test", test)):
            cold = mask & ~warm[inter.user]
            notes[f"dropped_cold_user_rows_{name}"] = int(cold.sum())
            mask &= warm[inter.user]
    return {"train": np.flatnonzero(train), "valid": np.flatnonzero(valid),
            "test": np.flatnonzero(test), "notes": notes}


def cold_items(ds: Dataset, rng: np.random.Generator, item_share: float = 0.2) -> dict:
    """Hold out a seeded share of items with all their interactions: half of them to valid, half to
    test. Each part ranks only its own held-out items (the cold-start candidates)."""
    n_cold = int(round(item_share * ds.n_items))
    perm = rng.permutation(ds.n_items)
    valid_items = np.sort(perm[: n_cold // 2])
    test_items = np.sort(perm[n_cold // 2: n_cold])
    item = ds.interactions.item
    in_valid, in_test = np.isin(item, valid_items), np.isin(item, test_items)
    return {"train": np.flatnonzero(~in_valid & ~in_test), "valid": np.flatnonzero(in_valid),
            "test": np.flatnonzero(in_test),
            "eval_items": {"train": None, "valid": valid_items, "test": test_items}}
