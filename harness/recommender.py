"""The Recommender protocol: `fit(split, dataset)` then batched `score(users, items)`."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from harness.splits.base import Split
from harness.types import Dataset


@runtime_checkable
class RecommenderProtocol(Protocol):
    """What the runner needs. `score` returns a (len(users), len(items)) float tensor, higher is
    better, -inf allowed; it may be called many times with user batches after one `fit`."""

    def fit(self, split: Split, dataset: Dataset) -> None: ...

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor: ...


class Recommender:
    """Convenience base class. Subclasses take their hyperparameters as keyword arguments of
    `__init__` (with defaults; the suite is validated against that signature) plus `seed`.

    Capabilities are declared, not guessed: `uses_text` (robustness to text applies),
    `supports_rerank`, `device`. Optional: `score_candidates(users, lists) -> (B, C)` for
    per-user candidate lists (sampled, rerank); without it the union of the batch's candidates
    is scored with `score`. `info` (dict), when present after fit, goes into the manifest.
    `fit` should train on `split.train` only; `split.valid` may be
    used for early stopping.
    """

    uses_text: bool = False
    supports_rerank: bool = True
    device: str = "cpu"

    def __init__(self, seed: int = 0):
        self.seed = seed
        # set by the runner before fit: cache_dir, use_cache, quiet
        self.runtime: dict = {}

    def fit(self, split: Split, dataset: Dataset) -> None:
        raise NotImplementedError

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def generator(self) -> torch.Generator:
        """A torch CPU generator seeded from `self.seed` (no global RNG state touched)."""
        return torch.Generator().manual_seed(int(self.seed))


def all_items(items: torch.Tensor, n_items: int) -> bool:
    """Whether `items` is every item in index order (0, 1, ..., n_items - 1): full ranking, where
    a model can use its item-side matrices as they are instead of gathering columns."""
    if len(items) != n_items:
        return False
    if n_items == 0:
        return True
    arr = items.numpy() if items.device.type == "cpu" else items.cpu().numpy()
    return bool(arr[0] == 0 and arr[-1] == n_items - 1 and (np.diff(arr) == 1).all())
