"""`llm-embed`: zero-shot semantic recommender over text embeddings from an encoder."""

from __future__ import annotations

import time

import numpy as np
import torch

from harness.llm.cache import EmbeddingCache, cache_key
from harness.llm.encoder import encode
from harness.llm.loading import load_encoder, select_device
from harness.llm.text import item_texts, user_attributes_text, user_histories
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
    """

    uses_text = True

    def __init__(self, model: str = "minilm", template: str = "auto", user_mode: str = "history",
                 max_history: int = 50, decay: float = 0.9, pop_weight: float = 0.0,
                 user_attributes: bool = False, batch_size: int = 64, max_length: int = 128,
                 device: str = "auto", dtype: str = "auto", allow_download: bool = False,
                 seed: int = 0):
        super().__init__(seed)
        if user_mode not in USER_MODES:
            raise ValueError(f"user_mode must be one of {USER_MODES}, got '{user_mode}'")
        if not 0.0 <= pop_weight <= 1.0:
            raise ValueError(f"pop_weight must be in [0, 1], got {pop_weight}")
        self.model_name, self.template, self.user_mode = model, template, user_mode
        self.max_history, self.decay, self.pop_weight = max_history, decay, pop_weight
        self.user_attributes, self.batch_size, self.max_length = (user_attributes, batch_size,
                                                                  max_length)
        self.device_pref, self.dtype, self.allow_download = device, dtype, allow_download
        self.device = str(select_device(device))
        self.info: dict = {}

    def _embed(self, texts: list[str], template: str, tag: str) -> np.ndarray:
        cache = EmbeddingCache(self.runtime.get("cache_dir"))
        key = cache_key(self.model_name, template, texts,
                        {"max_length": self.max_length, "pooling": "mean", "kind": tag})
        use_cache = self.runtime.get("use_cache", True)
        emb = cache.get(key) if use_cache else None
        self.info[f"{tag}_cache"] = "hit" if emb is not None else "miss"
        if cache.corrupt:
            self.info[f"{tag}_cache"] = f"corrupt, recomputed: {cache.corrupt}"
        if emb is None:
            tok, model = load_encoder(self.model_name, self.device_pref, self.dtype,
                                      self.allow_download, self.runtime.get("quiet", False))
            t0 = time.perf_counter()
            emb = encode(tok, model, texts, self.batch_size, self.max_length)
            secs = time.perf_counter() - t0
            self.info[f"{tag}_encode_s"] = round(secs, 3)
            self.info[f"{tag}_per_s"] = round(len(texts) / max(secs, 1e-9), 1)
            if use_cache:
                cache.put(key, emb, {"model": self.model_name, "template": template})
        return emb

    def fit(self, split, dataset) -> None:
        texts, template = item_texts(dataset, self.template)
        self.info = {"template": template, "model": self.model_name}
        items = torch.from_numpy(self._embed(texts, template, "items"))
        counts = torch.from_numpy(np.asarray(split.train.csr().sum(0)).ravel()).float()
        self.pop = torch.log1p(counts) / torch.log1p(counts.max().clamp(min=1))
        hist = user_histories(split)
        cold = np.array([len(h) == 0 for h in hist])
        self.info["cold_users"] = int(cold.sum())
        users = torch.zeros((dataset.n_users, items.shape[1]))
        if self.user_mode in ("history", "both"):
            for u, h in enumerate(hist):
                h = h[: self.max_history]
                if len(h):
                    w = torch.tensor(self.decay ** np.arange(len(h)), dtype=torch.float32)
                    users[u] = (w[:, None] * items[h]).sum(0) / w.sum()
            users = torch.nn.functional.normalize(users, dim=-1)
        if self.user_mode in ("text", "both"):
            utexts = [self._user_text(dataset, texts, u, h) for u, h in enumerate(hist)]
            utemplate = f"user:{template}:{self.max_history}:{self.user_attributes}"
            uemb = torch.from_numpy(self._embed(utexts, utemplate, "users"))
            users = torch.nn.functional.normalize(users + uemb, dim=-1)
        users[torch.from_numpy(cold)] = 0.0
        self.items, self.users, self.cold = items, users, torch.from_numpy(cold)

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
