"""Ranking metrics over binary relevance, per user, vectorized with torch.

Every metric takes the ground truth first and the predictions second:
`n_relevant` (B,) = number of relevant items per user, `hits` (B, K) bool = whether the item at
each rank of the predicted top-K list is relevant; `k` <= K. Conventions follow ranx / trec_eval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Metric:
    """A per-user ranking metric with its declared direction (never guessed from the name)."""

    name: str
    fn: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
    higher_is_better: bool = True

    def __call__(self, n_relevant: torch.Tensor, hits: torch.Tensor, k: int) -> torch.Tensor:
        return self.fn(n_relevant, hits, k)


def _discounts(k: int, device) -> torch.Tensor:
    return 1.0 / torch.log2(torch.arange(2, k + 2, device=device, dtype=torch.float64))


def precision(n_relevant: torch.Tensor, hits: torch.Tensor, k: int) -> torch.Tensor:
    """P@k = |relevant in top-k| / k."""
    return hits[:, :k].sum(1, dtype=torch.float64) / k


def recall(n_relevant: torch.Tensor, hits: torch.Tensor, k: int) -> torch.Tensor:
    """R@k = |relevant in top-k| / |relevant|."""
    return hits[:, :k].sum(1, dtype=torch.float64) / n_relevant.clamp(min=1)


def hit(n_relevant: torch.Tensor, hits: torch.Tensor, k: int) -> torch.Tensor:
    """Hit@k = 1 if any relevant item is in the top-k, else 0 (ranx: hit_rate)."""
    return hits[:, :k].any(1).to(torch.float64)


def mrr(n_relevant: torch.Tensor, hits: torch.Tensor, k: int) -> torch.Tensor:
    """MRR@k = 1 / rank of the first relevant item within the top-k, 0 if none."""
    h = hits[:, :k]
    first = h.to(torch.int8).argmax(1).to(torch.float64) + 1.0
    return torch.where(h.any(1), 1.0 / first, torch.zeros_like(first))


def ndcg(n_relevant: torch.Tensor, hits: torch.Tensor, k: int) -> torch.Tensor:
    """NDCG@k = sum_i hit_i / log2(i + 1) over ranks i <= k, divided by the ideal DCG of
    min(k, |relevant|) hits."""
    disc = _discounts(k, hits.device)
    dcg = (hits[:, :k].to(torch.float64) * disc).sum(1)
    ideal = torch.cumsum(disc, 0)[(n_relevant.clamp(min=1, max=k) - 1).long()]
    return dcg / ideal


def average_precision(n_relevant: torch.Tensor, hits: torch.Tensor, k: int) -> torch.Tensor:
    """AP@k = sum_{i <= k} P@i * hit_i / |relevant| (ranx/trec_eval; RecBole divides by
    min(k, |relevant|) instead)."""
    h = hits[:, :k].to(torch.float64)
    ranks = torch.arange(1, h.shape[1] + 1, device=h.device, dtype=torch.float64)
    return (torch.cumsum(h, 1) / ranks * h).sum(1) / n_relevant.clamp(min=1)


METRICS = {name: Metric(name, fn) for name, fn in {
    "ndcg": ndcg,
    "recall": recall,
    "precision": precision,
    "mrr": mrr,
    "hit": hit,
    "map": average_precision,
}.items()}
# the same metric under ranx's name, for cross-checks and TREC users
RANX_NAMES = {"ndcg": "ndcg", "recall": "recall", "precision": "precision", "mrr": "mrr",
              "hit": "hit_rate", "map": "map"}
