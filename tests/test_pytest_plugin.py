"""The `harness_check` fixture (harness.pytest_plugin, entry point pytest11) run by pytester
on a tiny synthetic suite: reference creation, pass, regression with the diff table, errors."""

from __future__ import annotations

import pytest

# Subprocesses, not pytester's in-process runs: those unload the modules imported during the
# inner session (torch, pandas' pyarrow extension types), which then fail to re-register.
pytest_plugins = ["pytester"]

SUITE = """
[suite]
name = "tiny"
seeds = [0]
[[datasets]]
name = "synthetic"
n_users = 150
n_items = 80
n_interactions = 3000
[[splits]]
protocol = "random_holdout"
seed = {split_seed}
[evaluation]
metrics = ["ndcg", "recall"]
ks = [10]
[[models]]
name = "{model}"
label = "m"
[[models]]
name = "itemknn"
"""

TEST = """
def test_quality(harness_check):
    result = harness_check("tiny.toml", "reference/tiny")
    assert result is None or result.passed  # None: created by --harness-update-reference


def test_one_cell(harness_check):
    result = harness_check("tiny.toml", "reference/tiny", models=["itemknn"], seeds=[0])
    if result is not None:  # None only when updating
        assert set(result.rows["model"]) == {"itemknn"}
"""


@pytest.fixture
def project(pytester):
    def write(model: str = "pop", split_seed: int = 0):
        pytester.makefile(".toml", tiny=SUITE.format(model=model, split_seed=split_seed))
    pytester.makepyfile(test_tiny=TEST)
    write()
    return write


def test_plugin_is_registered_through_the_entry_point(pytester):
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--harness-update-reference*"])


def test_reference_lifecycle(pytester, project):
    """Missing reference, creation, pass, regression (diff table), one cell, other split."""
    run = pytester.runpytest_subprocess
    missing = run("-k", "test_quality")
    missing.assert_outcomes(failed=1)
    missing.stdout.fnmatch_lines(["*no reference run at*--harness-update-reference*"])

    created = run("-k", "test_quality", "--harness-update-reference", "-s")
    created.assert_outcomes(passed=1)
    created.stdout.fnmatch_lines(["*creating it*", "*reference updated*"])
    assert (pytester.path / "reference" / "tiny" / "manifest.json").exists()
    assert (pytester.path / "reference" / "tiny" / "suite.toml").exists()

    run().assert_outcomes(passed=2)  # the whole suite and one cell, unchanged

    project(model="random")  # same label 'm', a much worse recommender
    worse = run("-k", "test_quality")
    worse.assert_outcomes(failed=1)
    worse.stdout.fnmatch_lines(["*harness_check: regression*",
                                "*model*metric*reference*new*delta*tolerance*p*verdict*",
                                "*m *ndcg@10*REGRESSION*",
                                "*FAIL: * regression(s)*"])
    assert "Traceback" not in worse.stdout.str()
    # one cell of the changed suite: itemknn did not change, so it passes
    run("-k", "test_one_cell").assert_outcomes(passed=1)

    project(split_seed=1)
    other = run("-k", "test_quality")
    other.assert_outcomes(failed=1)
    other.stdout.fnmatch_lines(["*split fingerprint mismatch*seed 0*seed 1*"])


def test_update_refuses_filters(pytester, project):
    refused = pytester.runpytest_subprocess("-k", "test_one_cell",
                                            "--harness-update-reference")
    refused.assert_outcomes(failed=1)
    refused.stdout.fnmatch_lines(["*cannot be combined with models/seeds*"])
    assert not (pytester.path / "reference").exists()
