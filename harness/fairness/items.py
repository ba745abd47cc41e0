"""Item side: exposure and popularity bias of top-k lists (pure functions over numpy arrays).

Notation: L_u = user u's top-k list (the valid entries of a row of `lists`, -1 = no item),
C = the catalog (the items any evaluated user could be shown), φ(i) = train popularity of item i
= the number of distinct train users of i (Elliot's `Popularity`; RecBole's AveragePopularity
counts interactions, the same number when a (user, item) pair occurs once in train),
c(i) = Σ_u [i ∈ L_u] = how often i is recommended.

- coverage@k     = |∪_u L_u ∩ C| / |C|                                    (RecBole ItemCoverage)
- gini_index@k   = Σ_j (2j − n − 1) c_(j) / (n Σ_j c_(j)), c sorted ascending over the n = |C|
                   catalog items (never-recommended items count as 0); 0 = equal exposure,
                   → 1 = all exposure on one item                          (RecBole GiniIndex)
- entropy@k      = −Σ_i p_i log2 p_i, p_i = c(i) / Σ c, in bits (max log2 |C|). RecBole's
                   ShannonEntropy uses ln and divides by the number of distinct recommended items.
- arp@k          = mean_u mean_{i∈L_u} φ(i)          (Elliot ARP; RecBole AveragePopularity)
- aplt@k         = mean_u |L_u ∩ T| / |L_u|, T = the long tail (`popularity_groups`)  (Elliot APLT)
- pop_lift@k     = mean_u (ARP(L_u) − ARP(P_u)) / ARP(P_u), P_u = u's train items: the list's
                   popularity relative to the user's own profile (per-user form of the
                   popularity lift of Abdollahpouri et al., RecSys 2020)
Users with an empty list are left out of the per-user means (arp, aplt, pop_lift).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

GROUP_NAMES = {1: ["all"], 2: ["head", "tail"], 3: ["head", "mid", "tail"]}


def valid_lists(top_items: np.ndarray, top_scores: np.ndarray | None, k: int) -> np.ndarray:
    """The first k columns of the top lists with entries that are not items (-1 padding, or an
    excluded item scored -inf that filled a short list) set to -1."""
    lists = np.array(top_items[:, :k], dtype=np.int64, copy=True)
    if top_scores is not None:
        lists[np.isneginf(top_scores[:, :k])] = -1
    return lists


def exposure_counts(lists: np.ndarray, n_items: int, weights: np.ndarray | None = None
                    ) -> np.ndarray:
    """c(i) (or Σ weights[rank] over the lists' occurrences of i when `weights` is given)."""
    ok = lists >= 0
    w = None if weights is None else np.broadcast_to(weights[: lists.shape[1]], lists.shape)[ok]
    return np.bincount(lists[ok], weights=w, minlength=n_items).astype(float)


def coverage(lists: np.ndarray, catalog: np.ndarray) -> float:
    """|∪ L_u ∩ C| / |C|."""
    shown = np.unique(lists[lists >= 0])
    return float(np.isin(catalog, shown).sum() / max(len(catalog), 1))


def gini_index(counts: np.ndarray) -> float:
    """Gini index of the exposure counts of the catalog items (NaN when nothing is shown)."""
    c = np.sort(np.asarray(counts, float))
    n, total = len(c), c.sum()
    if n == 0 or total <= 0:
        return float("nan")
    j = np.arange(1, n + 1)
    return float(np.sum((2 * j - n - 1) * c) / (n * total))


def entropy_bits(counts: np.ndarray) -> float:
    """−Σ p log2 p of the exposure distribution (NaN when nothing is shown)."""
    c = np.asarray(counts, float)
    c = c[c > 0]
    if c.size == 0:
        return float("nan")
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum())


def per_user_mean(lists: np.ndarray, item_values: np.ndarray) -> np.ndarray:
    """mean_{i∈L_u} item_values[i] per user; NaN for empty lists."""
    ok = lists >= 0
    vals = np.where(ok, np.asarray(item_values, float)[np.maximum(lists, 0)], 0.0)
    n = ok.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, vals.sum(1) / np.maximum(n, 1), np.nan)


def profile_popularity(train: sp.csr_matrix, users: np.ndarray, pop: np.ndarray) -> np.ndarray:
    """ARP(P_u): mean φ over user u's train items; NaN for users without train items."""
    sub = train[users]
    n = np.diff(sub.indptr)
    sums = np.add.reduceat(pop[sub.indices], sub.indptr[:-1]) if sub.nnz else np.zeros(len(n))
    sums = np.where(n > 0, sums, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, sums / np.maximum(n, 1), np.nan)


