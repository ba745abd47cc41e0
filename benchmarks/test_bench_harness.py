"""Benchmarks of the harness itself on ml-100k (943 users x 1682 items): the evaluation kernel
(`metrics_from_scores`), row-wise `top_k` with and without ties, one single-user request of the
efficiency pass (score + history mask + top-k, the `null` model: pure harness cost), a full
`evaluate`, and split / candidate creation.

Run:  pytest benchmarks/test_bench_harness.py --benchmark-enable --benchmark-only
(in the default run, `--benchmark-disable` makes each benchmark a plain test, executed once;
every benchmark also checks its result). torch is pinned to one thread for this module (set and
restored by the `pinned_threads` fixture): on a shared few-core machine torch's default threads
make small-kernel timings swing by 100x.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.null import Null
from baselines.pop import Pop
from harness.candidates import full_candidates, sampled_candidates
from harness.data import load_dataset
from harness.efficiency.workload import Workload
from harness.evaluate import evaluate, metrics_from_scores, top_k
from harness.splits import make_split

KS = [5, 10, 20]
METRICS = ["ndcg", "recall", "precision", "mrr", "hit", "map"]
THREADS = 1


@pytest.fixture(scope="module", autouse=True)
def pinned_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ml100k():
    return load_dataset("ml-100k")


@pytest.fixture(scope="module")
def split(ml100k):
    return make_split(ml100k, "random_holdout", {}, seed=0)


@pytest.fixture(scope="module")
def cand(split):
    return full_candidates(split, "test")


@pytest.fixture(scope="module")
def batch(cand):
    """256 users' tie-free scores with their relevant and history (row, column) pairs."""
    users = cand.users[:256]
    rng = np.random.default_rng(0)
    scores = torch.from_numpy(rng.random((len(users), cand.truth.shape[1]), dtype=np.float32))
    as_t = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    tr, tc = cand.truth[users].nonzero()
    er, ec = cand.exclude[users].nonzero()
    n_rel = torch.from_numpy(np.diff(cand.truth.indptr)[users].astype(np.int64))
    return scores, (as_t(tr), as_t(tc)), (as_t(er), as_t(ec)), n_rel


def test_bench_metrics_from_scores(benchmark, batch):
    scores, truth, excl, n_rel = batch
    values, top_c, top_s = benchmark(metrics_from_scores, scores, truth, excl, n_rel, KS,
                                     METRICS)
    assert top_c.shape == (256, 20) and len(values) == len(KS) * len(METRICS)
    for v in values.values():
        assert v.shape == (256,) and np.all((v >= 0) & (v <= 1))
    assert not torch.isin(top_c[0], excl[1][excl[0] == 0]).any()  # history never recommended


def test_bench_top_k_without_ties(benchmark, batch):
    scores = batch[0]
    s, c = benchmark(top_k, scores, 20)
    ref_s, ref_c = torch.topk(scores, 20, dim=1)
    torch.testing.assert_close(s, ref_s)
    assert torch.equal(c, ref_c)


def test_bench_top_k_with_ties(benchmark, split, cand):
    # popularity counts: many items share a count, so most rows take the stable-sort path
    counts = torch.from_numpy(np.bincount(split.train.item, minlength=split.dataset.n_items)
                              .astype(np.float32))
    scores = counts.expand(256, -1).clone()
    s, c = benchmark(top_k, scores, 20)
    ref_s, ref_c = torch.sort(scores, dim=1, descending=True, stable=True)
    assert torch.equal(c, ref_c[:, :20]) and torch.equal(s, ref_s[:, :20])


@pytest.mark.parametrize("ties", [True, False], ids=["constant", "distinct"])
def test_bench_single_request_overhead(benchmark, split, cand, ties):
    """One single_stream request of the `null` model: request -> scores -> mask -> top-10."""
    model = Null(ties=ties)
    model.fit(split, split.dataset)
    wl = Workload(cand, 10)
    req = wl.prepare(np.array([0]))
    top = benchmark(wl.serve, model, req)
    history = set(cand.exclude[cand.users[0]].indices.tolist())
    assert top.shape == (1, 10) and not history & set(cand.items[top[0]].tolist())


def test_bench_evaluate_full_ranking(benchmark, split, cand):
    model = Pop()
    model.fit(split, split.dataset)
    ev = benchmark.pedantic(evaluate, args=(model.score, cand, [10], ["ndcg", "recall"]),
                            kwargs={"batch_size": 256}, rounds=3, iterations=1)
    assert ev.values[("ndcg", 10)].shape == (len(cand.users),)
    assert 0.05 < ev.values[("ndcg", 10)].mean() < 0.3


@pytest.mark.parametrize("protocol", ["random_holdout", "leave_one_out"])
def test_bench_split_creation(benchmark, ml100k, protocol):
    sp = benchmark.pedantic(make_split, args=(ml100k, protocol, {}), kwargs={"seed": 0},
                            rounds=3, iterations=1)
    sizes = sp.sizes()
    assert sum(sizes.values()) == len(ml100k.interactions)
    assert sp.fingerprint == make_split(ml100k, protocol, {}, seed=0).fingerprint


def test_bench_sampled_candidates(benchmark, split):
    c = benchmark.pedantic(sampled_candidates, args=(split, "test"),
                           kwargs={"n_negatives": 100, "max_users": 300}, rounds=3,
                           iterations=1)
    assert c.lists.shape[0] == 300 and (c.lists >= -1).all()
