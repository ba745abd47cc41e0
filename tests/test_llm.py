"""LLM recommenders on the real offline models: text layer, loading errors, embed, rank."""

import numpy as np
import pytest
import torch

from harness.errors import UserError
from harness.llm.loading import load_causal_lm, load_encoder, resolve_model, select_device
from harness.llm.text import item_texts, user_histories
from harness.splits import make_split


@pytest.fixture(scope="module")
def split(ml100k):
    return make_split(ml100k, "random_holdout", {}, seed=0)


def test_item_text_template_and_missing_field(ml100k):
    texts, template = item_texts(ml100k)
    assert texts[0] == "Toy Story (1995), genres: Animation Children's Comedy"
    assert len(texts) == ml100k.n_items
    with pytest.raises(UserError, match=r"\['director'\].*movie_title"):
        item_texts(ml100k, "{movie_title} by {director}")
    custom, _ = item_texts(ml100k, "{movie_title}")
    assert custom[1] == "GoldenEye"


def test_user_history_most_recent_first(ml100k, split):
    hist = user_histories(split)
    train = split.train
    for u in (0, 10, 500):
        ts = train.timestamp[train.user == u]
        items = train.item[train.user == u]
        assert sorted(hist[u].tolist()) == sorted(items.tolist())
        order_ts = [ts[items == i][0] for i in hist[u]]
        assert all(a >= b for a, b in zip(order_ts, order_ts[1:]))


def test_model_resolution_and_offline_errors(tmp_path):
    assert resolve_model("minilm").path.endswith("model")
    assert resolve_model("smollm2-135m").gguf_file.endswith(".gguf")
    with pytest.raises(UserError, match="does not exist"):
        resolve_model("./no/such/model")
    with pytest.raises(UserError, match="cannot be loaded offline"):
        load_encoder("some-org/definitely-not-cached-model-xyz")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_encoder_matches_sentence_transformers(ml100k):
    from sentence_transformers import SentenceTransformer
    from harness.llm.encoder import encode
    texts, _ = item_texts(ml100k)
    texts = texts[:40]
    tok, model = load_encoder("minilm")
    ours = encode(tok, model, texts, batch_size=16)
    ref = SentenceTransformer(resolve_model("minilm").path, device="cpu").encode(
        texts, batch_size=16, normalize_embeddings=True)
    np.testing.assert_allclose(ours, ref, atol=2e-5)


def test_llm_embed_cache_hit_corruption_and_bypass(tmp_path):
    from harness.data import load_dataset
    from harness.llm.cache import EmbeddingCache
    from harness.llm.embed import LLMEmbed
    ml100k = load_dataset("synthetic", n_users=60, n_items=50, n_interactions=900)
    split = make_split(ml100k, "random_holdout", {}, seed=0)
    rt = {"cache_dir": tmp_path, "use_cache": True}
    first = LLMEmbed(seed=0)
    first.runtime = rt
    first.fit(split, ml100k)
    assert first.info["items_cache"] == "miss" and first.info["cold_users"] == 0
    second = LLMEmbed(seed=0)
    second.runtime = rt
    second.fit(split, ml100k)
    assert second.info["items_cache"] == "hit"
    users, items = torch.arange(5), torch.arange(ml100k.n_items)
    torch.testing.assert_close(first.score(users, items), second.score(users, items))
    # cosine of normalized vectors
    s = first.score(users, items)
    assert s.shape == (5, ml100k.n_items) and s.abs().max() <= 1.0 + 1e-5
    # corrupt the cached array: detected by its hash, recomputed
    data = next(tmp_path.glob("emb-*.npz"))
    arr = np.load(data)["emb"].copy()
    arr[0, 0] += 1.0
    np.savez(data, emb=arr)
    assert EmbeddingCache(tmp_path).get(data.stem[4:]) is None
    third = LLMEmbed(seed=0)
    third.runtime = rt
    third.fit(split, ml100k)
    assert third.info["items_cache"].startswith("corrupt")
    torch.testing.assert_close(third.score(users, items), first.score(users, items))
    bypass = LLMEmbed(seed=0)
    bypass.runtime = {"cache_dir": tmp_path, "use_cache": False}
    bypass.fit(split, ml100k)
    assert bypass.info["items_cache"] == "miss"


def test_llm_embed_pop_blend_and_cold_users(ml100k, tmp_path):
    from harness.llm.embed import LLMEmbed
    split = make_split(ml100k, "temporal", {"keep_cold_users": True}, seed=0)
    m = LLMEmbed(pop_weight=1.0)
    m.runtime = {"cache_dir": tmp_path}
    m.fit(split, ml100k)
    assert m.info["cold_users"] > 0
    s = m.score(torch.arange(3), torch.arange(ml100k.n_items))
    torch.testing.assert_close(s[0], m.pop)  # w = 1: pure popularity prior
    cold = int(torch.nonzero(m.cold)[0])
    torch.testing.assert_close(m.score(torch.tensor([cold]), torch.arange(4))[0], m.pop[:4])


