"""The null recommender: constant scores, no state. Its efficiency figures are the harness's own
overhead (request handling, history mask, top-k), as MLPerf's null SUT measures LoadGen's."""

from __future__ import annotations

import torch

from harness.recommender import Recommender


class Null(Recommender):
    """score(u, i) = `value` for every user and item: no model work, so its latency is what any
    recommender pays on top of its own scoring. Its ranking is the harness's tie-break (lower
    candidate column first), so its accuracy is meaningless.

    Every row ties, so the harness's `top_k` takes its stable-sort path for every request: an
    upper bound of the top-k cost. `ties = false` returns value - j / C for candidate column j
    of C instead (the same ranking, no ties, still no model work): the lower bound, the cost a
    model without ties pays."""

    def __init__(self, value: float = 0.0, ties: bool = True, seed: int = 0):
        super().__init__(seed)
        self.value, self.ties = value, ties

    def fit(self, split, dataset) -> None:
        pass

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if self.ties:
            return torch.full((len(users), len(items)), float(self.value))
        ramp = torch.arange(len(items), dtype=torch.float32) / max(len(items), 1)
        return (float(self.value) - ramp).expand(len(users), -1)
