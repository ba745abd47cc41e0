"""Pre-packed oneDNN linear weights: the same products as torch's linear layers, used only
inside `with`, in inference, and re-packed when a weight changes."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from harness.llm.likelihood import batched_scores, naive_scores
from harness.llm.packed import PackedLinears, onednn_available, packed_linears


@pytest.fixture()
def tiny_lm():
    torch.manual_seed(0)  # test-local random model, no download
    cfg = LlamaConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=64, max_position_embeddings=256)
    return LlamaForCausalLM(cfg).eval()


def _work(seed):
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(1, 97, (n,), generator=g).tolist() for n in (17, 5, 30)]
    cands = [[torch.randint(1, 97, (n,), generator=g).tolist() for n in lens]
             for lens in [(3, 1, 6), (4, 2), (5, 5, 2, 7)]]
    return prompts, cands


def _forwards(model):
    return [m for m in model.modules() if "forward" in vars(m)]


def test_packed_scores_equal_plain_and_forwards_are_restored(tiny_lm):
    prompts, cands = _work(1)
    plain = batched_scores(tiny_lm, prompts, cands)
    packed = packed_linears(tiny_lm)
    assert onednn_available()  # the x86 CPU wheel of torch ships oneDNN
    assert packed.enabled and packed is packed_linears(tiny_lm)  # one per model object
    calls = []
    with packed:
        assert len(_forwards(tiny_lm)) == len(packed.linears) > 0
        x = torch.randn(5, 32)
        q = tiny_lm.model.layers[0].self_attn.q_proj
        with torch.inference_mode():
            calls.append(q(x))
        with packed:  # re-entrant
            fast = batched_scores(tiny_lm, prompts, cands)
        assert _forwards(tiny_lm)  # still routed after the inner block
    assert not _forwards(tiny_lm)  # restored
    torch.testing.assert_close(calls[0], torch.nn.functional.linear(x, q.weight), rtol=1e-5,
                               atol=1e-5)
    for a, b, p, cs in zip(fast, plain, prompts, cands):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        ref = naive_scores(tiny_lm, p, cs)
        torch.testing.assert_close(a, ref, rtol=0, atol=1e-5)


def test_with_gradients_the_plain_linear_runs(tiny_lm):
    """Training through a packed model: autograd sees the ordinary linear layers."""
    ids = torch.tensor([[3, 4, 5, 6]])
    with packed_linears(tiny_lm):
        loss = tiny_lm(input_ids=ids, labels=ids).loss
        loss.backward()
    grad = tiny_lm.model.layers[0].mlp.up_proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_a_weight_changed_in_place_is_repacked(tiny_lm):
    prompts, cands = _work(2)
    packed = packed_linears(tiny_lm)
    with packed:
        before = batched_scores(tiny_lm, prompts, cands)
    with torch.no_grad():
        tiny_lm.model.layers[1].mlp.down_proj.weight.mul_(3.0)
    with packed:
        after = batched_scores(tiny_lm, prompts, cands)
    plain = batched_scores(tiny_lm, prompts, cands)
    assert max(float((a - b).abs().max()) for a, b in zip(after, before)) > 1e-3
    for a, b in zip(after, plain):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_nothing_is_packed_outside_cpu_float32(tiny_lm):
    half = LlamaForCausalLM(tiny_lm.config).to(torch.bfloat16).eval()
    p = PackedLinears(half)
    assert not p.enabled
    with p:
        assert not _forwards(half)
    assert not PackedLinears(torch.nn.Module()).enabled
