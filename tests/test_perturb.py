"""Perturbations (harness/perturb): determinism per (seed, id), severity 0 = identity, what each
perturbation does (hand cases), realized rates, interaction noise never touching held-out data."""

import re

import numpy as np
import pytest

from harness.data import load_dataset
from harness.perturb import PERTURBATIONS, make
from harness.perturb.fields import to_catalogue, to_natural
from harness.perturb.interactions import CandidateOrder, HistoryDrop, HistoryInject, \
    HistoryShuffle, TrainDrop, TrainInject
from harness.perturb.lexicon import read_groups, synonyms
from harness.perturb.rng import derive_rng
from harness.perturb.text import KEYBOARD, number_words, reformat_number
from harness.perturb.view import text_view, view_item_texts
from harness.splits import make_split

TEXT = [n for n, c in PERTURBATIONS.items() if c.kind == "text"]
SAMPLE = "Usual Suspects, The (1995), genres: Crime Thriller; a small love story of 24 men"


@pytest.fixture(scope="module")
def ds():
    return load_dataset("synthetic", n_users=50, n_items=40, n_interactions=700)


@pytest.fixture(scope="module")
def split(ds):
    return make_split(ds, "random_holdout", {}, seed=0)


@pytest.mark.parametrize("name", TEXT)
def test_text_perturbations_are_deterministic_and_identity_at_zero(name):
    p = make(name)
    assert p(SAMPLE, 0.0, 0, "item", "7") == SAMPLE
    a, b = p(SAMPLE, 0.6, 3, "item", "7"), p(SAMPLE, 0.6, 3, "item", "7")
    assert a == b
    # a fresh instance (another model's run, another suite) draws the same
    assert make(name)(SAMPLE, 0.6, 3, "item", "7") == a
    # the id, the seed and the severity are part of the key
    outs = {make(name)(SAMPLE, 0.6, s, "item", i) for s in (3, 4) for i in ("7", "8", "9")}
    if name not in ("field_drop", "title_format", "number_format", "case"):
        assert len(outs) > 1, name


def test_rng_keys():
    a = derive_rng(0, "item", "1", "typo_keyboard{}", 0.1).random(4)
    assert np.array_equal(a, derive_rng(0, "item", "1", "typo_keyboard{}", 0.1).random(4))
    assert not np.array_equal(a, derive_rng(0, "item", "1", "typo_keyboard{}", 0.2).random(4))
    assert not np.array_equal(a, derive_rng(1, "item", "1", "typo_keyboard{}", 0.1).random(4))
    # parameters are part of the identity, suite labels are not
    assert make("case", {"mode": "upper"}).ident != make("case").ident


def test_keyboard_neighbours_hand_cases():
    assert set(KEYBOARD["g"]) == set("tyfhvb")
    assert set(KEYBOARD["q"]) == set("wa")
    assert set(KEYBOARD["m"]) == set("njk")
    assert all(ch not in near for ch, near in KEYBOARD.items())
    assert all(ch in KEYBOARD[n] for ch, near in KEYBOARD.items() for n in near)  # symmetric


def test_typo_variants_do_what_they_say():
    text = "Godfather Casablanca Vertigo " * 20
    kb = make("typo_keyboard")(text, 0.3, 0, "item", "1")
    assert len(kb) == len(text)
    diff = [(a, b) for a, b in zip(text, kb) if a != b]
    assert diff and all(b.lower() in KEYBOARD[a.lower()] and a.isupper() == b.isupper()
                        for a, b in diff)
    sw = make("typo_swap")(text, 0.3, 0, "item", "1")
    assert sorted(sw) == sorted(text) and sw != text
    assert [len(w) for w in sw.split()] == [len(w) for w in text.split()]
    de = make("typo_delete")(text, 0.3, 0, "item", "1")
    assert len(de) < len(text) and len(de.split()) == len(text.split())
    assert make("typo_delete")("a b c", 1.0, 0, "item", "1") == "a b c"  # a word keeps a letter
    ins = make("typo_insert")(text, 0.3, 0, "item", "1")
    assert len(ins) > len(text) and re.sub(r"\s", "", ins) != re.sub(r"\s", "", text)


