"""Windowed attention over packed candidate rows equals the dense block-causal mask."""

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig

from harness.llm.likelihood import _dense_mask
from harness.llm.packed_attention import PackedPlan


def _rows(g, widths, lengths_hi):
    """seg ids for rows of packed candidates (random lengths 1..lengths_hi), padded to width."""
    W = max(widths)
    seg = torch.full((len(widths), W), -1)
    longest = 0
    for r, w in enumerate(widths):
        off, k = 0, 0
        while off < w:
            n = min(int(torch.randint(1, lengths_hi + 1, (1,), generator=g)), w - off)
            seg[r, off:off + n] = k
            longest = max(longest, n)
            off, k = off + n, k + 1
    return seg, longest


@pytest.mark.parametrize("heads,kv", [(4, 4), (9, 3), (6, 2)])
@pytest.mark.parametrize("widths,hi", [((70, 33, 130), 20), ((200, 5), 90), ((17,), 17)])
def test_windowed_equals_dense_mask(heads, kv, widths, hi):
    g = torch.Generator().manual_seed(len(widths) * 31 + heads)
    seg, longest = _rows(g, widths, hi)
    R, W = seg.shape
    P, D = 23, 8
    n_prompt = torch.randint(1, P + 1, (R,), generator=g)
    prompt_ok = torch.arange(P)[None, :] < n_prompt[:, None]
    q = torch.randn(R, heads, W, D, generator=g)
    k = torch.randn(R, kv, P + W, D, generator=g)
    v = torch.randn(R, kv, P + W, D, generator=g)
    plan = PackedPlan(seg, prompt_ok, longest, torch.float32)
    assert plan.S >= longest
    got = plan.attend(q, k, v, D ** -0.5)  # (R, W, H, D)
    rep = heads // kv
    ref = F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1),
                                         v.repeat_interleave(rep, 1),
                                         attn_mask=_dense_mask(prompt_ok, seg),
                                         scale=D ** -0.5).transpose(1, 2)
    used = seg >= 0
    assert torch.isfinite(got).all()  # padding positions stay finite too
    torch.testing.assert_close(got[used], ref[used], rtol=0, atol=2e-5)


def test_windowed_attention_is_used_only_where_it_applies():
    cfg = LlamaConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=64)
    cfg._attn_implementation = "sdpa"
    assert PackedPlan.usable(cfg, torch.device("cpu"))
    assert not PackedPlan.usable(cfg, torch.device("meta"))
    cfg._attn_implementation = "eager"
    assert not PackedPlan.usable(cfg, torch.device("cpu"))
    cfg._attn_implementation = "sdpa"
    cfg.model_type = "gemma2"  # soft-capped / sliding-window families keep the dense mask
    assert not PackedPlan.usable(cfg, torch.device("cpu"))
