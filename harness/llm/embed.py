"""`llm-embed`: zero-shot semantic recommender over text embeddings from an encoder."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import torch

from harness.llm.cache import EmbeddingCache, cache_key
from harness.llm.encoder import encode
from harness.llm.loading import load_encoder, param_counts, select_device, select_dtype
from harness.llm.text import capped_lengths, item_texts, user_attributes_text, user_histories
from harness.perturb.view import view_dataset, view_item_texts, view_user_text
from harness.recommender import Recommender

USER_MODES = ("history", "text", "both")


class LLMEmbed(Recommender):
    """score(u, i) = (1 - w) * cos(v_u, e_i) + w * pop_i, with e_i the normalized mean-pooled
    embedding of item i's text and pop_i = log(1 + n_i) / log(1 + max n) from train counts.

    v_u by `user_mode`: `history` = normalized recency-weighted mean of the embeddings of the
    user's last `max_history` train items (weight decay^r, r = 0 for the most recent); `text` =
    embedding of a user text listing those items (plus attributes when `user_attributes`);
    `both` = normalized sum of the two. Users with no train history (cold) are scored by pop_i
    alone; their count is in `info["cold_users"]`. w = `pop_weight` (default 0: pure semantic).

    Encoding: texts sorted by token length, batches of at most `token_budget` padded tokens
    (0: 4096 on CPU, 65536 on CUDA) and, when `batch_size` > 0, at most that many rows;
    the encoder runs in `dtype` ('auto': float32 on CPU, bf16 (else fp16) on CUDA). `info`
    counts `items_embedded` and `tokens_processed` (texts and non-padding tokens encoded, not
    counting cache hits) and the encoder's parameters (`model_params`).
    """

    uses_text = True

    def __init__(self, model: str = "minilm", template: str = "auto", user_mode: str = "history",
                 max_history: int = 50, decay: float = 0.9, pop_weight: float = 0.0,
                 user_attributes: bool = False, batch_size: int = 0, max_length: int = 128,
                 token_budget: int = 0, device: str = "auto", dtype: str = "auto",
                 allow_download: bool = False, seed: int = 0):
        super().__init__(seed)
        if user_mode not in USER_MODES:
            raise ValueError(f"user_mode must be one of {USER_MODES}, got '{user_mode}'")
        if not 0.0 <= pop_weight <= 1.0:
            raise ValueError(f"pop_weight must be in [0, 1], got {pop_weight}")
        if batch_size < 0 or token_budget < 0:
            raise ValueError(f"batch_size and token_budget must be >= 0 (0 = by device), got "
                             f"{batch_size} and {token_budget}")
        self.model_name, self.template, self.user_mode = model, template, user_mode
        self.max_history, self.decay, self.pop_weight = max_history, decay, pop_weight
        self.user_attributes, self.batch_size, self.max_length = (user_attributes, batch_size,
                                                                  max_length)
        self.token_budget = token_budget
        self.device_pref, self.dtype, self.allow_download = device, dtype, allow_download
        self.device = str(select_device(device))
        self.info: dict = {}

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Encode with the (memoized) encoder on this model's device; counts the work."""
        tok, model = load_encoder(self.model_name, self.device, self.dtype, self.allow_download,
                                  self.runtime.get("quiet", False))
        self.info.update(param_counts(model))
        stats: dict = {}
        emb = encode(tok, model, texts, self.batch_size or None, self.max_length,
                     token_budget=self.token_budget or None, stats=stats)
        self.info["items_embedded"] = self.info.get("items_embedded", 0) + stats["items"]
        self.info["tokens_processed"] = self.info.get("tokens_processed", 0) + stats["tokens"]
        return emb

    def _embed(self, texts: list[str], template: str, tag: str) -> np.ndarray:
        cache = EmbeddingCache(self.runtime.get("cache_dir"))
        extra = {"max_length": self.max_length, "pooling": "mean", "kind": tag}
        dtype = select_dtype(torch.device(self.device), self.dtype)
        if dtype != torch.float32:  # float32 keys stay as they were
            extra["dtype"] = str(dtype).replace("torch.", "")
        key = cache_key(self.model_name, template, texts, extra)
        use_cache = self.runtime.get("use_cache", True)
        emb = cache.get(key) if use_cache else None
        self.info[f"{tag}_cache"] = "hit" if emb is not None else "miss"
        if cache.corrupt:
            self.info[f"{tag}_cache"] = f"corrupt, recomputed: {cache.corrupt}"
        if emb is None:
            t0 = time.perf_counter()
            emb = self._encode(texts)
            secs = time.perf_counter() - t0
            self.info[f"{tag}_encode_s"] = round(secs, 3)
            self.info[f"{tag}_per_s"] = round(len(texts) / max(secs, 1e-9), 1)
            if use_cache:
                cache.put(key, emb, {"model": self.model_name, "template": template})
        return emb

    def fit(self, split, dataset) -> None:
        opts = getattr(self, "fit_options", None)
        self.device = str(select_device(self.device_pref, getattr(opts, "device", None)))
        texts, template = item_texts(dataset, self.template)
        self.info = {"template": template, "model": self.model_name, "device": self.device,
                     "items_embedded": 0, "tokens_processed": 0}
        items = torch.from_numpy(self._embed(texts, template, "items"))
        counts = torch.from_numpy(np.asarray(split.train.csr().sum(0)).ravel()).float()
        self.pop = torch.log1p(counts) / torch.log1p(counts.max().clamp(min=1))
        hist = user_histories(split)
        self._clean = {"texts": texts, "template": template, "hist": hist, "dataset": dataset}
        self._memo: dict[str, np.ndarray] = {}  # sha256(text) -> embedding (text views)
        self._remember(texts, items.numpy())
        self._text_view = self._history_view = self._clean_state = None
        users, cold = self._user_vectors(items, texts, template, hist, dataset, None)
        self.info["cold_users"] = int(cold.sum())
        self.items, self.users, self.cold = items, users, cold
        self._clean_state = (items, users, cold)

    def _user_vectors(self, items, texts, template, hist, dataset, view):
        """(user vectors, cold mask) from item embeddings, item texts and histories (see the
        class docstring); under a text view, user texts go through it and are memoized."""
        cold = np.array([len(h) == 0 for h in hist])
        users = torch.zeros((dataset.n_users, items.shape[1]))
        if self.user_mode in ("history", "both"):
            for u, h in enumerate(hist):
                h = h[: self.max_history]
                if len(h):
                    w = torch.tensor(self.decay ** np.arange(len(h)), dtype=torch.float32)
                    users[u] = (w[:, None] * items[h]).sum(0) / w.sum()
            users = torch.nn.functional.normalize(users, dim=-1)
        if self.user_mode in ("text", "both"):
            utexts = [view_user_text(view, u, self._user_text(dataset, texts, u, h))
                      for u, h in enumerate(hist)]
            if getattr(self, "_clean_state", None) is None:  # fit: the on-disk cache
                utemplate = f"user:{template}:{self.max_history}:{self.user_attributes}"
                uemb = torch.from_numpy(self._embed(utexts, utemplate, "users"))
                self._remember(utexts, uemb.numpy())
            else:
                uemb = self._encode_new(utexts)
            users = torch.nn.functional.normalize(users + uemb, dim=-1)
        users[torch.from_numpy(cold)] = 0.0
        return users, torch.from_numpy(cold)

    def history_len_used(self, users) -> np.ndarray:
        """History items read per user: min(len(history), max_history)."""
        hist = self._clean["hist"] if self._history_view is None else self._history_view
        return capped_lengths(hist, users, self.max_history)

    @property
    def text_targets(self) -> tuple[str, ...]:
        """Texts this model reads: item text always, user text unless user_mode = history."""
        return ("items",) if self.user_mode == "history" else ("items", "users")

    def set_text_view(self, view) -> None:
        """Read item / user text through `view` (harness.textview.TextView; None = the clean
        text) without refitting: item and user vectors are rebuilt from embeddings memoized by
        text hash, so only texts never seen before are encoded."""
        self._text_view = view
        self._apply_views()

    def set_history_view(self, histories) -> None:
        """Score from these per-user histories (item indices, most recent first; None = the
        train histories) without refitting."""
        self._history_view = histories
        self._apply_views()

    def _apply_views(self) -> None:
        view, hist = self._text_view, self._history_view
        if view is None and hist is None:
            self.items, self.users, self.cold = self._clean_state
            return
        c = self._clean
        texts, items = c["texts"], self._clean_state[0]
        if view is not None:
            texts, _ = view_item_texts(c["dataset"], c["template"], view)
            items = self._encode_new(texts)
        self.users, self.cold = self._user_vectors(
            items, texts, c["template"], c["hist"] if hist is None else hist,
            view_dataset(c["dataset"], view), view)
        self.items = items

    def _remember(self, texts: list[str], emb: np.ndarray) -> None:
        for t, e in zip(texts, emb):
            self._memo.setdefault(hashlib.sha256(t.encode()).hexdigest(), e)

    def _encode_new(self, texts: list[str]) -> torch.Tensor:
        """Embeddings of `texts`, encoding only those not memoized (counted in info)."""
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in self._memo))
        if missing:
            self._remember(missing, self._encode(missing))
            self.info["view_encoded_texts"] = self.info.get("view_encoded_texts", 0) + len(missing)
        return torch.from_numpy(np.stack([self._memo[k] for k in keys]))

    def _user_text(self, ds, texts, user: int, h) -> str:
        """'User: <attributes>. Recently watched: <item>; <item>; ...' (most recent first)."""
        attrs = user_attributes_text(ds, user) if self.user_attributes else ""
        watched = "Recently watched: " + "; ".join(texts[i] for i in h[: self.max_history])
        return (f"User: {attrs}. " if attrs else "") + watched

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        cos = self.users[users] @ self.items[items].T
        s = (1.0 - self.pop_weight) * cos + self.pop_weight * self.pop[items]
        cold = self.cold[users]
        if cold.any():
            s[cold] = self.pop[items].expand(int(cold.sum()), -1)
        return s
