"""Peer-library families (`implicit:<Model>`, `cornac:<Model>`) and the faster native twins:
scores match the libraries' own, errors at suite load, install hints, contained side effects;
native BPR's gradients (compiled CPU kernel and torch path) match autograd, its Adam matches
torch.optim bit for bit, ALS's CG solver matches the exact solves, the compiled kernels match
their torch/scipy twins."""

import dataclasses
import importlib.util
import random
import tomllib
from collections import OrderedDict

import numba
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from baselines.als import ALS, CompiledRows, TorchRows, cg_rows
from baselines.bpr import Adam, bpr_gradients, sample_negatives
from baselines.bpr_cpu import bpr_gradients_into
from baselines.ease import EASE, ease_weights
from baselines.itemknn import ItemKNN, knn_similarity
from harness.kernels import numba_threads
from baselines.peers import assemble, library_call, require
from harness import threads
from harness.data import load_dataset
from harness.errors import UserError
from harness.registry import build
from harness.splits import get_split
from harness.suite import load_suite, parse_suite
from tests.conftest import SMALL

import implicit  # noqa: E402  (installed by scripts/setup_env.sh: never skipped)
import cornac  # noqa: E402


@pytest.fixture(scope="module")
def split():
    ds = load_dataset("synthetic", n_users=120, n_items=80, n_interactions=2000)
    return get_split(ds, "random_holdout", {"ratios": [0.8, 0.1, 0.1]}, 0)


def compact(split):
    """(known users, known items, binary train CSR over them), built independently of the
    adapter: sorted unique ids, rows/columns by binary search."""
    u, i = split.train.user, split.train.item
    users, items = np.unique(u), np.unique(i)
    m = sp.csr_matrix((np.ones(len(u), np.float32),
                       (np.searchsorted(users, u), np.searchsorted(items, i))),
                      shape=(len(users), len(items)))
    m.sum_duplicates()
    m.data[:] = 1
    return users, items, m


def all_scores(model, split):
    ds = split.dataset
    return model.score(torch.arange(ds.n_users), torch.arange(ds.n_items))


# ---- scores match the libraries' own ------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Method expects CSR input")
@pytest.mark.parametrize("name, params", [
    ("ALS", {"factors": 8, "iterations": 5, "regularization": 0.5}),
    ("CosineRecommender", {"K": 10}),
    ("BM25Recommender", {"K": 10}),
])
def test_implicit_matches_library_recommend(split, name, params):
    """The family's scores equal those of the same implicit model trained directly on the same
    matrix, as ranked by implicit's own `recommend` (all items, nothing filtered)."""
    from threadpoolctl import threadpool_limits
    model = build(f"implicit:{name}", {**params, "num_threads": 1}, seed=3)
    model.fit(split, split.dataset)
    scores = all_scores(model, split)
    users, items, m = compact(split)
    klass = {"ALS": implicit.cpu.als.AlternatingLeastSquares,
             "CosineRecommender": implicit.nearest_neighbours.CosineRecommender,
             "BM25Recommender": implicit.nearest_neighbours.BM25Recommender}[name]
    extra = {"random_state": 3} if name == "ALS" else {}
    with threadpool_limits(1, "blas"):
        ref = klass(**params, num_threads=1, **extra)
        ref.fit(m, show_progress=False)
    for local in (0, 7, len(users) - 1):
        ids, got = ref.recommend(local, m[local], N=len(items), filter_already_liked_items=False)
        row = scores[users[local]]
        np.testing.assert_allclose(row[items[ids]].numpy(), got, rtol=1e-5, atol=1e-6)
        rest = np.setdiff1d(items, items[ids])  # nearest neighbours: items never reached
        assert torch.all(row[rest] == 0)


