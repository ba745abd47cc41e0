"""Per-user item sequences ordered by time, and what every sequential recommender shares.

A sequential model scores a user from the ordered history that precedes the evaluation target:
for the `valid` target the user's train items, for `test` the train and valid items (the same
history the `full` candidates exclude). Order: timestamp, ties by row position in the dataset
(as `leave_one_out` orders them). A history view (`set_history_view`) replaces the train part at
inference, as for the LLM recommenders (harness/perturb/view.py).
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


def later_items(split) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per user, (valid items in time order, number of train items after each): where the
    valid items sit among the train items in the test target's history."""
    inter = split.dataset.interactions
    first = np.asarray(split.rows["train"], np.int64)
    rows = np.concatenate([first, np.asarray(split.rows["valid"], np.int64)])
    is_train = np.arange(len(rows)) < len(first)
    users = inter.user[rows].astype(np.int64)
    order = np.lexsort((rows, inter.timestamp[rows], users))
    items, is_train, users = inter.item[rows][order].astype(np.int64), is_train[order], users[order]
    bounds = np.searchsorted(users, np.arange(split.dataset.n_users + 1))
    seen = np.concatenate([[0], np.cumsum(is_train)])  # train items before each position
    after = seen[bounds[users + 1]] - seen[1:]  # train items after each position, per user
    keep = ~is_train
    at = np.searchsorted(users[keep], np.arange(split.dataset.n_users + 1))
    v_items, v_after = items[keep], after[keep]
    return [(v_items[at[u]:at[u + 1]], v_after[at[u]:at[u + 1]])
            for u in range(split.dataset.n_users)]


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
    provides one, else "test". `history(users)` returns the ordered histories scored from;
    `history_len_used(users)` how many of their items the model reads (at most `max_len`).
    """

    needs_timestamps: bool = True
    target: str | None = None
    _view: dict | None = None

    def _set_histories(self, split) -> None:
        self._histories = {t: ordered_sequences(split, HISTORY_PARTS[t]) for t in TARGETS}
        self._later = later_items(split)
        self._view = None

    def set_history_view(self, histories) -> None:
        """Score from these per-user train histories (item indices, most recent first, as
        `harness.llm.text.user_histories`; None = the clean ones) without refitting. They
        replace the train part of every target's history; for the test target each valid item
        keeps its number of later train items (capped; after them all for leave_one_out)."""
        if histories is None:
            self._view = None
            return
        if not hasattr(self, "_histories"):
            raise RuntimeError("set_history_view() called before fit()")
        train = [np.asarray(h, np.int64)[::-1] for h in histories]
        test = [np.insert(t, len(t) - np.minimum(after, len(t)), items)
                for t, (items, after) in zip(train, self._later)]
        self._view = {"valid": train, "test": test}

    def scoring_target(self) -> str:
        target = self.target or getattr(getattr(self, "fit_options", None), "target", None)
        target = target or "test"
        if target not in TARGETS:
            raise ValueError(f"scoring target must be one of {TARGETS}, got {target!r}")
        return target

    def history(self, users) -> list[np.ndarray]:
        """The ordered item histories (harness item indices, oldest first) that `score` uses
        for `users` under the current scoring target (the history view's when one is set)."""
        if not hasattr(self, "_histories"):
            raise RuntimeError("history() called before fit()")
        hist = (self._view or self._histories)[self.scoring_target()]
        return [hist[int(u)] for u in users]

    def history_len_used(self, users) -> np.ndarray:
        """Per user, the number of history items scoring reads: min(len(history), max_len)."""
        return np.array([min(len(h), self.max_len) for h in self.history(users)], np.int64)
