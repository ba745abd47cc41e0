"""Most-popular baseline."""

from __future__ import annotations

import numpy as np
import torch

from harness.recommender import Recommender


class Pop(Recommender):
    """score(u, i) = number of training interactions of item i (the same ranking for every user,
    cold users included; items never seen in training score 0)."""

    def __init__(self, seed: int = 0):
        super().__init__(seed)
        self.counts: torch.Tensor | None = None

    def fit(self, split, dataset) -> None:
        train = split.train
        counts = np.bincount(train.item, minlength=split.dataset.n_items)
        self.counts = torch.from_numpy(counts.astype(np.float32))

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.counts[items.long()].unsqueeze(0).expand(len(users), -1).clone()
