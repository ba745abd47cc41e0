"""Batched text encoding with a transformer encoder: length-sorted batches sized by a token
budget, mean pooling."""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_TOKEN_BUDGET = {"cpu": 4096, "cuda": 65536}


def default_token_budget(device) -> int:
    """Padded tokens per forward pass when the caller gives none: small on CPU (cache-sized
    activations), large on CUDA (enough rows to fill the device)."""
    return DEFAULT_TOKEN_BUDGET.get(torch.device(device).type, DEFAULT_TOKEN_BUDGET["cpu"])


def length_batches(lengths: list[int], batch_size: int | None,
                   token_budget: int) -> list[np.ndarray]:
    """Indices in order of decreasing length, cut into batches of at most `batch_size` rows
    (None: no row cap) and at most `token_budget` padded tokens (rows x longest; a longer
    text goes alone)."""
    order = np.argsort([-n for n in lengths], kind="stable")
    batches, start = [], 0
    while start < len(order):
        width = max(lengths[order[start]], 1)
        rows = max(1, min(batch_size or len(order), token_budget // width))
        batches.append(order[start:start + rows])
        start += rows
    return batches


@torch.inference_mode()
def encode(tokenizer, model, texts: list[str], batch_size: int | None = 64, max_length: int = 128,
           normalize: bool = True, progress=None, token_budget: int | None = None,
           stats: dict | None = None) -> np.ndarray:
    """(len(texts), dim) float32 embeddings: mean of the last hidden states over non-padding
    tokens, L2-normalized. Texts are batched in order of token length (less padding), each batch
    at most `batch_size` rows (None: no cap) and `token_budget` padded tokens (None:
    `default_token_budget` of the model's device); the result is returned in input order.
    Pooling runs in float32 whatever the model's dtype (bf16/fp16 on CUDA). `stats`, when given, gets `tokens` (non-padding
    tokens encoded) and `items` added."""
    device = next(model.parameters()).device
    budget = token_budget or default_token_budget(device)
    ids = tokenizer(texts, truncation=True, max_length=max_length, add_special_tokens=True)[
        "input_ids"]
    lengths = [len(x) for x in ids]
    out = np.zeros((len(texts), model.config.hidden_size), np.float32)
    pad = tokenizer.pad_token_id or 0
    for idx in length_batches(lengths, batch_size, budget):
        width = lengths[idx[0]]
        batch = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            batch[row, :lengths[i]] = torch.tensor(ids[i])
            mask[row, :lengths[i]] = 1
        batch, mask = batch.to(device), mask.to(device)
        hidden = model(input_ids=batch, attention_mask=mask).last_hidden_state.float()
        m = mask.unsqueeze(-1).float()
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        if normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        out[idx] = pooled.cpu().numpy()
        if progress is not None:
            progress.update(len(idx))
    if stats is not None:
        stats["tokens"] = stats.get("tokens", 0) + int(sum(lengths))
        stats["items"] = stats.get("items", 0) + len(texts)
    return out
