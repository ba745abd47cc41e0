"""Recommenders for the executor tests (referenced as 'tests.scale_plugins:X'): hang, die, or
die once. They are real recommenders (popularity scores) with one injected fault."""

import os
import time
from pathlib import Path

import torch

from harness.recommender import Recommender


class Pop(Recommender):
    """Train popularity (float32 counts)."""

    def fit(self, split, dataset):
        self.counts = torch.from_numpy(split.train.csr().sum(0).A1).float()

    def score(self, users, items):
        return self.counts[items].expand(len(users), -1).clone()


class Hang(Pop):
    """Sleeps `seconds` in fit (where = 'fit') or in every score call (where = 'score')."""

    def __init__(self, where: str = "score", seconds: float = 3600.0, seed: int = 0):
        super().__init__(seed)
        self.where, self.seconds = where, seconds

    def fit(self, split, dataset):
        if self.where == "fit":
            time.sleep(self.seconds)
        super().fit(split, dataset)

    def score(self, users, items):
        if self.where == "score":
            time.sleep(self.seconds)
        return super().score(users, items)


class Die(Pop):
    """Ends its process abruptly (os._exit) during fit: a crashed worker, not an exception.
    With `marker` set it dies only the first time (the marker file records that it did)."""

    def __init__(self, marker: str = "", seed: int = 0):
        super().__init__(seed)
        self.marker = marker

    def fit(self, split, dataset):
        if not self.marker or not Path(self.marker).exists():
            if self.marker:
                Path(self.marker).write_text("died once")
            os._exit(3)
        super().fit(split, dataset)