def test_realized_rate_tracks_severity():
    text = "abcdefghij" * 400
    for s in (0.05, 0.2, 0.5):
        out = make("typo_keyboard")(text, s, 0, "item", "x")
        rate = np.mean([a != b for a, b in zip(text, out)])
        assert abs(rate - s) < 0.03, (s, rate)


def test_case_whitespace_words_numbers():
    assert make("case")("The Big Lebowski", 1.0, 0, "item", "1") == "the big lebowski"
    assert make("case", {"mode": "upper"})("The Big", 1.0, 0, "item", "1") == "THE BIG"
    ws = make("whitespace")("a b c d e f", 1.0, 0, "item", "1")
    assert ws.split() == list("abcdef") and all(2 <= len(g) <= 3 for g in re.findall(r" +", ws))
    assert make("word_drop")("one two three", 1.0, 0, "item", "1") in ("one", "two", "three")
    wo = make("word_order")("one two three four five six", 1.0, 0, "item", "1")
    assert sorted(wo.split()) == sorted("one two three four five six".split())
    assert reformat_number("1995") == "'95" and reformat_number("24") == "twenty-four"
    assert reformat_number("12345") == "12,345" and number_words(105) == "one hundred five"
    assert make("number_format")("Heat (1995), 2 men", 1.0, 0, "item", "1") == \
        "Heat ('95), two men"


def test_synonyms_from_the_offline_lexicon():
    table = synonyms()
    assert "romance" in table["love"] and "love" in table["romance"]  # symmetric groups
    assert all(len(g) > 1 for g in read_groups())
    out = make("synonym")("Love Story of a BIG man", 1.0, 0, "item", "1")
    words = out.split()
    assert words[0].lower() in table["love"] and words[0][0].isupper()
    assert words[4].lower() in table["big"] and words[4].isupper()
    assert words[5] in table["man"] and words[2:4] == ["of", "a"]


def test_title_format_both_ways():
    assert to_natural("Godfather, The (1972)") == "The Godfather (1972)"
    assert to_natural("Misérables, Les (1995)") == "Les Misérables (1995)"
    assert to_natural("Amour, L'") == "L'Amour"
    assert to_natural("Toy Story (1995)") == "Toy Story (1995)"
    assert to_catalogue("The Godfather (1972)") == "Godfather, The (1972)"
    assert to_catalogue("Theory of Flight") == "Theory of Flight"
    for t in ("Usual Suspects, The", "City of Lost Children, The (Cité des enfants perdus, La)"):
        assert to_catalogue(to_natural(t)) == t
    p = make("title_format", {"direction": "back"})
    assert p("The Godfather", 1.0, 0, "item", "1") == "Godfather, The"


def test_item_text_view_is_per_item_whatever_else_is_in_the_catalogue(ds):
    """An item's perturbed text depends on (seed, item id, perturbation, severity) only: the
    same item in a catalogue with other items (or another order) gets the same text."""
    from dataclasses import replace
    p = make("typo_keyboard")
    view, rec = text_view(p, 0.2, 0, ds, "items", None, "t")
    texts, _ = view_item_texts(ds, "auto", view)
    assert 0 < rec["changed_share"] <= 1
    order = np.arange(ds.n_items)[::-1]
    other = replace(ds, items=ds.items.iloc[order].reset_index(drop=True),
                    item_ids=ds.item_ids[order])
    view2, _ = text_view(p, 0.2, 0, other, "items", None, "t")
    texts2, _ = view_item_texts(other, "auto", view2)
    assert texts2[::-1] == texts


def test_field_views(ds):
    view, rec = text_view(make("field_drop"), 1.0, 0, ds, "items", ["class"], "fd")
    assert (view.items["class"] == "").all() and rec["changed_share"] == 1.0
    assert view.items["movie_title"].equals(ds.items["movie_title"])
    view, _ = text_view(make("typo_keyboard"), 0.0, 0, ds, "users", ["occupation"], "u")
    assert view.users["occupation"].tolist() == ds.users["occupation"].astype(str).tolist()
    view, _ = text_view(make("case"), 1.0, 0, ds, "users", None, "u")
    assert view.user_text(3, "Age: 24, Gender: M") == "age: 24, gender: m"


