"""From one score matrix to per-user metrics on ml-100k (943 users x 1682 items, all six metrics at
k = 5, 10, 20): the harness vs ranx, compared in one pytest-benchmark group.

Run:  pytest benchmarks/test_bench_metrics.py --benchmark-enable --benchmark-only
(in the default run, `--benchmark-disable` makes each benchmark a plain test, executed once).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch
from ranx import Qrels, Run
from ranx import evaluate as ranx_evaluate

from harness.candidates import full_candidates
from harness.data import load_dataset
from harness.evaluate import evaluate, metrics_from_scores
from harness.metrics import RANX_NAMES
from harness.splits import make_split

KS = [5, 10, 20]
METRICS = ["ndcg", "recall", "precision", "mrr", "hit", "map"]
TOP = 100  # ranx gets each user's top-100: enough for every k here
GROUP = "ml-100k: score matrix -> per-user metrics (6 metrics x k=5,10,20)"
ROUNDS = 10
# Both sides single-threaded: on a shared 2-core machine, torch's default intra-op threads are
# oversubscribed by other processes and its timings swing by 10x or more.
THREADS = 1


def _qid(pos: int) -> str:
    return f"u{pos:05d}"  # zero-padded: ranx's sorted query order == row order


@pytest.fixture(scope="module", autouse=True)
def pinned_threads():
    """Set torch's and numba's thread counts for this module, restored afterwards."""
    before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(THREADS)
    numba.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before[0])
    numba.set_num_threads(before[1])


@pytest.fixture(scope="module")
def job(pinned_threads):
    ds = load_dataset("ml-100k")
    split = make_split(ds, "random_holdout", {}, seed=0)
    cand = full_candidates(split, "test")
    n_items = ds.n_items
    users = cand.users
    # popularity + a seeded per-row permutation / (n_items + 1): tie-free in float32, so the
    # harness and ranx cannot order any two items differently
    pop = np.bincount(split.train.item, minlength=n_items).astype(np.float64)
    rng = np.random.default_rng(0)
    noise = rng.permuted(np.tile(np.arange(n_items), (len(users), 1)), axis=1) / (n_items + 1)
    scores = torch.from_numpy((pop[None, :] + noise).astype(np.float32))
    # (row, column) index pairs as `evaluate` prepares them (rows = positions in `users`)
    truth_r, truth_c = cand.truth[users].nonzero()
    excl_r, excl_c = cand.exclude[users].nonzero()
    as_t = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    return {
        "cand": cand, "scores": scores, "scores_np": scores.numpy(),
        "truth_rc": (as_t(truth_r), as_t(truth_c)), "exclude_rc": (as_t(excl_r), as_t(excl_c)),
        "excl_np": (excl_r, excl_c), "truth_lists": [cand.truth[u].indices for u in users],
        "n_rel": torch.from_numpy(np.diff(cand.truth.indptr)[users].astype(np.int64)),
        "threads": THREADS,
    }


# ---------------------------------------------------------------- the two implementations

def harness_matrix(job):
    values, _, _ = metrics_from_scores(job["scores"], job["truth_rc"], job["exclude_rc"],
                                       job["n_rel"], KS, METRICS)
    return values


def harness_evaluate(job, batch_size=256):
    cand, scores = job["cand"], job["scores"]
    row_of = torch.full((cand.truth.shape[0],), -1, dtype=torch.long)
    row_of[torch.from_numpy(cand.users.astype(np.int64))] = torch.arange(len(cand.users))
    return evaluate(lambda u, i: scores[row_of[u]][:, i], cand, KS, METRICS,
                    batch_size=batch_size).values


def ranx_dicts(job):
    """Each user's top-100 unexcluded items and relevant items, as ranx's nested dicts."""
    s = job["scores_np"].copy()
    s[job["excl_np"]] = -np.inf
    part = np.argpartition(-s, TOP, axis=1)[:, :TOP]
    part_s = np.take_along_axis(s, part, 1)
    order = np.argsort(-part_s, axis=1)
    top, top_s = np.take_along_axis(part, order, 1), np.take_along_axis(part_s, order, 1)
    run = {_qid(p): {str(i): float(v) for i, v in zip(items, vals)}
           for p, (items, vals) in enumerate(zip(top.tolist(), top_s.tolist()))}
    qrels = {_qid(p): {str(i): 1 for i in t.tolist()} for p, t in enumerate(job["truth_lists"])}
    return qrels, run


def ranx_eval(job, qrels_dict, run_dict):
    qrels, run = Qrels(qrels_dict), Run(run_dict)
    names = [f"{RANX_NAMES[m]}@{k}" for m in METRICS for k in KS]
    out = ranx_evaluate(qrels, run, names, return_mean=False, save_results_in_run=False,
                        threads=job["threads"])
    pos = np.array([int(q[1:]) for q in run.get_query_ids()])
    values = {}
    for m in METRICS:
        for k in KS:
            arr = np.empty(len(pos))
            arr[pos] = out[f"{RANX_NAMES[m]}@{k}"]
            values[(m, k)] = arr
    return values


def ranx_full(job):
    return ranx_eval(job, *ranx_dicts(job))


# ---------------------------------------------------------------- references (computed once)

@pytest.fixture(scope="module")
def reference(job):
    """Both sides once, untimed; this also compiles ranx's numba kernels (warm-up)."""
    return {"harness": harness_matrix(job), "ranx": ranx_full(job)}


def _assert_agree(values, other):
    assert len(values) == len(other) == len(METRICS) * len(KS)
    np.testing.assert_allclose(values[("ndcg", 10)], other[("ndcg", 10)], rtol=0, atol=1e-9)
    for key in other:
        np.testing.assert_allclose(values[key], other[key], rtol=0, atol=1e-9, err_msg=str(key))


def test_reference_is_meaningful(job, reference):
    n = len(job["cand"].users)
    assert n == 943 and reference["harness"][("ndcg", 10)].shape == (n,)
    assert 0 < reference["harness"][("hit", 10)].mean() < 1


@pytest.mark.benchmark(group=GROUP)
def test_harness_metrics_from_scores(benchmark, job, reference):
    values = benchmark.pedantic(harness_matrix, args=(job,), rounds=ROUNDS, iterations=1,
                                warmup_rounds=1)
    _assert_agree(values, reference["ranx"])


@pytest.mark.benchmark(group=GROUP)
def test_harness_evaluate_batched(benchmark, job, reference):
    values = benchmark.pedantic(harness_evaluate, args=(job,), rounds=ROUNDS, iterations=1,
                                warmup_rounds=1)
    _assert_agree(values, reference["ranx"])


@pytest.mark.benchmark(group=GROUP)
def test_ranx_from_scores(benchmark, job, reference):
    """ranx's whole job: mask + top-100 (numpy), nested dicts, Qrels/Run, evaluate."""
    values = benchmark.pedantic(ranx_full, args=(job,), rounds=ROUNDS, iterations=1,
                                warmup_rounds=1)
    _assert_agree(values, reference["harness"])


@pytest.mark.benchmark(group=GROUP)
def test_ranx_from_prebuilt_dicts(benchmark, job, reference):
    """ranx alone: Qrels/Run from prebuilt top-100 dicts, then evaluate."""
    qrels_dict, run_dict = ranx_dicts(job)
    values = benchmark.pedantic(ranx_eval, args=(job, qrels_dict, run_dict), rounds=ROUNDS,
                                iterations=1, warmup_rounds=1)
    _assert_agree(values, reference["harness"])
