"""Preprocessing of raw interaction tables: implicit conversion, de-duplication, k-core."""

from __future__ import annotations

import pandas as pd


def implicit(df: pd.DataFrame, min_rating: float | None) -> pd.DataFrame:
    """Keep interactions with rating >= min_rating (None keeps all: every interaction is positive)."""
    if min_rating is None:
        return df
    return df[df["rating"] >= min_rating]


def dedupe(df: pd.DataFrame) -> pd.DataFrame:
    """Keep one row per (user, item): the latest by timestamp when there is one, else the last."""
    if "timestamp" in df:
        df = df.sort_values("timestamp", kind="stable")
    return df.drop_duplicates(["user_id", "item_id"], keep="last").sort_index()


def kcore(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """Iteratively drop users and items with fewer than k interactions until none are left."""
    if k <= 1:
        return df
    while True:
        uc = df["user_id"].map(df["user_id"].value_counts())
        ic = df["item_id"].map(df["item_id"].value_counts())
        keep = (uc >= k) & (ic >= k)
        if keep.all():
            return df
        df = df[keep]


def largest_kcore(df: pd.DataFrame) -> int:
    """The largest k whose k-core of `df` is not empty (binary search; 0 for no rows)."""
    if len(df) == 0:
        return 0
    lo = 1
    hi = int(min(df["user_id"].value_counts().max(), df["item_id"].value_counts().max()))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(kcore(df, mid)):
            lo = mid
        else:
            hi = mid - 1
    return lo
