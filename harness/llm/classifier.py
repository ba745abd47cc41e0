"""`llm-classifier`: a fine-tuned cross-encoder that reads (user history text, candidate text)
and outputs P(like). Pointwise, so it scores sampled or rerank candidate lists; full ranking of
every item is refused unless the full candidates are limited with `max_users`."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from harness.errors import UserError
from harness.llm.adapters import (check_adapter, count_parameters, load_trainable,
                                  make_trainable, trainable_state)
from harness.llm.examples import history_text, item_documents, labeled_pairs, next_item_examples
from harness.llm.loading import load_encoder
from harness.llm.text import capped_lengths, item_texts, user_histories
from harness.llm.train import (NEGATIVE_SAMPLERS, Budget, Step, cached_training, check_choice,
                               check_positive, fit_options, seeded, train, training_device)
from harness.recommender import Recommender

NOT_IN_KEY = ("device", "score_batch_size", "max_full_pairs", "allow_download")


class CrossEncoder(torch.nn.Module):
    """logit(q, d) = wᵀ mean-pool(encoder([CLS] q [SEP] d [SEP])) + c."""

    def __init__(self, encoder: torch.nn.Module, prior: float):
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(encoder.config.hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.constant_(self.head.bias, math.log(prior / (1.0 - prior)))

    def forward(self, enc: dict) -> torch.Tensor:
        hidden = self.encoder(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.head(pooled.float()).squeeze(-1)


class LLMClassifier(Recommender):
    """P(like | u, i) = σ(logit(history_u, doc_i)) with a cross-encoder fine-tuned by binary
    cross-entropy on (history -> next train item) positives and `n_negatives` sampled negatives
    each (`negatives`: uniform or popularity, from train items). history_u = the user's
    `history_len` most recent train items; doc_i = item text, plus a verbalized train
    popularity bucket when `popularity_text`. `adapter`: full fine-tuning or LoRA (`lora_*`);
    AdamW with `lr` for the encoder (default 5e-5 full, 2e-3 LoRA) and `head_lr` for the head.
    The head starts at the positive rate's log-odds, so an untrained model predicts the prior.
    Users without train history get a 'no items yet' query.

    Cost: one forward pass per (user, candidate) pair, so full ranking is refused unless the
    evaluated pairs stay within `max_full_pairs` (set `max_users` on the full candidates)."""

    uses_text = True
    calibrated = True

    def __init__(self, model: str = "minilm", template: str = "auto", history_len: int = 5,
                 max_length: int = 128, popularity_text: bool = True, negatives: str = "uniform",
                 n_negatives: int = 3, max_examples: int = 256, adapter: str = "lora",
                 lora_r: int = 8, lora_alpha: float = 16.0, lora_dropout: float = 0.1,
                 lora_targets: list = ["query", "value"], lr: float | None = None,  # noqa: B006
                 head_lr: float = 1e-3, batch_size: int = 16, epochs: int = 1, max_steps: int | None = None,
                 patience: int = 0, eval_every: int = 1, score_batch_size: int = 64,
                 max_full_pairs: int = 100_000, device: str = "auto",
                 allow_download: bool = False, seed: int = 0):
        super().__init__(seed)
        lora_targets = list(lora_targets)
        self.params = {k: v for k, v in locals().items()
                       if k not in ("self", "seed", "__class__") and k not in NOT_IN_KEY}
        name = "llm-classifier"
        check_choice(name, "negatives", negatives, NEGATIVE_SAMPLERS)
        check_positive(name, history_len=history_len, max_length=max_length,
                       n_negatives=n_negatives, max_examples=max_examples, lr=lr, head_lr=head_lr,
                       batch_size=batch_size, score_batch_size=score_batch_size,
                       max_full_pairs=max_full_pairs)
        check_adapter(name, model, "encoder", adapter, lora_targets, lora_r, lora_alpha,
                      allow_download)
        self.budget = Budget(epochs, max_steps, patience, eval_every).check(name)
        self.model_name, self.template, self.history_len = model, template, history_len
        self.max_length, self.popularity_text, self.negatives = (max_length, popularity_text,
                                                                 negatives)
        self.n_negatives, self.max_examples, self.adapter = n_negatives, max_examples, adapter
        self.lora = (lora_r, lora_alpha, lora_dropout, lora_targets)
        self.lr = lr if lr is not None else (2e-3 if adapter == "lora" else 5e-5)
        self.head_lr = head_lr
        self.batch_size, self.score_batch_size = batch_size, score_batch_size
        self.max_full_pairs, self.device_pref = max_full_pairs, device
        self.allow_download = allow_download
        self.device = str(training_device(device))
        self.info: dict = {}

    @classmethod
    def check_candidates(cls, protocol: str, params: dict, n_items: int | None = None,
                         max_full_pairs: int = 100_000) -> None:
        """Suite-load check: full ranking needs `max_users` (and, when n_items is known,
        max_users * n_items <= max_full_pairs)."""
        if protocol != "full":
            return
        users = params.get("max_users")
        if users is None or (n_items is not None and users * n_items > max_full_pairs):
            raise UserError(_full_rank_message(users, n_items, max_full_pairs))

    # ------------------------------------------------------------------ fit
    def fit(self, split, dataset) -> None:
        opts = fit_options(self)
        dev = training_device(self.device_pref, opts)
        self.device = str(dev)
        texts, template = item_texts(dataset, self.template)
        counts = np.asarray(split.train.csr().sum(0)).ravel()
        self.docs = item_documents(texts, counts, self.popularity_text)
        self.hist = user_histories(split)
        self.queries = [history_text(texts, h[: self.history_len]) for h in self.hist]
        self.texts = texts
        self.tok, base = load_encoder(self.model_name, str(dev), "float32", self.allow_download,
                                      opts.quiet)
        self.info = {"model": self.model_name, "template": template, "adapter": self.adapter,
                     "cold_users": int(sum(len(h) == 0 for h in self.hist)),
                     "pairs_scored": 0, "tokens_processed": 0}
        self._full_pairs = 0
        prior = 1.0 / (1.0 + self.n_negatives)
        r, alpha, dropout, targets = self.lora
        with seeded(self.seed, dev):
            self.net = CrossEncoder(make_trainable(base, dev, self.adapter, targets, r, alpha,
                                                   dropout), prior).to(dev)
            expected = {n: tuple(p.shape) for n, p in self.net.named_parameters()
                        if p.requires_grad}
            state, info = cached_training(self, "llm-classifier", split.fingerprint,
                                          self.params, lambda: self._train(split, dev, opts),
                                          expected)
        load_trainable(self.net, state)
        self.net.eval()
        self.info.update(info, **count_parameters(self.net))

    def _encode(self, queries: list[str], docs: list[str], dev) -> dict:
        enc = self.tok(queries, docs, truncation="longest_first", max_length=self.max_length,
                       padding=True, return_tensors="pt")
        return {k: v.to(dev) for k, v in enc.items()}

    def _train(self, split, dev, opts):
        rng = np.random.default_rng([self.seed, 4099])
        examples = next_item_examples(self.hist, self.history_len, self.max_examples, rng)
        if not examples:
            raise UserError("llm-classifier: no user has two train items to learn from")
        gen = self.generator()
        pairs = labeled_pairs(examples, split, self.n_negatives, self.negatives, gen)
        net, bs = self.net, self.batch_size

        def batches(epoch):
            order = torch.randperm(len(pairs), generator=gen).tolist()
            for start in range(0, len(order), bs):
                yield [pairs[k] for k in order[start:start + bs]]

        def step(batch):
            enc = self._encode([history_text(self.texts, e.history) for e, _, _ in batch],
                               [self.docs[i] for _, i, _ in batch], dev)
            y = torch.tensor([lab for _, _, lab in batch], device=dev)
            loss = F.binary_cross_entropy_with_logits(net(enc), y)
            return Step(loss, len(batch), int(enc["attention_mask"].sum()))

        groups = [{"params": [p for p in net.encoder.parameters() if p.requires_grad]},
                  {"params": list(net.head.parameters()), "lr": self.head_lr}]
        result = train(groups, batches, step,
                       self.budget, lr=self.lr, snapshot=lambda: trainable_state(net),
                       steps_per_epoch=math.ceil(len(pairs) / bs), desc="llm-classifier",
                       quiet=opts.quiet, device=dev)
        result.info.update(examples=len(examples), pairs=len(pairs))
        return result

    # ------------------------------------------------------------------ score
    @torch.no_grad()
    def _probs(self, user: int, items: list[int]) -> torch.Tensor:
        dev = torch.device(self.device)
        out = []
        for start in range(0, len(items), self.score_batch_size):
            chunk = items[start:start + self.score_batch_size]
            enc = self._encode([self.queries[user]] * len(chunk), [self.docs[i] for i in chunk],
                               dev)
            out.append(torch.sigmoid(self.net(enc).float()).cpu())
            self.info["tokens_processed"] += int(enc["attention_mask"].sum())
        self.info["pairs_scored"] += len(items)
        return torch.cat(out).double()

    def history_len_used(self, users) -> np.ndarray:
        """History items read per user: min(len(history), history_len)."""
        return capped_lengths(self.hist, users, self.history_len)

    def score_candidates(self, users: torch.Tensor, lists: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._probs(int(u), row.tolist()) for u, row in zip(users, lists)])

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Full ranking: refused once the evaluated pairs would exceed `max_full_pairs`."""
        need = self._full_pairs + len(users) * len(items)
        if need > self.max_full_pairs:
            raise UserError(_full_rank_message(None, len(items), self.max_full_pairs))
        self._full_pairs = need
        return torch.stack([self._probs(int(u), items.tolist()) for u in users])


def _full_rank_message(max_users, n_items, max_full_pairs) -> str:
    per = f"{n_items} items per user" if n_items else "every item"
    most = f"max_users <= {max(max_full_pairs // n_items, 1)}" if n_items else "max_users"
    got = "" if max_users is None else f" (max_users = {max_users})"
    return (f"llm-classifier scores one cross-encoder pass per (user, item) pair; full ranking of "
            f"{per} exceeds max_full_pairs = {max_full_pairs}{got}. Use sampled or rerank "
            f"candidates, or set {most} on the full candidates (or raise max_full_pairs).")
