"""Training examples for the text-based fine-tuned recommenders, from the train part only:
(history -> next item) pairs taken leave-last-out inside each user's train history, sampled
negatives, verbalized popularity, and the texts that go with them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from harness.llm.train import sample_negatives

POPULARITY_WORDS = ("new", "rare", "niche", "known", "popular", "blockbuster")


@dataclass(frozen=True)
class Example:
    """User `user` interacted with `target` after the items `history` (most recent first)."""

    user: int
    target: int
    history: tuple[int, ...]


def next_item_examples(hist: list[np.ndarray], history_len: int, max_examples: int,
                       rng: np.random.Generator, positions: int = 5) -> list[Example]:
    """Up to `max_examples` examples, drawn without replacement from every (user, position)
    with position < `positions` and at least one older item: target = the user's position-th
    most recent train item, history = the `history_len` items before it (most recent first)."""
    pool = [(u, p) for u, h in enumerate(hist) for p in range(min(positions, len(h) - 1))]
    if not pool:
        return []
    pick = rng.choice(len(pool), min(max_examples, len(pool)), replace=False)
    out = []
    for k in pick:
        u, p = pool[k]
        out.append(Example(u, int(hist[u][p]), tuple(int(i) for i in
                                                     hist[u][p + 1:p + 1 + history_len])))
    return out


def popularity_words(counts: np.ndarray) -> list[str]:
    """A word per item for its train popularity: 'new' (no train interaction), else the
    quintile of log counts among seen items: rare, niche, known, popular, blockbuster."""
    counts = np.asarray(counts, np.float64)
    seen = counts > 0
    words = np.array([POPULARITY_WORDS[0]] * len(counts), dtype=object)
    if seen.any():
        edges = np.quantile(np.log1p(counts[seen]), [0.2, 0.4, 0.6, 0.8])
        bucket = np.searchsorted(edges, np.log1p(counts[seen]), side="right")
        words[seen] = [POPULARITY_WORDS[1 + b] for b in bucket]
    return list(words)


def item_documents(texts: list[str], counts: np.ndarray, with_popularity: bool) -> list[str]:
    """Item texts, with '; popularity: <word>' appended when `with_popularity`."""
    if not with_popularity:
        return list(texts)
    return [f"{t}; popularity: {w}" for t, w in zip(texts, popularity_words(counts))]


def history_text(texts: list[str], items) -> str:
    """'Liked recently: A; B; C' (most recent first), or a cold-user sentence."""
    if len(items) == 0:
        return "No items liked yet."
    return "Liked recently: " + "; ".join(texts[i] for i in items)


def labeled_pairs(examples: list[Example], split, n_negatives: int, sampler: str,
                  gen: torch.Generator) -> list[tuple[Example, int, float]]:
    """(example, candidate item, label): each example's target with label 1, plus `n_negatives`
    items with label 0 drawn from the items seen in train, uniformly or by train popularity
    (counts + 1), never one of the user's train items."""
    x = split.train.csr()
    n_users, n_items = x.shape
    counts = np.asarray(x.sum(0)).ravel()
    pool = torch.from_numpy(np.flatnonzero(counts > 0))
    weights = None if sampler == "uniform" else torch.from_numpy(counts[pool.numpy()] + 1.0)
    users = torch.from_numpy(np.repeat(np.arange(n_users), np.diff(x.indptr)))
    pos_keys = users * n_items + torch.from_numpy(x.indices.astype(np.int64))
    ex_users = torch.tensor([e.user for e in examples], dtype=torch.long)
    neg = sample_negatives(ex_users.repeat_interleave(n_negatives), pos_keys, n_items, pool,
                           gen, weights).view(len(examples), n_negatives)
    out = []
    for e, row in zip(examples, neg.tolist()):
        out.append((e, e.target, 1.0))
        out.extend((e, j, 0.0) for j in row)
    return out
