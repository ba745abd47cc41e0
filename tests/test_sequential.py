"""Sequential recommenders: the native `sasrec` and `recbole:<SequentialModel>` on synthetic
sequences with timestamps (ordered histories, determinism, a learnable next-item pattern,
parity with RecBole's own evaluator, parameter errors)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from harness import registry
from harness.candidates import Candidates, full_candidates, sampled_candidates
from harness.errors import UserError
from harness.evaluate import evaluate
from harness.splits import get_split
from harness.types import Dataset, Interactions

from baselines.sequences import ordered_sequences

N_USERS, N_ITEMS = 80, 40
TINY = {"max_len": 10, "hidden_size": 16, "n_layers": 1, "n_heads": 1, "inner_size": 32,
        "hidden_dropout": 0.1, "attn_dropout": 0.1, "lr": 0.01, "batch_size": 64,
        "stride": 3, "epochs": 30, "patience": 30, "device": "cpu"}


def chain_dataset(timestamps: bool = True, seed: int = 0) -> Dataset:
    """Each user walks the item ring i -> i + 1 (mod N_ITEMS) from a random start for 8-16 steps;
    rows are shuffled, so only the timestamps give the order."""
    rng = np.random.default_rng(seed)
    users, items, ts = [], [], []
    for u in range(N_USERS):
        start, n = rng.integers(N_ITEMS), rng.integers(8, 17)
        users += [u] * n
        items += [(start + t) % N_ITEMS for t in range(n)]
        ts += list(1000 * u + 10 * np.arange(n))
    perm = rng.permutation(len(users))
    inter = Interactions(np.array(users, np.int32)[perm], np.array(items, np.int32)[perm],
                         N_USERS, N_ITEMS, None,
                         np.array(ts, np.int64)[perm] if timestamps else None)
    return Dataset("chain", inter, np.array([f"u{i}" for i in range(N_USERS)]),
                   np.array([f"i{i}" for i in range(N_ITEMS)]))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one torch thread is as fast and stays fast on a busy machine (restored)."""
    from harness.threads import contained
    with contained():
        torch.set_num_threads(1)
        yield


@pytest.fixture(scope="module")
def chain_split():
    return get_split(chain_dataset(), "leave_one_out", {}, 0)


@pytest.fixture(scope="module")
def fitted_sasrec(chain_split):
    m = registry.build("sasrec", TINY, seed=3)
    m.fit(chain_split, chain_split.dataset)
    return m


def _ndcg(model, cand) -> float:
    return float(evaluate(model.score, cand, [10], ["ndcg"], model=model)
                 .values[("ndcg", 10)].mean())


# ---- histories -----------------------------------------------------------------------------

def test_histories_are_time_ordered_per_target(chain_split, fitted_sasrec):
    """valid target: the train items in time order; test: train then the valid item; the
    shuffled rows do not matter."""
    inter = chain_split.dataset.interactions
    users = np.arange(5)
    for u in users:
        rows = np.flatnonzero(inter.user == u)
        walk = inter.item[rows][np.argsort(inter.timestamp[rows])]
        assert np.array_equal(ordered_sequences(chain_split, ("train", "valid"))[u], walk[:-1])
        assert np.array_equal(ordered_sequences(chain_split, ("train",))[u], walk[:-2])
    m = fitted_sasrec
    assert m.needs_timestamps is True
    assert m.scoring_target() == "test"
    test_hist = m.history(users)
    m.target = "valid"
    try:
        valid_hist = m.history(users)
    finally:
        m.target = None
    for t, v in zip(test_hist, valid_hist):
        assert np.array_equal(t[:-1], v) and len(t) == len(v) + 1


def test_no_timestamps_refused():
    split = get_split(chain_dataset(timestamps=False), "random_holdout", {}, 0)
    with pytest.raises(UserError, match="has no timestamps"):
        registry.build("sasrec", TINY).fit(split, split.dataset)


# ---- native sasrec -------------------------------------------------------------------------

def test_sasrec_deterministic_on_cpu(chain_split, fitted_sasrec):
    """Same seed: bitwise equal scores; another seed: different ones. Global RNG untouched."""
    rng = torch.get_rng_state().clone()
    again = registry.build("sasrec", TINY, seed=3)
    again.fit(chain_split, chain_split.dataset)
    assert torch.equal(torch.get_rng_state(), rng)
    users, items = torch.arange(N_USERS), torch.arange(N_ITEMS)
    assert torch.equal(again.score(users, items), fitted_sasrec.score(users, items))
    assert again.info == {**fitted_sasrec.info, "fit_s": again.info["fit_s"]}
    other = registry.build("sasrec", {**TINY, "epochs": 2}, seed=4)
    other.fit(chain_split, chain_split.dataset)
    same_len = registry.build("sasrec", {**TINY, "epochs": 2}, seed=3)
    same_len.fit(chain_split, chain_split.dataset)
    assert not torch.equal(other.score(users, items), same_len.score(users, items))


