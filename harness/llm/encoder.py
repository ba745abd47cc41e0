"""Batched text encoding with a transformer encoder: length-sorted batches, mean pooling."""

from __future__ import annotations

import numpy as np
import torch


@torch.inference_mode()
def encode(tokenizer, model, texts: list[str], batch_size: int = 64, max_length: int = 128,
           normalize: bool = True, progress=None) -> np.ndarray:
    """(len(texts), dim) float32 embeddings: mean of the last hidden states over non-padding
    tokens, L2-normalized. Texts are batched in order of token length (less padding) and the
    result is returned in input order."""
    device = next(model.parameters()).device
    enc = tokenizer(texts, truncation=True, max_length=max_length, add_special_tokens=True)
    ids = enc["input_ids"]
    order = np.argsort([-len(x) for x in ids], kind="stable")
    out = np.zeros((len(texts), model.config.hidden_size), np.float32)
    pad = tokenizer.pad_token_id or 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(ids[i]) for i in idx)
        batch = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            batch[row, :len(ids[i])] = torch.tensor(ids[i])
            mask[row, :len(ids[i])] = 1
        batch, mask = batch.to(device), mask.to(device)
        hidden = model(input_ids=batch, attention_mask=mask).last_hidden_state.float()
        m = mask.unsqueeze(-1).float()
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        if normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        out[idx] = pooled.cpu().numpy()
        if progress is not None:
            progress.update(len(idx))
    return out
