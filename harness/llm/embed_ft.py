"""`llm-embed-ft`: the `llm-embed` two-tower recommender with its encoder fine-tuned
contrastively on (user history text -> next item text) pairs from the train part."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from harness.errors import UserError
from harness.llm.adapters import (check_adapter, count_parameters, load_trainable,
                                  make_trainable, trainable_state)
from harness.llm.encoder import encode
from harness.llm.examples import history_text, item_documents, next_item_examples
from harness.llm.loading import load_encoder
from harness.llm.text import capped_lengths, item_texts, user_histories
from harness.llm.train import (Budget, Step, cached_training, check_choice, check_positive,
                               fit_options, seeded, train, training_device, valid_metric)
from harness.recommender import Recommender

USER_MODES = ("text", "history", "both")
NOT_IN_KEY = ("device", "score_batch_size", "allow_download", "user_mode", "pop_weight",
              "decay")


def mean_pool(net: torch.nn.Module, enc: dict) -> torch.Tensor:
    """L2-normalized mean of the last hidden states over non-padding tokens (with grad)."""
    hidden = net(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return F.normalize(((hidden * m).sum(1) / m.sum(1).clamp(min=1.0)).float(), dim=-1)


class LLMEmbedFT(Recommender):
    """score(u, i) = (1 - w) cos(v_u, e_i) + w pop_i, as `llm-embed`, with an encoder fine-tuned
    by InfoNCE with in-batch negatives: for a batch of (query q_a = history text, item d_a =
    next item's text), loss = mean_a CE(softmax_b(cos(q_a, d_b) / τ), a), τ = `temperature`;
    the items d_b are the batch's targets plus `uniform_negatives` items drawn uniformly from
    the train items (mixed negative sampling: in-batch negatives alone follow the popularity
    of targets and would train popularity out); an item equal to the row's target other than
    its own column is masked out (not a negative).
    Examples: up to `max_examples` (history -> next train item) pairs, leave-last-out inside the
    train histories. `adapter`: LoRA (`lora_*`, default) or full fine-tuning.

    v_u by `user_mode`: `text` (default, what was trained) = embedding of the user's history
    text (`history_len` most recent train items); `history` = normalized recency-weighted mean
    (weight decay^r) of the history's item embeddings; `both` = normalized sum. Users without
    train history get pop_i (log(1 + n_i) / log(1 + max n))."""

    uses_text = True

    def __init__(self, model: str = "minilm", template: str = "auto", history_len: int = 5,
                 max_length: int = 128, item_max_length: int = 64,
                 popularity_text: bool = True, temperature: float = 0.05,
                 uniform_negatives: int = 32, max_examples: int = 1024, adapter: str = "lora", lora_r: int = 8,
                 lora_alpha: float = 16.0, lora_dropout: float = 0.1,
                 lora_targets: list = ["query", "value"], lr: float | None = None,  # noqa: B006
                 batch_size: int = 32, epochs: int = 1, max_steps: int | None = None,
                 patience: int = 0, eval_every: int = 1, valid_users: int = 200,
                 user_mode: str = "text", decay: float = 0.9, pop_weight: float = 0.0,
                 score_batch_size: int = 64, device: str = "auto", allow_download: bool = False,
                 seed: int = 0):
        super().__init__(seed)
        lora_targets = list(lora_targets)
        self.params = {k: v for k, v in locals().items()
                       if k not in ("self", "seed", "__class__") and k not in NOT_IN_KEY}
        name = "llm-embed-ft"
        check_choice(name, "user_mode", user_mode, USER_MODES)
        if uniform_negatives < 0:
            raise UserError(f"recommender '{name}': uniform_negatives must be >= 0, "
                            f"got {uniform_negatives}")
        check_positive(name, history_len=history_len, max_length=max_length,
                       item_max_length=item_max_length, temperature=temperature,
                       max_examples=max_examples, lr=lr, batch_size=batch_size,
                       valid_users=valid_users, score_batch_size=score_batch_size)
        if batch_size < 2:
            raise UserError(f"recommender '{name}': batch_size must be >= 2 (in-batch "
                            f"negatives), got {batch_size}")
        if not 0.0 <= pop_weight <= 1.0:
            raise UserError(f"recommender '{name}': pop_weight must be in [0, 1], "
                            f"got {pop_weight}")
        check_adapter(name, model, "encoder", adapter, lora_targets, lora_r, lora_alpha,
                      allow_download)
        self.budget = Budget(epochs, max_steps, patience, eval_every).check(name)
        self.model_name, self.template, self.history_len = model, template, history_len
        self.max_length, self.item_max_length = max_length, item_max_length
        self.popularity_text, self.temperature = popularity_text, temperature
        self.uniform_negatives = uniform_negatives
        self.max_examples, self.adapter = max_examples, adapter
        self.lora = (lora_r, lora_alpha, lora_dropout, lora_targets)
        self.lr = lr if lr is not None else (1e-3 if adapter == "lora" else 5e-5)
        self.batch_size, self.valid_users = batch_size, valid_users
        self.user_mode, self.decay, self.pop_weight = user_mode, decay, pop_weight
        self.score_batch_size, self.device_pref = score_batch_size, device
        self.allow_download = allow_download
        self.device = str(training_device(device))
        self.info: dict = {}

    # ------------------------------------------------------------------ fit
    def fit(self, split, dataset) -> None:
        opts = fit_options(self)
        dev = training_device(self.device_pref, opts)
        self.device = str(dev)
        texts, template = item_texts(dataset, self.template)
        x = split.train.csr()
        counts = np.asarray(x.sum(0)).ravel().astype(np.float64)
        self.docs = item_documents(texts, counts, self.popularity_text)
        self.texts, self.hist = texts, user_histories(split)
        self.pop = torch.from_numpy(np.log1p(counts) / np.log1p(max(counts.max(), 1.0))).float()
        self.cold = torch.from_numpy(np.diff(x.indptr) == 0)
        self.tok, base = load_encoder(self.model_name, str(dev), "float32", self.allow_download,
                                      opts.quiet)
        self.info = {"model": self.model_name, "template": template, "adapter": self.adapter,
                     "cold_users": int(self.cold.sum()), "tokens_processed": 0}
        r, alpha, dropout, targets = self.lora
        with seeded(self.seed, dev):
            self.net = make_trainable(base, dev, self.adapter, targets, r, alpha, dropout)
            expected = {n: tuple(p.shape) for n, p in self.net.named_parameters()
                        if p.requires_grad}
            state, info = cached_training(self, "llm-embed-ft", split.fingerprint, self.params,
                                          lambda: self._train(split, dev, opts), expected)
        load_trainable(self.net, state)
        self.info.update(info, **count_parameters(self.net))
        self._embed_all()

    def _encode(self, texts: list[str], max_length: int, dev) -> dict:
        enc = self.tok(texts, truncation=True, max_length=max_length, padding=True,
                       return_tensors="pt")
        return {k: v.to(dev) for k, v in enc.items()}

    def _train(self, split, dev, opts):
        rng = np.random.default_rng([self.seed, 8191])
        examples = next_item_examples(self.hist, self.history_len, self.max_examples, rng)
        if len(examples) < 2:
            raise UserError("llm-embed-ft: fewer than 2 (history -> next item) train examples")
        gen, net, bs = self.generator(), self.net, self.batch_size
        seen = np.flatnonzero(np.asarray(split.train.csr().sum(0)).ravel() > 0)

        def batches(epoch):
            order = torch.randperm(len(examples), generator=gen).tolist()
            for start in range(0, len(order) - 1, bs):  # a batch needs >= 2 examples
                extra = torch.randint(len(seen), (self.uniform_negatives,), generator=gen)
                yield [examples[k] for k in order[start:start + bs]], seen[extra.numpy()]

        def step(batch):
            batch, extra = batch
            q = self._encode([history_text(self.texts, e.history) for e in batch],
                             self.max_length, dev)
            items = [e.target for e in batch] + extra.tolist()
            d = self._encode([self.docs[i] for i in items], self.item_max_length, dev)
            logits = mean_pool(net, q) @ mean_pool(net, d).T / self.temperature
            tgt = torch.tensor([e.target for e in batch], device=dev)
            same = tgt[:, None] == torch.tensor(items, device=dev)[None, :]
            same[:, :len(batch)] &= ~torch.eye(len(batch), dtype=torch.bool, device=dev)
            loss = F.cross_entropy(logits.masked_fill(same, -torch.inf),
                                   torch.arange(len(batch), device=dev))
            tokens = int(q["attention_mask"].sum() + d["attention_mask"].sum())
            return Step(loss, len(batch), tokens)

        validate = None
        if self.budget.epochs > 1:
            metric = valid_metric(split, self, max_users=self.valid_users, seed=self.seed)
            if metric is not None:
                def validate():
                    self._embed_all()
                    net.train()
                    return metric()
        result = train([p for p in net.parameters() if p.requires_grad], batches, step,
                       self.budget, lr=self.lr, snapshot=lambda: trainable_state(net),
                       validate=validate, steps_per_epoch=math.ceil((len(examples) - 1) / bs),
                       desc="llm-embed-ft", quiet=opts.quiet, device=dev)
        result.info.update(examples=len(examples))
        return result

    def history_len_used(self, users) -> np.ndarray:
        """History items read per user: min(len(history), history_len)."""
        return capped_lengths(self.hist, users, self.history_len)

    def _embed_all(self) -> None:
        """Item and user vectors with the current encoder (eval mode)."""
        self.net.eval()
        items = torch.from_numpy(encode(self.tok, self.net, self.docs, self.score_batch_size,
                                        self.item_max_length))
        users = torch.zeros((len(self.hist), items.shape[1]))
        if self.user_mode in ("history", "both"):
            for u, h in enumerate(self.hist):
                h = h[: self.history_len]
                if len(h):
                    w = torch.tensor(self.decay ** np.arange(len(h)), dtype=torch.float32)
                    users[u] = (w[:, None] * items[h]).sum(0) / w.sum()
            users = F.normalize(users, dim=-1)
        if self.user_mode in ("text", "both"):
            texts = [history_text(self.texts, h[: self.history_len]) for h in self.hist]
            uemb = torch.from_numpy(encode(self.tok, self.net, texts, self.score_batch_size,
                                           self.max_length))
            users = F.normalize(users + uemb, dim=-1)
        users[self.cold] = 0.0
        self.items, self.users = items, users

    # ------------------------------------------------------------------ score
    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        u, i = users.long(), items.long()
        s = (1.0 - self.pop_weight) * (self.users[u] @ self.items[i].T) \
            + self.pop_weight * self.pop[i]
        cold = self.cold[u]
        if cold.any():
            s[cold] = self.pop[i].expand(int(cold.sum()), -1)
        return s