def test_sasrec_learns_next_item_beyond_pop(chain_split, fitted_sasrec):
    """The next item is the successor of the last one: sasrec finds it, popularity cannot —
    under full ranking and under sampled candidates (score_candidates)."""
    pop = registry.build("pop")
    pop.fit(chain_split, chain_split.dataset)
    full = full_candidates(chain_split, "test")
    sampled = sampled_candidates(chain_split, "test", n_negatives=10, seed=0)
    assert _ndcg(fitted_sasrec, full) > 0.8 > 0.3 > _ndcg(pop, full)
    assert _ndcg(fitted_sasrec, sampled) > 0.8 > _ndcg(pop, sampled)
    assert fitted_sasrec.info["best_valid_ndcg@10"] > 0.8
    lists = torch.from_numpy(sampled.lists[:7])
    users = torch.from_numpy(sampled.users[:7].astype(np.int64))
    direct = fitted_sasrec.score(users, torch.arange(N_ITEMS)).gather(1, lists)
    assert torch.equal(fitted_sasrec.score_candidates(users, lists), direct)


def test_sasrec_history_view(chain_split, fitted_sasrec):
    """The clean view (user_histories) scores bit-identically to no view, per target; reversed
    or shuffled histories change the scores (the valid target's next item is lost when the
    order is reversed); None restores the clean scores."""
    from harness.llm.text import user_histories
    from harness.perturb.interactions import HistoryShuffle
    m, hist = fitted_sasrec, user_histories(chain_split)
    users, items = torch.arange(N_USERS), torch.arange(N_ITEMS)
    shuffled, _ = HistoryShuffle().histories(hist, 1.0, 0, chain_split)
    for target in ("test", "valid"):
        m.target = target
        try:
            clean = m.score(users, items)
            m.set_history_view(hist)
            assert torch.equal(m.score(users, items), clean)
            assert np.array_equal(m.history_len_used(users),
                                  [min(len(h), TINY["max_len"]) for h in m.history(users)])
            for view in ([h[::-1] for h in hist], shuffled):
                m.set_history_view(view)
                assert not torch.equal(m.score(users, items), clean)
            m.set_history_view([h[::-1] for h in hist])
            if target == "valid":
                valid = full_candidates(chain_split, "valid")
                assert _ndcg(m, valid) < 0.5
                m.set_history_view(None)
                assert _ndcg(m, valid) > 0.8
            m.set_history_view(None)
            assert torch.equal(m.score(users, items), clean)
        finally:
            m.set_history_view(None)
            m.target = None


def test_sasrec_parameter_errors():
    with pytest.raises(UserError, match="no parameter 'max_lenn'.*did you mean 'max_len'"):
        registry.build("sasrec", {"max_lenn": 20})
    with pytest.raises(UserError, match="'hidden_size' must be int"):
        registry.build("sasrec", {"hidden_size": 6.5})
    with pytest.raises(UserError, match=r"hidden_size \(30\) must be a multiple of n_heads"):
        registry.build("sasrec", {"hidden_size": 30, "n_heads": 4})
    with pytest.raises(UserError, match=r"'hidden_dropout' must be in \[0, 1\), got 1"):
        registry.build("sasrec", {"hidden_dropout": 1.0})
    with pytest.raises(UserError, match="'max_len' must be a positive integer, got 0"):
        registry.build("sasrec", {"max_len": 0})
    with pytest.raises(UserError, match="device must be"):
        registry.build("sasrec", {"device": "tpu"})


# ---- recbole:<SequentialModel> ---------------------------------------------------------

RB_TINY = {"epochs": 2, "MAX_ITEM_LIST_LENGTH": 10, "hidden_size": 16, "inner_size": 32,
           "n_layers": 1, "n_heads": 1, "train_batch_size": 256, "learning_rate": 0.01,
           "metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision"], "topk": [5, 10],
           "valid_metric": "NDCG@10", "metric_decimal_place": 12, "device": "cpu"}
RB_NAMES = {"ndcg": "ndcg", "recall": "recall", "mrr": "mrr", "hit": "hit",
            "precision": "precision"}


def _unmasked(split, target: str) -> Candidates:
    """Full ranking of every item with nothing excluded: RecBole's protocol for sequential
    models (its evaluator masks no history)."""
    truth = split.part(target).csr()
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    empty = sp.csr_matrix(truth.shape, dtype=np.float32)
    return Candidates("full", users, truth, torch.arange(split.dataset.n_items), empty)