def cornac_direct(split, params: dict, klass, seed: int):
    """A cornac model trained through cornac's own Dataset.build on (raw user id, raw item id,
    1) triplets, with id maps in increasing index order; returns (model, known users, items)."""
    ds = split.dataset
    users, items, m = compact(split)
    coo = m.tocoo()
    order = np.lexsort((coo.col, coo.row))
    triplets = [(str(ds.user_ids[users[r]]), str(ds.item_ids[items[c]]), 1.0)
                for r, c in zip(coo.row[order], coo.col[order])]
    data = cornac.data.Dataset.build(
        triplets, global_uid_map=OrderedDict((str(ds.user_ids[u]), k) for k, u in enumerate(users)),
        global_iid_map=OrderedDict((str(ds.item_ids[i]), k) for k, i in enumerate(items)),
        seed=seed)
    model = klass(**params, seed=seed, verbose=False)
    model.fit(data)
    return model, users, items


def test_cornac_bpr_matches_library_score(split):
    """cornac:BPR's scores equal those of Cornac's BPR trained directly (same seed, one thread),
    read through Cornac's own `score(user)` and id maps."""
    params = {"k": 8, "max_iter": 20, "learning_rate": 0.05, "num_threads": 1}
    model = build("cornac:BPR", params, seed=5)
    model.fit(split, split.dataset)
    scores = all_scores(model, split)
    ref, users, items = cornac_direct(split, params, cornac.models.BPR, seed=5)
    ds = split.dataset
    for u in users[[0, 3, -1]]:
        got = np.asarray(ref.score(ref.uid_map[str(ds.user_ids[u])]))
        cols = [ref.iid_map[str(ds.item_ids[i])] for i in items]
        np.testing.assert_allclose(scores[u, items].numpy(), got[cols], rtol=1e-6, atol=1e-6)


def test_cornac_ease_equals_native_ease(split):
    """Twins with the same math: cornac:EASE (posB off) and native EASE give the same scores."""
    peer = build("cornac:EASE", {"lamb": 30.0, "posB": False})
    native = EASE(l2=30.0)
    for m in (peer, native):
        m.fit(split, split.dataset)
    a, b = all_scores(peer, split), all_scores(native, split)
    _, items, _ = compact(split)
    users = np.unique(split.train.user)
    np.testing.assert_allclose(a[users][:, items].numpy(), b[users][:, items].numpy(),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["implicit:ALS", "cornac:BPR"])
def test_unknown_users_and_items(split, name):
    """A user and an item without training rows: the item scores -inf for everyone, the user
    0 on every other item; all other scores are finite."""
    inter = split.dataset.interactions
    train = split.rows["train"]
    cold_user, cold_item = 5, 11
    keep = train[(inter.user[train] != cold_user) & (inter.item[train] != cold_item)]
    cold = dataclasses.replace(split, rows={**split.rows, "train": keep})
    model = build(name, {"factors": 4, "iterations": 2} if "ALS" in name else {"max_iter": 2})
    model.fit(cold, cold.dataset)
    s = all_scores(model, cold)
    assert torch.all(torch.isneginf(s[:, cold_item]))
    others = torch.arange(s.shape[1]) != cold_item
    assert torch.all(s[cold_user, others] == 0)
    assert torch.isfinite(s[:, others]).all()


def test_assemble_maps_nan_and_inf():
    """Hand case: known users 0 and 2, known items 1 and 2; NaN -> -inf, +inf -> float max."""
    lu, li = np.array([0, -1, 1]), np.array([-1, 0, 1])
    known = np.array([[1.0, np.nan], [np.inf, -2.0]])
    out = assemble(3, lu, li, known)
    big = torch.finfo(torch.float32).max
    expected = torch.tensor([[-torch.inf, 1.0, -torch.inf], [-torch.inf, 0.0, 0.0],
                             [-torch.inf, big, -2.0]])
    assert torch.equal(out, expected)


# ---- errors at suite load, install hints --------------------------------------------------

def suite_with(model: dict) -> dict:
    raw = tomllib.loads(SMALL)
    raw["models"] = [model]
    return raw


