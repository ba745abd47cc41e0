"""RecBole adapter (`recbole:<Model>`): name and hyperparameter errors, id mapping, contained
side effects, best-state selection, and metric parity with RecBole's own evaluator."""

import logging
import os
import random
import sys
import tempfile

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from harness import registry
from harness.candidates import full_candidates
from harness.data import load_dataset
from harness.errors import UserError
from harness.evaluate import evaluate
from harness.splits import get_split
from harness.splits.base import Split
from harness.types import Dataset, Interactions

pytest.importorskip("recbole")

TORCH_LOAD = torch.load
METRICS = ["ndcg", "recall", "mrr", "hit", "precision", "map"]
RECBOLE_NAMES = {"ndcg": "ndcg@10", "recall": "recall@10", "mrr": "mrr@10", "hit": "hit@10",
                 "precision": "precision@10", "map": "map@10"}


@pytest.fixture(scope="module")
def small_split():
    ds = load_dataset("synthetic", n_users=120, n_items=80, n_interactions=2500)
    return get_split(ds, "random_holdout", {"ratios": [0.8, 0.1, 0.1]}, 0)


@pytest.fixture(scope="module")
def ml100k_split(ml100k):
    return get_split(ml100k, "random_holdout", {"ratios": [0.8, 0.1, 0.1]}, 0)


def _gapped_split() -> Split:
    """6 users x 8 items; item 7 and user 5 have no interaction in any part."""
    parts = {"train": [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 3), (2, 0), (2, 2), (3, 1),
                       (3, 3), (4, 0), (4, 4), (4, 6)],
             "valid": [(0, 3), (1, 2), (2, 4), (3, 0), (4, 5)],
             "test": [(0, 4), (1, 5), (2, 6), (3, 2), (4, 1)]}
    pairs = np.array([p for name in ("train", "valid", "test") for p in parts[name]], np.int32)
    inter = Interactions(pairs[:, 0].copy(), pairs[:, 1].copy(), 6, 8)
    ds = Dataset("gapped", inter, np.array([f"u{i}" for i in range(6)]),
                 np.array([f"i{i}" for i in range(8)]))
    bounds = np.cumsum([0] + [len(parts[name]) for name in ("train", "valid", "test")])
    rows = {name: np.arange(bounds[j], bounds[j + 1])
            for j, name in enumerate(("train", "valid", "test"))}
    return Split(ds, "manual", {}, 0, rows)


# ---- errors before training ---------------------------------------------------------------

def test_unknown_model_did_you_mean():
    with pytest.raises(UserError, match=r"unknown recommender 'recbole:BPRR': not a RecBole "
                                        r"model \(did you mean 'BPR'\?\); valid: .*LightGCN"):
        registry.build("recbole:BPRR")
    with pytest.raises(UserError, match="did you mean 'LightGCN'"):
        registry.build("recbole:lightgcn")


@pytest.mark.parametrize("name, family", [("DeepFM", "context-aware"),
                                          ("KGAT", "knowledge-aware")])
def test_non_general_model_not_supported(name, family):
    with pytest.raises(UserError, match=f"RecBole's {family} models are not supported yet"):
        registry.build(f"recbole:{name}")


