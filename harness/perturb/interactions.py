"""Interaction perturbations: noisy training data (the model is refit), noisy histories at
inference (models that score from a user's history), permuted candidate order.

All draws are per user, from `derive_rng(seed, 'user', <dataset user id>, ident, severity)`, so
a user's noise does not depend on other users, on the models of the suite, or on the order of
the perturbations. s is the severity in [0, 1]; s = 0 is the identity.

| name | kind | family | what it does |
|---|---|---|---|
| train_drop | train | interactions | each train interaction of a user is dropped with probability s |
| train_inject | train | interactions | Binomial(n_u, s) items the user never interacted with (in any part: never a held-out item) are added to the user's train data, uniformly or by train popularity (`sampling`); each copies the rating and timestamp of a random train interaction of the user |
| history_drop | history | history | each item of the history a model scores from is dropped with probability s |
| history_inject | history | history | Binomial(n_u, s) never-seen items are inserted at random positions of the history |
| history_shuffle | history | history | each history position is chosen with probability s; the chosen items are permuted |
| candidate_order | order | order | each candidate position is chosen with probability s; the chosen candidates are permuted (full protocol: one permutation of the shared columns) |
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from harness.perturb.base import Perturbation


def injectable(split) -> np.ndarray | None:
    """Items that may be injected: all but the split's restricted evaluation items (cold_items:
    the held-out items), None = all."""
    held = [np.asarray(v) for v in split.eval_items.values() if v is not None]
    if not held:
        return None
    return np.setdiff1d(np.arange(split.dataset.n_items), np.concatenate(held))


def _draw_unseen(rng, pool, n_items: int, own: np.ndarray, k: int, weights=None) -> np.ndarray:
    """Up to k distinct items of `pool` (None = all items) not in `own`."""
    pool = np.arange(n_items) if pool is None else pool
    if weights is not None:
        weights = weights[pool] / weights[pool].sum()
    draw = pool[rng.choice(len(pool), min(len(pool), k + len(own)), replace=False, p=weights)]
    return draw[~np.isin(draw, own)][:k]


def _permute_chosen(n: int, s: float, rng: np.random.Generator) -> np.ndarray:
    """A permutation of range(n) moving only the positions chosen with probability s."""
    order = np.arange(n)
    chosen = np.flatnonzero(rng.random(n) < s)
    order[chosen] = chosen[rng.permutation(len(chosen))]
    return order


class TrainDrop(Perturbation):
    name, family, kind = "train_drop", "interactions", "train"
    doc = "each train interaction is dropped with probability s; the model is refit"

    def split(self, split, severity: float, seed: int):
        """(the noisy split, record). Train rows of each user in row order; kept rows keep
        their order."""
        if severity <= 0:
            return split, {"changed": 0, "share": 0.0}
        rows = np.sort(split.rows["train"])
        users = split.dataset.interactions.user[rows]
        keep = np.ones(len(rows), bool)
        ids = split.dataset.user_ids
        for u in np.unique(users):
            at = np.flatnonzero(users == u)
            keep[at] = self.rng(seed, severity, "user", ids[u]).random(len(at)) >= severity
        new_rows = {**split.rows, "train": rows[keep]}
        cold = len(np.unique(users)) - len(np.unique(users[keep]))
        return replace(split, rows=new_rows), {"changed": int((~keep).sum()),
                                               "share": float((~keep).mean()) if len(keep) else 0.0,
                                               "users_made_cold": int(cold)}


class TrainInject(Perturbation):
    name, family, kind = "train_inject", "interactions", "train"
    PARAMS = {"sampling": (str, "uniform", ("uniform", "popularity"))}
    doc = "Binomial(n_u, s) never-seen items are added to each user's train data; refit"

    def split(self, split, severity: float, seed: int):
        if severity <= 0:
            return split, {"changed": 0, "share": 0.0}
        ds = split.dataset
        inter = ds.interactions
        rows = np.sort(split.rows["train"])
        seen = inter.csr()
        weights, pool = None, injectable(split)
        if self.params["sampling"] == "popularity":
            weights = np.asarray(split.train.csr().sum(0)).ravel() + 1.0
        users_of = inter.user[rows]
        new_u, new_i, src = [], [], []
        for u in np.unique(users_of):
            own = rows[users_of == u]
            rng = self.rng(seed, severity, "user", ds.user_ids[u])
            k = int(rng.binomial(len(own), severity))
            if k == 0:
                continue
            items = _draw_unseen(rng, pool, ds.n_items, seen.indices[seen.indptr[u]:
                                                                   seen.indptr[u + 1]], k, weights)
            new_u += [u] * len(items)
            new_i += items.tolist()
            src += own[rng.integers(0, len(own), len(items))].tolist()
        src = np.asarray(src, np.int64)
        pick = lambda a: None if a is None else np.concatenate([a, a[src]])  # noqa: E731
        grown = replace(inter, user=np.concatenate([inter.user, np.asarray(new_u, inter.user.dtype)]),
                        item=np.concatenate([inter.item, np.asarray(new_i, inter.item.dtype)]),
                        rating=pick(inter.rating), timestamp=pick(inter.timestamp))
        added = np.arange(len(inter), len(inter) + len(src))
        noisy_ds = replace(ds, interactions=grown)
        new_rows = {**split.rows, "train": np.concatenate([split.rows["train"], added])}
        return (replace(split, dataset=noisy_ds, rows=new_rows),
                {"changed": int(len(src)), "share": float(len(src) / max(1, len(rows)))})


class _History(Perturbation):
    kind, family = "history", "history"

    def histories(self, hist: list[np.ndarray], severity: float, seed: int, split,
                  ) -> tuple[list[np.ndarray], dict]:
        """(perturbed copies of the per-user histories (most recent first), record)."""
        if severity <= 0:
            return hist, {"changed": 0, "share": 0.0}
        out, changed, total = [], 0, 0
        ds = split.dataset
        ctx = (ds.interactions.csr(), injectable(split), ds.n_items)
        for u, h in enumerate(hist):
            rng = self.rng(seed, severity, "user", ds.user_ids[u])
            new = self.one(np.asarray(h), severity, rng, ctx, u)
            changed += int(len(new) != len(h) or np.any(new != h))
            total += 1
            out.append(new)
        return out, {"changed": changed, "share": changed / max(1, total)}


class HistoryDrop(_History):
    name = "history_drop"
    doc = "each history item is dropped with probability s (inference only)"

    def one(self, h, s, rng, ctx, u):
        return h[rng.random(len(h)) >= s]


class HistoryInject(_History):
    name = "history_inject"
    doc = "Binomial(n_u, s) never-seen items are inserted into the history (inference only)"

    def one(self, h, s, rng, ctx, u):
        k = int(rng.binomial(len(h), s))
        if k == 0:
            return h
        seen, pool, n_items = ctx
        items = _draw_unseen(rng, pool, n_items, seen.indices[seen.indptr[u]:seen.indptr[u + 1]], k)
        out = list(h)
        for it, pos in zip(items, rng.integers(0, len(h) + 1, len(items))):
            out.insert(int(pos), int(it))
        return np.asarray(out, dtype=h.dtype)


class HistoryShuffle(_History):
    name = "history_shuffle"
    doc = "each history position is chosen with probability s; chosen items are permuted"

    def one(self, h, s, rng, ctx, u):
        return h[_permute_chosen(len(h), s, rng)]


class CandidateOrder(Perturbation):
    name, family, kind = "candidate_order", "order", "order"
    doc = "each candidate position is chosen with probability s; chosen candidates are permuted"

    def candidates(self, cand, severity: float, seed: int, dataset):
        """(candidates with permuted lists or columns, per-row inverse permutations, record).
        Truth and exclusions are the same; only the order in which items are presented
        changes."""
        if severity <= 0:
            return cand, None, {"changed": 0, "share": 0.0}
        if cand.lists is None:
            perm = _permute_chosen(len(cand.items), severity, self.rng(seed, severity, "all"))
            new = replace(cand, items=cand.items[torch.from_numpy(perm)])
            return new, perm[None, :], {"changed": int((perm != np.arange(len(perm))).sum()),
                                        "share": float((perm != np.arange(len(perm))).mean())}
        perms = np.stack([_permute_chosen(cand.lists.shape[1], severity,
                                          self.rng(seed, severity, "user", dataset.user_ids[u]))
                          for u in cand.users]) if len(cand.users) else \
            np.zeros((0, cand.lists.shape[1]), np.int64)
        lists = np.take_along_axis(cand.lists, perms, axis=1)
        moved = perms != np.arange(cand.lists.shape[1])[None, :]
        return replace(cand, lists=lists), perms, {"changed": int(moved.any(1).sum()),
                                                   "share": float(moved.mean()) if moved.size
                                                   else 0.0}


INTERACTIONS = (TrainDrop, TrainInject, HistoryDrop, HistoryInject, HistoryShuffle, CandidateOrder)
