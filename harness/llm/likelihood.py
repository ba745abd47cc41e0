"""Log-likelihood of candidate continuations given a prompt.

Three scorers with one definition, score = mean (or sum) over the candidate's tokens of
log p(token | prompt, previous candidate tokens):

- `batched_scores`: several users per forward. Their prompts are right-padded into one batch
  (attention mask + position ids; a prefix common to all of them, such as the chat template
  and instruction, is encoded once), the prompt KV cache is kept, and each user's candidates are
  packed into one row after it (block-causal attention: on CPU a prompt part plus a windowed
  candidate part, `packed_attention`, else one 4D mask; positions restarting at the prompt
  length for every candidate), so the prompt is encoded once and shared by its candidates with
  no padding between them. Only the hidden states at scored positions go through the output
  projection (no full-vocabulary logits for prompt or padding positions), and a candidate's
  last token is never fed (its output predicts nothing that is scored).
- `cached_scores`: the earlier one-user path (prompt once, candidates as padded rows over the
  expanded prompt cache, full logits everywhere); kept as the benchmark's "before".
- `naive_scores`: the reference, each candidate as one full sequence prompt + candidate.

The batched path needs `model.base_model` (the decoder) and `model.get_output_embeddings()`
(the output projection), with logits = projection(hidden) [tanh soft-capped when the config
sets `final_logit_softcapping`]: true of Llama/Mistral/Qwen/Gemma-style causal LMs.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from harness.llm.packed_attention import PackedPlan, packed_attention


def pad_right(seqs: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), right-padded to the longest sequence."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, :len(s)] = torch.tensor(s)
        mask[row, :len(s)] = 1
    return ids.to(device), mask.to(device)


def _aggregate(token_lp: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    total = (token_lp * mask).sum(1)
    return total if how == "sum" else total / mask.sum(1).clamp(min=1)


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def _cache_arg(module) -> str:
    """The forward keyword for a KV cache: `cache` (transformers >= 5.2x), else the older
    `past_key_values`."""
    return "cache" if "cache" in inspect.signature(module.forward).parameters \
        else "past_key_values"


def _out_cache(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


# ------------------------------------------------------------------ batched (across users)

def _parts(model):
    """(decoder body, output projection, logit soft-cap or None)."""
    body = getattr(model, "base_model", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if body is None or body is model or head is None:
        raise TypeError(f"{type(model).__name__} has no separate decoder (base_model) and "
                        "output projection (get_output_embeddings); use naive_scores")
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") \
        else model.config
    return body, head, getattr(cfg, "final_logit_softcapping", None)


def _logits(head, cap, hidden: torch.Tensor) -> torch.Tensor:
    logits = head(hidden).float()
    return torch.tanh(logits / cap) * cap if cap else logits


def _token_logprobs(head, cap, hidden: torch.Tensor, targets: torch.Tensor,
                    chunk: int) -> torch.Tensor:
    """log p(targets[n] | hidden[n]) = logit[target] - logsumexp(logits) (= -cross-entropy,
    one fused pass per row), `chunk` rows of full-vocabulary logits at a time (64 keep a chunk
    in the CPU's cache: 12.6 MB for a 49,152-token vocabulary)."""
    out = torch.empty(len(targets), dtype=torch.float32, device=hidden.device)
    for s in range(0, len(targets), chunk):
        logits = _logits(head, cap, hidden[s:s + chunk])
        out[s:s + chunk] = -F.cross_entropy(logits, targets[s:s + chunk], reduction="none")
    return out


def _groups(lengths: list[int], order: list[int], budget: int) -> list[list[int]]:
    """Consecutive runs of `order` whose padded size (count x longest) stays within `budget`
    (a single over-long member forms its own group)."""
    groups, cur, longest = [], [], 0
    for i in order:
        top = max(longest, lengths[i])
        if cur and top * (len(cur) + 1) > budget:
            groups.append(cur)
            cur, top = [], lengths[i]
        cur.append(i)
        longest = top
    if cur:
        groups.append(cur)
    return groups


def _packs(cands: list[list[int]], pack_tokens: int) -> list[list[int]]:
    """Candidate indices (those with >= 2 tokens) split in order into packs of at most
    `pack_tokens` fed tokens (len - 1 each; a longer candidate gets a pack of its own)."""
    packs, cur, size = [], [], 0
    for ci, c in enumerate(cands):
        n = len(c) - 1
        if n <= 0:
            continue
        if cur and size + n > pack_tokens:
            packs.append(cur)
            cur, size = [], 0
        cur.append(ci)
        size += n
    if cur:
        packs.append(cur)
    return packs


def _pack_rows(rows, cands, n_prompt, offsets, device):
    """Tensors for packed candidate rows: ids, position ids, candidate index within the row of
    each position (-1 = padding), next-token targets and the flat candidate index owning each
    position (-1 = padding)."""
    width = max(sum(len(cands[g][ci]) - 1 for ci in pack) for g, pack in rows)
    shape = (len(rows), width)
    ids, pos = torch.zeros(shape, dtype=torch.long), torch.zeros(shape, dtype=torch.long)
    seg, tgt = torch.full(shape, -1, dtype=torch.long), torch.full(shape, -1, dtype=torch.long)
    owner = torch.full(shape, -1, dtype=torch.long)
    for r, (g, pack) in enumerate(rows):
        off = 0
        for k, ci in enumerate(pack):
            c = torch.tensor(cands[g][ci])
            n = len(c) - 1
            ids[r, off:off + n], tgt[r, off:off + n] = c[:-1], c[1:]
            pos[r, off:off + n] = n_prompt[g] + torch.arange(n)
            seg[r, off:off + n], owner[r, off:off + n] = k, offsets[g] + ci
            off += n
    return (ids.to(device), pos.to(device), seg.to(device), tgt.to(device), owner.to(device))


def _dense_mask(prompt_ok: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """(R, 1, W, P + W) boolean mask: every prompt position that holds a token, then the earlier
    positions of the same candidate (block-causal)."""
    width = seg.shape[1]
    causal = torch.ones((width, width), dtype=torch.bool, device=seg.device).tril()
    same = (seg[:, :, None] == seg[:, None, :]) & (seg[:, None, :] >= 0) & causal
    return torch.cat([prompt_ok[:, None, :].expand(-1, width, -1), same], 2)[:, None]


def common_prefix(prompts: list[list[int]]) -> int:
    """Length of the token prefix shared by all prompts, leaving each at least one token."""
    first, n = prompts[0], min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        i = 0
        while i < n and p[i] == first[i]:
            i += 1
        n = i
    return max(n, 0)


def _encode_prompts(body, cache_kw, prompts, pad_id, device, min_shared: int = 8):
    """Right-padded batch of prompts through the decoder: (per-layer KV, hidden state at each
    prompt's last token, (G, P) attention mask over the cached positions). A prefix shared by
    all prompts (chat template, instruction) of >= `min_shared` tokens is encoded once and its
    cache expanded to the batch."""
    shared = common_prefix(prompts) if len(prompts) > 1 else 0
    shared = shared if shared >= min_shared else 0
    cache, kw = None, {}
    if shared:
        pre = body(input_ids=torch.tensor([prompts[0][:shared]], device=device), use_cache=True)
        b = len(prompts)
        cache = DynamicCache([(layer.keys.expand(b, -1, -1, -1),
                               layer.values.expand(b, -1, -1, -1))
                              for layer in _out_cache(pre).layers])
        kw = {cache_kw: cache}
    ids, mask = pad_right([p[shared:] for p in prompts], pad_id, device)
    pos = shared + (mask.cumsum(1) - 1).clamp(min=0)
    if shared:
        mask = torch.cat([torch.ones((len(prompts), shared), dtype=mask.dtype, device=device),
                          mask], 1)
    res = body(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **kw)
    kv = [(layer.keys, layer.values) for layer in _out_cache(res).layers]
    n = mask.sum(1)
    last = res.last_hidden_state[torch.arange(len(prompts), device=device), n - 1 - shared]
    return kv, last, mask


@torch.inference_mode()
def batched_scores(model, prompts: list[list[int]], cands: list[list[list[int]]],
                   how: str = "mean", pad_id: int = 0, token_budget: int = 8192,
                   pack_tokens: int = 512, head_chunk: int = 0,
                   attention: str = "auto") -> list[torch.Tensor]:
    """Per user u, a (len(cands[u]),) float64 tensor on the model's device: the score of each
    of its candidates given prompts[u] (same definition as `naive_scores`). Users are grouped
    (by prompt length) so that users x longest prompt <= `token_budget`; each group's packed
    candidate rows are run in chunks of rows x longest row <= `token_budget` (rows of similar
    width together). `attention`: "windowed" (prompt part + windowed candidate part,
    `packed_attention`), "dense" (one block-causal mask over prompt + row), "auto" (windowed
    where `PackedPlan.usable`: CPU, plain softmax attention of a known decoder family).
    `head_chunk`: rows of full-vocabulary logits at a time (0: 64 on CPU, 1024 elsewhere)."""
    if attention not in ("auto", "windowed", "dense"):
        raise ValueError(f"attention must be 'auto', 'windowed' or 'dense', got '{attention}'")
    device = model_device(model)
    if attention == "windowed" and device.type != "cpu":
        raise ValueError("attention = 'windowed' runs on CPU only (use 'auto' or 'dense')")
    head_chunk = head_chunk or (64 if device.type == "cpu" else 1024)
    body, head, cap = _parts(model)
    cache_kw = _cache_arg(body)
    windowed = PackedPlan.usable(body.config, device) if attention == "auto" else \
        attention == "windowed"
    out: list[torch.Tensor | None] = [None] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda u: len(prompts[u]))
    for group in _groups([len(p) for p in prompts], order, token_budget):
        g_cands = [cands[u] for u in group]
        offsets, total = [], 0
        for c in g_cands:
            offsets.append(total)
            total += len(c)
        kv, last, mask = _encode_prompts(body, cache_kw, [prompts[u] for u in group], pad_id,
                                         device)
        n_prompt = mask.sum(1)
        # first candidate token: from each prompt's last position
        owner0 = torch.tensor([g for g, c in enumerate(g_cands) for _ in c], dtype=torch.long,
                              device=device)
        first = torch.tensor([c[0] for cs in g_cands for c in cs], dtype=torch.long,
                             device=device)
        logits = _logits(head, cap, last)
        score = logits[owner0, first] - torch.logsumexp(logits, -1)[owner0]
        del logits
        # the other tokens: packed candidate rows over the shared prompt cache
        rows = [(g, pack) for g, cs in enumerate(g_cands) for pack in _packs(cs, pack_tokens)]
        sizes = [sum(len(g_cands[g][ci]) - 1 for ci in pack) for g, pack in rows]
        prompt_ok = mask.bool()
        by_width = sorted(range(len(rows)), key=lambda r: sizes[r])  # less padding per chunk
        for chunk in _groups(sizes, by_width, token_budget):
            chunk_rows = [rows[i] for i in sorted(chunk)]  # user order: no cache copy if all
            users = [g for g, _ in chunk_rows]
            c_ids, c_pos, seg, tgt, owner = _pack_rows(chunk_rows, g_cands, n_prompt.tolist(),
                                                      offsets, device)
            if users == list(range(len(group))):
                cache = DynamicCache(kv)
                p_ok = prompt_ok
            else:
                sel = torch.tensor(users, device=device)
                cache = DynamicCache([(k.index_select(0, sel), v.index_select(0, sel))
                                      for k, v in kv])
                p_ok = prompt_ok.index_select(0, sel)
            if windowed:  # prompt part + windowed candidate part (packed_attention)
                longest = max(len(g_cands[g][ci]) - 1 for g, pack in chunk_rows for ci in pack)
                plan = PackedPlan(seg, p_ok, longest, kv[0][0].dtype)
                with packed_attention(body.config, plan):
                    hidden = body(input_ids=c_ids, position_ids=c_pos, use_cache=True,
                                  **{cache_kw: cache}).last_hidden_state
            else:
                hidden = body(input_ids=c_ids, attention_mask=_dense_mask(p_ok, seg),
                              position_ids=c_pos, use_cache=True,
                              **{cache_kw: cache}).last_hidden_state
            keep = tgt >= 0
            lp = _token_logprobs(head, cap, hidden[keep], tgt[keep], head_chunk)
            score.index_add_(0, owner[keep], lp)
            del hidden, cache
        if how == "mean":
            score = score / torch.tensor([len(c) for cs in g_cands for c in cs], device=device)
        score = score.double()
        for g, u in enumerate(group):
            out[u] = score[offsets[g]:offsets[g] + len(g_cands[g])]
    return out


# ------------------------------------------------------------------ one user (before), reference

@torch.inference_mode()
def cached_scores(model, prompt: list[int], cands: list[list[int]], batch_size: int = 32,
                  how: str = "mean", pad_id: int = 0) -> torch.Tensor:
    """Score = mean (or sum) over candidate tokens of log p(token | prompt, previous tokens).
    The prompt is encoded once; its KV cache is shared (expanded, not copied) by every batch of
    candidates, and the first candidate token is scored from the prompt's last logits."""
    device = model_device(model)
    out = model(input_ids=torch.tensor([prompt], device=device), use_cache=True)
    first_lp = out.logits[0, -1].float().log_softmax(-1)
    kv = [(layer.keys, layer.values) for layer in _out_cache(out).layers]
    cache_kw = _cache_arg(model)
    n_prompt = len(prompt)
    scores = []
    for start in range(0, len(cands), batch_size):
        chunk = cands[start:start + batch_size]
        ids, mask = pad_right(chunk, pad_id, device)
        b, t = ids.shape
        cache = DynamicCache([(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)) for k, v in kv])
        attn = torch.cat([torch.ones((b, n_prompt), dtype=torch.long, device=device), mask], 1)
        pos = (n_prompt + torch.arange(t, device=device)).expand(b, -1)
        logits = model(input_ids=ids, attention_mask=attn, position_ids=pos,
                       use_cache=True, **{cache_kw: cache}).logits
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
    device = model_device(model)
    n_prompt = len(prompt)
    scores = []
    for start in range(0, len(cands), batch_size):
        chunk = cands[start:start + batch_size]
        ids, mask = pad_right([prompt + c for c in chunk], pad_id, device)
        logits = model(input_ids=ids, attention_mask=mask).logits
        lp = logits[:, n_prompt - 1:-1].float().log_softmax(-1).gather(
            2, ids[:, n_prompt:, None]).squeeze(2)
        scores.append(_aggregate(lp, mask[:, n_prompt:], how).cpu())
    return torch.cat(scores).double()
