"""`llm-rank-ft`: TALLRec-style recommendation tuning of a causal LM. LoRA adapters are trained
on a few-shot budget of (history, candidate) -> Yes/No examples; the score of a candidate is
P(Yes), with the user's prompt KV cache shared by all of the user's candidates."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from harness.errors import UserError
from harness.llm.adapters import (check_adapter, count_parameters, load_trainable,
                                  make_trainable, trainable_state)
from harness.llm.answer import answer_logits, yes_probs_cached
from harness.llm.examples import labeled_pairs, next_item_examples
from harness.llm.likelihood import pad_right
from harness.llm.loading import load_causal_lm
from harness.llm.prompts import render
from harness.llm.text import capped_lengths, item_texts, user_histories
from harness.llm.train import (NEGATIVE_SAMPLERS, Budget, Step, cached_training, check_choice,
                               check_positive, fit_options, seeded, train, training_device,
                               valid_metric)
from harness.recommender import Recommender

NEGATIVES = NEGATIVE_SAMPLERS + ("rating",)
NOT_IN_KEY = ("device", "score_batch_size", "allow_download")
MARK = "\x00CANDIDATE\x00"


def question(liked: list[str], disliked: list[str]) -> str:
    """The user turn, with MARK where the candidate's text goes."""
    parts = []
    if liked:
        parts.append("Items I liked, most recent first:\n" + "\n".join(f"- {t}" for t in liked))
    if disliked:
        parts.append("Items I disliked:\n" + "\n".join(f"- {t}" for t in disliked))
    if not parts:
        parts.append("I have not rated any items yet.")
    parts.append(f"Will I like this item: {MARK}? Answer Yes or No.")
    return "\n".join(parts)


