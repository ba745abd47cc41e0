"""User groupings and item groupings: a label per user (or a membership row per item).

User groupings (`user_grouping`):
- a categorical user field: the field's value as a string ('' and NaN = missing: the user is in
  no group of that grouping);
- a bucketed numeric field (`buckets = {age = [18, 25, 35]}`): half-open intervals over the
  edges e_1 < ... < e_m: '<e_1', '[e_1,e_2)', ..., '>=e_m'; non-numeric values are missing;
- `activity`: the user's number of train interactions, cut at the quantiles q_1 < ... < q_m of
  the evaluated users' train sizes (numpy's linear-interpolation quantiles t_j): group j holds
  the users with t_j < size <= t_{j+1} (t_0 = -inf, t_{m+1} = +inf); labels give the observed
  size range 'lo-hi'; empty groups (tied thresholds) are dropped.

Item groupings (`item_membership`): `popularity` (head / mid / tail by cumulative share of train
interactions, see `items.popularity_groups`) or an item field; a multi-valued field (RecBole
token_seq, e.g. ML-100K's `class` genres) splits on whitespace and gives each of an item's g
values weight 1/g.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.fairness.items import group_names, popularity_groups

ACTIVITY = "activity"
POPULARITY = "popularity"


@dataclass
class Grouping:
    """`codes[u]` = index into `labels` of evaluated user u's group, -1 = no group."""

    name: str
    labels: list[str]
    codes: np.ndarray
    missing: int = 0

    def sizes(self) -> np.ndarray:
        return np.bincount(self.codes[self.codes >= 0], minlength=len(self.labels))


def _from_strings(name: str, values: list, order: list[str] | None = None) -> Grouping:
    vals = ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()
            for v in values]
    labels = order if order is not None else sorted({v for v in vals if v})
    index = {lab: i for i, lab in enumerate(labels)}
    codes = np.array([index.get(v, -1) for v in vals], dtype=np.int64)
    return Grouping(name, labels, codes, int(sum(1 for v in vals if not v)))


def bucket_labels(edges: list[float]) -> list[str]:
    """'<e1', '[e1,e2)', ..., '>=em' (numbers printed with :g)."""
    e = [f"{x:g}" for x in edges]
    return [f"<{e[0]}"] + [f"[{a},{b})" for a, b in zip(e, e[1:])] + [f">={e[-1]}"]


def bucketed(name: str, values, edges: list[float]) -> Grouping:
    """Numeric values in half-open buckets over `edges`; non-numeric values are missing."""
    x = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(float)
    labels = bucket_labels(edges)
    codes = np.searchsorted(np.asarray(edges, float), x, side="right").astype(np.int64)
    codes[np.isnan(x)] = -1
    return Grouping(name, labels, codes, int(np.isnan(x).sum()))


def activity(sizes: np.ndarray, quantiles: tuple[float, ...]) -> Grouping:
    """Train-size groups cut at quantiles of `sizes` (see the module docstring)."""
    sizes = np.asarray(sizes)
    if len(sizes) == 0:
        return Grouping(ACTIVITY, [], np.zeros(0, dtype=np.int64))
    t = np.quantile(sizes, quantiles)
    raw = np.searchsorted(t, sizes, side="left")  # #thresholds strictly below the size
    present = np.unique(raw)
    labels = []
    for j in present:
        s = sizes[raw == j]
        labels.append(f"{int(s.min())}-{int(s.max())}")
    codes = np.searchsorted(present, raw).astype(np.int64)
    return Grouping(ACTIVITY, labels, codes)


def user_grouping(name: str, users_table: pd.DataFrame | None, users: np.ndarray,
                  train_sizes: np.ndarray, buckets: dict, quantiles: tuple[float, ...]
                  ) -> Grouping:
    """The grouping `name` of the evaluated `users` (indices into the dataset's users)."""
    if name == ACTIVITY:
        return activity(train_sizes[users], quantiles)
    values = users_table[name].to_numpy(object)[users]
    if name in buckets:
        return bucketed(name, values, list(buckets[name]))
    return _from_strings(name, list(values))


def field_values(table: pd.DataFrame, field: str) -> list[list[str]]:
    """Per row, the values of `field` (whitespace-split for RecBole token_seq fields)."""
    seq = (table.attrs.get("field_types") or {}).get(field) == "token_seq"
    out = []
    for v in table[field].to_numpy(object):
        s = "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()
        out.append(s.split() if seq else ([s] if s else []))
    return out


def item_membership(name: str, items_table: pd.DataFrame | None, pop: np.ndarray,
                    cuts: tuple[float, ...]) -> tuple[list[str], np.ndarray]:
    """(group labels, items x groups membership weights) of item grouping `name`."""
    if name == POPULARITY:
        g = popularity_groups(pop, cuts)
        labels = group_names(len(cuts) + 1)
        m = np.zeros((len(pop), len(labels)))
        m[np.arange(len(pop)), g] = 1.0
        return labels, m
    values = field_values(items_table, name)
    labels = sorted({v for vs in values for v in vs})
    index = {lab: j for j, lab in enumerate(labels)}
    m = np.zeros((len(values), len(labels)))
    for i, vs in enumerate(values):
        for v in vs:
            m[i, index[v]] += 1.0 / len(vs)
    return labels, m
