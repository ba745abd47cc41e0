"""`llm-hybrid`: collaborative filtering on top of frozen text features (UniSRec / CoLLM pattern):
item vectors from a learned projection of the encoder's item-text embeddings plus an ID
residual, trained jointly with user vectors on the interactions."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from harness.llm.features import frozen_item_embeddings
from harness.llm.text import item_texts
from harness.llm.train import (Budget, Step, cached_training, check_choice, check_positive,
                               fit_options, sample_negatives, seeded, train, training_device,
                               valid_metric)
from harness.recommender import Recommender

LOSSES = ("bpr", "softmax")
NOT_IN_KEY = ("device", "batch_size_score")


class HybridNet(torch.nn.Module):
    """s(u, i) = p_uᵀ v_i + b_i with v_i = W (e_i - ē) + m_i q_i and b_i = aᵀ (e_i - ē) + m_i c_i.

    e_i: frozen text embedding of item i (ē its mean over items); W (dim × factors) and a:
    learned projections of the text; q_i, c_i: ID residual vector and bias; m_i = 1 when item i
    has training interactions, else 0 (an unseen item is scored from its text alone)."""

    def __init__(self, text: torch.Tensor, known: torch.Tensor, n_users: int, factors: int,
                 gen: torch.Generator):
        super().__init__()
        dim = text.shape[1]
        self.register_buffer("text", text - text.mean(0, keepdim=True), persistent=False)
        self.register_buffer("known", known.float(), persistent=False)
        self.user = torch.nn.Parameter(torch.randn((n_users, factors), generator=gen) * 0.1)
        self.proj = torch.nn.Parameter(torch.randn((dim, factors), generator=gen) * 0.1)
        self.text_bias = torch.nn.Parameter(torch.zeros(dim))
        self.item_id = torch.nn.Parameter(torch.zeros((len(known), factors)))
        self.id_bias = torch.nn.Parameter(torch.zeros(len(known)))

    def table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(v, b) for every item (one (n_items × dim) @ (dim × factors) product)."""
        return (self.text @ self.proj + self.known[:, None] * self.item_id,
                self.text @ self.text_bias + self.known * self.id_bias)

    def items(self, idx: torch.Tensor, keep: torch.Tensor | None = None):
        """(v_i, b_i) for item indices `idx`; `keep` (0/1 per row) additionally masks the ID
        residual (ID dropout during training)."""
        m = self.known.index_select(0, idx)
        if keep is not None:
            m = m * keep
        v = (self.text @ self.proj).index_select(0, idx) + m[:, None] * self.item_id.index_select(0, idx)
        b = (self.text @ self.text_bias).index_select(0, idx) + m * self.id_bias.index_select(0, idx)
        return v, b

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        v, b = self.table()
        v, b = v.index_select(0, items), b.index_select(0, items)
        return self.user.index_select(0, users) @ v.T + b