def popularity_lift(list_pop: np.ndarray, profile_pop: np.ndarray) -> np.ndarray:
    """(ARP(L_u) − ARP(P_u)) / ARP(P_u) per user; NaN where either is undefined or ARP(P_u) = 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (list_pop - profile_pop) / profile_pop
    return np.where(np.isfinite(out), out, np.nan)


def popularity_groups(pop: np.ndarray, cuts: tuple[float, ...]) -> np.ndarray:
    """Group index per item by cumulative share of train interactions: items sorted by φ
    descending; S(i) = Σ_{j: φ(j) > φ(i)} φ(j) / Σ_j φ(j) is the share held by strictly more
    popular items; group(i) = #{c ∈ cuts : S(i) >= c}. Group 0 (head) = the most popular items
    taken in order until they hold `cuts[0]` of the interactions, the last group (tail) = the
    items after the last cut (zero-count items included). Tied items always share a group.
    With cuts = (0.8,) the head is Elliot's short head (pop_ratio 0.8; Elliot breaks ties at
    the boundary by sort order instead) and the tail its long tail."""
    pop = np.asarray(pop, float)
    total = pop.sum()
    if total <= 0:
        return np.full(len(pop), len(cuts), dtype=np.int64)
    values, inverse = np.unique(pop, return_inverse=True)  # ascending
    block = np.bincount(inverse, weights=pop, minlength=len(values))
    above = (block[::-1].cumsum()[::-1] - block) / total  # share held by strictly larger values
    share = above[inverse]
    return np.sum(share[:, None] >= np.asarray(cuts)[None, :] - 1e-12, axis=1).astype(np.int64)


def group_names(n_groups: int) -> list[str]:
    """'head', 'mid', 'tail' (or 'head', 'mid1', 'mid2', ..., 'tail' for more groups)."""
    if n_groups in GROUP_NAMES:
        return GROUP_NAMES[n_groups]
    return ["head"] + [f"mid{i}" for i in range(1, n_groups - 1)] + ["tail"]


def rank_discounts(k: int) -> np.ndarray:
    """w_r = 1 / log2(r + 1) for ranks r = 1..k (the DCG position discount)."""
    return 1.0 / np.log2(np.arange(2, k + 2))


def exposure_shares(lists: np.ndarray, membership: np.ndarray, truth_items: np.ndarray,
                    catalog: np.ndarray) -> dict[str, np.ndarray]:
    """Per item group g (columns of `membership`, items x groups, rows summing to 1 for items
    that belong to some group):

    - exposure: Σ_u Σ_r w_r m(L_u[r], g) / Σ_u Σ_r w_r  (position-discounted exposure share)
    - catalog:  Σ_{i∈C} m(i, g) / |C|
    - relevance: Σ_{(u,i) held out} m(i, g) / #held-out pairs
    - ratio_catalog = exposure / catalog, ratio_relevance = exposure / relevance
    - disparity_catalog = std_g(ratio_catalog) / mean_g(ratio_catalog) over groups with a
      nonzero catalog share (population std; 0 = every group gets exposure in proportion to its
      catalog share: PopRSP's form, Elliot), disparity_relevance likewise (PopREO's form).
    """
    m = np.asarray(membership, float)
    w = exposure_counts(lists, m.shape[0], rank_discounts(lists.shape[1]))
    exp = (w @ m) / w.sum() if w.sum() > 0 else np.full(m.shape[1], np.nan)
    cat = m[catalog].sum(0) / max(len(catalog), 1)
    rel_pairs = m[truth_items].sum(0)
    rel = rel_pairs / len(truth_items) if len(truth_items) else np.full(m.shape[1], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        r_cat = np.where(cat > 0, exp / cat, np.nan)
        r_rel = np.where(rel > 0, exp / rel, np.nan)
    return {"exposure": exp, "catalog": cat, "relevance": rel, "ratio_catalog": r_cat,
            "ratio_relevance": r_rel, "disparity_catalog": _cv(r_cat),
            "disparity_relevance": _cv(r_rel)}


def _cv(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    if len(x) < 2 or x.mean() == 0:
        return float("nan")
    return float(x.std() / x.mean())


def random_lists(cand_lists: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Top-k of a random ranker over per-user candidate lists (-1 = padding): each row's valid
    candidates in a seeded uniformly random order (one generator for the whole matrix)."""
    rng = np.random.default_rng([seed, 4049])
    keys = rng.random(cand_lists.shape)
    keys[cand_lists < 0] = np.inf
    order = np.argsort(keys, axis=1, kind="stable")[:, :k]
    out = np.take_along_axis(cand_lists, order, axis=1)
    return np.where(np.take_along_axis(keys, order, axis=1) < np.inf, out, -1)