@pytest.mark.parametrize("model, message", [
    ({"name": "implicit:ALSS"}, r"unknown recommender 'implicit:ALSS'.*did you mean 'ALS'"),
    ({"name": "cornac:BRP"}, r"unknown recommender 'cornac:BRP'.*did you mean 'BPR'"),
    ({"name": "cornac:MF"}, r"'cornac:MF' is not offered"),
    ({"name": "implicit:ALS", "params": {"factor": 8}}, r"no parameter 'factor'.*'factors'"),
    ({"name": "implicit:ALS", "params": {"factors": "8"}}, r"'factors' must be"),
    ({"name": "implicit:BPR", "params": {"random_state": 1}}, r"'random_state' is set by"),
    ({"name": "cornac:BPR", "params": {"lambda_reg": True}}, r"'lambda_reg' must be"),
    ({"name": "cornac:BPR", "params": {"seed": 1}}, r"'seed' is set by the adapter"),
    ({"name": "cornac:NeuMF", "params": {"backend": "jax"}}, r"backend must be 'pytorch'"),
    ({"name": "implicit:ALS", "params": {"device": "gpu"}}, r"device must be 'auto'"),
])
def test_bad_names_and_params_fail_at_load(model, message):
    with pytest.raises(UserError, match=message):
        parse_suite(suite_with(model), "s.toml")


def test_install_hint():
    with pytest.raises(UserError, match=r"recommender 'implicit:ALS': not installed: "
                                        r"pip install no-such-pkg==1\.0"):
        require("harness_no_such_module.sub", "no-such-pkg==1.0", "implicit:ALS")


def test_backend_hint_at_load():
    """cornac:WMF needs TensorFlow: without it, suite load says how to install it."""
    raw = suite_with({"name": "cornac:WMF"})
    if importlib.util.find_spec("tensorflow") is None:
        with pytest.raises(UserError, match=r"not installed: pip install tensorflow"):
            parse_suite(raw, "s.toml")
    else:
        assert parse_suite(raw, "s.toml").models[0].name == "cornac:WMF"


def test_parity_suite_validates():
    suite = load_suite("suites/parity-peers.toml")
    assert {m.name for m in suite.models} >= {"cornac:EASE", "implicit:ALS", "cornac:BPR"}
    for m in suite.models:
        build(m.name, m.params)


# ---- contained side effects ---------------------------------------------------------------

@pytest.mark.parametrize("name, params", [("implicit:ALS", {"factors": 4, "iterations": 2}),
                                          ("implicit:CosineRecommender", {}),
                                          ("cornac:BPR", {"max_iter": 2}),
                                          ("cornac:VAECF", {"n_epochs": 1})])
def test_thread_settings_and_rng_unchanged(split, name, params):
    before = threads.snapshot()
    rng = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    model = build(name, params)
    model.fit(split, split.dataset)
    all_scores(model, split)
    assert threads.snapshot() == before
    assert random.getstate() == rng[0]
    assert np.array_equal(np.random.get_state()[1], rng[1])
    assert torch.equal(torch.get_rng_state(), rng[2])


def test_library_call_restores_what_a_library_changes():
    from threadpoolctl import ThreadpoolController
    before = threads.snapshot()
    record: dict = {}
    with library_call(record) as out:
        torch.set_num_threads(1)
        ThreadpoolController().limit(limits=1)
        torch.manual_seed(123)
        print("library chatter")
    assert threads.snapshot() == before
    assert out.getvalue() == "library chatter\n"
    if before["torch"] != 1:
        assert "torch" in record["restored"]


# ---- native twins: faster, same math --------------------------------------------------------

