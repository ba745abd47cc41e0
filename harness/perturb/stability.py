"""How much a ranking changed under a perturbation, per user, and HELM's worst case.

Top-k lists are arrays (users x K) of item indices, best first, -1 = no item (padding).

- Jaccard@k = |A_k ∩ B_k| / |A_k ∪ B_k| over the item sets of the two top-k lists (1 when both
  are empty).
- RBO@k (rank-biased overlap, Webber et al. 2010, truncated at depth k and normalized so that
  identical lists score 1): RBO@k = (1 - p) / (1 - p^k) · Σ_{d=1..k} p^(d-1) |A_d ∩ B_d| / d,
  with A_d the first d items of A and p the persistence (weight of deeper ranks). Disjoint
  lists score 0. A list with fewer than k items counts the missing ranks as non-matching.
- Kendall τ-b between two score vectors over the same candidates (scipy.stats.kendalltau's
  tau-b): τ = (C - D) / sqrt((n0 - n1)(n0 - n2)), n0 = pairs, n1 / n2 = pairs tied in x / y;
  NaN when either vector is constant.
- Worst case (HELM, `compute_worst_case_metrics`): per user, the minimum (maximum for
  lower-is-better metrics) over the clean value and the values under every perturbation of a
  family.
"""

from __future__ import annotations

import numpy as np

_CHUNK = 1_000_000  # pair-matrix cells per chunk in kendall_tau_b


def _matches(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """(U, k, k) bool: a[:, i] == b[:, j], padding never matching."""
    a, b = np.asarray(a)[:, :k], np.asarray(b)[:, :k]
    return (a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)


def jaccard_at_k(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Per-user Jaccard@k of two top-k item lists (see the module docstring)."""
    inter = _matches(a, b, k).any(2).sum(1)
    na = (np.asarray(a)[:, :k] >= 0).sum(1)
    nb = (np.asarray(b)[:, :k] >= 0).sum(1)
    union = na + nb - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def rbo_at_k(a: np.ndarray, b: np.ndarray, k: int, p: float = 0.9) -> np.ndarray:
    """Per-user normalized truncated RBO@k with persistence p (see the module docstring)."""
    if not 0 < p < 1:
        raise ValueError(f"RBO persistence p must be in (0, 1), got {p}")
    m = _matches(a, b, k).astype(np.int64)
    depth = m.shape[1]
    cum = m.cumsum(1).cumsum(2)
    overlap = cum[:, np.arange(depth), np.arange(depth)]  # |A_d ∩ B_d| for d = 1..depth
    d = np.arange(1, depth + 1)
    weights = p ** (d - 1) / d
    return (1 - p) / (1 - p ** k) * (overlap * weights).sum(1)


def kendall_tau_b(x: np.ndarray, y: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Per-row Kendall τ-b of x[r] vs y[r] over the columns where valid[r] (see the module
    docstring); -inf scores are treated as the lowest value (tied with each other)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    valid = np.ones(x.shape, bool) if valid is None else np.asarray(valid, bool)
    x = np.where(np.isneginf(x), -np.finfo(float).max, x)
    y = np.where(np.isneginf(y), -np.finfo(float).max, y)
    n, c = x.shape
    out = np.full(n, np.nan)
    iu = np.triu_indices(c, 1)
    step = max(1, _CHUNK // max(1, len(iu[0])))
    for s in range(0, n, step):
        xs, ys, vs = x[s:s + step], y[s:s + step], valid[s:s + step]
        dx = np.sign(xs[:, iu[0]] - xs[:, iu[1]])
        dy = np.sign(ys[:, iu[0]] - ys[:, iu[1]])
        pair = vs[:, iu[0]] & vs[:, iu[1]]
        n0 = pair.sum(1)
        n1 = (pair & (dx == 0)).sum(1)
        n2 = (pair & (dy == 0)).sum(1)
        num = (dx * dy * pair).sum(1)
        den = np.sqrt((n0 - n1).astype(float) * (n0 - n2))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s:s + step] = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return out


def worst_case(clean: np.ndarray, perturbed: list[np.ndarray], higher_is_better: bool = True
               ) -> np.ndarray:
    """Per user, the worst of the clean value and every perturbed value (HELM)."""
    stack = np.vstack([np.asarray(clean, float)] + [np.asarray(v, float) for v in perturbed])
    return stack.min(0) if higher_is_better else stack.max(0)
