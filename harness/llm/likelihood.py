"""Log-likelihood of candidate continuations given a shared prompt, with and without KV reuse."""

from __future__ import annotations

import torch
from transformers import DynamicCache


def _pad(cands: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(c) for c in cands)
    ids = torch.full((len(cands), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(cands), width), dtype=torch.long)
    for row, c in enumerate(cands):
        ids[row, :len(c)] = torch.tensor(c)
        mask[row, :len(c)] = 1
    return ids.to(device), mask.to(device)


def _aggregate(token_lp: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    total = (token_lp * mask).sum(1)
    return total if how == "sum" else total / mask.sum(1).clamp(min=1)


@torch.inference_mode()
def cached_scores(model, prompt: list[int], cands: list[list[int]], batch_size: int = 32,
                  how: str = "mean", pad_id: int = 0) -> torch.Tensor:
    """Score = mean (or sum) over candidate tokens of log p(token | prompt, previous tokens).
    The prompt is encoded once; its KV cache is shared (expanded, not copied) by every batch of
    candidates, and the first candidate token is scored from the prompt's last logits."""
    device = next(model.parameters()).device
    out = model(input_ids=torch.tensor([prompt], device=device), use_cache=True)
    first_lp = out.logits[0, -1].float().log_softmax(-1)
    kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
    n_prompt = len(prompt)
    scores = []
    for start in range(0, len(cands), batch_size):
        chunk = cands[start:start + batch_size]
        ids, mask = _pad(chunk, pad_id, device)
        b, t = ids.shape
        cache = DynamicCache([(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)) for k, v in kv])
        attn = torch.cat([torch.ones((b, n_prompt), dtype=torch.long, device=device), mask], 1)
        pos = (n_prompt + torch.arange(t, device=device)).expand(b, -1)
        logits = model(input_ids=ids, attention_mask=attn, position_ids=pos,
                       past_key_values=cache, use_cache=True).logits
        lp = torch.empty((b, t), device=device)
        lp[:, 0] = first_lp[ids[:, 0]]
        if t > 1:
            lp[:, 1:] = logits[:, :-1].float().log_softmax(-1).gather(
                2, ids[:, 1:, None]).squeeze(2)
        scores.append(_aggregate(lp, mask, how).cpu())
    return torch.cat(scores).double()


@torch.inference_mode()
def naive_scores(model, prompt: list[int], cands: list[list[int]], batch_size: int = 8,
                 how: str = "mean", pad_id: int = 0) -> torch.Tensor:
    """The reference: each candidate scored as one full sequence prompt + candidate (right
    padded, no cache reuse). Same definition as `cached_scores`."""
    device = next(model.parameters()).device
    n_prompt = len(prompt)
    scores = []
    for start in range(0, len(cands), batch_size):
        chunk = cands[start:start + batch_size]
        ids, mask = _pad([prompt + c for c in chunk], pad_id, device)
        logits = model(input_ids=ids, attention_mask=mask).logits
        lp = logits[:, n_prompt - 1:-1].float().log_softmax(-1).gather(
            2, ids[:, n_prompt:, None]).squeeze(2)
        scores.append(_aggregate(lp, mask[:, n_prompt:], how).cpu())
    return torch.cat(scores).double()
