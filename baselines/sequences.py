"""Per-user item sequences ordered by time, and what every sequential recommender shares.

A sequential model scores a user from the ordered history that precedes the evaluation target:
for the `valid` target the user's train items, for `test` the train and valid items (the same
history the `full` candidates exclude). Order: timestamp, ties by row position in the dataset
(as `leave_one_out` orders them).
"""

from __future__ import annotations

import numpy as np
import torch

from harness.errors import UserError
from harness.recommender import Recommender

TARGETS = ("valid", "test")
HISTORY_PARTS = {"valid": ("train",), "test": ("train", "valid")}


def ordered_sequences(split, parts: tuple[str, ...]) -> list[np.ndarray]:
    """For every user index, the items of `parts` ordered by (timestamp, row); int64 arrays."""
    inter = split.dataset.interactions
    if inter.timestamp is None:
        raise UserError(f"dataset '{split.dataset.name}' has no timestamps: sequential "
                        "recommenders score from a time-ordered history")
    rows = np.concatenate([np.asarray(split.rows[p], np.int64) for p in parts])
    users = inter.user[rows].astype(np.int64)
    order = np.lexsort((rows, inter.timestamp[rows], users))
    items = inter.item[rows][order].astype(np.int64)
    bounds = np.searchsorted(users[order], np.arange(split.dataset.n_users + 1))
    return [items[bounds[u]:bounds[u + 1]] for u in range(split.dataset.n_users)]


def left_aligned(seqs: list[np.ndarray], max_len: int,
                 offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(len(seqs), max_len) int64 tensor holding the last `max_len` items of each sequence
    (+ `offset`) from position 0, padded with 0 on the right, and the lengths."""
    out = torch.zeros((len(seqs), max_len), dtype=torch.long)
    lengths = torch.zeros(len(seqs), dtype=torch.long)
    for row, s in enumerate(seqs):
        tail = s[-max_len:] if max_len else s[:0]
        out[row, :len(tail)] = torch.from_numpy(tail + offset)
        lengths[row] = len(tail)
    return out, lengths


class SequentialRecommender(Recommender):
    """Base for models that score a user from the time-ordered history before the target.

    `needs_timestamps = True` (datasets without timestamps are refused). The scoring target is
    `self.target` when set ("valid" or "test"), else `fit_options.target` when the harness
    provides one, else "test". `history(users)` returns the ordered histories scored from.
    """

    needs_timestamps: bool = True
    target: str | None = None

    def _set_histories(self, split) -> None:
        self._histories = {t: ordered_sequences(split, HISTORY_PARTS[t]) for t in TARGETS}

    def scoring_target(self) -> str:
        target = self.target or getattr(getattr(self, "fit_options", None), "target", None)
        target = target or "test"
        if target not in TARGETS:
            raise ValueError(f"scoring target must be one of {TARGETS}, got {target!r}")
        return target

    def history(self, users) -> list[np.ndarray]:
        """The ordered item histories (harness item indices, oldest first) that `score` uses
        for `users` under the current scoring target."""
        if not hasattr(self, "_histories"):
            raise RuntimeError("history() called before fit()")
        hist = self._histories[self.scoring_target()]
        return [hist[int(u)] for u in users]
