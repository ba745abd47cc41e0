"""Split protocols, fingerprints, the verified on-disk cache, parameter validation, leakage checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import harness.splits.make as split_make
from harness.data import load_dataset
from harness.data.build import build_dataset
from harness.errors import CacheError, LeakageError, UserError
from harness.splits import PROTOCOLS, Split, get_split, make_split
from harness.splits.leakage import check_split
from harness.types import Dataset, Interactions

PROTOCOL_NAMES = ["random_holdout", "leave_one_out", "temporal", "cold_items"]


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic", n_users=300, n_items=200, n_interactions=6000, seed=3)


@pytest.fixture(params=["ml-100k", "synthetic"])
def ds(request, ml100k, synthetic):  # ml100k: session fixture in conftest.py
    return ml100k if request.param == "ml-100k" else synthetic


def recbole_ro_counts(tot: int, ratios) -> list[int]:
    """RecBole 1.2.1 `Dataset._calcu_split_ids` (RO split), restated: every part but the first is
    int(ratio * tot); then, test first, a part whose share is in (0, 1) takes one interaction from
    train while train has more than one. Ratios are normalized by their sum first, as there."""
    ratios = [r / sum(ratios) for r in ratios]
    cnt = [int(r * tot) for r in ratios]
    cnt[0] = tot - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * tot < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def per_user_counts(split: Split) -> np.ndarray:
    """(n_users, 3) counts of train/valid/test rows per user."""
    user = split.dataset.interactions.user
    return np.stack([np.bincount(user[split.rows[p]], minlength=split.dataset.n_users)
                     for p in ("train", "valid", "test")], axis=1)


# ---------------------------------------------------------------- every protocol

@pytest.mark.parametrize("protocol", PROTOCOL_NAMES)
def test_parts_disjoint_and_cover(ds, protocol):
    split = make_split(ds, protocol, {}, seed=0)
    n = len(ds.interactions)
    parts = [split.rows[p] for p in ("train", "valid", "test")]
    assert all(len(p) for p in parts)
    joined = np.concatenate(parts)
    assert len(np.unique(joined)) == len(joined)
    assert joined.min() >= 0 and joined.max() < n
    missing = np.setdiff1d(np.arange(n), joined)
    if protocol != "temporal":
        assert len(missing) == 0
    else:
        dropped = split.notes["dropped_cold_user_rows_valid"] + split.notes["dropped_cold_user_rows_test"]
        assert len(missing) == dropped
        # the dropped rows are exactly the post-cutoff rows of users with no train interaction
        inter = ds.interactions
        warm = np.isin(inter.user, inter.user[split.rows["train"]])
        expected = np.flatnonzero((inter.timestamp >= split.notes["cutoffs"][0]) & ~warm)
        np.testing.assert_array_equal(missing, expected)


@pytest.mark.parametrize("protocol", PROTOCOL_NAMES)
def test_same_seed_same_split_other_seed_other_fingerprint(synthetic, protocol):
    a = make_split(synthetic, protocol, {}, seed=7)
    b = make_split(synthetic, protocol, {}, seed=7)
    c = make_split(synthetic, protocol, {}, seed=8)
    assert a.fingerprint == b.fingerprint and a.content_hash() == b.content_hash()
    for p in ("train", "valid", "test"):
        np.testing.assert_array_equal(a.rows[p], b.rows[p])
    assert a.fingerprint != c.fingerprint
    if protocol in ("random_holdout", "cold_items"):  # seeded protocols move rows too
        assert not np.array_equal(a.rows["test"], c.rows["test"])


def test_fingerprint_depends_on_params_and_dataset(synthetic, ml100k):
    base = make_split(synthetic, "random_holdout", {}, seed=0).fingerprint
    # defaults spelled out are the same parameters
    assert make_split(synthetic, "random_holdout", {"ratios": [0.8, 0.1, 0.1]}).fingerprint == base
    assert make_split(synthetic, "random_holdout", {"ratios": [0.7, 0.2, 0.1]}).fingerprint != base
    assert make_split(ml100k, "random_holdout", {}, seed=0).fingerprint != base


# ---------------------------------------------------------------- random_holdout

@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.1), (0.6, 0.2, 0.2), (0.7, 0.2, 0.1),
                                    (0.7, 0.3, 0.0)])
def test_random_holdout_follows_recbole_ro(ds, ratios):
    split = make_split(ds, "random_holdout", {"ratios": list(ratios)}, seed=0)
    counts = per_user_counts(split)
    n = counts.sum(1)
    expected = np.array([recbole_ro_counts(int(t), ratios) for t in n])
    np.testing.assert_array_equal(counts, expected)


def _tiny(sizes: list[int]) -> Dataset:
    rows = [(str(u + 1), str(i + 1), 1000.0 + i) for u, s in enumerate(sizes) for i in range(s)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return build_dataset("tiny", inter)


def test_random_holdout_hand_cases():
    # n=10: 8/1/1.  n=5: int(0.5)=0 each, then test and valid take one each: 3/1/1.
    # n=3: 1/1/1.  n=2: test takes one, train is then 1: 1/0/1.  n=1: 1/0/0.
    split = make_split(_tiny([10, 5, 3, 2, 1]), "random_holdout", {}, seed=0)
    assert per_user_counts(split).tolist() == [[8, 1, 1], [3, 1, 1], [1, 1, 1], [1, 0, 1],
                                               [1, 0, 0]]


def test_random_holdout_shuffles_within_user():
    ds = _tiny([40] * 20)
    tests = {tuple(make_split(ds, "random_holdout", {}, seed=s).rows["test"]) for s in range(4)}
    assert len(tests) == 4


# ---------------------------------------------------------------- leave_one_out

def test_leave_one_out_latest_in_test(ds):
    split = make_split(ds, "leave_one_out", {}, seed=0)
    inter = ds.interactions
    df = pd.DataFrame({"user": inter.user, "ts": inter.timestamp, "row": np.arange(len(inter))})
    df = df.sort_values(["user", "ts", "row"])
    size = df.groupby("user")["row"].transform("size")
    pos = df.groupby("user").cumcount(ascending=False)  # 0 = latest
    exp_test = np.sort(df["row"][(pos == 0) & (size >= 2)].to_numpy())
    exp_valid = np.sort(df["row"][(pos == 1) & (size >= 3)].to_numpy())
    np.testing.assert_array_equal(split.rows["test"], exp_test)
    np.testing.assert_array_equal(split.rows["valid"], exp_valid)
    # the test interaction is the user's latest, the valid one is not after it
    ts, user = inter.timestamp, inter.user
    latest = pd.Series(ts).groupby(user).max()
    np.testing.assert_array_equal(ts[split.rows["test"]], latest[user[split.rows["test"]]].to_numpy())
    t_test = dict(zip(user[split.rows["test"]], ts[split.rows["test"]]))
    assert all(t <= t_test[u] for u, t in zip(user[split.rows["valid"]], ts[split.rows["valid"]]))


def test_leave_one_out_small_users():
    split = make_split(_tiny([4, 2, 1]), "leave_one_out", {}, seed=0)
    assert per_user_counts(split).tolist() == [[2, 1, 1], [1, 0, 1], [1, 0, 0]]
    # timestamps increase with item index in _tiny: user 0's latest is its 4th row
    assert split.rows["test"][0] == 3 and split.rows["valid"][0] == 2


# ---------------------------------------------------------------- temporal

@pytest.mark.parametrize("keep_cold", [False, True])
def test_temporal_order(ds, keep_cold):
    split = make_split(ds, "temporal", {"keep_cold_users": keep_cold}, seed=0)
    ts = ds.interactions.timestamp
    t_train, t_valid, t_test = (ts[split.rows[p]] for p in ("train", "valid", "test"))
    assert t_train.max() < t_valid.min() and t_valid.max() < t_test.min()
    assert 0.7 < len(t_train) / len(ts) <= 0.8 + 1e-9
    if keep_cold:
        assert sum(split.sizes().values()) == len(ts)
    else:  # every evaluated user has training history
        train_users = set(ds.interactions.user[split.rows["train"]].tolist())
        for p in ("valid", "test"):
            assert set(ds.interactions.user[split.rows[p]].tolist()) <= train_users


# ---------------------------------------------------------------- cold_items

def test_cold_items_held_out(ds):
    split = make_split(ds, "cold_items", {"item_share": 0.2}, seed=0)
    item = ds.interactions.item
    train_items = set(item[split.rows["train"]].tolist())
    v_items, t_items = split.eval_items["valid"], split.eval_items["test"]
    assert not train_items & set(v_items.tolist()) and not train_items & set(t_items.tolist())
    assert not set(v_items.tolist()) & set(t_items.tolist())
    assert len(v_items) + len(t_items) == round(0.2 * ds.n_items)
    assert split.eval_items.get("train") is None
    # every interaction with a held-out item is in that item's part
    np.testing.assert_array_equal(split.rows["test"], np.flatnonzero(np.isin(item, t_items)))
    np.testing.assert_array_equal(split.rows["valid"], np.flatnonzero(np.isin(item, v_items)))


# ---------------------------------------------------------------- cache

def test_get_split_round_trip(synthetic, tmp_path, monkeypatch):
    for protocol in PROTOCOL_NAMES:
        made = get_split(synthetic, protocol, {}, seed=1, cache_dir=tmp_path)
        path = tmp_path / f"split-{made.fingerprint}.npz"
        assert path.exists()
    monkeypatch.setattr(split_make, "make_split", lambda *a, **k: pytest.fail("not from cache"))
    for protocol in PROTOCOL_NAMES:
        expected = make_split(synthetic, protocol, {}, seed=1)  # the original, not the patch
        loaded = get_split(synthetic, protocol, {}, seed=1, cache_dir=tmp_path)
        assert loaded.fingerprint == expected.fingerprint
        assert loaded.content_hash() == expected.content_hash()
        for p in ("train", "valid", "test"):
            np.testing.assert_array_equal(loaded.rows[p], expected.rows[p])
            a, b = loaded.eval_items.get(p), expected.eval_items.get(p)
            assert (a is None and b is None) or np.array_equal(a, b)
        assert loaded.notes == expected.notes


def _cached(synthetic, tmp_path, seed=0):
    split = get_split(synthetic, "random_holdout", {}, seed=seed, cache_dir=tmp_path)
    return split, tmp_path / f"split-{split.fingerprint}.npz"


def test_tampered_cache_raises(synthetic, tmp_path):
    split, path = _cached(synthetic, tmp_path)
    with np.load(path) as z:
        arrays = {k: z[k].copy() for k in z.files}
    # move one test row to another index that is not in any part -> still a loadable npz
    arrays["rows_test"][0] = len(synthetic.interactions) + 5
    np.savez(path, **arrays)
    with np.load(path) as z:  # still loadable
        assert z["rows_test"][0] == len(synthetic.interactions) + 5
    with pytest.raises(CacheError, match="content hash"):
        get_split(synthetic, "random_holdout", {}, seed=0, cache_dir=tmp_path)


def test_tampered_cache_swap_raises(synthetic, tmp_path):
    # a subtler edit: swap one train row with one test row (same sizes, still a partition)
    split, path = _cached(synthetic, tmp_path)
    with np.load(path) as z:
        arrays = {k: z[k].copy() for k in z.files}
    arrays["rows_train"][0], arrays["rows_test"][0] = arrays["rows_test"][0], arrays["rows_train"][0]
    np.savez(path, **arrays)
    with pytest.raises(CacheError):
        get_split(synthetic, "random_holdout", {}, seed=0, cache_dir=tmp_path)


def test_cache_under_wrong_fingerprint_raises(synthetic, tmp_path):
    _, path0 = _cached(synthetic, tmp_path, seed=0)
    fp1 = make_split(synthetic, "random_holdout", {}, seed=1).fingerprint
    (tmp_path / f"split-{fp1}.npz").write_bytes(path0.read_bytes())
    with pytest.raises(CacheError, match="fingerprint"):
        get_split(synthetic, "random_holdout", {}, seed=1, cache_dir=tmp_path)


def test_unreadable_cache_raises(synthetic, tmp_path):
    _, path = _cached(synthetic, tmp_path)
    path.write_bytes(b"not an npz")
    with pytest.raises(CacheError):
        get_split(synthetic, "random_holdout", {}, seed=0, cache_dir=tmp_path)


# ---------------------------------------------------------------- validation

def test_bad_ratios_raise(synthetic):
    with pytest.raises(UserError, match="sum to 1"):
        make_split(synthetic, "random_holdout", {"ratios": [0.8, 0.1, 0.2]})
    with pytest.raises(UserError):
        make_split(synthetic, "temporal", {"ratios": [0.5, 0.5]})
    with pytest.raises(UserError):
        make_split(synthetic, "random_holdout", {"ratios": [1.2, -0.1, -0.1]})


def test_unknown_protocol_raises_with_hint(synthetic, tmp_path):
    for call in (lambda: make_split(synthetic, "random_holdot"),
                 lambda: get_split(synthetic, "random_holdot", cache_dir=tmp_path)):
        with pytest.raises(UserError, match="did you mean 'random_holdout'"):
            call()
    assert set(PROTOCOLS) == set(PROTOCOL_NAMES)


def test_unknown_parameter_raises(synthetic):
    with pytest.raises(UserError, match="no parameter 'ratio'.*did you mean 'ratios'"):
        make_split(synthetic, "random_holdout", {"ratio": [0.8, 0.1, 0.1]})
    with pytest.raises(UserError, match="no parameter 'ratios'"):
        make_split(synthetic, "leave_one_out", {"ratios": [0.8, 0.1, 0.1]})
    with pytest.raises(UserError, match="item_share"):
        make_split(synthetic, "cold_items", {"item_share": 1.5})


# ---------------------------------------------------------------- leakage

def _hand_dataset() -> Dataset:
    # rows 0 and 3 are the same (user 0, item 1) pair, recorded twice
    user = np.array([0, 0, 1, 0, 1, 1], np.int32)
    item = np.array([1, 2, 0, 1, 2, 3], np.int32)
    ts = np.array([1, 2, 3, 4, 5, 6], np.float64)
    inter = Interactions(user, item, 2, 4, None, ts)
    return Dataset("hand", inter, np.array(["a", "b"], object), np.array(list("wxyz"), object))


def _split(ds, protocol, train, valid, test, eval_items=None):
    rows = {k: np.array(v, np.int64) for k, v in (("train", train), ("valid", valid), ("test", test))}
    return Split(ds, protocol, {}, 0, rows, eval_items or {})


def test_leakage_test_pair_in_train():
    ds = _hand_dataset()
    check_split(_split(ds, "random_holdout", [1, 2, 3], [4], [5]))  # clean: no error
    with pytest.raises(LeakageError, match="test"):
        check_split(_split(ds, "random_holdout", [0, 1, 2], [4], [3, 5]))
    with pytest.raises(LeakageError, match="valid"):
        check_split(_split(ds, "random_holdout", [0, 1, 2], [3], [4, 5]))


def test_leakage_row_in_two_parts():
    with pytest.raises(LeakageError, match="two parts"):
        check_split(_split(_hand_dataset(), "random_holdout", [1, 2, 4], [5], [4]))


def test_leakage_temporal_order_and_cold_items():
    ds = _hand_dataset()
    with pytest.raises(LeakageError, match="temporal"):
        check_split(_split(ds, "temporal", [1, 2, 5], [3], [4]))
    with pytest.raises(LeakageError, match="cold_items"):
        check_split(_split(ds, "cold_items", [0, 1, 2], [4], [5],
                           {"train": None, "valid": np.array([2]), "test": np.array([3])}))


def test_ratios_summing_to_one_within_rounding_are_accepted(synthetic):
    # sums to 1 within 1e-6; the cumulative quantile level (> 1) is clipped, not an error
    split = make_split(synthetic, "temporal", {"ratios": [0.8, 0.2000001, 0.0]})
    assert len(split.rows["train"]) > 0 and len(split.rows["valid"]) > 0


@pytest.mark.parametrize("protocol,params", [
    ("cold_items", {"item_share": "0.2"}),            # TypeError from the range comparison
    ("temporal", {"keep_cold_users": "no"}),           # a truthy string keeps cold users
])
def test_bad_parameter_values_are_user_errors(synthetic, protocol, params):
    with pytest.raises(UserError):
        make_split(synthetic, protocol, params)