@pytest.fixture(scope="module")
def ranker(ml100k, split):
    from harness.llm.rank import LLMRank
    m = LLMRank(history_len=5, seed=0)
    m.fit(split, ml100k)
    return m


def test_llm_rank_cache_equals_naive_on_real_model(ranker, ml100k):
    from harness.llm.likelihood import naive_scores
    rng = np.random.default_rng(0)
    for user in (0, 42):
        items = rng.choice(ml100k.n_items, 6, replace=False).tolist()
        fast = ranker._score_user(user, items)
        ref = naive_scores(ranker.lm, ranker.prompt_ids(user),
                           [ranker.item_ids[i] for i in items], 3, "mean",
                           ranker.tok.pad_token_id)
        assert torch.allclose(fast, ref, atol=1e-3)
        assert fast.std() > 0


def test_llm_rank_prompt_truncation_shots_and_cold(ranker, ml100k, split):
    from harness.llm.rank import LLMRank
    small = LLMRank(history_len=30, max_prompt_tokens=120, shots=2, seed=3)
    small.tok, small.lm = ranker.tok, ranker.lm
    small.texts, small.item_ids, small.hist = ranker.texts, ranker.item_ids, ranker.hist
    small.dataset, small.examples, small.budget = ml100k, ranker.examples, 120
    small.info = {"cold_users": 0, "truncated_users": 0, "dropped_shots_users": 0}
    small._prompts = {}
    ids = small.prompt_ids(0)
    assert len(ids) <= 120 and small.info["truncated_users"] == 1
    # few-shot examples: deterministic per (seed, user), drawn from other users
    assert small._shots(5) == small._shots(5) and len(small._shots(5)) == 2
    assert small._shots(5) != small._shots(6)
    cold = LLMRank(seed=0)
    cold.__dict__.update({k: v for k, v in small.__dict__.items() if k != "info"})
    cold.budget, cold.shots, cold.history_len = 1000, 0, 5
    cold.hist = list(ranker.hist)
    cold.hist[7] = np.array([], dtype=np.int32)
    cold.info, cold._prompts = {"cold_users": 0, "truncated_users": 0}, {}
    text = ranker.tok.decode(cold.prompt_ids(7))
    assert "not rated any items" in text and cold.info["cold_users"] == 1


def test_llm_rank_in_a_sampled_suite(tmp_path, write_suite):
    from harness.runner import run_suite
    from harness.suite import load_suite
    suite = load_suite(write_suite("""
[suite]
name = "llm-small"
[[datasets]]
name = "ml-100k"
[[splits]]
protocol = "leave_one_out"
[[candidates]]
protocol = "sampled"
n_negatives = 4
max_users = 3
[evaluation]
ks = [1, 5]
[[models]]
name = "llm-rank"
params = { history_len = 3 }
[[models]]
name = "pop"
"""))
    res = run_suite(suite, tmp_path, quiet=True)
    assert [c["status"] for c in res.manifest["cells"]] == ["ok", "ok"]
    info = res.manifest["cells"][0]["info"]
    assert info["users_scored"] == 3 and info["candidate_tokens"] > 0
    hit5 = res.metrics[(res.metrics.metric == "hit") & (res.metrics.k == 5)]
    assert (hit5.value == 1.0).all()  # 5 candidates, k = 5: the positive is always in the list


def test_llm_rank_batched_users_equal_naive_and_counters(ranker, ml100k):
    """score_candidates over several users in one batch (different prompt lengths) equals the
    naive full-sequence reference per user; the work counters add up; the parameter count is
    SmolLM2-135M's from its config (tied input/output embeddings counted once)."""
    from harness.llm.likelihood import naive_scores
    rng = np.random.default_rng(1)
    users = torch.tensor([3, 42, 100])
    lists = torch.from_numpy(rng.choice(ml100k.n_items, (3, 5), replace=False).astype(np.int64))
    before = dict(ranker.info)
    s = ranker.score_candidates(users, lists)
    assert s.shape == (3, 5) and s.dtype == torch.float64
    assert len({len(ranker.prompt_ids(int(u))) for u in users}) > 1  # padding is exercised
    for row, (u, items) in enumerate(zip(users.tolist(), lists.tolist())):
        ref = naive_scores(ranker.lm, ranker.prompt_ids(u), [ranker.item_ids[i] for i in items],
                           5, "mean", ranker.tok.pad_token_id)
        assert torch.allclose(s[row].cpu(), ref, atol=1e-3)
    assert ranker.info["users_scored"] - before["users_scored"] == 3
    assert ranker.info["prompt_tokens"] - before["prompt_tokens"] == sum(
        len(ranker.prompt_ids(u)) for u in users.tolist())
    assert ranker.info["candidate_tokens"] - before["candidate_tokens"] == sum(
        len(ranker.item_ids[i]) for i in lists.flatten().tolist())
    c = ranker.lm.config
    kv = c.num_key_value_heads * c.head_dim
    layer = (2 * c.hidden_size * c.hidden_size + 2 * c.hidden_size * kv
             + 3 * c.hidden_size * c.intermediate_size + 2 * c.hidden_size)
    expected = c.vocab_size * c.hidden_size + c.num_hidden_layers * layer + c.hidden_size
    assert ranker.info["model_params"] == expected == 134_515_008
    assert ranker.info["model_embedding_params"] == c.vocab_size * c.hidden_size


