"""The shared-prefix KV-cache scorer equals the naive full-sequence scorer."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from harness.llm.likelihood import batched_scores, cached_scores, naive_scores


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


def _users(g, prompt_lens, cand_lens):
    prompts = [torch.randint(1, 97, (n,), generator=g).tolist() for n in prompt_lens]
    cands = [[torch.randint(1, 97, (n,), generator=g).tolist() for n in lens]
             for lens in cand_lens]
    return prompts, cands


@pytest.mark.parametrize("attention", ["windowed", "dense"])
@pytest.mark.parametrize("how", ["mean", "sum"])
@pytest.mark.parametrize("budget,pack", [(4096, 384), (40, 6), (1, 1)])
def test_batched_across_users_equals_manual(tiny_lm, how, budget, pack, attention):
    """Several users in one call: prompts of different lengths (right padding, position ids),
    1-token candidates (scored from the prompt only), users split over groups (small budget)
    and candidates over several packed rows (small pack), a user with no candidates."""
    g = torch.Generator().manual_seed(2)
    prompts, cands = _users(g, (23, 5, 40, 11, 7),
                            [(1, 2, 5, 9), (4, 7, 3), (1,), (6, 6, 2, 8, 1, 3), ()])
    out = batched_scores(tiny_lm, prompts, cands, how, 0, budget, pack, attention=attention)
    assert [len(s) for s in out] == [len(c) for c in cands]
    for p, cs, s in zip(prompts, cands, out):
        ref = torch.tensor([_manual(tiny_lm, p, c, how) for c in cs], dtype=torch.float64)
        assert s.dtype == torch.float64
        assert torch.allclose(s, ref, atol=1e-5), (s, ref)


def test_batched_is_independent_of_the_other_users(tiny_lm):
    """A user's scores do not depend on who shares the batch (padding is fully masked)."""
    g = torch.Generator().manual_seed(3)
    prompts, cands = _users(g, (9, 31, 18), [(3, 4, 2), (5, 1, 6), (2, 2, 7)])
    together = batched_scores(tiny_lm, prompts, cands)
    for u in range(3):
        alone = batched_scores(tiny_lm, [prompts[u]], [cands[u]])[0]
        assert torch.allclose(together[u], alone, atol=1e-6)


def test_batched_needs_a_decoder_and_output_projection(tiny_lm):
    with pytest.raises(TypeError, match="naive_scores"):
        batched_scores(tiny_lm.model, [[1, 2]], [[[3, 4]]])


@pytest.mark.parametrize("attention", ["windowed", "dense"])
@pytest.mark.parametrize("how", ["mean", "sum"])
def test_batched_with_a_shared_prompt_prefix(tiny_lm, how, attention):
    """Prompts starting with the same 12 tokens (as chat-templated prompts do): the prefix is
    encoded once and expanded; scores still equal the manual reference. One prompt is the
    prefix plus a single token (the shared part leaves every prompt >= 1 own token)."""
    from harness.llm.likelihood import common_prefix
    g = torch.Generator().manual_seed(4)
    head = torch.randint(1, 97, (12,), generator=g).tolist()
    tails, cands = _users(g, (9, 1, 20, 4), [(3, 1, 5), (2, 6), (4, 4, 1), (7,)])
    prompts = [head + t for t in tails]
    assert common_prefix(prompts) == 12
    assert common_prefix([head + [5], head + [5]]) == 12  # each keeps its last token
    assert common_prefix([[1, 2, 3], [2, 2, 3]]) == 0
    out = batched_scores(tiny_lm, prompts, cands, how, 0, 4096, 8, attention=attention)
    for p, cs, s in zip(prompts, cands, out):
        ref = torch.tensor([_manual(tiny_lm, p, c, how) for c in cs], dtype=torch.float64)
        assert torch.allclose(s, ref, atol=1e-5), (s, ref)


def test_batched_long_candidates_and_attention_choice(tiny_lm):
    """Candidates longer than the 64-position window (the window grows to fit), both attention
    paths; "auto" takes the windowed one on CPU for a Llama model; a bad choice is an error."""
    from harness.llm.packed_attention import PackedPlan
    g = torch.Generator().manual_seed(5)
    prompts, cands = _users(g, (15, 40), [(90, 3, 70), (2, 120)])
    assert PackedPlan.usable(tiny_lm.config, torch.device("cpu"))
    for attention in ("auto", "dense"):
        out = batched_scores(tiny_lm, prompts, cands, "mean", 0, 4096, 512, attention=attention)
        for p, cs, s in zip(prompts, cands, out):
            ref = torch.tensor([_manual(tiny_lm, p, c, "mean") for c in cs], dtype=torch.float64)
            assert torch.allclose(s, ref, atol=1e-5), (attention, s, ref)
    assert tiny_lm.config._attn_implementation == "sdpa"  # restored after the windowed forward
    with pytest.raises(ValueError, match="windowed"):
        batched_scores(tiny_lm, prompts, cands, attention="sparse")
