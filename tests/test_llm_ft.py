"""Fine-tuned LLM recommenders on a tiny synthetic dataset (real offline models, CPU): they learn
(beat random), training is bitwise reproducible, weights are cached, reloaded and verified, LoRA
leaves base weights alone, and bad parameters are clear errors."""

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.candidates import full_candidates, sampled_candidates
from harness.data import load_dataset
from harness.errors import UserError
from harness.evaluate import evaluate
from harness.options import FitOptions
from harness.registry import build
from harness.splits import make_split

# tiny budgets: each fit takes seconds on 2 CPU cores
TINY = {
    "llm-hybrid": {"epochs": 40, "eval_every": 5, "patience": 2, "factors": 16,
                   "batch_size": 256},
    "llm-classifier": {"max_examples": 96, "history_len": 3, "max_length": 64,
                       "batch_size": 16},  # LoRA (default adapter)
    "llm-embed-ft": {"max_examples": 64, "history_len": 3, "batch_size": 16,
                     "uniform_negatives": 8},
    # on a tiny random Llama (below) for the mechanics; the real SmolLM2 learns in its own test
    "llm-rank-ft": {"n_samples": 16, "history_len": 3, "batch_size": 8},
}


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """A tiny random Llama with SmolLM2's tokenizer, saved as a local model directory."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from harness.llm.loading import resolve_model
    ref = resolve_model("smollm2-135m")
    tok = AutoTokenizer.from_pretrained(ref.path, gguf_file=ref.gguf_file,
                                        local_files_only=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        lm = LlamaForCausalLM(LlamaConfig(
            vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=64, max_position_embeddings=1024,
            tie_word_embeddings=True))
    path = tmp_path_factory.mktemp("tiny-llama")
    lm.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def data():
    ds = load_dataset("synthetic", n_users=80, n_items=60, n_interactions=1600, n_genres=4,
                      seed=3)
    return ds, make_split(ds, "random_holdout", {}, seed=0)


def fit(name: str, data, cache_dir: Path | None, use_cache: bool = True, **extra):
    ds, split = data
    model = build(name, {**TINY[name], **extra}, seed=0)
    model.fit_options = FitOptions(cache_dir=cache_dir, use_cache=use_cache, quiet=True)
    model.fit(split, ds)
    return model


def ndcg(model, data, sampled: bool) -> float:
    _, split = data
    cand = (sampled_candidates(split, "test", 5, "uniform", 0, max_users=40) if sampled
            else full_candidates(split, "test"))
    ev = evaluate(model.score, cand, [10], ["ndcg"], model=model)
    return float(ev.values[("ndcg", 10)].mean())


def scores(model, data) -> torch.Tensor:
    return model.score(torch.arange(5), torch.arange(20))


def beats_random(model, data, sampled: bool, margin: float = 0.05) -> bool:
    rand = build("random", {}, seed=0)
    rand.fit(data[1], data[0])
    return ndcg(model, data, sampled) > ndcg(rand, data, sampled) + margin


@pytest.mark.parametrize("name", ["llm-hybrid", "llm-classifier", "llm-embed-ft",
                                  "llm-rank-ft"])
def test_learns_reproducibly_and_caches_verified_weights(name, data, tmp_path, request):
    extra = {"model": request.getfixturevalue("tiny_llama")} if name == "llm-rank-ft" else {}
    first = fit(name, data, tmp_path / "a", **extra)
    again = fit(name, data, tmp_path / "b", **extra)  # a second training, same seed
    assert first.info["weights_cache"] == again.info["weights_cache"] == "miss"
    assert first.info["steps"] > 0 and first.info["train_s"] > 0
    assert torch.equal(scores(first, data), scores(again, data))   # bitwise identical
    if name != "llm-rank-ft":                        # (a random tiny LM: see the next test)
        assert beats_random(first, data, sampled=name == "llm-classifier")

    reloaded = fit(name, data, tmp_path / "a", **extra)  # from the cache: no training
    assert reloaded.info["weights_cache"] == "hit" and reloaded.info["tokens_processed"] == 0
    assert reloaded.info["weights_key"] == first.info["weights_key"]
    assert torch.equal(scores(first, data), scores(reloaded, data))

    files = list((tmp_path / "a" / "weights").glob("*.safetensors"))
    assert len(files) == 1
    raw = bytearray(files[0].read_bytes())
    raw[len(raw) // 2] ^= 0xFF                       # corrupt one byte
    files[0].write_bytes(bytes(raw))
    healed = fit(name, data, tmp_path / "a", **extra)
    assert healed.info["weights_cache"].startswith("corrupt, retrained")
    assert torch.equal(scores(first, data), scores(healed, data))
    assert fit(name, data, tmp_path / "a", **extra).info["weights_cache"] == "hit"  # rewritten

    bypass = fit(name, data, tmp_path / "a", use_cache=False, max_steps=1, **extra)
    assert bypass.info["weights_cache"] == "bypassed"


@pytest.mark.slow  # SmolLM2-135M: load, 2 epochs over 64 prompts, 40 users scored (minutes)
def test_rank_ft_learns_on_the_real_model(data, tmp_path):
    """TALLRec-style LoRA on SmolLM2-135M from 64 examples beats random (P(Yes) ranking)."""
    model = fit("llm-rank-ft", data, tmp_path, model="smollm2-135m", n_samples=64)
    assert model.info["samples_used"] == 64 and model.info["yes_share"] == 0.5
    p = model.score_candidates(torch.tensor([0, 1]), torch.tensor([[0, 1, 2], [3, 4, 5]]))
    assert p.shape == (2, 3) and 0.0 < p.min() and p.max() < 1.0
    assert beats_random(model, data, sampled=True)
    assert model.info["prompt_tokens"] > 0 and model.info["candidate_tokens"] > 0


def test_hybrid_scores_unseen_items_from_text(tmp_path):
    ds = load_dataset("synthetic", n_users=80, n_items=60, n_interactions=1600, n_genres=4,
                      seed=3)
    split = make_split(ds, "cold_items", {"item_share": 0.3}, seed=0)
    model = build("llm-hybrid", TINY["llm-hybrid"], seed=0)
    model.fit_options = FitOptions(cache_dir=tmp_path, quiet=True)
    model.fit(split, ds)
    cold = torch.as_tensor(split.eval_items["test"])
    assert model.info["unseen_items"] >= len(split.eval_items["valid"]) + len(cold)
    # the ID residual of an unseen item is never used: its vector is the text projection alone
    net = model.net
    text_only = (net.text @ net.proj).detach()[cold]
    torch.testing.assert_close(model.item_vecs[cold], text_only)
    # and the text carries signal: better than random on the cold items
    rand = build("random", {}, seed=0)
    rand.fit(split, ds)
    cand = full_candidates(split, "test")
    got = evaluate(model.score, cand, [10], ["ndcg"]).values[("ndcg", 10)].mean()
    ref = evaluate(rand.score, cand, [10], ["ndcg"]).values[("ndcg", 10)].mean()
    assert got > ref


@pytest.mark.parametrize("name, params, match", [
    ("llm-classifier", {"adapter": "lora", "lora_targets": ["q_proj"]},
     r"lora_targets names 'q_proj'.*valid: dense, key, query, value"),
    ("llm-classifier", {"adapter": "prefix"}, r"adapter = 'prefix'.*valid: full, lora"),
    ("llm-classifier", {"negatives": "hard"}, r"negatives = 'hard'.*valid: popularity, uniform"),
    ("llm-classifier", {"max_examples": 0}, "max_examples must be > 0"),
    ("llm-embed-ft", {"lora_targets": ["query", "v_proj"]}, r"'v_proj'.*valid: dense, key"),
    ("llm-embed-ft", {"user_mode": "avg"}, r"user_mode = 'avg'.*valid: both, history, text"),
    ("llm-embed-ft", {"batch_size": 1}, "batch_size must be >= 2"),
    ("llm-rank-ft", {"lora_targets": ["query"]}, r"'query'.*valid: down_proj, gate_proj"),
    ("llm-rank-ft", {"n_samples": 0}, "n_samples must be > 0"),
    ("llm-rank-ft", {"negatives": "hard"}, r"valid: popularity, rating, uniform"),
    ("llm-hybrid", {"loss": "hinge"}, r"loss = 'hinge'.*valid: bpr, softmax"),
    ("llm-hybrid", {"epochs": 0}, "epochs must be > 0"),
    ("llm-hybrid", {"max_steps": -3}, "max_steps must be > 0"),
])
def test_bad_parameters_are_clear_errors(name, params, match):
    with pytest.raises(UserError, match=match):
        build(name, params, seed=0)


def test_fit_leaves_global_rng_alone(data, tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit("llm-hybrid", data, tmp_path, use_cache=False)
    assert torch.equal(torch.rand(3), expected)
    assert np.isfinite(expected.numpy()).all()


@pytest.mark.parametrize("name", ["llm-classifier", "llm-rank-ft"])
def test_lora_leaves_the_shared_base_unchanged(name, data, tmp_path, request):
    from harness.llm.loading import load_causal_lm, load_encoder
    extra = {"max_examples": 32} if name == "llm-classifier" else {}
    if name == "llm-rank-ft":
        extra["model"] = request.getfixturevalue("tiny_llama")
        _, base = load_causal_lm(extra["model"], "cpu", "float32", quiet=True)
    else:
        _, base = load_encoder("minilm", "cpu", "float32", quiet=True)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    model = fit(name, data, tmp_path, **extra)
    net = model.net if name == "llm-rank-ft" else model.net.encoder
    assert 0 < model.info["trainable_params"] < 0.05 * model.info["total_params"]
    after = base.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)   # memoized base untouched
    trained = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
               for k, v in net.state_dict().items() if "lora_" not in k}
    assert set(trained) == set(before)
    assert all(torch.equal(before[k], trained[k]) for k in before)  # frozen in the copy too
    lora_b = [p for n, p in model.net.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)        # and the adapters moved


def test_classifier_probabilities_and_full_ranking_refusal(data, tmp_path):
    from harness.llm.classifier import LLMClassifier
    ds, split = data
    model = fit("llm-classifier", data, tmp_path, max_full_pairs=5 * ds.n_items, max_steps=2,
                adapter="full")
    p = model.score(torch.arange(5), torch.arange(ds.n_items))       # 5 users fit the budget
    assert p.shape == (5, ds.n_items) and 0.0 <= p.min() and p.max() <= 1.0
    with pytest.raises(UserError, match=r"max_users <= 5 on the full candidates"):
        model.score(torch.arange(5, 6), torch.arange(ds.n_items))
    LLMClassifier.check_candidates("sampled", {"n_negatives": 19})
    with pytest.raises(UserError, match="Use sampled or rerank candidates"):
        LLMClassifier.check_candidates("full", {})
    LLMClassifier.check_candidates("full", {"max_users": 50}, n_items=1682)


def test_yes_probability_with_shared_prompt_cache_equals_full_sequences():
    from transformers import LlamaConfig, LlamaForCausalLM
    from harness.llm.answer import yes_probs_cached, yes_probs_naive
    with torch.random.fork_rng():
        torch.manual_seed(0)  # test-local random tiny Llama
        lm = LlamaForCausalLM(LlamaConfig(
            vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=64, max_position_embeddings=256)).eval()
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(1, 97, (19,), generator=g).tolist()
    suffixes = [torch.randint(1, 97, (n,), generator=g).tolist() for n in (1, 4, 9, 2, 6)]
    answers = torch.tensor([5, 7])
    cached = yes_probs_cached(lm, prompt, suffixes, answers, batch_size=2)
    naive = yes_probs_naive(lm, prompt, suffixes, answers, batch_size=3)
    with torch.no_grad():  # independent: one unpadded sequence each, full logits
        ref = torch.tensor([torch.softmax(lm(input_ids=torch.tensor([prompt + s])).logits[
            0, -1, answers], -1)[0].item() for s in suffixes], dtype=torch.float64)
    torch.testing.assert_close(cached, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(naive, ref, atol=1e-5, rtol=0)
    assert len(set(cached.round(decimals=4).tolist())) > 1
