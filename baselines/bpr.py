"""BPR-MF: matrix factorization trained with the BPR pairwise loss (Rendle et al. 2009)."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from harness.candidates import full_candidates
from harness.evaluate import evaluate
from baselines.bpr_cpu import bpr_gradients_into
from baselines.factors import factor_scores, intra_op_threads, pick_device
from harness.recommender import Recommender


def sample_negatives(users: torch.Tensor, pos_keys: torch.Tensor, n_items: int,
                     gen: torch.Generator, rounds: int = 5,
                     seen: torch.Tensor | None = None) -> torch.Tensor:
    """One uniformly drawn item per entry of `users`, redrawn (up to `rounds` times) where it
    hits a training positive; `pos_keys` = sorted user * n_items + item of the positives, or
    `seen`, a flat boolean table indexed by those keys (same draws, a lookup per key instead of
    a binary search)."""
    neg = torch.randint(n_items, users.shape, generator=gen)
    if len(pos_keys) == 0:
        return neg
    todo = torch.arange(len(users))
    for _ in range(rounds):
        keys = users[todo] * n_items + neg[todo]
        if seen is not None:
            todo = todo[seen[keys]]
        else:
            at = torch.searchsorted(pos_keys, keys).clamp(max=len(pos_keys) - 1)
            todo = todo[pos_keys[at] == keys]
        if len(todo) == 0:
            break
        neg[todo] = torch.randint(n_items, todo.shape, generator=gen)
    return neg


def bpr_gradients(p: torch.Tensor, q: torch.Tensor, u: torch.Tensor, i: torch.Tensor,
                  j: torch.Tensor, l2: float, grad_p: torch.Tensor, grad_q: torch.Tensor,
                  chunk_elems: int = 1 << 15) -> None:
    """Writes into `grad_p`, `grad_q` the gradients w.r.t. p and q of the batch loss
    L = -mean_b log σ(x_b) + l2 (Σ|p_u|² + Σ|q_i|² + Σ|q_j|²) / n, x_b = p_uᵀ (q_i - q_j):
    ∂L/∂x_b = -σ(-x_b) / n, ∂L/∂p_u = Σ_b ∂L/∂x_b (q_i - q_j) + 2 l2 c_u p_u / n and
    ∂L/∂q_k = Σ_b ∂L/∂x_b p_u ([i_b = k] - [j_b = k]) + 2 l2 c_k q_k / n, with c the number of
    times a row occurs in the batch. Torch ops (any device; `baselines.bpr_cpu` is the CPU
    path); the batch goes in chunks of about `chunk_elems` floats per temporary, which stay in
    cache."""
    n, f = len(u), p.shape[1]
    grad_p.zero_()
    grad_q.zero_()
    step = max(1, chunk_elems // f)
    for start in range(0, n, step):
        uc, ic, jc = u[start:start + step], i[start:start + step], j[start:start + step]
        pu, d = p.index_select(0, uc), q.index_select(0, ic)
        d.sub_(q.index_select(0, jc))
        g = torch.sigmoid(torch.linalg.vecdot(pu, d).neg_()).mul_(-1.0 / n)[:, None]
        grad_p.index_add_(0, uc, d.mul_(g))
        pu.mul_(g)
        grad_q.index_add_(0, ic, pu)
        grad_q.index_add_(0, jc, pu.neg_())
    c2 = 2.0 * l2 / n
    count_q = torch.bincount(i, minlength=len(q)).add_(torch.bincount(j, minlength=len(q)))
    grad_p.addcmul_(torch.bincount(u, minlength=len(p)).to(p.dtype)[:, None], p, value=c2)
    grad_q.addcmul_(count_q.to(q.dtype)[:, None], q, value=c2)


class Adam:
    """Adam (Kingma & Ba 2015) on a list of tensors updated in place, with bias correction:
    m ← β1 m + (1-β1) g, v ← β2 v + (1-β2) g², w ← w - lr m̂ / (√v̂ + eps) with
    m̂ = m / (1-β1^t), v̂ = v / (1-β2^t); same floating-point operations as torch.optim.Adam's
    single-tensor path (CPU), without its import and per-step overhead."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas=(0.9, 0.999),
                 eps: float = 1e-8):
        self.params, self.lr, self.eps = params, lr, eps
        self.beta1, self.beta2 = betas
        self.m = [torch.zeros_like(w) for w in params]
        self.v = [torch.zeros_like(w) for w in params]
        self.t = 0

    def step(self, grads: list[torch.Tensor]) -> None:
        self.t += 1
        t = float(self.t)
        step_size = self.lr / (1 - self.beta1 ** t)
        bc2_sqrt = (1 - self.beta2 ** t) ** 0.5
        for w, g, m, v in zip(self.params, grads, self.m, self.v):
            m.lerp_(g, 1 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            denom = v.sqrt()
            w.addcdiv_(m, denom.div_(bc2_sqrt).add_(self.eps), value=-step_size)


class BPR(Recommender):
    """score(u, i) = p_uᵀ q_i, with embeddings trained by Adam on the BPR loss
    -log σ(p_uᵀ q_i - p_uᵀ q_j) + l2 (|p_u|² + |q_i|² + |q_j|²) over (user, train item,
    uniformly sampled non-positive item) triples, one negative per interaction per epoch.
    Every `eval_every` epochs NDCG@10 on the split's valid part (full ranking) is measured; the
    best evaluation's weights are kept and training stops after `patience` evaluations without
    improvement (no valid part: trains all `epochs`). `info` records best_epoch, epochs_run and
    best_valid_ndcg@10. Embeddings start from N(0, 0.1²). A batch's gradients are computed in
    one compiled pass on CPU (`baselines.bpr_cpu`, numba), by torch ops elsewhere
    (`bpr_gradients`). On CPU, training runs with one
    intra-op thread (a step's tensors are too small to gain from more, and every parallel op
    ends in a barrier that costs a time slice on a busy machine); the caller's setting is
    restored afterwards. `device`: "auto" (CUDA when
    available; the harness's fit option `device` wins when set), "cpu" or "cuda". All randomness
    (init, shuffling, negatives) comes from a CPU generator seeded by `seed`, so CPU runs are
    bitwise reproducible (CUDA's atomic adds may differ in the last bits). Users with no
    training history get train popularity scores."""

    SEEN_TABLE_MAX = 1 << 26  # user x item pairs: up to this, positives are a boolean table
    param_ranges = {"factors": "[1, 100000]", "lr": "(0, inf)", "l2": "[0, inf)",
                    "batch_size": "[1, inf)", "epochs": "[1, 1000000]", "patience": "[1, inf)",
                    "eval_every": "[1, inf)"}

    def __init__(self, factors: int = 64, lr: float = 0.01, l2: float = 0.007,
                 batch_size: int = 4096, epochs: int = 200, patience: int = 5,
                 eval_every: int = 2, device: str = "auto", seed: int = 0):
        super().__init__(seed)
        self.factors, self.lr, self.l2 = factors, lr, l2
        self.batch_size, self.epochs, self.patience, self.eval_every = (
            batch_size, epochs, patience, eval_every)
        self.device_choice = device
        self.device = pick_device(device, "bpr")
        self.info: dict = {}

    def _valid_ndcg(self, cand, p: torch.Tensor, q: torch.Tensor) -> float:
        fn = lambda u, i: (p[u.to(p.device)] @ q[i.to(q.device)].T).cpu()  # noqa: E731
        ev = evaluate(fn, cand, [10], ["ndcg"], batch_size=1024)
        return float(ev.values[("ndcg", 10)].mean())

    def fit(self, split, dataset) -> None:
        self.device = pick_device(self.device_choice, "bpr", getattr(self, "fit_options", None))
        x = split.train.csr()
        n_users, n_items = x.shape
        users = torch.from_numpy(np.repeat(np.arange(n_users), np.diff(x.indptr)))
        items = torch.from_numpy(x.indices.astype(np.int64))
        pos_keys = users * n_items + items  # csr order: already sorted
        seen = None
        if n_users * n_items <= self.SEEN_TABLE_MAX:
            seen = torch.zeros(n_users * n_items, dtype=torch.bool)
            seen[pos_keys] = True
        gen, dev = self.generator(), torch.device(self.device)
        scale = 0.1
        p = (torch.randn((n_users, self.factors), generator=gen) * scale).to(dev)
        q = (torch.randn((n_items, self.factors), generator=gen) * scale).to(dev)
        grads = [torch.zeros_like(p), torch.zeros_like(q)]
        opt = Adam([p, q], lr=self.lr)
        on_cpu = dev.type == "cpu"
        step = partial(bpr_gradients_into, p.numpy(), q.numpy(), l2=self.l2,
                       grad_p=grads[0].numpy(), grad_q=grads[1].numpy()) if on_cpu else partial(
            bpr_gradients, p, q, l2=self.l2, grad_p=grads[0], grad_q=grads[1])
        cand = full_candidates(split, "valid") if len(split.valid) else None
        cand = cand if cand is not None and len(cand.users) else None
        best, best_epoch, best_state, bad, epoch = -1.0, 0, None, 0, 0
        with intra_op_threads(1 if dev.type == "cpu" else None):
            for epoch in range(1, self.epochs + 1):
                order = torch.randperm(len(users), generator=gen)
                neg = sample_negatives(users, pos_keys, n_items, gen, seen=seen)
                batch = [t[order] for t in (users, items, neg)]
                batch = [t.numpy() if on_cpu else t.to(dev) for t in batch]
                for start in range(0, len(order), self.batch_size):
                    step(*(t[start:start + self.batch_size] for t in batch))
                    opt.step(grads)
                if cand is None or (epoch % self.eval_every and epoch != self.epochs):
                    continue
                ndcg = self._valid_ndcg(cand, p, q)
                if ndcg > best:
                    best, best_epoch, bad = ndcg, epoch, 0
                    best_state = (p.cpu().clone(), q.cpu().clone())
                else:
                    bad += 1
                    if bad >= self.patience:
                        break
        if best_state is None:
            best_state, best_epoch = (p.cpu().clone(), q.cpu().clone()), epoch
        self.user_factors, self.item_factors = best_state
        self.cold = torch.from_numpy(np.diff(x.indptr) == 0)
        self.popularity = torch.from_numpy(np.asarray(x.sum(0), np.float32).ravel())
        self.info = {"best_epoch": best_epoch, "epochs_run": epoch,
                     "best_valid_ndcg@10": None if cand is None else best,
                     "device": self.device}

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return factor_scores(self.user_factors, self.item_factors, self.cold, self.popularity,
                             users, items)