def test_hyperparameters_checked_at_construction():
    m = registry.build("recbole:LightGCN", {"n_layers": 2, "reg_weight": 1e-3, "epochs": 3})
    assert m.model_name == "LightGCN" and m.params["n_layers"] == 2 and m.net is None
    with pytest.raises(UserError, match="no parameter 'learning_rat' .*did you mean "
                                        "'learning_rate'"):
        registry.build("recbole:BPR", {"learning_rat": 0.01})
    with pytest.raises(UserError, match="no parameter 'n_layers'"):  # LightGCN's, not BPR's
        registry.build("recbole:BPR", {"n_layers": 2})
    with pytest.raises(UserError, match="'epochs' must be int"):
        registry.build("recbole:BPR", {"epochs": "10"})
    with pytest.raises(UserError, match="'checkpoint_dir' is set by the adapter"):
        registry.build("recbole:BPR", {"checkpoint_dir": "/tmp/x"})
    with pytest.raises(UserError, match="'normalize_all' is set by the adapter"):
        registry.build("recbole:BPR", {"normalize_all": False})
    with pytest.raises(UserError, match="device must be"):
        registry.build("recbole:BPR", {"device": "tpu"})
    assert registry.build("recbole", {}).model_name == "BPR"
    cls = registry.resolve("recbole:BPR")  # the hook a suite validator can call
    cls.check_variant("BPR", {"epochs": 3, "device": "cpu"})
    with pytest.raises(UserError, match="did you mean 'epochs'"):
        cls.check_variant("BPR", {"epoch": 3})


def test_parity_suite_validates():
    from harness.suite import load_suite
    suite = load_suite("suites/parity-recbole.toml")
    assert {m.name for m in suite.models} >= {"recbole:Pop", "recbole:ItemKNN", "recbole:BPR"}
    for m in suite.models:
        registry.build(m.name, m.params)  # the adapter's own checks (construction) pass too


# ---- training: contained side effects -----------------------------------------------------

def test_lightgcn_one_epoch_contained(small_split, tmp_path, monkeypatch, capsys, caplog):
    """LightGCN builds its adjacency under scipy 1.17 (no `_update` error) and trains; nothing
    reaches the console or the caller's log records; temp files are removed; global state is
    as before."""
    (tmp_path / "tmp").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.chdir(tmp_path / "cwd")
    caplog.set_level(logging.INFO)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    argv, env = sys.argv[:], os.environ.get("CUDA_VISIBLE_DEVICES")
    rng = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    import yaml
    resolvers = dict(yaml.FullLoader.yaml_implicit_resolvers)

    m = registry.build("recbole:LightGCN", {"epochs": 1, "embedding_size": 16}, seed=0)
    m.fit(small_split, small_split.dataset)
    scores = m.score(torch.arange(10), torch.arange(small_split.dataset.n_items))

    assert scores.shape == (10, small_split.dataset.n_items) and torch.isfinite(scores).all()
    assert m.info["epochs_run"] == 1 and "epoch 0 training" in m.recbole_log
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert not caplog.records
    left = [p.name for p in (tmp_path / "tmp").iterdir() if not p.name.startswith("torchinductor")]
    assert left == [] and not m.workdir.exists()  # (torch's compile cache dir is torch's own)
    assert list((tmp_path / "cwd").iterdir()) == []  # no ./log, ./saved, ./log_tensorboard
    assert "float" not in vars(np) and "float_" not in vars(np) and "object" not in vars(np)
    with pytest.raises(AttributeError):
        np.float  # noqa: B018
    assert torch.load is TORCH_LOAD
    assert not hasattr(sp.dok_matrix, "_update")
    from recbole.data.dataset import Dataset as RecBoleDataset
    assert RecBoleDataset._fill_nan.__module__ == "recbole.data.dataset.dataset"
    assert root.handlers == handlers and root.level == level
    assert sys.argv == argv and os.environ.get("CUDA_VISIBLE_DEVICES") == env
    assert random.getstate() == rng[0] and np.array_equal(np.random.get_state()[1], rng[1])
    assert torch.equal(torch.get_rng_state(), rng[2])
    assert dict(yaml.FullLoader.yaml_implicit_resolvers) == resolvers
    logging.getLogger("after").warning("still logged")
    assert [r.getMessage() for r in caplog.records] == ["still logged"]


