"""Turn raw tables (token ids) into a `Dataset` with int32 index arrays and aligned side tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.data.preprocess import dedupe, implicit, kcore, largest_kcore
from harness.errors import UserError
from harness.types import Dataset, Interactions


def _ordered_ids(tokens: pd.Series) -> np.ndarray:
    """Unique tokens, sorted numerically when all are integers, else lexicographically."""
    uniq = pd.unique(tokens.astype(str))
    try:
        order = np.argsort(np.array([int(t) for t in uniq]), kind="stable")
    except ValueError:
        order = np.argsort(uniq, kind="stable")
    return uniq[order].astype(object)


def build_dataset(name: str, inter: pd.DataFrame, items: pd.DataFrame | None = None,
                  users: pd.DataFrame | None = None, *, min_rating: float | None = None,
                  kcore_k: int = 0, source: str = "") -> Dataset:
    """Validate columns, preprocess, index users/items, and align the side tables by index."""
    for col in ("user_id", "item_id"):
        if col not in inter:
            raise UserError(f"{source or name}: interactions lack column '{col}' "
                            f"(have: {list(inter.columns)})")
    if min_rating is not None and "rating" not in inter:
        raise UserError(f"{source or name}: min_rating set but interactions have no 'rating'")
    df = inter.copy()
    df["user_id"] = df["user_id"].astype(str)
    df["item_id"] = df["item_id"].astype(str)
    if len(df) == 0:
        raise UserError(f"{source or name}: no interactions (the file has a header only)")
    if min_rating is not None:
        ratings = pd.to_numeric(df["rating"], errors="coerce")
        if not (ratings >= min_rating).any():
            raise UserError(f"{source or name}: min_rating = {min_rating} removes every "
                            f"interaction (ratings are {ratings.min():g} to {ratings.max():g}; "
                            f"nearest valid: {ratings.max():g})")
    kept = dedupe(implicit(df, min_rating))
    df = kcore(kept, kcore_k)
    if len(df) == 0:
        raise UserError(f"{source or name}: kcore = {kcore_k} removes every interaction "
                        f"(nearest valid: {largest_kcore(kept)}, the largest k whose k-core is "
                        "not empty)")
    user_ids, item_ids = _ordered_ids(df["user_id"]), _ordered_ids(df["item_id"])
    uidx = pd.Index(user_ids).get_indexer(df["user_id"]).astype(np.int32)
    iidx = pd.Index(item_ids).get_indexer(df["item_id"]).astype(np.int32)
    col = lambda c, t: df[c].to_numpy(t) if c in df else None  # noqa: E731
    inter_obj = Interactions(uidx, iidx, len(user_ids), len(item_ids),
                             col("rating", np.float32), col("timestamp", np.float64))
    return Dataset(name, inter_obj, user_ids, item_ids,
                   _align(items, "item_id", item_ids), _align(users, "user_id", user_ids),
                   {"min_rating": min_rating, "kcore": kcore_k})


def _align(table: pd.DataFrame | None, key: str, ids: np.ndarray) -> pd.DataFrame | None:
    """Side table re-indexed to the dataset's positions (missing rows become empty strings/NaN)."""
    if table is None:
        return None
    if key not in table:
        raise UserError(f"side table lacks its key column '{key}' (have: {list(table.columns)})")
    t = table.copy()
    t[key] = t[key].astype(str)
    t = t.drop_duplicates(key).set_index(key).reindex(pd.Index(ids, name=key))
    t = t.reset_index(drop=True)
    for c in t.columns:
        if not pd.api.types.is_numeric_dtype(t[c]):
            t[c] = t[c].fillna("")
    return t