class LLMHybrid(Recommender):
    """Text + CF hybrid, see `HybridNet` for the score. Trained with Adam on BPR
    (-log σ(s_ui - s_uj)) or sampled softmax (cross-entropy of the positive against
    `n_negatives` sampled items), plus l2 (|p_u|² + |q_i|² + |q_j|²) per example; negatives are
    drawn uniformly from the items seen in training, redrawn when positive. `id_dropout` zeroes
    an item's ID residual with that probability per training example, so the text path also
    learns to stand alone (cold items). Early stopping on NDCG@10 of the split's valid part
    (full ranking). Users without training history are scored by b_i (their p_u is 0)."""

    uses_text = True

    def __init__(self, model: str = "minilm", template: str = "auto", factors: int = 64,
                 loss: str = "bpr", n_negatives: int = 32, lr: float = 0.01, l2: float = 0.007,
                 id_dropout: float = 0.0, batch_size: int = 4096, epochs: int = 200,
                 max_steps: int | None = None, patience: int = 5, eval_every: int = 2,
                 device: str = "auto", seed: int = 0):
        super().__init__(seed)
        self.params = {k: v for k, v in locals().items()
                       if k not in ("self", "seed", "__class__") and k not in NOT_IN_KEY}
        check_choice("llm-hybrid", "loss", loss, LOSSES)
        check_positive("llm-hybrid", factors=factors, n_negatives=n_negatives, lr=lr,
                       batch_size=batch_size)
        if not 0.0 <= id_dropout < 1.0:
            check_choice("llm-hybrid", "id_dropout", id_dropout, ["a number in [0, 1)"])
        self.budget = Budget(epochs, max_steps, patience, eval_every).check("llm-hybrid")
        self.model_name, self.template, self.factors, self.loss = model, template, factors, loss
        self.n_negatives, self.lr, self.l2, self.id_dropout = n_negatives, lr, l2, id_dropout
        self.batch_size, self.device_pref = batch_size, device
        self.device = str(training_device(device))
        self.info: dict = {}
        self.item_vecs = None

    # ------------------------------------------------------------------ fit
    def fit(self, split, dataset) -> None:
        opts = fit_options(self)
        dev = training_device(self.device_pref, opts)
        self.device = str(dev)
        texts, template = item_texts(dataset, self.template)
        self.info = {"model": self.model_name, "template": template}
        self.item_vecs = None  # scoring reads the live weights until training is done
        text = torch.from_numpy(frozen_item_embeddings(texts, template, self.model_name, opts,
                                                       self.info, device=str(dev)))
        x = split.train.csr()
        counts = np.asarray(x.sum(0)).ravel()
        known = torch.from_numpy(counts > 0)
        self.cold_users = torch.from_numpy(np.diff(x.indptr) == 0)
        self.info.update(cold_users=int(self.cold_users.sum()), unseen_items=int((~known).sum()))
        with seeded(self.seed, dev):
            self.net = HybridNet(text, known, dataset.n_users, self.factors,
                                 self.generator()).to(dev)
            state, info = cached_training(self, "llm-hybrid", split.fingerprint, self.params,
                                          lambda: self._train(split, x, known, dev, opts),
                                          {n: tuple(p.shape) for n, p in
                                           self.net.named_parameters()})
        self.net.load_state_dict(state, strict=False)
        info["tokens_processed"] += self.info.get("tokens_processed", 0)  # item-text encoding
        self.info.update(info)
        self._freeze()

    def _train(self, split, x, known, dev, opts):
        n_users, n_items = x.shape
        users = torch.from_numpy(np.repeat(np.arange(n_users), np.diff(x.indptr)))
        items = torch.from_numpy(x.indices.astype(np.int64))
        pos_keys = users * n_items + items
        pool = torch.nonzero(known).squeeze(1)
        gen, net = self.generator(), self.net
        k = 1 if self.loss == "bpr" else self.n_negatives

        def batches(epoch):
            order = torch.randperm(len(users), generator=gen)
            for start in range(0, len(order), self.batch_size):
                b = order[start:start + self.batch_size]
                u = users[b]
                neg = sample_negatives(u.repeat_interleave(k), pos_keys, n_items, pool, gen)
                keep = (torch.rand(len(b) * (k + 1), generator=gen) >= self.id_dropout).float()
                yield u.to(dev), items[b].to(dev), neg.view(len(b), k).to(dev), keep.to(dev)

        def step(batch):
            u, i, j, keep = batch
            both = torch.cat([i, j.reshape(-1)])
            v, b = net.items(both, keep)
            pu = net.user.index_select(0, u)
            s = (pu[:, None, :] * v.view(k + 1, len(u), -1).transpose(0, 1)).sum(-1)
            s = s + b.view(k + 1, len(u)).T
            if self.loss == "bpr":
                main = -F.logsigmoid(s[:, 0] - s[:, 1]).mean()
            else:
                main = F.cross_entropy(s, torch.zeros(len(u), dtype=torch.long, device=dev))
            reg = (pu.square().sum() + v.square().sum()) / len(u)
            return Step(main + self.l2 * reg, len(u))

        def snapshot():
            return {n: p.detach().cpu().clone() for n, p in net.named_parameters()}

        validate = valid_metric(split, self)
        return train(list(net.parameters()), batches, step, self.budget, lr=self.lr,
                     optimizer="adam", snapshot=snapshot, validate=validate,
                     steps_per_epoch=math.ceil(len(users) / self.batch_size),
                     desc="llm-hybrid", quiet=opts.quiet, device=dev)

    def _freeze(self) -> None:
        """Precompute item vectors and biases for scoring."""
        with torch.no_grad():
            v, b = self.net.table()
            user = self.net.user.detach().clone()
            user[self.cold_users.to(user.device)] = 0.0
        self.user_vecs, self.item_vecs, self.item_bias = user.cpu(), v.cpu(), b.cpu()

    # ------------------------------------------------------------------ score
    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if self.item_vecs is None:  # during training (validation): the live weights
            with torch.no_grad():
                dev = self.net.user.device
                s = self.net(users.long().to(dev), items.long().to(dev)).cpu()
                cold = self.cold_users[users.long()]
                if cold.any():
                    s[cold] = self.net.table()[1].index_select(0, items.long().to(dev)).cpu()
                return s
        u, i = users.long(), items.long()
        return self.user_vecs[u] @ self.item_vecs[i].T + self.item_bias[i]
