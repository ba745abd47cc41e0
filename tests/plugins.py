"""Recommenders used by tests to exercise failure handling (referenced as 'tests.plugins:X')."""

import time

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


class _Pop(Recommender):
    """Popularity scores; the base of the efficiency-pass fakes below."""

    def fit(self, split, dataset):
        self.counts = torch.from_numpy(split.train.csr().sum(0).A1).float()

    def score(self, users, items):
        return self.counts[items].expand(len(users), -1).clone()


class Sleepy(_Pop):
    """Popularity after sleeping `delay_s` per score() call: a fixed service time (capacity
    1 / delay_s requests per second)."""

    def __init__(self, delay_s: float = 0.01, seed: int = 0):
        super().__init__(seed)
        self.delay_s = delay_s

    def score(self, users, items):
        time.sleep(self.delay_s)
        return super().score(users, items)


class SlowStart(_Pop):
    """The first `slow_calls` score() calls of each instance sleep `slow_s` (a cold start);
    instances are kept in `SlowStart.instances` with their per-call user counts."""

    instances: list = []

    def __init__(self, slow_calls: int = 3, slow_s: float = 0.05, seed: int = 0):
        super().__init__(seed)
        self.slow_calls, self.slow_s, self.calls = slow_calls, slow_s, []
        SlowStart.instances.append(self)

    def score(self, users, items):
        self.calls.append(len(users))
        if len(self.calls) <= self.slow_calls:
            time.sleep(self.slow_s)
        return super().score(users, items)


class FlakyServing(_Pop):
    """Fine on batches of several users (the accuracy pass, offline); on single-user requests
    it raises (`mode = "crash"`) or hangs for `hang_s` seconds (`mode = "hang"`)."""

    def __init__(self, mode: str = "crash", hang_s: float = 30.0, seed: int = 0):
        super().__init__(seed)
        self.mode, self.hang_s = mode, hang_s

    def score(self, users, items):
        if len(users) == 1:
            if self.mode == "crash":
                raise RuntimeError("cannot serve a single user, on purpose")
            time.sleep(self.hang_s)
        return super().score(users, items)


class TokenCounting(_Pop):
    """Holds a torch module (a 10x10 Linear: 110 parameters) and counts `tokens_per_user`
    prompt tokens per scored user in `info`, like llm-rank."""

    def __init__(self, tokens_per_user: int = 7, seed: int = 0):
        super().__init__(seed)
        self.tokens_per_user = tokens_per_user
        self.net = torch.nn.Linear(10, 10)
        self.info = {"prompt_tokens": 0, "candidate_tokens": 0}

    def score(self, users, items):
        self.info["prompt_tokens"] += self.tokens_per_user * len(users)
        return super().score(users, items)
