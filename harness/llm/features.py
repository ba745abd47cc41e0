"""Frozen text features shared by the fine-tuned recommenders: item embeddings from the encoder,
through the same verified on-disk cache (and key) as `llm-embed`."""

from __future__ import annotations

import time

import numpy as np
import torch

from harness.llm.cache import EmbeddingCache, cache_key
from harness.llm.encoder import encode
from harness.llm.loading import load_encoder, select_device, select_dtype


def frozen_item_embeddings(texts: list[str], template: str, model: str, options,
                           info: dict, max_length: int = 128, batch_size: int = 64,
                           device: str = "auto", dtype: str = "auto",
                           allow_download: bool = False) -> np.ndarray:
    """(n_items, dim) L2-normalized mean-pooled embeddings of `texts` by the frozen encoder
    `model`. Cached under `options.cache_dir` with the key `llm-embed` uses for item texts, so
    both share the file; `info` gets items_cache ('hit', 'miss' or 'corrupt, recomputed: ...'),
    and on a miss items_encode_s, items_embedded and tokens_processed."""
    cache = EmbeddingCache(options.cache_dir)
    extra = {"max_length": max_length, "pooling": "mean", "kind": "items"}
    dt = select_dtype(torch.device(select_device(device)), dtype)
    if dt != torch.float32:  # as llm-embed: float32 keys carry no dtype
        extra["dtype"] = str(dt).replace("torch.", "")
    key = cache_key(model, template, texts, extra)
    emb = cache.get(key) if options.use_cache else None
    info["items_cache"] = "hit" if emb is not None else "miss"
    if cache.corrupt:
        info["items_cache"] = f"corrupt, recomputed: {cache.corrupt}"
    if emb is None:
        tok, enc = load_encoder(model, device, dtype, allow_download, options.quiet)
        t0 = time.perf_counter()
        stats: dict = {}
        emb = encode(tok, enc, texts, batch_size, max_length, stats=stats)
        info["items_encode_s"] = round(time.perf_counter() - t0, 3)
        info["items_embedded"] = len(texts)
        info["tokens_processed"] = info.get("tokens_processed", 0) + stats.get("tokens", 0)
        if options.use_cache:
            cache.put(key, emb, {"model": model, "template": template})
    return emb
