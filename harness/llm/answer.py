"""P(Yes) of a causal LM asked a yes/no question: the two answer-token logits at the last
position of prompt + candidate suffix, with the shared prompt's KV cache computed once and
reused by every candidate (the naive full-sequence path is the reference)."""

from __future__ import annotations

import torch
from transformers import DynamicCache

from harness.llm.likelihood import _cache_arg, _out_cache, pad_right


def answer_logits(lm, ids: torch.Tensor, mask: torch.Tensor,
                  answers: torch.Tensor) -> torch.Tensor:
    """(B, 2) logits of the answer tokens (e.g. [Yes, No]) after the last real token of each
    right-padded row, computed from the decoder's hidden state there (the output projection is
    applied to those rows and tokens only). Keeps gradients (used for training)."""
    hidden = lm.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    last = hidden[torch.arange(len(ids), device=ids.device), mask.sum(1) - 1]
    return last.float() @ lm.get_output_embeddings().weight[answers].float().T


@torch.inference_mode()
def yes_probs_cached(lm, prompt: list[int], suffixes: list[list[int]], answers: torch.Tensor,
                     batch_size: int = 32, pad_id: int = 0) -> torch.Tensor:
    """(len(suffixes),) float64 P(answer 0) = softmax over the two answer logits after
    prompt + suffix. The prompt is encoded once; its KV cache is expanded (not copied) over
    each batch of right-padded suffixes, with positions continuing after the prompt."""
    body = lm.get_decoder()
    weight = lm.get_output_embeddings().weight[answers].float()
    device = weight.device
    res = body(input_ids=torch.tensor([prompt], device=device), use_cache=True)
    kv = [(layer.keys, layer.values) for layer in _out_cache(res).layers]
    kw, n = _cache_arg(body), len(prompt)
    out = []
    for start in range(0, len(suffixes), batch_size):
        ids, mask = pad_right(suffixes[start:start + batch_size], pad_id, device)
        b, t = ids.shape
        cache = DynamicCache([(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)) for k, v in kv])
        attn = torch.cat([torch.ones((b, n), dtype=torch.long, device=device), mask], 1)
        pos = (n + torch.arange(t, device=device)).expand(b, -1)
        hidden = body(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True,
                      **{kw: cache}).last_hidden_state
        last = hidden[torch.arange(b, device=device), mask.sum(1) - 1].float()
        out.append(torch.softmax(last @ weight.T, -1)[:, 0].double().cpu())
    return torch.cat(out)


@torch.inference_mode()
def yes_probs_naive(lm, prompt: list[int], suffixes: list[list[int]], answers: torch.Tensor,
                    batch_size: int = 8, pad_id: int = 0) -> torch.Tensor:
    """The reference for `yes_probs_cached`: each prompt + suffix as one full sequence."""
    device = lm.get_output_embeddings().weight.device
    out = []
    for start in range(0, len(suffixes), batch_size):
        ids, mask = pad_right([prompt + s for s in suffixes[start:start + batch_size]], pad_id,
                              device)
        out.append(torch.softmax(answer_logits(lm, ids, mask, answers), -1)[:, 0].double().cpu())
    return torch.cat(out)