def test_bpr_gradients_match_autograd():
    """The compiled CPU kernel and the torch path (CUDA's) both give autograd's gradients of the
    BPR batch loss, repeated rows included (float32 rounding apart)."""
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(30, 8, generator=gen) * 0.1
    q = torch.randn(40, 8, generator=gen) * 0.1
    u, i, j = (torch.randint(n, (100,), generator=gen) for n in (30, 40, 40))
    pa, qa = p.clone().requires_grad_(), q.clone().requires_grad_()
    pu, qi, qj = pa.index_select(0, u), qa.index_select(0, i), qa.index_select(0, j)
    reg = (pu.square().sum() + qi.square().sum() + qj.square().sum()) / len(u)
    loss = -torch.nn.functional.logsigmoid((pu * (qi - qj)).sum(1)).mean() + 0.007 * reg
    loss.backward()
    torch_path = torch.full_like(p, 9.0), torch.full_like(q, 9.0)  # stale values: overwritten
    bpr_gradients(p, q, u, i, j, 0.007, *torch_path, chunk_elems=8 * 7)  # chunks of 7 rows
    kernel = torch.full_like(p, 9.0), torch.full_like(q, 9.0)
    bpr_gradients_into(p.numpy(), q.numpy(), u.numpy(), i.numpy(), j.numpy(), 0.007,
                       kernel[0].numpy(), kernel[1].numpy())
    for gp, gq in (torch_path, kernel):
        torch.testing.assert_close(gp, pa.grad, rtol=1e-5, atol=1e-9)
        torch.testing.assert_close(gq, qa.grad, rtol=1e-5, atol=1e-9)
    assert pa.grad.abs().max() > 1e-4 and qa.grad.abs().max() > 1e-4  # not trivially zero


def test_negative_sampling_table_and_search_agree():
    """The boolean-table lookup draws exactly what the binary search draws; no draw is a
    positive after enough rounds."""
    gen = torch.Generator().manual_seed(2)
    users = torch.randint(20, (500,), generator=gen)
    items = torch.randint(30, (500,), generator=gen)
    pos_keys = torch.unique(users * 30 + items)
    seen = torch.zeros(20 * 30, dtype=torch.bool)
    seen[pos_keys] = True
    a = sample_negatives(users, pos_keys, 30, torch.Generator().manual_seed(3), rounds=50)
    b = sample_negatives(users, pos_keys, 30, torch.Generator().manual_seed(3), rounds=50,
                         seen=seen)
    assert torch.equal(a, b)
    assert not seen[users * 30 + a].any()


def test_adam_matches_torch_optim_bitwise():
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(20, 4, generator=gen)
    ref = w.clone().requires_grad_()
    ours = Adam([w], lr=0.01)
    opt = torch.optim.Adam([ref], lr=0.01)
    for _ in range(5):
        g = torch.randn(20, 4, generator=gen)
        ours.step([g])
        ref.grad = g.clone()
        opt.step()
    assert torch.equal(w, ref.detach())


def test_als_cg_converges_to_exact_and_ignores_thread_count(split):
    """With enough CG steps per half step the CG solver reaches the exact solver's factors; its
    result does not depend on torch's thread count (row blocks are independent)."""
    exact = ALS(factors=6, iterations=3, solver="exact", l2=2.0, seed=1)
    cg = ALS(factors=6, iterations=3, solver="cg", cg_steps=30, l2=2.0, seed=1, device="cpu")
    for m in (exact, cg):
        m.fit(split, split.dataset)
    np.testing.assert_allclose(cg.user_factors.numpy(), exact.user_factors.numpy(), atol=2e-4)
    before = torch.get_num_threads()
    try:
        runs = []
        for n in (1, 3):
            torch.set_num_threads(n)
            m = ALS(factors=6, iterations=2, seed=2, device="cpu")
            m.fit(split, split.dataset)
            runs.append(m.user_factors)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(runs[0], runs[1])


