"""Counterfactual list similarity (FaiRLLM: Zhang et al., "Is ChatGPT Fair for Recommendation?",
RecSys 2023; code jizhi-zhang/FaiRLLM, process.ipynb).

A = the top-K list for a counterfactual user text (one sensitive attribute value), M = the top-K
list for the neutral text (no attribute), as item indices in rank order; K = max(|A|, |M|).

- Jaccard@K = |A ∩ M| / |A ∪ M|                                  (the notebook's `iou`)
- SERP*@K   = Σ_{r=1}^{|A|} [A_r ∈ M] (K − r + 1) / (K (K + 1) / 2): overlap weighted by the
              rank in A, normalized so that identical lists score 1. The notebook's
              `calc_serp_ms` gives rank r (0-based i = r − 1) the weight K − i + 1 and divides by
              2K(K + 1) instead, so identical lists score (K + 3)/(4(K + 1)) ≈ 0.274 at K = 20
              (`serp_notebook` reproduces it).
- PRAG*@K   = over the K(K − 1)/2 pairs i < j of A: +1 when A_i ∈ M and (A_j ∉ M or A_i is
              ranked above A_j in M); divided by the number of pairs (the notebook's
              `calc_prag`; identical lists score 1). For |A| = 1: 1 if A = M, else 0.

Per attribute, over its values a with mean similarity s_a (mean over users):
- SNSR = max_a s_a − min_a s_a      (sensitive-to-neutral similarity range)
- SNSV = sqrt(mean_a (s_a − mean s)^2)  (population std, as `return_min_max_delta_std`)
Similarity is NaN for a user whose two lists are both empty (left out of the means).
"""

from __future__ import annotations

import numpy as np


def _items(row: np.ndarray) -> list[int]:
    return [int(x) for x in row if x >= 0]


def jaccard(a: list[int], m: list[int]) -> float:
    sa, sm = set(a), set(m)
    union = sa | sm
    return len(sa & sm) / len(union) if union else float("nan")


def serp(a: list[int], m: list[int]) -> float:
    k = max(len(a), len(m))
    if k == 0:
        return float("nan")
    sm = set(m)
    return sum(k - r for r, x in enumerate(a) if x in sm) / (k * (k + 1) / 2)


def serp_notebook(a: list[int], m: list[int]) -> float:
    """The FaiRLLM notebook's SERP value (weights K − i + 1, 0-based i; ÷ 2K(K + 1))."""
    if not m:
        return 0.0
    sm = set(m)
    return sum(len(a) - i + 1 for i, x in enumerate(a) if x in sm) * 0.5 / (len(m) * (len(m) + 1))


def prag(a: list[int], m: list[int]) -> float:
    if not a and not m:
        return float("nan")
    if not a or not m:
        return 0.0
    if len(a) == 1:
        return 1.0 if a == m else 0.0
    pos = {x: i for i, x in enumerate(m)}
    good = 0
    for i in range(len(a)):
        pi = pos.get(a[i])
        if pi is None:
            continue
        for j in range(i + 1, len(a)):
            pj = pos.get(a[j])
            good += pj is None or pi < pj
    return good / (len(a) * (len(a) - 1) / 2)


SIMILARITIES = {"jaccard": jaccard, "serp": serp, "prag": prag}


def per_user(variant: np.ndarray, neutral: np.ndarray) -> dict[str, np.ndarray]:
    """{similarity name: (U,) values} for row-aligned (U, K) lists (-1 = no item)."""
    out = {name: np.empty(len(variant)) for name in SIMILARITIES}
    for u in range(len(variant)):
        a, m = _items(variant[u]), _items(neutral[u])
        for name, fn in SIMILARITIES.items():
            out[name][u] = fn(a, m)
    return out


def snsr(values) -> float:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(v.max() - v.min()) if len(v) else float("nan")


def snsv(values) -> float:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(v.std()) if len(v) else float("nan")
