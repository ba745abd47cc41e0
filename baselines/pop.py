"""Most-popular baseline."""

from __future__ import annotations

import numpy as np
import torch

from harness.recommender import Recommender, all_items


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
        counts = (self.counts if all_items(items, len(self.counts))
                  else self.counts.index_select(0, items.long()))
        return counts.unsqueeze(0).expand(len(users), -1).clone()
