"""Datasets: ml-100k from the recbole wheel, atomic directories, preprocessing, synthetic data."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from harness.data import load_dataset
from harness.data.registry import recbole_example_dir
from harness.errors import UserError

ML = recbole_example_dir("ml-100k")


def _raw(suffix: str) -> pd.DataFrame:
    """An ml-100k atomic file read independently of the harness (plain csv module)."""
    with open(ML / f"ml-100k.{suffix}", encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    return pd.DataFrame(rows[1:], columns=[c.split(":")[0] for c in rows[0]])


@pytest.fixture(scope="module")
def raw_inter():
    df = _raw("inter")
    df["rating"] = df["rating"].astype(float)
    return df


# ---------------------------------------------------------------- ml-100k

def test_ml100k_counts(ml100k, raw_inter):  # ml100k: session fixture in conftest.py
    assert (ml100k.n_users, ml100k.n_items, len(ml100k.interactions)) == (943, 1682, 100_000)
    assert ml100k.n_users == raw_inter["user_id"].nunique()
    inter = ml100k.interactions
    assert inter.user.dtype == np.int32 and inter.item.dtype == np.int32
    assert inter.user.max() == 942 and inter.item.max() == 1681
    # every (user, item, rating, timestamp) row of the file is there, mapped through the id maps
    got = pd.DataFrame({"user_id": ml100k.user_ids[inter.user], "item_id": ml100k.item_ids[inter.item],
                        "rating": inter.rating.astype(float), "ts": inter.timestamp})
    exp = raw_inter.assign(ts=raw_inter["timestamp"].astype(float))[list(got.columns)]
    key = ["user_id", "item_id"]
    pd.testing.assert_frame_equal(got.sort_values(key).reset_index(drop=True),
                                  exp.sort_values(key).reset_index(drop=True), check_dtype=False)


def test_ml100k_side_tables_aligned(ml100k):
    assert {"movie_title", "release_year", "class"} <= set(ml100k.items.columns)
    assert {"age", "gender", "occupation", "zip_code"} <= set(ml100k.users.columns)
    assert len(ml100k.items) == ml100k.n_items and len(ml100k.users) == ml100k.n_users
    toy = int(np.flatnonzero(ml100k.item_ids == "1")[0])
    assert ml100k.items["movie_title"][toy] == "Toy Story"
    assert ml100k.items["release_year"][toy] == "1995"
    for suffix, table, ids, key in (("item", ml100k.items, ml100k.item_ids, "item_id"),
                                    ("user", ml100k.users, ml100k.user_ids, "user_id")):
        raw = _raw(suffix).set_index(key).reindex(ids)
        for col in table.columns:
            assert list(table[col]) == list(raw[col]), (suffix, col)


def test_ml100k_min_rating(raw_inter):
    ds = load_dataset("ml-100k", min_rating=4)
    kept = raw_inter[raw_inter["rating"] >= 4]
    assert len(ds.interactions) == len(kept) == 55_375
    assert ds.interactions.rating.min() >= 4
    assert ds.n_users == kept["user_id"].nunique() and ds.n_items == kept["item_id"].nunique()


def _kcore_reference(df: pd.DataFrame, k: int) -> set:
    pairs = set(zip(df["user_id"], df["item_id"]))
    while True:
        uc, ic = {}, {}
        for u, i in pairs:
            uc[u] = uc.get(u, 0) + 1
            ic[i] = ic.get(i, 0) + 1
        keep = {(u, i) for u, i in pairs if uc[u] >= k and ic[i] >= k}
        if keep == pairs:
            return pairs
        pairs = keep


@pytest.mark.parametrize("k,min_rating", [(10, None), (20, 4)])
def test_ml100k_kcore(raw_inter, k, min_rating):
    ds = load_dataset("ml-100k", kcore=k, min_rating=min_rating)
    inter = ds.interactions
    assert np.bincount(inter.user, minlength=ds.n_users).min() >= k
    assert np.bincount(inter.item, minlength=ds.n_items).min() >= k
    src = raw_inter if min_rating is None else raw_inter[raw_inter["rating"] >= min_rating]
    expected = _kcore_reference(src, k)
    got = set(zip(ds.user_ids[inter.user], ds.item_ids[inter.item]))
    assert got == expected and len(got) < len(src)
    # side tables follow the surviving ids
    assert len(ds.items) == ds.n_items and len(ds.users) == ds.n_users


# ---------------------------------------------------------------- atomic directories

def _write_atomic(d, inter_rows, item_rows=None, user_rows=None, inter_header=None):
    d.mkdir(parents=True, exist_ok=True)
    header = inter_header or "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    (d / "toy.inter").write_text(header + "\n" + "\n".join("\t".join(r) for r in inter_rows) + "\n")
    if item_rows is not None:
        (d / "toy.item").write_text("item_id:token\ttitle:token_seq\tprice:float\n"
                                    + "\n".join("\t".join(r) for r in item_rows) + "\n")
    if user_rows is not None:
        (d / "toy.user").write_text("user_id:token\tage:token\tcity:token\n"
                                    + "\n".join("\t".join(r) for r in user_rows) + "\n")
    return d


INTER = [("u2", "10", "5", "100"), ("u1", "2", "3", "101"), ("u2", "2", "4.5", "102"),
         ("u1", "10", "1", "103"), ("u1", "2", "2", "104")]  # (u1, 2) twice: the later one stays
ITEMS = [("2", "Blue River", "9.5"), ("10", "Red Star", ""), ("99", "Unused", "1")]
USERS = [("u1", "31", "Oslo"), ("u2", "45", "Porto")]


def test_atomic_dir_loads_typed_fields(tmp_path):
    d = _write_atomic(tmp_path / "toy", INTER, ITEMS, USERS)
    ds = load_dataset(path=str(d))
    assert ds.name == "toy"
    assert list(ds.item_ids) == ["2", "10"]  # numeric order, not lexicographic; '99' unused
    assert list(ds.user_ids) == ["u1", "u2"]
    inter = ds.interactions
    assert len(inter) == 4  # de-duplicated
    assert inter.rating.dtype == np.float32 and inter.timestamp.dtype == np.float64
    rows = sorted(zip(ds.user_ids[inter.user], ds.item_ids[inter.item], inter.rating.tolist(),
                      inter.timestamp.tolist()))
    assert rows == [("u1", "10", 1.0, 103.0), ("u1", "2", 2.0, 104.0),
                    ("u2", "10", 5.0, 100.0), ("u2", "2", 4.5, 102.0)]
    assert list(ds.items["title"]) == ["Blue River", "Red Star"]
    assert ds.items["price"].dtype.kind == "f"
    assert ds.items["price"][0] == 9.5 and np.isnan(ds.items["price"][1])
    assert list(ds.users["age"]) == ["31", "45"] and list(ds.users["city"]) == ["Oslo", "Porto"]


def test_atomic_dir_missing_side_row_is_empty(tmp_path):
    # build._align's docstring: missing rows become empty strings (text) / NaN (numbers)
    d = _write_atomic(tmp_path / "toy", INTER, ITEMS[:1])
    ds = load_dataset(path=str(d))
    assert ds.users is None
    assert np.isnan(ds.items["price"][1])
    assert list(ds.items["title"]) == ["Blue River", ""]


def test_missing_dir_raises_with_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(UserError, match=str(missing)):
        load_dataset(path=str(missing))


def test_inter_without_item_id_raises_with_path(tmp_path):
    d = _write_atomic(tmp_path / "bad", [("u1", "3", "100")],
                      inter_header="user_id:token\trating:float\ttimestamp:float")
    with pytest.raises(UserError, match="item_id") as err:
        load_dataset(path=str(d))
    assert str(d / "toy.inter") in str(err.value)


def test_bad_header_type_and_unknown_name_raise(tmp_path):
    d = _write_atomic(tmp_path / "bad", [("u1", "3", "100")],
                      inter_header="user_id:token\titem_id:int\ttimestamp:float")
    with pytest.raises(UserError, match="item_id:int"):
        load_dataset(path=str(d))
    with pytest.raises(UserError, match="did you mean 'ml-100k'"):
        load_dataset("ml-100j")


def test_fingerprint_tracks_content(tmp_path):
    a = load_dataset(path=str(_write_atomic(tmp_path / "a", INTER, ITEMS, USERS)))
    same = load_dataset(path=str(_write_atomic(tmp_path / "b", INTER, ITEMS, USERS)))
    assert a.fingerprint == same.fingerprint
    changed_rating = [INTER[0][:2] + ("4",) + INTER[0][3:]] + INTER[1:]
    changed_title = [("2", "Blue Lake", "9.5")] + ITEMS[1:]
    changed_user = [("u1", "32", "Oslo")] + USERS[1:]
    others = [load_dataset(path=str(_write_atomic(tmp_path / n, i, it, us)))
              for n, i, it, us in (("c", changed_rating, ITEMS, USERS),
                                   ("d", INTER, changed_title, USERS),
                                   ("e", INTER, ITEMS, changed_user),
                                   ("f", INTER[:-1], ITEMS, USERS))]
    fps = {a.fingerprint} | {o.fingerprint for o in others}
    assert len(fps) == 5


# ---------------------------------------------------------------- synthetic

def test_synthetic_deterministic_per_seed():
    kw = dict(n_users=200, n_items=150, n_interactions=3000)
    a, b = load_dataset("synthetic", seed=4, **kw), load_dataset("synthetic", seed=4, **kw)
    c = load_dataset("synthetic", seed=5, **kw)
    assert a.fingerprint == b.fingerprint
    np.testing.assert_array_equal(a.interactions.item, b.interactions.item)
    pd.testing.assert_frame_equal(a.items, b.items)
    assert a.fingerprint != c.fingerprint
    assert not np.array_equal(a.interactions.item[:100], c.interactions.item[:100])


def test_synthetic_side_tables():
    ds = load_dataset("synthetic", n_users=200, n_items=150, n_interactions=3000, seed=0)
    assert {"movie_title", "release_year", "class"} <= set(ds.items.columns)
    assert {"age", "gender", "occupation"} <= set(ds.users.columns)
    assert (ds.items["movie_title"].str.len() > 0).all() and (ds.items["class"] != "").all()
    assert set(ds.users["gender"]) <= {"F", "M"} and (ds.users["occupation"] != "").all()
    assert ds.interactions.timestamp is not None and ds.interactions.rating is not None
    assert set(np.unique(ds.interactions.rating)) <= {1.0, 2.0, 3.0, 4.0, 5.0}


@pytest.mark.parametrize("n_users,n_items,n_interactions", [(1000, 2000, 20_000), (1000, 1000, 1000)])
def test_synthetic_size_sparse(n_users, n_items, n_interactions):
    ds = load_dataset("synthetic", n_users=n_users, n_items=n_items,
                      n_interactions=n_interactions, seed=0)
    assert len(ds.interactions) == n_interactions
    assert ds.n_users <= n_users and ds.n_items <= n_items
    pairs = ds.interactions.user.astype(np.int64) * ds.n_items + ds.interactions.item
    assert len(np.unique(pairs)) == len(pairs)


@pytest.mark.parametrize("n_users,n_items,n_interactions", [(500, 300, 10_000), (120, 80, 2000)])
def test_synthetic_size_exact_when_feasible(n_users, n_items, n_interactions):
    # 10k of 150k possible pairs (6.7 %), 2000 of 9600 (21 %): feasible, yet fewer come back
    ds = load_dataset("synthetic", n_users=n_users, n_items=n_items,
                      n_interactions=n_interactions, seed=0)
    assert len(ds.interactions) == n_interactions
