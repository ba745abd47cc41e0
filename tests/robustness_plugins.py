"""Small real recommenders for the robustness tests (referenced from suites as
`tests.robustness_plugins:<Class>`): a text model that reads item text through a view and a
listwise model whose scores depend on candidate order."""

from __future__ import annotations

import numpy as np
import torch

from harness.llm.text import user_histories
from harness.perturb.view import view_item_texts
from harness.recommender import Recommender

SEEN: list[tuple[str, tuple[str, ...]]] = []  # (view label, item texts) of every text view read


class WordOverlap(Recommender):
    """score(u, i) = |words(text_i) ∩ W_u| / (1 + |words(text_i)|), W_u = the words of the texts
    of u's train history; item text and histories are read through views."""

    uses_text = True
    text_targets = ("items",)

    def fit(self, split, dataset) -> None:
        self.dataset, self.hist0 = dataset, user_histories(split)
        self.hist, self.view = self.hist0, None
        self._build()

    def _build(self) -> None:
        texts, _ = view_item_texts(self.dataset, "auto", self.view)
        if self.view is not None:
            SEEN.append((self.view.label, tuple(texts)))
        words = [set(t.lower().split()) for t in texts]
        self.s = torch.zeros((self.dataset.n_users, self.dataset.n_items))
        for u, h in enumerate(self.hist):
            wu = set().union(*(words[i] for i in h)) if len(h) else set()
            self.s[u] = torch.tensor([len(w & wu) / (1 + len(w)) for w in words])

    def set_text_view(self, view) -> None:
        self.view = view
        self._build()

    def set_history_view(self, histories) -> None:
        self.hist = self.hist0 if histories is None else histories
        self._build()

    def score(self, users, items):
        return self.s[users][:, items]


class Listwise(Recommender):
    """A listwise toy: train popularity minus 0.05 x the candidate's position in the list (a
    position bias); declares `order_sensitive`."""

    order_sensitive = True

    def fit(self, split, dataset) -> None:
        counts = np.asarray(split.train.csr().sum(0)).ravel()
        self.pop = torch.from_numpy(counts / max(1, counts.max())).float()

    def score(self, users, items):
        return self.pop[items].expand(len(users), -1).clone()

    def score_candidates(self, users, lists):
        return self.pop[lists] - 0.05 * torch.arange(lists.shape[1]).float()[None, :]