def test_train_drop_and_inject(split):
    ds = split.dataset
    same, rec = TrainDrop().split(split, 0.0, 0)
    assert same is split and rec["changed"] == 0
    noisy, rec = TrainDrop().split(split, 0.3, 0)
    n = len(split.rows["train"])
    assert abs(rec["share"] - 0.3) < 0.05 and len(noisy.rows["train"]) == n - rec["changed"]
    assert set(noisy.rows["train"]) <= set(split.rows["train"])
    for part in ("valid", "test"):
        assert np.array_equal(noisy.rows[part], split.rows[part])
    again, _ = TrainDrop().split(split, 0.3, 0)
    assert np.array_equal(again.rows["train"], noisy.rows["train"])
    inj, rec = TrainInject().split(split, 0.2, 0)
    added = inj.rows["train"][n:]
    assert len(added) == rec["changed"] > 0 and np.array_equal(inj.rows["train"][:n],
                                                               split.rows["train"])
    grown = inj.dataset.interactions
    seen = ds.interactions.csr()  # every part: never a held-out item, never a duplicate
    assert all(seen[grown.user[r], grown.item[r]] == 0 for r in added)
    for part in ("valid", "test"):
        assert np.array_equal(inj.part(part).item, split.part(part).item)
    assert inj.dataset.fingerprint != ds.fingerprint


def test_train_inject_never_injects_cold_items(ds):
    split = make_split(ds, "cold_items", {"item_share": 0.3}, seed=0)
    held = np.concatenate([v for v in split.eval_items.values() if v is not None])
    inj, rec = TrainInject().split(split, 0.5, 0)
    added = inj.rows["train"][len(split.rows["train"]):]
    assert rec["changed"] > 0 and not np.isin(inj.dataset.interactions.item[added], held).any()


def test_history_noise(split):
    from harness.llm.text import user_histories
    hist = user_histories(split)
    for cls in (HistoryDrop, HistoryInject, HistoryShuffle):
        same, rec = cls().histories(hist, 0.0, 0, split)
        assert same is hist
    drop, _ = HistoryDrop().histories(hist, 0.5, 0, split)
    assert all(set(d) <= set(h) for d, h in zip(drop, hist))
    shuf, _ = HistoryShuffle().histories(hist, 1.0, 0, split)
    assert all(sorted(a) == sorted(b) for a, b in zip(shuf, hist))
    inj, rec = HistoryInject().histories(hist, 0.5, 0, split)
    seen = split.dataset.interactions.csr()
    for u, (a, b) in enumerate(zip(inj, hist)):
        new = [i for i in a if i not in set(b)]
        assert len(a) >= len(b) and all(seen[u, i] == 0 for i in new)


def test_candidate_order_permutes_and_inverts(split):
    from harness.candidates import sampled_candidates
    cand = sampled_candidates(split, n_negatives=9)
    same, perms, rec = CandidateOrder().candidates(cand, 0.0, 0, split.dataset)
    assert same is cand and perms is None
    new, perms, rec = CandidateOrder().candidates(cand, 1.0, 0, split.dataset)
    assert rec["changed"] > 0
    assert np.array_equal(np.sort(new.lists, 1), np.sort(cand.lists, 1))
    assert np.array_equal(np.take_along_axis(cand.lists, perms, 1), new.lists)
    back = np.empty_like(new.lists)
    np.put_along_axis(back, perms, new.lists, axis=1)
    assert np.array_equal(back, cand.lists)


def test_bad_parameters():
    with pytest.raises(ValueError, match="mode: unknown value 'lowr'.*did you mean 'lower'"):
        make("case", {"mode": "lowr"})
    with pytest.raises(ValueError, match="max_spaces: must be >= 2"):
        make("whitespace", {"max_spaces": 1})
    with pytest.raises(ValueError, match="unknown parameter"):
        make("typo_swap", {"p": 1})
    from harness.errors import UserError
    with pytest.raises(UserError, match="did you mean 'typo_swap'"):
        make("typo_swapp")
