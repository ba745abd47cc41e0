"""`llm-rank`: a causal LM scores each candidate by the log-likelihood of its text given a prompt
built from the user's history (zero-shot, or few-shot with other users' examples)."""

from __future__ import annotations

import time

import numpy as np
import torch

from harness.llm.likelihood import batched_scores, naive_scores
from harness.llm.loading import load_causal_lm, param_counts, select_device
from harness.llm.packed import PackedLinears, packed_linears
from harness.llm.prompts import messages, render
from harness.llm.text import capped_lengths, item_texts, user_attributes_text, user_histories
from harness.perturb.view import view_dataset, view_item_texts, view_user_text
from harness.recommender import Recommender


class LLMRank(Recommender):
    """score(u, i) = mean (or sum, `aggregate`) over the tokens of item i's text (+ end-of-turn
    token) of log p(token | prompt_u, preceding tokens). prompt_u lists the user's `history_len`
    most recent train items (most recent first); with `shots` > 0 it is preceded by that many
    (history -> next item) examples drawn, seeded by (seed, user), from other users' train data.
    A prompt longer than `max_prompt_tokens` (or the model's context minus the longest candidate)
    drops the oldest history items first, then shots; truncations are counted in `info`.
    Scoring (`prefix_cache = true`, see `likelihood.batched_scores`): the prompts of several
    users go through the model in one batch, each prompt's KV cache is shared by its
    candidates (packed into one row after it), and only scored positions reach the output
    projection; a forward holds at most `token_budget` tokens (0: 8192 on CPU, 65536 on CUDA),
    a packed row at most `pack_tokens`. `prefix_cache = false` scores each candidate as a full
    sequence, `batch_size` candidates per forward (the reference path).
    Users with no train history get a generic cold prompt (counted in `info["cold_users"]`)."""

    uses_text = True
    list_padding = True  # score_candidates gets -1 for list padding and skips it

    def __init__(self, model: str = "smollm2-135m", template: str = "auto", history_len: int = 10,
                 shots: int = 0, aggregate: str = "mean", max_prompt_tokens: int = 1024,
                 batch_size: int = 32, prefix_cache: bool = True, user_attributes: bool = False,
                 token_budget: int = 0, pack_tokens: int = 512, pack_weights: bool = True,
                 device: str = "auto", dtype: str = "auto", allow_download: bool = False,
                 seed: int = 0):
        super().__init__(seed)
        if aggregate not in ("mean", "sum"):
            raise ValueError(f"aggregate must be 'mean' or 'sum', got '{aggregate}'")
        if token_budget < 0 or pack_tokens < 1:
            raise ValueError(f"token_budget must be >= 0 and pack_tokens >= 1, got "
                             f"{token_budget} and {pack_tokens}")
        self.model_name, self.template, self.history_len, self.shots = (model, template,
                                                                         history_len, shots)
        self.aggregate, self.max_prompt_tokens, self.batch_size = (aggregate, max_prompt_tokens,
                                                                   batch_size)
        self.prefix_cache, self.user_attributes = prefix_cache, user_attributes
        self.token_budget, self.pack_tokens = token_budget, pack_tokens
        self.pack_weights = pack_weights
        self.device_pref, self.dtype, self.allow_download = device, dtype, allow_download
        self.device = str(select_device(device))
        self.info: dict = {}

    def fit(self, split, dataset) -> None:
        opts = getattr(self, "fit_options", None)
        self.device = str(select_device(self.device_pref, getattr(opts, "device", None)))
        self.tok, self.lm = load_causal_lm(self.model_name, self.device, self.dtype,
                                           self.allow_download, self.runtime.get("quiet", False))
        self.packed = packed_linears(self.lm) if self.pack_weights else \
            PackedLinears(torch.nn.Module())  # nothing to pack: `with` is a no-op
        self.packed.prepare()
        self.texts, template = item_texts(dataset, self.template)
        end = self.tok.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in self.tok.get_vocab() \
            else self.tok.eos_token_id
        self.item_ids = [self.tok(t, add_special_tokens=False)["input_ids"] + [end]
                         for t in self.texts]
        self.hist = user_histories(split)
        self.dataset = dataset
        self.examples = np.flatnonzero([len(h) >= 2 for h in self.hist])
        ctx = getattr(self.lm.config, "max_position_embeddings", 2048)
        longest = max(len(c) for c in self.item_ids)
        self.budget = min(self.max_prompt_tokens, ctx - longest)
        self.info = {"model": self.model_name, "template": template, "prompt_budget": self.budget,
                     "cold_users": 0, "truncated_users": 0, "dropped_shots_users": 0,
                     "prompt_tokens": 0, "candidate_tokens": 0, "users_scored": 0,
                     "score_s": 0.0, "device": self.device,
                     "packed_weights": self.packed.enabled,
                     "dtype": str(next(self.lm.parameters()).dtype).replace("torch.", ""),
                     **param_counts(self.lm)}
        self._prompts: dict[int, list[int]] = {}
        self._clean = {"texts": self.texts, "item_ids": self.item_ids, "hist": self.hist,
                       "dataset": dataset, "template": template, "end": end}
        self._ids_memo = dict(zip(self.texts, self.item_ids))  # text -> token ids (views)
        self._view = self._history_view = None

    def history_len_used(self, users) -> np.ndarray:
        """History items read per user: min(len(history), history_len) (the token budget may
        drop more: info truncated_users)."""
        return capped_lengths(self.hist, users, self.history_len)

    def set_text_view(self, view) -> None:
        """Read item text, user attributes (`view.users`) and the texts describing a user (its
        history lines and attributes, through `view.user_text`) from `view`
        (harness.textview.TextView; None = the clean text) without refitting. Prompts are
        rebuilt; only texts never seen before are tokenized."""
        self._view = view
        self._apply_views()

    def set_history_view(self, histories) -> None:
        """Build prompts from these per-user histories (item indices, most recent first; None =
        the train histories) without refitting."""
        self._history_view = histories
        self._apply_views()

    def _apply_views(self) -> None:
        c, view = self._clean, self._view
        if view is None:
            self.texts, self.item_ids = c["texts"], c["item_ids"]
        else:
            self.texts, _ = view_item_texts(c["dataset"], c["template"], view)
            for t in self.texts:
                if t not in self._ids_memo:
                    self._ids_memo[t] = self.tok(t, add_special_tokens=False)["input_ids"] + [
                        c["end"]]
            self.item_ids = [self._ids_memo[t] for t in self.texts]
        self.dataset = view_dataset(c["dataset"], view)
        self.hist = c["hist"] if self._history_view is None else self._history_view
        self.examples = np.flatnonzero([len(h) >= 2 for h in self.hist])
        ctx = getattr(self.lm.config, "max_position_embeddings", 2048)
        self.budget = min(self.max_prompt_tokens, ctx - max(len(x) for x in self.item_ids))
        self._prompts = {}

    def _shots(self, user: int) -> list[tuple[list[str], str]]:
        if self.shots <= 0:
            return []
        rng = np.random.default_rng([self.seed, user, 31337])
        pool = self.examples[self.examples != user]
        chosen = rng.choice(pool, min(self.shots, len(pool)), replace=False)
        return [([self.texts[i] for i in self.hist[v][1:1 + min(5, self.history_len)]],
                 self.texts[self.hist[v][0]]) for v in chosen]

    def prompt_ids(self, user: int) -> list[int]:
        """Token ids of the user's prompt, truncated to the budget (memoized)."""
        if user in self._prompts:
            return self._prompts[user]
        view = getattr(self, "_view", None)
        hist = [view_user_text(view, user, self.texts[i])
                for i in self.hist[user][: self.history_len]]
        if not hist:
            self.info["cold_users"] += 1
        attrs = view_user_text(view, user, user_attributes_text(self.dataset, user)
                               if self.user_attributes else "")
        shots = self._shots(user)
        n_hist, truncated = len(hist), False
        while True:
            ids = self.tok(render(self.tok, messages(hist[:n_hist], shots, attrs)),
                           add_special_tokens=False)["input_ids"]
            if len(ids) <= self.budget:
                break
            if n_hist > 1:
                n_hist, truncated = n_hist - 1, True
            elif shots:
                shots = shots[:-1]
                self.info["dropped_shots_users"] += 1
            else:
                ids, truncated = ids[-self.budget:], True
                break
        self.info["truncated_users"] += int(truncated)
        self._prompts[user] = ids
        return ids

    def _budget(self) -> int:
        return self.token_budget or (65536 if self.device.startswith("cuda") else 8192)

    def _score_users(self, users: list[int], lists: list[list[int]]) -> list[torch.Tensor]:
        """Per user r, the scores of items lists[r] (float64, on the model's device)."""
        prompts = [self.prompt_ids(u) for u in users]
        cands = [[self.item_ids[i] for i in items] for items in lists]
        pad = self.tok.pad_token_id
        t0 = time.perf_counter()
        with self.packed:
            if self.prefix_cache:
                rows = batched_scores(self.lm, prompts, cands, self.aggregate, pad,
                                      self._budget(), self.pack_tokens)
            else:
                rows = [naive_scores(self.lm, p, c, self.batch_size, self.aggregate, pad)
                        .to(self.device) for p, c in zip(prompts, cands)]
        if self.device.startswith("cuda"):  # score_s is wall time of finished work
            torch.cuda.synchronize(self.device)
        self.info["score_s"] = round(self.info["score_s"] + time.perf_counter() - t0, 4)
        self.info["users_scored"] += len(users)
        self.info["prompt_tokens"] += sum(len(p) * (1 if self.prefix_cache else len(c))
                                          for p, c in zip(prompts, cands))
        self.info["candidate_tokens"] += sum(len(c) for cs in cands for c in cs)
        return rows

    def _score_user(self, user: int, items: list[int]) -> torch.Tensor:
        return self._score_users([user], [items])[0]

    def score_candidates(self, users: torch.Tensor, lists: torch.Tensor) -> torch.Tensor:
        """(B, C) scores; list padding (-1, see `list_padding`) is not scored (-inf)."""
        valid = lists >= 0
        kept = [[i for i in row if i >= 0] for row in lists.tolist()]
        rows = self._score_users([int(u) for u in users], kept)
        out = torch.full(tuple(lists.shape), -torch.inf, dtype=torch.float64,
                         device=self.device)
        if valid.any():
            out[valid.to(self.device)] = torch.cat(rows)
        return out

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        row = items.tolist()
        return torch.stack(self._score_users([int(u) for u in users], [row] * len(users)))