def random_binary(n_rows: int, n_cols: int, density: float, seed: int) -> sp.csr_matrix:
    """A random binary CSR matrix with a few empty rows."""
    x = sp.random(n_rows, n_cols, density=density, format="csr", dtype=np.float32,
                  random_state=seed)
    x.data[:] = 1.0
    keep = np.ones(n_rows, np.float32)
    keep[[0, n_rows // 2]] = 0.0
    x = (sp.diags(keep) @ x).tocsr()
    x.eliminate_zeros()
    return x


def test_als_compiled_and_torch_rows_agree():
    """The CPU kernels (`CompiledRows`) and the torch sparse path (`TorchRows`, CUDA's) compute
    the same sparse products and the same CG factors; the kernels' result does not depend on
    numba's thread count."""
    x = random_binary(57, 41, 0.2, seed=0)
    gen = torch.Generator().manual_seed(0)
    v, y = torch.randn(57, 8, generator=gen), torch.randn(41, 8, generator=gen)
    gram = torch.addmm(torch.eye(8), y.T, y, beta=3.0)
    compiled, torch_rows = CompiledRows(x, n_blocks=5), TorchRows(x, "cpu", torch.float32)
    for rows in (compiled, torch_rows):
        torch.testing.assert_close(rows.sum_y(y), torch.from_numpy(x @ y.numpy()))
    torch.testing.assert_close(compiled.a_mul(v, y, gram, 2.0), torch_rows.a_mul(v, y, gram, 2.0))
    hand = v @ gram + 2.0 * torch.stack([  # A_u v_u = gram v_u + alpha Σ_{i∈u} (y_i · v_u) y_i
        (y[x[u].indices] @ v[u]) @ y[x[u].indices] for u in range(57)])
    torch.testing.assert_close(compiled.a_mul(v, y, gram, 2.0), hand)
    w = [cg_rows(rows, v, y, gram, 2.0, steps=4) for rows in (compiled, torch_rows)]
    torch.testing.assert_close(w[0], w[1])
    assert (w[0][[0, 28]] == 0).all()  # empty rows: their exact solution
    with numba_threads(1):
        one = cg_rows(compiled, v, y, gram, 2.0, steps=4)
    assert torch.equal(one, w[0])


def test_itemknn_cooccurrence_kernel_matches_scipy():
    """The compiled co-occurrence counts give the similarity scipy's sparse product gives,
    whatever the target-block size (several blocks here) and thread count."""
    x = random_binary(60, 35, 0.3, seed=1)
    co = (x.T @ x).toarray()
    norms = np.sqrt(np.diag(co))
    sim = co / (np.outer(norms, norms) + 2.0 + 1e-12)
    np.fill_diagonal(sim, 0.0)
    for block_elems, threads in ((35 * 7, 2), (1 << 24, 1)):
        with numba_threads(threads):
            s = knn_similarity(x, 34, 2.0, block_elems=block_elems).toarray()
        np.testing.assert_allclose(s, sim, rtol=1e-6)  # every positive pair kept (k = n - 1)
    assert x.data.min() == 1.0 and x.nnz == random_binary(60, 35, 0.3, seed=1).nnz  # input kept


def test_native_fits_restore_numba_threads(split):
    before = numba.get_num_threads()
    with numba_threads(1):
        for m in (ALS(factors=4, iterations=1, device="cpu"), ItemKNN(k=5)):
            m.fit(split, split.dataset)
            assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before


@pytest.mark.parametrize("serial_below", [2048, 4])  # scipy's potrf/potri, then torch's path
def test_ease_weights_equal_general_inverse(serial_below, monkeypatch):
    import baselines.ease as ease_module
    monkeypatch.setattr(ease_module, "SERIAL_BELOW", serial_below)
    gen = np.random.default_rng(0)
    x = (gen.random((50, 12)) < 0.3).astype(np.float64)
    g = x.T @ x
    p = np.linalg.inv(g + 5.0 * np.eye(12))
    expected = -p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(ease_weights(g, 5.0), expected, rtol=1e-10, atol=1e-13)
    with pytest.raises(UserError, match="not positive definite"):
        ease_weights(np.zeros((12, 12)), 0.0)