def test_pop_ids_mapped_and_log_file(tmp_path):
    """Scores come back in the harness index space; items RecBole never saw score -inf, users
    it never saw 0; `log_file` receives RecBole's log."""
    split = _gapped_split()
    log = tmp_path / "logs" / "recbole.log"
    # RecBole's Pop counts the items of each batch once (and the sampled negatives of its
    # pointwise loader too): one interaction per batch and no negatives give exact counts
    m = registry.build("recbole:Pop", {"log_file": str(log), "train_batch_size": 1,
                                       "topk": [3], "valid_metric": "MRR@3",
                                       "train_neg_sample_args": {"distribution": "None"}})
    m.fit(split, split.dataset)
    s = m.score(torch.tensor([5, 3, 0, 1]), torch.tensor([7, 6, 5, 4, 3, 2, 1, 0]))
    counts = np.bincount(split.train.item, minlength=8).astype(np.float64)
    expected = torch.from_numpy(counts / counts.max())[[6, 5, 4, 3, 2, 1, 0]]
    for row in (1, 2, 3):
        assert torch.allclose(s[row, 1:].double(), expected)
    assert torch.isneginf(s[:, 0]).all() and (s[0, 1:] == 0).all()
    assert "epoch 0 training" in log.read_text() and m.recbole_log == ""
    assert m.info["log_file"] == str(log)


def test_best_validation_state_is_scored(small_split):
    """The state scored after fit is the one of the best validation, not the last epoch."""
    m = registry.build("recbole:BPR", {"epochs": 8, "learning_rate": 0.5, "eval_step": 1,
                                       "stopping_step": 8, "valid_metric": "NDCG@10",
                                       "metric_decimal_place": 10, "embedding_size": 16})
    m.keep_recbole_state = True
    m.fit(small_split, small_split.dataset)
    assert m.info["best_epoch"] < m.info["epochs_run"]  # the configuration overfits
    again = m.recbole_evaluate("valid")["ndcg@10"]
    assert again == pytest.approx(m.info["best_valid_score"], abs=1e-9)


def test_without_valid_part_trains_all_epochs():
    ds = load_dataset("synthetic", n_users=120, n_items=80, n_interactions=2500)
    split = get_split(ds, "random_holdout", {"ratios": [0.9, 0.0, 0.1]}, 0)
    m = registry.build("recbole:BPR", {"epochs": 2, "embedding_size": 8})
    m.fit(split, ds)
    assert m.info["epochs_run"] == m.info["best_epoch"] == 2
    assert m.info["best_valid_score"] is None


# ---- evaluation parity ------------------------------------------------------------------

def test_metrics_equal_recbole_evaluator(ml100k_split):
    """BPR (2 epochs) on ml-100k: the harness's metrics on the adapter's scores equal RecBole's
    evaluator on the same test part; MAP differs only by RecBole's min(k, |R|) denominator."""
    m = registry.build("recbole:BPR", {
        "epochs": 2, "eval_step": 2, "learning_rate": 0.01, "valid_metric": "NDCG@10",
        "metric_decimal_place": 12,
        "metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision", "MAP"], "topk": [10]})
    m.keep_recbole_state = True
    m.fit(ml100k_split, ml100k_split.dataset)
    theirs = m.recbole_evaluate("test")
    cand = full_candidates(ml100k_split, "test")
    ev = evaluate(m.score, cand, [10], METRICS)
    ours = {name: float(ev.values[(name, 10)].mean()) for name in METRICS}
    assert ours["ndcg"] > 0.15  # a trained model, not a near-random ranking
    for name in ("ndcg", "recall", "mrr", "hit", "precision"):
        assert ours[name] == pytest.approx(theirs[RECBOLE_NAMES[name]], abs=1e-4), name
    n_rel = np.diff(cand.truth.indptr)[ev.users].astype(np.float64)
    recbole_map = ev.values[("map", 10)] * n_rel / np.minimum(10, n_rel)
    assert float(recbole_map.mean()) == pytest.approx(theirs["map@10"], abs=1e-4)
    assert ours["map"] < theirs["map@10"] - 1e-3  # users with |R| > 10 make them differ
