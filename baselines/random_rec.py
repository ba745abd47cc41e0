"""Uniform random baseline (a null model for sanity checks and harness overhead)."""

from __future__ import annotations

import numpy as np
import torch

from harness.recommender import Recommender


class RandomRec(Recommender):
    """score(u, i) ~ U[0, 1), drawn from a generator seeded by (seed, u): deterministic per
    (seed, user, item), independent of batch composition, and with no n_users x n_items table."""

    def __init__(self, seed: int = 0):
        super().__init__(seed)
        self.n_items = 0

    def fit(self, split, dataset) -> None:
        self.n_items = split.dataset.n_items

    def _row(self, user: int) -> np.ndarray:
        return np.random.default_rng([int(self.seed), user]).random(self.n_items, dtype=np.float32)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        idx = items.long().numpy()
        rows = [self._row(int(u))[idx] for u in users.tolist()]
        out = np.stack(rows) if rows else np.zeros((0, len(idx)), np.float32)
        return torch.from_numpy(out)
