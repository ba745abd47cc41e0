"""Recommenders used by tests to exercise failure handling (referenced as 'tests.plugins:X')."""

import torch

from harness.recommender import Recommender


class Crashing(Recommender):
    """Raises during fit."""

    def fit(self, split, dataset):
        raise RuntimeError("boom on purpose")


class NaNScores(Recommender):
    """Returns NaN for every score."""

    def fit(self, split, dataset):
        pass

    def score(self, users, items):
        return torch.full((len(users), len(items)), float("nan"))


class CountingPop(Recommender):
    """Popularity that counts fits in a class attribute (to observe resume)."""

    fits = 0

    def __init__(self, bonus: float = 0.0, seed: int = 0):
        super().__init__(seed)
        self.bonus = bonus

    def fit(self, split, dataset):
        CountingPop.fits += 1
        self.counts = torch.from_numpy(split.train.csr().sum(0).A1).float()

    def score(self, users, items):
        return self.counts[items].expand(len(users), -1) + self.bonus
