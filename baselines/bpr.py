"""BPR-MF: matrix factorization trained with the BPR pairwise loss (Rendle et al. 2009)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from harness.candidates import full_candidates
from harness.evaluate import evaluate
from baselines.factors import factor_scores
from harness.recommender import Recommender


def sample_negatives(users: torch.Tensor, pos_keys: torch.Tensor, n_items: int,
                     gen: torch.Generator, rounds: int = 5) -> torch.Tensor:
    """One uniformly drawn item per entry of `users`, redrawn (up to `rounds` times) where it
    hits a training positive; `pos_keys` = sorted user * n_items + item of the positives."""
    neg = torch.randint(n_items, users.shape, generator=gen)
    if len(pos_keys) == 0:
        return neg
    todo = torch.arange(len(users))
    for _ in range(rounds):
        keys = users[todo] * n_items + neg[todo]
        at = torch.searchsorted(pos_keys, keys).clamp(max=len(pos_keys) - 1)
        todo = todo[pos_keys[at] == keys]
        if len(todo) == 0:
            break
        neg[todo] = torch.randint(n_items, todo.shape, generator=gen)
    return neg


class BPR(Recommender):
    """score(u, i) = p_uᵀ q_i, with embeddings trained by Adam on the BPR loss
    -log σ(p_uᵀ q_i - p_uᵀ q_j) + l2 (|p_u|² + |q_i|² + |q_j|²) over (user, train item,
    uniformly sampled non-positive item) triples, one negative per interaction per epoch.
    Every `eval_every` epochs NDCG@10 on the split's valid part (full ranking) is measured; the
    best evaluation's weights are kept and training stops after `patience` evaluations without
    improvement (no valid part: trains all `epochs`). `info` records best_epoch, epochs_run and
    best_valid_ndcg@10. Embeddings start from N(0, 0.1²). Runs on CUDA when available; all
    randomness (init, shuffling, negatives) comes from a CPU generator seeded by `seed`, so CPU
    runs are bitwise reproducible (CUDA's atomic adds may differ in the last bits). Users with
    no training history get train popularity scores."""

    param_ranges = {"factors": "[1, 100000]", "lr": "(0, inf)", "l2": "[0, inf)",
                    "batch_size": "[1, inf)", "epochs": "[1, 1000000]", "patience": "[1, inf)",
                    "eval_every": "[1, inf)"}

    def __init__(self, factors: int = 64, lr: float = 0.01, l2: float = 0.007,
                 batch_size: int = 4096, epochs: int = 200, patience: int = 5,
                 eval_every: int = 2, seed: int = 0):
        super().__init__(seed)
        self.factors, self.lr, self.l2 = factors, lr, l2
        self.batch_size, self.epochs, self.patience, self.eval_every = (
            batch_size, epochs, patience, eval_every)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.info: dict = {}

    def _valid_ndcg(self, cand, p: torch.Tensor, q: torch.Tensor) -> float:
        with torch.no_grad():
            fn = lambda u, i: (p[u.to(p.device)] @ q[i.to(q.device)].T).cpu()  # noqa: E731
            ev = evaluate(fn, cand, [10], ["ndcg"], batch_size=1024)
        return float(ev.values[("ndcg", 10)].mean())

    def fit(self, split, dataset) -> None:
        x = split.train.csr()
        n_users, n_items = x.shape
        users = torch.from_numpy(np.repeat(np.arange(n_users), np.diff(x.indptr)))
        items = torch.from_numpy(x.indices.astype(np.int64))
        pos_keys = users * n_items + items  # csr order: already sorted
        gen, dev = self.generator(), torch.device(self.device)
        scale = 0.1
        p = (torch.randn((n_users, self.factors), generator=gen) * scale).to(dev).requires_grad_()
        q = (torch.randn((n_items, self.factors), generator=gen) * scale).to(dev).requires_grad_()
        opt = torch.optim.Adam([p, q], lr=self.lr)
        cand = full_candidates(split, "valid") if len(split.valid) else None
        cand = cand if cand is not None and len(cand.users) else None
        best, best_epoch, best_state, bad, epoch = -1.0, 0, None, 0, 0
        for epoch in range(1, self.epochs + 1):
            order = torch.randperm(len(users), generator=gen)
            neg = sample_negatives(users, pos_keys, n_items, gen)
            for start in range(0, len(order), self.batch_size):
                b = order[start:start + self.batch_size]
                u, i, j = users[b].to(dev), items[b].to(dev), neg[b].to(dev)
                # index_select's backward (index_add) is deterministic on CPU; the backward of
                # p[u] (index_put with accumulate) uses atomic adds across threads
                pu, qi, qj = p.index_select(0, u), q.index_select(0, i), q.index_select(0, j)
                diff = (pu * (qi - qj)).sum(1)
                reg = (pu.square().sum() + qi.square().sum() + qj.square().sum()) / len(b)
                loss = -F.logsigmoid(diff).mean() + self.l2 * reg
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if cand is None or (epoch % self.eval_every and epoch != self.epochs):
                continue
            ndcg = self._valid_ndcg(cand, p.detach(), q.detach())
            if ndcg > best:
                best, best_epoch, bad = ndcg, epoch, 0
                best_state = (p.detach().cpu().clone(), q.detach().cpu().clone())
            else:
                bad += 1
                if bad >= self.patience:
                    break
        if best_state is None:
            best_state, best_epoch = (p.detach().cpu().clone(), q.detach().cpu().clone()), epoch
        self.user_factors, self.item_factors = best_state
        self.cold = torch.from_numpy(np.diff(x.indptr) == 0)
        self.popularity = torch.from_numpy(np.asarray(x.sum(0), np.float32).ravel())
        self.info = {"best_epoch": best_epoch, "epochs_run": epoch,
                     "best_valid_ndcg@10": None if cand is None else best,
                     "device": self.device}

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return factor_scores(self.user_factors, self.item_factors, self.cold, self.popularity,
                             users, items)