@pytest.fixture(scope="module")
def fitted_recbole_sasrec(chain_split):
    pytest.importorskip("recbole")
    m = registry.build("recbole:SASRec", RB_TINY, seed=0)
    m.keep_recbole_state = True
    m.fit(chain_split, chain_split.dataset)
    return m


def test_recbole_sasrec_equals_recbole_evaluator(chain_split, fitted_recbole_sasrec):
    """Two epochs of RecBole's SASRec: the harness's metrics on the adapter's scores equal
    RecBole's evaluator on the same rows, for test (train + valid history) and for valid
    (train history), so the adapter scores each target from the right history."""
    m = fitted_recbole_sasrec
    assert type(m).__name__ == "RecBoleSequential" and m.needs_timestamps
    assert m.info["epochs_run"] == 2 and m.info["max_len"] == 10
    assert m.info["rows"]["test"] == N_USERS
    metrics = list(RB_NAMES)
    for target in ("test", "valid"):
        m.target = target
        try:
            theirs = m.recbole_evaluate(target)
            ev = evaluate(m.score, _unmasked(chain_split, target), [5, 10], metrics, model=m)
        finally:
            m.target = None
        for name in metrics:
            for k in (5, 10):
                ours = float(ev.values[(name, k)].mean())
                assert ours == pytest.approx(theirs[f"{RB_NAMES[name]}@{k}"], abs=1e-6), \
                    (target, name, k)
    assert float(ev.values[("ndcg", 10)].mean()) > 0.1  # learned something in two epochs


def test_recbole_sequential_under_every_candidate_protocol(chain_split, fitted_recbole_sasrec):
    """Full (history excluded) and sampled candidates; score_candidates agrees with score."""
    m = fitted_recbole_sasrec
    full = _ndcg(m, full_candidates(chain_split, "test"))
    sampled = sampled_candidates(chain_split, "test", n_negatives=10, seed=0)
    assert full >= float(evaluate(m.score, _unmasked(chain_split, "test"), [10], ["ndcg"],
                                  model=m).values[("ndcg", 10)].mean())
    assert 0 < _ndcg(m, sampled) <= 1
    lists = torch.from_numpy(sampled.lists[:5])
    users = torch.from_numpy(sampled.users[:5].astype(np.int64))
    assert torch.equal(m.score_candidates(users, lists),
                       m.score(users, torch.arange(N_ITEMS)).gather(1, lists))


def test_recbole_sequential_history_view(chain_split, fitted_recbole_sasrec):
    """The clean view scores as no view; a reversed one changes the scores; items RecBole never
    saw are left out of a view's histories."""
    from harness.llm.text import user_histories
    m, hist = fitted_recbole_sasrec, user_histories(chain_split)
    users, items = torch.arange(N_USERS), torch.arange(N_ITEMS)
    clean, saved = m.score(users, items), m.item_map.clone()
    try:
        m.set_history_view(hist)
        assert torch.equal(m.score(users, items), clean)
        m.set_history_view([h[::-1] for h in hist])
        assert not torch.equal(m.score(users, items), clean)
        m.item_map[int(hist[0][0])] = -1  # as if RecBole never saw it
        m.set_history_view(hist)
        assert len(m.history([0])[0]) == len(hist[0])  # train - 1 + the valid item
        assert m.history_len_used(users).max() <= m.max_len
    finally:
        m.item_map = saved
        m.set_history_view(None)
    assert torch.equal(m.score(users, items), clean)


def test_recbole_gru4rec_trains_and_scores(chain_split):
    """GRU4Rec trains and scores; the pandas workaround (`Series.agg`) is gone afterwards."""
    pytest.importorskip("recbole")
    import pandas as pd
    agg = pd.Series.agg
    m = registry.build("recbole:GRU4Rec", {"epochs": 1, "MAX_ITEM_LIST_LENGTH": 8,
                                           "embedding_size": 8, "hidden_size": 8,
                                           "device": "cpu"})
    m.fit(chain_split, chain_split.dataset)
    s = m.score(torch.arange(N_USERS), torch.arange(N_ITEMS))
    assert s.shape == (N_USERS, N_ITEMS) and torch.isfinite(s).all()
    assert m.info["max_len"] == 8 and m.info["best_epoch"] == 1
    assert pd.Series.agg is agg


