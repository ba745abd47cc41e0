"""User-side rows of the fairness pass from the accuracy pass's per-user values (no scoring).

For each grouping (`groups.user_grouping`), accuracy metric m and k:
- per reported group (slice '<grouping>=<group>', n_users = group size): m (the group mean),
  m_ci_low / m_ci_high (stratified bootstrap CI of the mean);
- per grouping (slice '<grouping>', n_users = users in reported groups), when >= 2 groups are
  reported: m_gap (max − min of the group means), m_ratio (min / max), m_gap_p (permutation
  test), m_gap_ci_low / m_gap_ci_high (bootstrap CI), m_gap_p_holm (Holm's correction over the
  groupings tested for the same m@k).
Groups with fewer than `min_group_size` users are reported as too small in the record (name and
size), never as values, and their users take part in no test.
"""

from __future__ import annotations

import zlib

import numpy as np

from harness.fairness import stats
from harness.fairness.groups import user_grouping
from harness.report.stats import holm


def _row(metric, k, value, n, slc) -> dict:
    return {"metric": metric, "k": int(k), "value": float(value), "n_users": int(n),
            "slice": slc}


def rng_for(seed: int, *parts) -> np.random.Generator:
    """A generator keyed by (seed, grouping, metric, k): results do not depend on which other
    groupings or metrics a suite asks for."""
    return np.random.default_rng([seed] + [zlib.crc32(str(p).encode()) for p in parts])


def user_side(ev, split, spec) -> tuple[list[dict], dict]:
    """(rows, record) of the user side for one cell."""
    ds = split.dataset
    train_sizes = np.diff(split.train.csr().indptr)
    buckets = spec.bucket_map(ds.users)
    rows, record, pvals = [], {}, {}
    for name in spec.resolve_user_groups(ds.users):
        g = user_grouping(name, ds.users, ev.users, train_sizes, buckets, spec.activity_quantiles)
        sizes = g.sizes()
        keep = [j for j in range(len(g.labels)) if sizes[j] >= spec.min_group_size]
        remap = np.full(len(g.labels) + 1, -1)
        remap[keep] = np.arange(len(keep))
        codes = remap[g.codes]  # -1 (no group or too small) stays -1
        sel = codes >= 0
        record[name] = {"groups": {g.labels[j]: int(sizes[j]) for j in keep},
                        "too_small": {g.labels[j]: int(sizes[j]) for j in range(len(g.labels))
                                      if j not in keep},
                        "missing": int(g.missing), "tested": len(keep) >= 2}
        if not keep:
            continue
        n_perm = spec.permutations if len(keep) >= 2 else 0
        for m in spec.metrics:
            for k in spec.ks:
                x = ev.values[(m, k)][sel]
                res = stats.gap_test(x, codes[sel], len(keep), n_perm, spec.bootstrap,
                                     spec.confidence, rng_for(spec.seed, name, m, k))
                lo, hi = res["mean_ci"]
                for j, gj in enumerate(keep):
                    slc = f"{name}={g.labels[gj]}"
                    n = int(sizes[gj])
                    rows += [_row(m, k, res["means"][j], n, slc),
                             _row(f"{m}_ci_low", k, lo[j], n, slc),
                             _row(f"{m}_ci_high", k, hi[j], n, slc)]
                if len(keep) < 2:
                    continue
                n = int(sel.sum())
                rows += [_row(f"{m}_gap", k, res["gap"], n, name),
                         _row(f"{m}_gap_p", k, res["p"], n, name),
                         _row(f"{m}_gap_ci_low", k, res["gap_ci"][0], n, name),
                         _row(f"{m}_gap_ci_high", k, res["gap_ci"][1], n, name)]
                if np.isfinite(res["ratio"]):
                    rows.append(_row(f"{m}_ratio", k, res["ratio"], n, name))
                pvals.setdefault((m, k), []).append((name, res["p"], n))
    for (m, k), items in pvals.items():
        adjusted = holm([p for _, p, _ in items])
        rows += [_row(f"{m}_gap_p_holm", k, q, n, name)
                 for (name, _, n), q in zip(items, adjusted)]
    return rows, record