class LLMRankFT(Recommender):
    """score(u, i) = P(Yes | prompt_u, i) = softmax(l_Yes, l_No)[Yes], the two answer-token
    logits after the chat prompt 'Items I liked: ... Items I disliked: ... Will I like this
    item: <item text>? Answer Yes or No.' (history = the user's `history_len` most recent train
    items, split at rating >= `like_threshold` when the data has ratings).

    Training (TALLRec): `n_samples` examples (the few-shot budget, e.g. 16 / 64 / 256): half
    (history -> next train item) = Yes, taken leave-last-out inside train histories, half No:
    the same histories with an item drawn `uniform`ly or by `popularity` from train items the
    user never had; or, with negatives = 'rating', each example's label is its target's rating
    >= like_threshold. Loss: cross-entropy of the 2-way softmax at the answer position; LoRA
    (`lora_*`) on `lora_targets`, AdamW `lr`. Prompts longer than `max_prompt_tokens` drop the
    oldest history items. Validation (NDCG@10 on `valid_users` users of split.valid, 19
    sampled negatives) only when valid_users is set and epochs > 1."""

    uses_text = True
    calibrated = True

    def __init__(self, model: str = "smollm2-135m", template: str = "auto", history_len: int = 10,
                 n_samples: int = 64, negatives: str = "uniform", like_threshold: float = 4.0,
                 max_prompt_tokens: int = 512, lora_r: int = 8, lora_alpha: float = 16.0,
                 lora_dropout: float = 0.05,
                 lora_targets: list = ["q_proj", "v_proj"],  # noqa: B006
                 lr: float = 1e-3, batch_size: int = 8, epochs: int = 2,
                 max_steps: int | None = None, patience: int = 0, eval_every: int = 1,
                 valid_users: int | None = None, score_batch_size: int = 32,
                 device: str = "auto", allow_download: bool = False, seed: int = 0):
        super().__init__(seed)
        lora_targets = list(lora_targets)
        self.params = {k: v for k, v in locals().items()
                       if k not in ("self", "seed", "__class__") and k not in NOT_IN_KEY}
        name = "llm-rank-ft"
        check_choice(name, "negatives", negatives, NEGATIVES)
        check_positive(name, history_len=history_len, n_samples=n_samples,
                       max_prompt_tokens=max_prompt_tokens, lr=lr, batch_size=batch_size,
                       valid_users=valid_users, score_batch_size=score_batch_size)
        check_adapter(name, model, "causal", "lora", lora_targets, lora_r, lora_alpha,
                      allow_download)
        self.budget = Budget(epochs, max_steps, patience, eval_every).check(name)
        self.model_name, self.template, self.history_len = model, template, history_len
        self.n_samples, self.negatives, self.like_threshold = n_samples, negatives, like_threshold
        self.max_prompt_tokens = max_prompt_tokens
        self.lora = (lora_r, lora_alpha, lora_dropout, lora_targets)
        self.lr, self.batch_size, self.valid_users = lr, batch_size, valid_users
        self.score_batch_size, self.device_pref = score_batch_size, device
        self.allow_download = allow_download
        self.device = str(training_device(device))
        self.info: dict = {}

    # ------------------------------------------------------------------ prompts
    def _setup_text(self, split, dataset) -> None:
        self.texts, self.template_used = item_texts(dataset, self.template)
        self.hist = user_histories(split)
        tr = split.train
        self.ratings = None if tr.rating is None else sp.csr_matrix(
            (tr.rating.astype(np.float32), (tr.user, tr.item)),
            shape=(dataset.n_users, dataset.n_items))
        prefix, tail = render(self.tok, [{"role": "user", "content": question([], [])}]) \
            .split(MARK)
        self.suffix_ids = [self.tok(t + tail, add_special_tokens=False)["input_ids"]
                           for t in self.texts]
        ids = [self.tok(w, add_special_tokens=False)["input_ids"] for w in ("Yes", "No")]
        if any(len(i) != 1 for i in ids):
            raise UserError(f"llm-rank-ft: 'Yes'/'No' are not single tokens for model "
                            f"'{self.model_name}' ({ids})")
        self.answers = torch.tensor([ids[0][0], ids[1][0]])
        self._prompts: dict[int, list[int]] = {}

    def prompt_ids(self, user: int, history) -> list[int]:
        """Token ids of the prompt up to the candidate, dropping the oldest history items
        while it is longer than max_prompt_tokens."""
        hist = list(history[: self.history_len])
        while True:
            liked, disliked = [], []
            for i in hist:
                r = None if self.ratings is None else self.ratings[user, i]
                (liked if r is None or r >= self.like_threshold else disliked).append(
                    self.texts[i])
            text = render(self.tok, [{"role": "user", "content": question(liked, disliked)}])
            ids = self.tok(text.split(MARK)[0], add_special_tokens=False)["input_ids"]
            if len(ids) <= self.max_prompt_tokens or not hist:
                return ids[-self.max_prompt_tokens:]
            hist = hist[:-1]
            self.info["truncated_prompts"] = self.info.get("truncated_prompts", 0) + 1

    def history_len_used(self, users) -> np.ndarray:
        """History items read per user: min(len(history), history_len) (the token budget may
        drop more: info truncated_prompts)."""
        return capped_lengths(self.hist, users, self.history_len)

    def user_prompt(self, user: int) -> list[int]:
        if user not in self._prompts:
            self._prompts[user] = self.prompt_ids(user, self.hist[user])
        return self._prompts[user]

    # ------------------------------------------------------------------ fit
    def fit(self, split, dataset) -> None:
        opts = fit_options(self)
        dev = training_device(self.device_pref, opts)
        self.device = str(dev)
        self.tok, base = load_causal_lm(self.model_name, str(dev), "float32",
                                        self.allow_download, opts.quiet)
        self.info = {"model": self.model_name, "prompt_tokens": 0, "candidate_tokens": 0,
                     "users_scored": 0, "tokens_processed": 0}
        self._setup_text(split, dataset)
        self.info.update(template=self.template_used,
                         cold_users=int(sum(len(h) == 0 for h in self.hist)))
        r, alpha, dropout, targets = self.lora
        with seeded(self.seed, dev):
            self.net = make_trainable(base, dev, "lora", targets, r, alpha, dropout)
            self.lm = self.net.get_base_model()
            expected = {n: tuple(p.shape) for n, p in self.net.named_parameters()
                        if p.requires_grad}
            state, info = cached_training(self, "llm-rank-ft", split.fingerprint, self.params,
                                          lambda: self._train(split, dev, opts), expected)
        load_trainable(self.net, state)
        self.net.eval()
        self._prompts = {}
        self.info.update(info, **count_parameters(self.net))

    def _samples(self, split) -> list[tuple[list[int], list[int], int]]:
        """(prompt ids, suffix ids, label 0 = Yes / 1 = No) for the few-shot budget."""
        rng = np.random.default_rng([self.seed, 6151])
        gen = self.generator()
        if self.negatives == "rating":
            if self.ratings is None:
                raise UserError("llm-rank-ft: negatives = 'rating' needs ratings, and the "
                                "dataset has none; use 'uniform' or 'popularity'")
            ex = next_item_examples(self.hist, self.history_len, self.n_samples, rng)
            pairs = [(e, e.target, float(self.ratings[e.user, e.target] >= self.like_threshold))
                     for e in ex]
        else:
            ex = next_item_examples(self.hist, self.history_len, math.ceil(self.n_samples / 2),
                                    rng)
            pairs = labeled_pairs(ex, split, 1, self.negatives, gen)[: self.n_samples]
        if not pairs:
            raise UserError("llm-rank-ft: no user has two train items to learn from")
        return [(self.prompt_ids(e.user, e.history), self.suffix_ids[i], 0 if y else 1)
                for e, i, y in pairs]

    def _train(self, split, dev, opts):
        samples = self._samples(split)
        gen, net, bs = self.generator(), self.net, self.batch_size
        pad = self.tok.pad_token_id or 0
        answers = self.answers.to(dev)

        def batches(epoch):
            order = torch.randperm(len(samples), generator=gen).tolist()
            for start in range(0, len(order), bs):
                yield [samples[k] for k in order[start:start + bs]]

        def step(batch):
            ids, mask = pad_right([p + s for p, s, _ in batch], pad, dev)
            y = torch.tensor([lab for _, _, lab in batch], device=dev)
            loss = F.cross_entropy(answer_logits(self.lm, ids, mask, answers), y)
            return Step(loss, len(batch), int(mask.sum()))

        validate = None
        if self.valid_users and self.budget.epochs > 1:
            metric = valid_metric(split, self, max_users=self.valid_users, n_negatives=19,
                                  seed=self.seed)
            if metric is not None:
                def validate():
                    net.eval()
                    value = metric()
                    net.train()
                    return value
        result = train([p for p in net.parameters() if p.requires_grad], batches, step,
                       self.budget, lr=self.lr, snapshot=lambda: trainable_state(net),
                       validate=validate, steps_per_epoch=math.ceil(len(samples) / bs),
                       desc="llm-rank-ft", quiet=opts.quiet, device=dev)
        result.info.update(samples_used=len(samples),
                           yes_share=round(sum(lab == 0 for _, _, lab in samples) / len(samples),
                                           3))
        return result

    # ------------------------------------------------------------------ score
    def _score_user(self, user: int, items: list[int]) -> torch.Tensor:
        prompt = self.user_prompt(user)
        suffixes = [self.suffix_ids[i] for i in items]
        p = yes_probs_cached(self.lm, prompt, suffixes, self.answers, self.score_batch_size,
                             self.tok.pad_token_id or 0)
        self.info["users_scored"] += 1
        self.info["prompt_tokens"] += len(prompt)
        self.info["candidate_tokens"] += sum(len(s) for s in suffixes)
        return p

    def score_candidates(self, users: torch.Tensor, lists: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._score_user(int(u), row.tolist())
                            for u, row in zip(users, lists)])

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._score_user(int(u), items.tolist()) for u in users])