def test_recbole_sequential_parameter_errors():
    pytest.importorskip("recbole")
    cls = registry.resolve("recbole:SASRec")
    assert cls.variant_class("SASRec").needs_timestamps is True
    assert cls.variant_class("BPR").needs_timestamps is False
    assert registry.build("recbole:SASRec", {"MAX_ITEM_LIST_LENGTH": 20}).params == {
        "MAX_ITEM_LIST_LENGTH": 20}
    with pytest.raises(UserError, match="'MAX_ITEM_LIST_LENGTH' is set by the adapter"):
        registry.build("recbole:BPR", {"MAX_ITEM_LIST_LENGTH": 20})
    with pytest.raises(UserError, match="'MAX_ITEM_LIST_LENGTH' must be int"):
        registry.build("recbole:SASRec", {"MAX_ITEM_LIST_LENGTH": "20"})
    with pytest.raises(UserError, match="no parameter 'n_layer'.*did you mean 'n_layers'"):
        registry.build("recbole:SASRec", {"n_layer": 2})
    with pytest.raises(UserError, match="no parameter 'n_layers'"):  # SASRec's, not GRU4Rec's
        registry.build("recbole:GRU4Rec", {"n_layers": 2})
    with pytest.raises(UserError, match="'alias_of_item_id' is set by the adapter"):
        registry.build("recbole:SASRec", {"alias_of_item_id": ["x"]})
    with pytest.raises(UserError, match="SASRecF': this sequential model needs item features"):
        registry.build("recbole:SASRecF")
    with pytest.raises(UserError, match="did you mean 'SASRec'"):
        registry.build("recbole:sasrec")


# ---- under the robustness and efficiency passes -------------------------------------------

PASSES_SUITE = """
[suite]
name = "seq-passes"
seeds = [0]
[[datasets]]
name = "synthetic"
n_users = 40
n_items = 30
n_interactions = 600
[[splits]]
protocol = "leave_one_out"
[[candidates]]
protocol = "sampled"
n_negatives = 10
[evaluation]
metrics = ["ndcg"]
ks = [5]
[[models]]
name = "pop"
{recbole}
[[models]]
name = "sasrec"
[models.params]
max_len = 5
hidden_size = 16
n_layers = 1
n_heads = 1
inner_size = 32
epochs = 2
device = "cpu"

[robustness]
bootstrap = 0
[[robustness.perturbations]]
name = "history_shuffle"
severities = [1.0]
[[robustness.perturbations]]
name = "history_drop"
severities = [0.5]
models = {listed}
[efficiency]
scenarios = ["single_stream", "server"]
warmup = 2
requests = 16
threads = 1
server = { qps = 50, duration_s = 0.2, seed = 1 }
"""
RB_MODEL = """[[models]]
name = "recbole:SASRec"
label = "rb"
[models.params]
epochs = 1
MAX_ITEM_LIST_LENGTH = 4
hidden_size = 8
inner_size = 16
n_layers = 1
n_heads = 1
device = "cpu"
"""


def test_sequential_models_under_robustness_and_efficiency(tmp_path):
    """History perturbations run on sasrec (and recbole:SASRec when installed), with no
    preflight warning for an entry listing them; pop skips them. The efficiency record and
    leaderboard state the history length the timed requests used (at most max_len)."""
    import importlib.util
    import warnings
    from harness.perturb.preflight import RobustnessWarning
    from harness.runner import run_suite
    from harness.suite import load_suite
    rb = importlib.util.find_spec("recbole") is not None
    seq = ["sasrec", "rb"] if rb else ["sasrec"]
    text = PASSES_SUITE.replace("{recbole}", RB_MODEL if rb else "").replace(
        "{listed}", str(seq).replace("'", '"'))
    (tmp_path / "s.toml").write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RobustnessWarning)
        res = run_suite(load_suite(tmp_path / "s.toml"), tmp_path / "out", quiet=True)
    assert not res.failed and res.manifest["n_failed_passes"] == 0
    rob = res.metrics[res.metrics["pass"] == "robustness"]
    by = {m: set(g["perturbation"]) for m, g in rob.groupby("model")}
    for model in seq:
        assert {"history_shuffle@1", "history_drop@0.5", "history@worst"} <= by[model]
    assert "pop" not in by
    cells = {c["model"]: c for c in res.manifest["cells"]}
    assert cells["pop"]["robustness"]["skipped"]["history_shuffle"].startswith("scores from no")
    assert cells["sasrec"]["robustness"]["runs"]["history_shuffle@1"]["changed"] > 0
    caps = {"sasrec": 5, "rb": 4}
    for model in seq:
        lens = cells[model]["efficiency"]["scenarios"]["single_stream"]["history_len"]
        assert 0 < lens["mean"] <= lens["max"] == caps[model]
        assert cells[model]["efficiency"]["scenarios"]["server"]["history_len"]["max"] <= 5
    assert "history_len" not in cells["pop"]["efficiency"]["scenarios"]["single_stream"]
    board = (res.run_dir / "leaderboard.md").read_text()
    assert "history_len (mean / max)" in board
    assert any(line.startswith("| sasrec |") and line.endswith("/ 5 |")
               for line in board.splitlines())
