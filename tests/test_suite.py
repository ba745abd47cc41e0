"""Suite validation: every bad input names the file and the key, with the nearest valid choice."""

import pytest

from harness.errors import SuiteError
from harness.suite import load_suite

BASE = """
[suite]
name = "t"
[[datasets]]
name = "ml-100k"
[[splits]]
protocol = "random_holdout"
[[models]]
name = "pop"
"""


def test_valid_suite_defaults(write_suite):
    s = load_suite(write_suite(BASE))
    assert s.seeds == (0,) and s.ks == (5, 10, 20) and s.target == "test"
    assert s.splits[0].params["ratios"] == [0.8, 0.1, 0.1]
    assert len(s.sha256) == 64


@pytest.mark.parametrize("text,key,hint", [
    (BASE.replace('name = "pop"', 'name = "ppo"'), "models[0].name", "did you mean 'pop'"),
    (BASE.replace('name = "ml-100k"', 'name = "ml-100"'), "datasets[0].name", "ml-100k"),
    (BASE.replace('protocol = "random_holdout"', 'protocol = "random_holdot"'),
     "splits[0].protocol", "random_holdout"),
    (BASE + '[evaluation]\nmetrics = ["ndgc"]\n', "evaluation.metrics[0]", "ndcg"),
    (BASE + "[evaluation]\nks = [0, 10]\n", "evaluation.ks", "positive"),
    (BASE + '[evaluation]\nks = "10"\n', "evaluation.ks", "must be list"),
    (BASE.replace("[suite]", "[suite]\nseed = [1]"), "suite.seed", "seeds"),
    (BASE.replace('protocol = "random_holdout"',
                  'protocol = "random_holdout"\nratios = [0.8, 0.1, 0.2]'),
     "splits[0]", "sum to 1"),
    (BASE.replace('protocol = "random_holdout"',
                  'protocol = "random_holdout"\nratio = [0.8, 0.1, 0.1]'),
     "splits[0].ratio", "ratios"),
    (BASE.replace('name = "pop"', 'name = "itemknn"\nparams = { kk = 3 }'),
     "models[0].params", "did you mean 'k'"),
    (BASE.replace('name = "pop"', 'name = "itemknn"\nparams = { k = "many" }'),
     "models[0].params", "must be int"),
    (BASE.replace('name = "ml-100k"', 'path = "/no/such/dir"'), "datasets[0].path",
     "does not exist"),
    (BASE + "[[models]]\nname = \"pop\"\n", "models[1]", "duplicate label"),
    (BASE.replace("[suite]\n", "[suite]\nname2 = 1\n"), "suite.name2", "valid"),
    ("[suite\nname=", "<toml>", "malformed TOML"),
])
def test_bad_suites_name_file_and_key(write_suite, text, key, hint):
    path = write_suite(text)
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    msg = str(err.value)
    assert str(path) in msg and f"[{key}]" in msg and hint in msg, msg


def test_missing_section(write_suite):
    with pytest.raises(SuiteError, match=r"\[models\] missing required section"):
        load_suite(write_suite(BASE.split("[[models]]")[0]))


def test_module_class_reference_is_validated(write_suite):
    ok = BASE.replace('name = "pop"', 'name = "tests.plugins:CountingPop"\nparams = {bonus = 1}')
    assert load_suite(write_suite(ok)).models[0].params == {"bonus": 1}
    bad = BASE.replace('name = "pop"', 'name = "tests.plugins:Nope"')
    with pytest.raises(SuiteError, match="has no attribute 'Nope'"):
        load_suite(write_suite(bad))