def test_encoder_token_budget_batches(ml100k):
    """Batches by token budget: every text once, longest first, rows x longest <= budget (a
    longer text alone), the row cap honoured; embeddings equal the fixed-batch ones."""
    from harness.llm.encoder import encode, length_batches
    lengths = [5, 17, 3, 40, 9, 9, 1, 22]
    for cap, budget in ((None, 30), (2, 1000), (None, 10)):
        batches = length_batches(lengths, cap, budget)
        flat = np.concatenate(batches).tolist()
        assert sorted(flat) == list(range(len(lengths)))
        assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
        for b in batches:
            width = max(lengths[i] for i in b)
            assert len(b) == 1 or len(b) * width <= budget
            assert cap is None or len(b) <= cap
    texts, _ = item_texts(ml100k)
    texts = texts[:50]
    tok, model = load_encoder("minilm")
    stats: dict = {}
    small = encode(tok, model, texts, None, token_budget=64, stats=stats)
    fixed = encode(tok, model, texts, batch_size=16)
    np.testing.assert_allclose(small, fixed, atol=2e-6)
    assert stats == {"items": 50, "tokens": sum(len(x) for x in tok(texts)["input_ids"])}


def test_llm_embed_counts_its_work_and_encoder_parameters(tmp_path):
    """items_embedded / tokens_processed count encoded texts (none on a cache hit); the
    encoder's parameter count is all-MiniLM-L6-v2's from its config (BERT with pooler)."""
    from harness.data import load_dataset
    from harness.llm.embed import LLMEmbed
    ds = load_dataset("synthetic", n_users=30, n_items=40, n_interactions=400)
    split = make_split(ds, "random_holdout", {}, seed=0)
    m = LLMEmbed(user_mode="both", token_budget=256)
    m.runtime = {"cache_dir": tmp_path}
    m.fit(split, ds)
    assert m.info["items_embedded"] == ds.n_items + ds.n_users
    assert m.info["tokens_processed"] > m.info["items_embedded"]
    h, i, v = 384, 1536, 30522
    layer = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h
    expected = v * h + 512 * h + 2 * h + 2 * h + 6 * layer + (h * h + h)
    assert m.info["model_params"] == expected == 22_713_216
    again = LLMEmbed(user_mode="both")
    again.runtime = {"cache_dir": tmp_path}
    again.fit(split, ds)
    assert again.info["items_cache"] == again.info["users_cache"] == "hit"
    assert again.info["items_embedded"] == 0 == again.info["tokens_processed"]
    torch.testing.assert_close(again.score(torch.arange(4), torch.arange(ds.n_items)),
                               m.score(torch.arange(4), torch.arange(ds.n_items)))


def test_llm_rank_skips_list_padding(ranker, ml100k):
    """With `list_padding`, score_lists hands -1 padding through; llm-rank does not score it
    (-inf there, no tokens counted) and the other entries are unchanged."""
    from harness.evaluate import score_lists
    users = torch.tensor([5, 9])
    lists = torch.tensor([[10, 20, 30, -1, -1], [40, -1, 50, 60, 70]])
    before = ranker.info["candidate_tokens"]
    s = score_lists(ranker, users, lists)
    assert ranker.info["candidate_tokens"] - before == sum(
        len(ranker.item_ids[i]) for i in lists[lists >= 0].tolist())
    assert torch.isneginf(s[lists < 0]).all() and torch.isfinite(s[lists >= 0]).all()
    dense = ranker.score_candidates(users, torch.tensor([[10, 20, 30], [40, 50, 60]]))
    assert torch.allclose(s[0, :3].cpu(), dense[0].cpu(), atol=1e-4)
    assert torch.allclose(s[1, [0, 2, 3]].cpu(), dense[1].cpu(), atol=1e-4)
