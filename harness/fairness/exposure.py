"""Item-side rows of the fairness pass from the accuracy pass's top-k lists (no scoring).

Per k (slice 'all'): item_coverage, gini_index, entropy, arp, aplt, pop_lift (`items`); per item
group ('item:<grouping>=<group>'): exposure_share, catalog_share, relevance_share,
exposure_ratio_catalog, exposure_ratio_relevance; per item grouping ('item:<grouping>'):
exposure_disparity_catalog, exposure_disparity_relevance (`items.exposure_shares`).

The catalog C is what the evaluated users could be shown: the candidate columns under `full`,
the union of the per-user candidate lists under `sampled` / `rerank`. Under a per-user list
protocol the lists are drawn from a small candidate set, so the same metrics are also given for
a seeded random ranker on the same lists (`<metric>_random`): compare against that, not across
protocols.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.fairness import items as it
from harness.fairness.groups import item_membership

SUMMARY = ("item_coverage", "gini_index", "entropy", "arp", "aplt", "pop_lift")


def _row(metric, k, value, n, slc="all") -> dict:
    return {"metric": metric, "k": int(k), "value": float(value), "n_users": int(n),
            "slice": slc}


def catalog_of(cand) -> np.ndarray:
    if cand.lists is None:
        return np.asarray(cand.items, dtype=np.int64)
    return np.unique(cand.lists[cand.lists >= 0])


def summary_metrics(lists: np.ndarray, catalog: np.ndarray, pop: np.ndarray,
                    tail: np.ndarray, profile_pop: np.ndarray) -> tuple[dict, dict]:
    """({metric: value}, {metric: per-user values}) of the SUMMARY metrics for one k."""
    counts = it.exposure_counts(lists, len(pop))[catalog]
    arp_u = it.per_user_mean(lists, pop)
    per_user = {"arp": arp_u, "aplt": it.per_user_mean(lists, tail.astype(float)),
                "pop_lift": it.popularity_lift(arp_u, profile_pop)}
    values = {"item_coverage": it.coverage(lists, catalog), "gini_index": it.gini_index(counts),
              "entropy": it.entropy_bits(counts)}
    for name, arr in per_user.items():
        values[name] = float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")
    return values, per_user


def item_side(ev, cand, split, spec, user_ids: np.ndarray, seed: int
              ) -> tuple[list[dict], pd.DataFrame, dict]:
    """(rows, per-user rows, record) of the item side for one cell."""
    ds = split.dataset
    train = split.train.csr()
    pop = np.asarray(train.sum(0)).ravel().astype(float)
    catalog = catalog_of(cand)
    pop_group = it.popularity_groups(pop, spec.popularity_cuts)
    tail = pop_group == len(spec.popularity_cuts)
    profile = it.profile_popularity(train, ev.users, pop)
    truth = cand.truth[ev.users]
    truth_items = truth.indices[np.isin(truth.indices, catalog)]
    rows, per_user, empty = [], [], {}
    memberships = {g: item_membership(g, ds.items, pop, spec.popularity_cuts)
                   for g in spec.item_groups}
    uid = user_ids[ev.users].astype(str)
    for k in spec.ks:
        lists = it.valid_lists(ev.top_items, ev.top_scores, k)
        n_list = int(((lists >= 0).sum(1) > 0).sum())
        empty[k] = int(len(lists) - n_list)
        values, pu = summary_metrics(lists, catalog, pop, tail, profile)
        for name, v in values.items():
            n = int(np.isfinite(pu[name]).sum()) if name in pu else len(lists)
            if np.isfinite(v):
                rows.append(_row(name, k, v, n))
        for name, arr in pu.items():
            ok = np.isfinite(arr)
            per_user.append(pd.DataFrame({"user": uid[ok], "metric": name, "k": k,
                                          "value": arr[ok]}))
        for g, (labels, m) in memberships.items():
            sh = it.exposure_shares(lists, m, truth_items, catalog)
            for j, lab in enumerate(labels):
                for key, metric in (("exposure", "exposure_share"), ("catalog", "catalog_share"),
                                    ("relevance", "relevance_share"),
                                    ("ratio_catalog", "exposure_ratio_catalog"),
                                    ("ratio_relevance", "exposure_ratio_relevance")):
                    if np.isfinite(sh[key][j]):
                        rows.append(_row(metric, k, sh[key][j], n_list, f"item:{g}={lab}"))
            for key in ("disparity_catalog", "disparity_relevance"):
                if np.isfinite(sh[key]):
                    rows.append(_row(f"exposure_{key}", k, sh[key], n_list, f"item:{g}"))
        if cand.lists is not None:
            rnd = it.random_lists(cand.lists, k, seed)
            rvals, _ = summary_metrics(rnd, catalog, pop, tail, profile)
            rows += [_row(f"{name}_random", k, v, len(rnd)) for name, v in rvals.items()
                     if np.isfinite(v)]
    labels = it.group_names(len(spec.popularity_cuts) + 1)
    total = pop.sum()
    record = {
        "catalog_items": int(len(catalog)), "protocol": cand.name,
        "popularity": "distinct train users per item",
        "popularity_cuts": list(spec.popularity_cuts),
        "popularity_groups": {lab: {"items": int((pop_group == j).sum()),
                                    "train_share": float(pop[pop_group == j].sum() / total)
                                    if total else None}
                              for j, lab in enumerate(labels)},
        "users_with_empty_lists": {str(k): v for k, v in empty.items()},
        "random_baseline": cand.lists is not None}
    frame = (pd.concat(per_user, ignore_index=True) if per_user
             else pd.DataFrame(columns=["user", "metric", "k", "value"]))
    return rows, frame, record
