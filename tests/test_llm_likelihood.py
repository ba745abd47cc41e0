"""The shared-prefix KV-cache scorer equals the naive full-sequence scorer."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from harness.llm.likelihood import cached_scores, naive_scores


@pytest.fixture(scope="module")
def tiny_lm():
    torch.manual_seed(0)  # test-local: builds a random tiny model, no download
    cfg = LlamaConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=64, max_position_embeddings=256)
    return LlamaForCausalLM(cfg).eval()


def _manual(model, prompt, cand, how):
    """Independent reference: one unpadded sequence, explicit loop over candidate tokens."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + cand])).logits[0].log_softmax(-1)
    lp = [logits[len(prompt) - 1 + j, tok].item() for j, tok in enumerate(cand)]
    return sum(lp) if how == "sum" else sum(lp) / len(lp)


@pytest.mark.parametrize("how", ["mean", "sum"])
@pytest.mark.parametrize("batch", [1, 3, 50])
def test_cached_equals_naive_and_manual(tiny_lm, how, batch):
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(1, 97, (23,), generator=g).tolist()
    cands = [torch.randint(1, 97, (n,), generator=g).tolist() for n in (1, 2, 5, 9, 4, 7, 3)]
    a = cached_scores(tiny_lm, prompt, cands, batch, how, pad_id=0)
    b = naive_scores(tiny_lm, prompt, cands, batch, how, pad_id=0)
    ref = torch.tensor([_manual(tiny_lm, prompt, c, how) for c in cands], dtype=torch.float64)
    assert torch.allclose(a, ref, atol=1e-4) and torch.allclose(b, ref, atol=1e-4)
    assert len(set(a.round(decimals=5).tolist())) > 1  # not a constant


def test_sum_and_mean_rank_differently(tiny_lm):
    prompt = list(range(1, 20))
    cands = [[5], [5, 6, 7, 8, 9, 10]]
    s = cached_scores(tiny_lm, prompt, cands, how="sum")
    m = cached_scores(tiny_lm, prompt, cands, how="mean")
    assert s[1] < s[0]  # longer continuations accumulate more negative log-likelihood
    assert m[1] == pytest.approx(s[1].item() / 6, abs=1e-6)
