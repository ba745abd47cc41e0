"""Attention for llm-rank's packed candidate rows on CPU: prompt part + windowed candidate part.

In `likelihood.batched_scores` a row holds one user's candidates packed one after another over
that user's prompt cache: a candidate token attends to the user's prompt positions and to the
earlier tokens of its own candidate. Dense masked attention computes all W x (P + W) scores of
a row and throws most of the W x W block away. Here, per row:

- A: every query against the P prompt keys (the prompt's right padding masked), with its
  log-sum-exp lse_A;
- B: queries in blocks of S positions against the keys of their own block and the one before,
  which hold every earlier token of their candidate because no candidate feeds more than S
  tokens (S is chosen so), masked to the query's own candidate and causal, with lse_B;
- out = s * A + (1 - s) * B with s = sigmoid(lse_A - lse_B): the softmax over the union of both
  key sets, exactly (float rounding aside).

Grouped-query attention: the query heads that share a key/value head are stacked as extra query
rows, so keys are never repeated. Uses torch's CPU flash-attention kernel, which returns the
log-sum-exp; `PackedPlan.usable` says when (CPU, the model's attention is plain `sdpa` softmax
attention of a known decoder family); otherwise the caller keeps the dense mask.
"""

from __future__ import annotations

import contextlib
import contextvars

import torch
import torch.nn.functional as F
from transformers import AttentionInterface

NAME = "harness_packed_prefix"
# decoder families whose attention is softmax(q k^T * scaling + mask) v with no soft-capping,
# sinks or sliding windows (checked on the config as well)
FAMILIES = {"llama", "mistral", "qwen2", "qwen3", "phi3", "olmo2", "granite"}
_PLAN: contextvars.ContextVar[PackedPlan | None] = contextvars.ContextVar("packed_plan",
                                                                         default=None)


def _flash(q, k, v, mask, scale):
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, False, attn_mask=mask, scale=scale)


class PackedPlan:
    """Masks for one chunk of packed rows, shared by every layer of its forward.
    `seg` (R, W): candidate index of each position in its row (-1: row padding);
    `prompt_ok` (R, P): the prompt cache positions that hold tokens; `longest`: the most
    positions one candidate occupies."""

    def __init__(self, seg: torch.Tensor, prompt_ok: torch.Tensor, longest: int,
                 dtype: torch.dtype):
        R, W = seg.shape
        self.S = S = max(64, -(-longest // 16) * 16)
        self.nb = -(-W // S)
        wp = self.nb * S
        device = seg.device
        self.mask_a = torch.zeros(prompt_ok.shape, dtype=dtype, device=device).masked_fill_(
            ~prompt_ok, -torch.inf)[:, None, None, :]
        seg_q = torch.full((R, wp), -1, dtype=seg.dtype, device=device)
        seg_q[:, :W] = seg
        seg_k = torch.cat([torch.full((R, S), -2, dtype=seg.dtype, device=device), seg_q], 1)
        blocks = torch.arange(self.nb, device=device)[:, None] * S
        qpos = blocks + torch.arange(S, device=device)            # (nb, S)
        kpos = blocks - S + torch.arange(2 * S, device=device)   # (nb, 2S)
        qs, ks = seg_q[:, qpos], seg_k[:, kpos + S]               # (R, nb, S), (R, nb, 2S)
        before = kpos[:, None, :] <= qpos[:, :, None]             # (nb, S, 2S)
        own = (qs[..., None] == ks[..., None, :]) & before & (qs[..., None] >= 0)
        self_only = (kpos[:, None, :] == qpos[:, :, None]) & (qs[..., None] < 0)  # padding: no NaN
        allow = (own | self_only).reshape(R * self.nb, 1, S, 2 * S)
        self.mask_b = torch.zeros(allow.shape, dtype=dtype, device=device).masked_fill_(
            ~allow, -torch.inf)
        self._mask_b_rep: dict[int, torch.Tensor] = {}

    @staticmethod
    def usable(config, device: torch.device) -> bool:
        cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
        return (device.type == "cpu" and getattr(cfg, "model_type", None) in FAMILIES
                and getattr(cfg, "_attn_implementation", None) == "sdpa"
                and not getattr(cfg, "sliding_window", None)
                and not getattr(cfg, "attn_logit_softcapping", None)
                and hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"))

    def attend(self, query, key, value, scale):
        """query (R, H, W, D); key/value (R, KV, P + W, D) (prompt cache + this row). Returns
        (R, W, H, D) as transformers' attention functions do."""
        R, H, W, D = query.shape
        kv = key.shape[1]
        rep, S, nb, P = H // kv, self.S, self.nb, key.shape[2] - W
        o_a, l_a = _flash(query.reshape(R, kv, rep * W, D), key[:, :, :P], value[:, :, :P],
                          self.mask_a, scale)
        pad = nb * S - W
        q_b = F.pad(query, (0, 0, 0, pad)).reshape(R, kv, rep, nb, S, D).permute(
            0, 3, 1, 2, 4, 5).reshape(R * nb, kv, rep * S, D)

        def windows(t):  # (R, KV, W, D) -> (R * nb, KV, 2S, D): each block and the one before
            t = F.pad(t[:, :, P:], (0, 0, S, pad))
            return t.unfold(2, 2 * S, S).permute(0, 2, 1, 4, 3).reshape(R * nb, kv, 2 * S, D)

        if rep not in self._mask_b_rep:  # one mask row per stacked query row
            self._mask_b_rep[rep] = self.mask_b.repeat(1, 1, rep, 1)
        o_b, l_b = _flash(q_b, windows(key), windows(value), self._mask_b_rep[rep], scale)
        o_b = o_b.reshape(R, nb, kv, rep, S, D).permute(0, 2, 3, 1, 4, 5).reshape(
            R, H, nb * S, D)[:, :, :W]
        l_b = l_b.reshape(R, nb, kv, rep, S).permute(0, 2, 3, 1, 4).reshape(R, H, nb * S)[
            :, :, :W]
        s = torch.sigmoid(l_a.reshape(R, H, W) - l_b)[..., None].to(o_b.dtype)
        out = o_b + s * (o_a.reshape(R, H, W, D) - o_b)
        return out.transpose(1, 2).contiguous()


def _attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    plan = _PLAN.get()
    if plan is None:
        raise RuntimeError(f"'{NAME}' attention runs only inside packed_attention()")
    return plan.attend(query, key, value, scaling), None


AttentionInterface.register(NAME, _attention)


@contextlib.contextmanager
def packed_attention(config, plan: PackedPlan):
    """For the duration: the model's attention layers run `plan` (the config's attention
    implementation is switched to it and restored)."""
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    before, token = cfg._attn_implementation, _PLAN.set(plan)
    cfg._attn_implementation = NAME
    try:
        yield
    finally:
        cfg._attn_implementation = before
        _PLAN.reset(token)
