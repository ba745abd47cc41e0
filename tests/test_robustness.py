"""The robustness pass: stability metrics vs hand cases and scipy, worst case, a real run with
text, train, history and order perturbations, the text views of llm-embed and llm-rank, the
holistic leaderboard, and bad input."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import kendalltau

from harness.errors import SuiteError
from harness.perturb.stability import jaccard_at_k, kendall_tau_b, rbo_at_k, worst_case
from harness.suite import load_suite, parse_suite
from tests import robustness_plugins as plugins

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

SUITE = """
[suite]
name = "rob"
seeds = [0]
[[datasets]]
name = "synthetic"
n_users = 70
n_items = 50
n_interactions = 1200
[[splits]]
protocol = "leave_one_out"
[[candidates]]
protocol = "sampled"
n_negatives = 14
[evaluation]
metrics = ["ndcg", "recall"]
ks = [5, 10]
[[models]]
name = "pop"
{models}
[robustness]
bootstrap = 100
rbo_p = 0.8
[[robustness.perturbations]]
name = "typo_keyboard"
label = "typo"
severities = [0.0, 0.3]
[[robustness.perturbations]]
name = "field_drop"
severities = [0.5]
fields = ["class"]
[[robustness.perturbations]]
name = "train_drop"
severities = [0.3]
[[robustness.perturbations]]
name = "history_drop"
severities = [0.5]
[[robustness.perturbations]]
name = "candidate_order"
severities = [1.0]
models = ["pop", "listwise"]
"""
TEXT_MODELS = """
[[models]]
name = "tests.robustness_plugins:WordOverlap"
label = "words"
[[models]]
name = "tests.robustness_plugins:Listwise"
label = "listwise"
"""


# --- metrics -------------------------------------------------------------------------------

def test_jaccard_and_rbo_hand_cases():
    a, b = np.array([[1, 2, 3]]), np.array([[1, 3, 2]])
    # RBO@3, p = 0.9: overlaps 1/1, 1/2, 3/3 -> 0.1 / (1 - 0.9^3) * (1 + 0.9 * 0.5 + 0.81 * 1)
    assert rbo_at_k(a, b, 3, 0.9)[0] == pytest.approx(0.1 / 0.271 * 2.26)
    assert rbo_at_k(a, a, 3, 0.9)[0] == pytest.approx(1.0)
    assert rbo_at_k(a, np.array([[4, 5, 6]]), 3, 0.5)[0] == 0.0
    # p = 0.5, A = [1, 2], B = [2, 1]: overlaps 0, 2/2 -> 0.5 / 0.75 * (0 + 0.5 * 1) = 1/3
    assert rbo_at_k(np.array([[1, 2]]), np.array([[2, 1]]), 2, 0.5)[0] == pytest.approx(1 / 3)
    assert jaccard_at_k(a, b, 2)[0] == pytest.approx(1 / 3)  # {1,2} vs {1,3}
    assert jaccard_at_k(a, b, 3)[0] == 1.0
    # padding (-1) never matches; two empty lists are identical
    pad = np.array([[5, -1, -1], [-1, -1, -1]])
    other = np.array([[5, 7, -1], [-1, -1, -1]])
    assert jaccard_at_k(pad, other, 3).tolist() == [0.5, 1.0]
    with pytest.raises(ValueError, match="persistence"):
        rbo_at_k(a, b, 3, 1.0)


def test_kendall_tau_b_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, (40, 12)).astype(float)  # many ties
    y = x + rng.normal(0, 1.5, x.shape)
    y[5] = 2.0  # constant: undefined
    y[6, :3] = -np.inf
    valid = np.ones(x.shape, bool)
    valid[7, 8:] = False  # padding
    ours = kendall_tau_b(x, y, valid)
    for r in range(len(x)):
        ref = kendalltau(x[r][valid[r]], np.where(np.isneginf(y[r]), -1e300, y[r])[valid[r]])
        if np.isnan(ref.statistic):
            assert np.isnan(ours[r])
        else:
            assert ours[r] == pytest.approx(ref.statistic, abs=1e-12)


def test_worst_case_hand_case():
    clean = np.array([0.5, 0.2, 0.9])
    runs = [np.array([0.4, 0.3, 1.0]), np.array([0.6, 0.1, 0.8])]
    assert worst_case(clean, runs).tolist() == [0.4, 0.1, 0.8]
    assert worst_case(clean, runs, higher_is_better=False).tolist() == [0.6, 0.3, 1.0]


# --- a real run ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from harness.runner import run_suite
    tmp = tmp_path_factory.mktemp("rob")
    (tmp / "s.toml").write_text(SUITE.format(models=TEXT_MODELS))
    plugins.SEEN.clear()
    res = run_suite(load_suite(tmp / "s.toml"), tmp / "out", quiet=True)
    seen = list(plugins.SEEN)
    return res, seen, tmp


def _per_user(res):
    return pd.read_parquet(res.run_dir / "per_user.parquet")


def test_rows_per_perturbation_and_skips(run):
    res, _, _ = run
    assert not res.failed and res.manifest["n_failed_passes"] == 0
    m = res.metrics[res.metrics["pass"] == "robustness"]
    by = {mod: set(g["perturbation"]) for mod, g in m.groupby("model")}
    assert {"typo@0", "typo@0.3", "field_drop@0.5", "history_drop@0.5"} <= by["words"]
    assert "typo@0.3" not in by["pop"] and "history_drop@0.5" not in by["pop"]
    assert {"train_drop@0.3", "candidate_order@1"} <= by["pop"] & by["listwise"]
    assert "candidate_order@1" not in by["words"]  # pointwise, not listed
    cells = {c["model"]: c for c in res.manifest["cells"]}
    rec = cells["pop"]["robustness"]
    assert rec["skipped"]["typo"].startswith("reads no text")
    assert cells["words"]["robustness"]["skipped"]["candidate_order"] == "not in the entry's models"
    assert rec["runs"]["train_drop@0.3"]["changed"] > 0
    from harness import passes
    for metric in set(m["metric"]):  # every metric's direction is declared
        assert isinstance(passes.higher_is_better("robustness", metric), bool)
    assert passes.higher_is_better("robustness", "delta_ndcg_ci_low") is True


def test_severity_zero_is_the_clean_evaluation(run):
    res, _, _ = run
    m = res.metrics[res.metrics.model == "words"]
    get = lambda p, metric, k: m[(m.perturbation == p) & (m.metric == metric)  # noqa: E731
                                 & (m.k == k)]["value"].item()
    assert get("typo@0", "ndcg", 10) == pytest.approx(get("none", "ndcg", 10), abs=1e-12)
    assert get("typo@0", "jaccard", 10) == 1.0 and get("typo@0", "rbo", 5) == pytest.approx(1)
    assert get("typo@0", "kendall_tau", 0) == pytest.approx(1.0)
    assert get("typo@0", "delta_ndcg", 10) == 0.0


def test_delta_ci_and_worst_case_from_per_user_values(run):
    res, _, _ = run
    pu = _per_user(res)
    cell = next(c["cell"] for c in res.manifest["cells"] if c["model"] == "words")
    pu = pu[(pu.cell == cell) & (pu.metric == "ndcg") & (pu.k == 10)].pivot(
        index="user", columns="perturbation", values="value")
    m = res.metrics[(res.metrics.cell == cell) & (res.metrics.k == 10)]
    row = lambda metric, p: m[(m.metric == metric) & (m.perturbation == p)]["value"].item()  # noqa
    d = (pu["typo@0.3"] - pu["none"]).mean()
    assert row("delta_ndcg", "typo@0.3") == pytest.approx(d, abs=1e-12)
    assert row("delta_ndcg_ci_low", "typo@0.3") <= d <= row("delta_ndcg_ci_high", "typo@0.3")
    typo = pu[["none", "typo@0", "typo@0.3"]].min(axis=1)
    assert row("ndcg", "typo@worst") == pytest.approx(typo.mean(), abs=1e-12)
    runs = [c for c in pu.columns if c != "none" and not c.endswith("@worst")]
    assert row("ndcg", "all@worst") == pytest.approx(pu[["none"] + runs].min(axis=1).mean(), abs=1e-12)
    assert row("ndcg", "all@worst") <= row("ndcg", "typo@worst")


def test_order_sensitivity(run):
    res, _, _ = run
    m = res.metrics
    tau = m[(m.metric == "kendall_tau") & (m.perturbation == "candidate_order@1")]
    by = tau.set_index("model")["value"]
    assert by["listwise"] < 0.999  # position bias: the order changes its scores
    assert by["pop"] == pytest.approx(1.0)  # pointwise: the same scores in any order


def test_perturbed_texts_do_not_depend_on_the_suite_models(run, tmp_path):
    """The same model sees the same perturbed texts whether or not other models are in the
    suite (RNG keyed by seed, item id, perturbation, severity)."""
    from harness.runner import run_suite
    _, seen_full, _ = run
    alone = SUITE.format(models=TEXT_MODELS.split("[[models]]\nname = \"tests.robustness_"
                                                  "plugins:Listwise\"")[0]).replace(
        '[[models]]\nname = "pop"\n', "").replace('models = ["pop", "listwise"]', "")
    (tmp_path / "s.toml").write_text(alone)
    plugins.SEEN.clear()
    from harness.perturb.preflight import RobustnessWarning
    with pytest.warns(RobustnessWarning, match=r"'candidate_order' applies to no model.*"
                                               r"\['words'\] are pointwise"):
        res = run_suite(load_suite(tmp_path / "s.toml"), tmp_path / "out", quiet=True)
    assert not res.failed and {c["model"] for c in res.manifest["cells"]} == {"words"}
    assert sorted(plugins.SEEN) == sorted(seen_full) and len(plugins.SEEN) == 3


def test_leaderboard_report_plots_and_check(run, tmp_path):
    from harness.check.compare import compare_runs
    from harness.report import ReportOptions, build_report, write_report
    res, _, _ = run
    assert "## Robustness" in res.leaderboard and "worst all Δ%" in res.leaderboard
    report = build_report([res.run_dir], ReportOptions(n_boot=50))
    assert report.summary and report.summary[0].section == "holistic"
    cols = report.summary[0].columns
    assert cols[0] == "accuracy (ndcg@10)" and "robustness: worst-case Δ%" in cols
    files = write_report(report, tmp_path / "rep", ["md", "html", "csv", "latex"])
    md = (tmp_path / "rep" / "report.md").read_text()
    assert md.index("## Holistic leaderboard") < md.index("## Leaderboards")
    assert "### Table H1:" in md and "## Robustness summary" in md
    degr = [f for f in files if f.name.endswith("__degradation.png")]
    assert degr and all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in degr)
    assert "table-H1" in (tmp_path / "rep" / "report.html").read_text()
    copy = tmp_path / "copy"
    shutil.copytree(res.run_dir, copy)
    check = compare_runs(copy, res.run_dir)  # every robustness row has a declared direction
    assert check.passed and (check.rows["pass"] == "robustness").sum() > 50


# --- the holistic leaderboard ------------------------------------------------------------

def test_win_rates_hand_case():
    from harness.report.holistic import win_rates
    assert win_rates({"a": 3, "b": 1, "c": 1, "d": float("nan")}, True) == \
        {"a": 1.0, "b": 0.25, "c": 0.25}
    assert win_rates({"a": 3, "b": 1}, False) == {"a": 0.0, "b": 1.0}


def test_holistic_columns_on_fairness_robustness_efficiency_rows(tmp_path):
    from harness.report.holistic import holistic_tables
    from tests.report_data import make_run
    from harness.report.load import load_runs
    _, metrics, _ = load_runs([make_run(tmp_path / "r", sections=True, seeds=(0,))])
    t = holistic_tables(metrics)[0]
    assert t.columns == ["accuracy (ndcg@10)", "fairness: largest group gap (ndcg@10)",
                         "efficiency: p90 latency ms", "efficiency: throughput users/s",
                         "mean win rate"]
    d = t.data.set_index(["model", "column"])["value"]
    acc = metrics[(metrics["pass"] == "accuracy") & (metrics.metric == "ndcg")
                  & (metrics.k == 10)].groupby("model")["value"].mean()
    fair = metrics[(metrics["pass"] == "fairness") & (metrics.k == 10)]
    for m in acc.index:
        assert d[(m, "accuracy (ndcg@10)")] == pytest.approx(acc[m])
        f = fair[fair.model == m].assign(a=lambda x: x["slice"].str.split("=").str[0])
        gap = f.groupby("a")["value"].agg(lambda v: v.max() - v.min()).max()
        assert d[(m, "fairness: largest group gap (ndcg@10)")] == pytest.approx(gap)
    wr = t.data[t.data.column == "mean win rate"].set_index("model")["value"]
    per = t.data[t.data.column != "mean win rate"].groupby("model")["win_rate"].mean()
    assert np.allclose(wr.sort_index(), per.sort_index())


@pytest.mark.skipif(CHROMIUM is None, reason="Debian package 'chromium' is not installed "
                    "(the test setup installs it)")
def test_holistic_html_in_headless_chromium(run, tmp_path):
    from harness.report import ReportOptions, build_report, write_report
    res, _, _ = run
    write_report(build_report([res.run_dir], ReportOptions(n_boot=20)), tmp_path / "rep",
                 ["html"], plots=False)
    page = tmp_path / "rep" / "report.html"
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    dom = out.stdout
    assert '<table id="table-H1" class="holistic">' in dom
    assert "<th>mean win rate</th>" in dom and "<td>listwise</td>" in dom
    assert dom.index("Holistic leaderboard") < dom.index("Leaderboards</h2>")


# --- text views of the LLM recommenders ------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    from harness.data import load_dataset
    from harness.splits import make_split
    ds = load_dataset("synthetic", n_users=30, n_items=40, n_interactions=500)
    return ds, make_split(ds, "random_holdout", {}, seed=0)


def test_llm_embed_re_encodes_only_changed_texts(small, tmp_path, monkeypatch):
    import harness.llm.embed as embed
    from harness.perturb import make
    from harness.perturb.view import text_view, view_item_texts
    ds, split = small
    model = embed.LLMEmbed(seed=0)
    model.runtime = {"cache_dir": tmp_path, "use_cache": True}
    model.fit(split, ds)
    users, items = torch.arange(ds.n_users), torch.arange(ds.n_items)
    clean = model.score(users, items).clone()
    calls = []
    real = embed.encode
    monkeypatch.setattr(embed, "encode", lambda tok, m, texts, *a, **k: (
        calls.append(list(texts)), real(tok, m, texts, *a, **k))[1])
    view, _ = text_view(make("field_drop"), 0.4, 0, ds, "items", ["class"], "fd")
    before, _ = view_item_texts(ds, "auto", None)
    after, _ = view_item_texts(ds, "auto", view)
    changed = {b for a, b in zip(before, after) if a != b}
    model.set_text_view(view)
    assert len(calls) == 1 and set(calls[0]) == changed and 0 < len(changed) < ds.n_items
    assert not torch.equal(model.score(users, items), clean)
    model.set_text_view(view)  # the same view again: nothing to encode
    zero, _ = text_view(make("field_drop"), 0.0, 0, ds, "items", ["class"], "fd0")
    model.set_text_view(zero)  # severity 0: identical texts, nothing to encode
    assert len(calls) == 1
    model.set_text_view(None)
    assert torch.equal(model.score(users, items), clean)
    assert model.text_targets == ("items",)


def test_llm_rank_is_pointwise_and_reads_text_views(small):
    from harness.llm.rank import LLMRank
    from harness.perturb import make
    from harness.perturb.view import text_view
    ds, split = small
    model = LLMRank(seed=0, history_len=3)
    model.fit(split, ds)
    users = torch.tensor([0, 1])
    lists = torch.tensor([[3, 8, 1, 12], [7, 2, 9, 4]])
    clean = model.score_candidates(users, lists)
    perm = torch.tensor([[3, 2, 0, 1], [1, 3, 0, 2]])
    shuffled = model.score_candidates(users, torch.gather(lists, 1, perm))
    back = torch.empty_like(shuffled).scatter_(1, perm, shuffled)
    torch.testing.assert_close(back, clean, atol=1e-4, rtol=0)  # pointwise: order-invariant
    view, _ = text_view(make("typo_keyboard"), 0.5, 0, ds, "items", None, "t")
    model.set_text_view(view)
    assert not torch.allclose(model.score_candidates(users, lists), clean, atol=1e-3)
    model.set_text_view(None)
    torch.testing.assert_close(model.score_candidates(users, lists), clean, atol=1e-5, rtol=0)


# --- bad input ----------------------------------------------------------------------------

BASE = SUITE.split("[robustness]")[0].format(models=TEXT_MODELS)


@pytest.mark.parametrize("table,match", [
    ('[[robustness.perturbations]]\nname = "typo_keybord"\nseverities = [0.1]',
     r"perturbations\[0\]\.name\] unknown value 'typo_keybord'.*did you mean 'typo_keyboard'"),
    ('[[robustness.perturbations]]\nname = "case"\nseverities = [0.1, 1.5]',
     r"severities\[1\]\] severity must be in \[0, 1\], got 1.5"),
    ('[[robustness.perturbations]]\nname = "case"\nseverities = ["high"]',
     r"severities\] must be a non-empty list of numbers"),
    ('[[robustness.perturbations]]\nname = "case"',
     r"severities\] missing required key"),
    ('[[robustness.perturbations]]\nname = "case"\nseverities = [0.1]\nseverty = 1',
     r"perturbations\[0\]\.severty\] unknown key.*did you mean 'severities'"),
    ('[[robustness.perturbations]]\nname = "train_drop"\nseverities = [0.1]\ntarget = "users"',
     r"\.target\] only text perturbations take 'target'"),
    ('[[robustness.perturbations]]\nname = "case"\nseverities = [0.1]\nparams = {mode = "up"}',
     r"params\.mode\] unknown value 'up'.*did you mean 'upper'"),
    ('[[robustness.perturbations]]\nname = "case"\nseverities = [0.1]\n'
     '[[robustness.perturbations]]\nname = "case"\nseverities = [0.2]',
     r"perturbations\[1\]\.label\] duplicate label 'case'"),
    ('rbo_p = 1.0\n[[robustness.perturbations]]\nname = "case"\nseverities = [0.1]',
     r"robustness\.rbo_p\] must be in \(0, 1\)"),
    ('kendall = "yes"\n[[robustness.perturbations]]\nname = "case"\nseverities = [0.1]',
     r"robustness\.kendall\] must be bool"),
    ('models = ["nope"]\n[[robustness.perturbations]]\nname = "case"\nseverities = [0.1]',
     r"robustness\.models\[0\]\] unknown value 'nope'"),
    ("seed = 1", r"robustness\.perturbations\] missing or empty"),
])
def test_bad_robustness_tables(table, match):
    import tomllib
    with pytest.raises(SuiteError, match=match):
        parse_suite(tomllib.loads(BASE + "[robustness]\n" + table), "s.toml")


def test_preflight_missing_field_and_exit_code(tmp_path, capsys):
    from harness.cli import main
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE + '[robustness]\n[[robustness.perturbations]]\nname = "field_drop"\n'
                   'severities = [0.5]\nfields = ["director", "class"]\n')
    assert main(["run", str(bad), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "perturbations[0].fields" in err and "['director']" in err
    assert not (tmp_path / "o").exists()
    title = tmp_path / "title.toml"
    title.write_text(BASE + '[robustness]\n[[robustness.perturbations]]\nname = "title_format"'
                     '\nseverities = [0.5]\ntarget = "users"\n')
    assert main(["run", str(title), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "perturbations[0].name" in capsys.readouterr().err


def test_text_perturbation_without_text_model_warns_and_runs(tmp_path):
    from harness.perturb.preflight import RobustnessWarning
    from harness.runner import run_suite
    suite = SUITE.split("[robustness]")[0].format(models="") + (
        '[robustness]\n[[robustness.perturbations]]\nname = "synonym"\nseverities = [0.5]\n'
        '[[robustness.perturbations]]\nname = "train_drop"\nseverities = [0.2]\n')
    (tmp_path / "s.toml").write_text(suite)
    with pytest.warns(RobustnessWarning, match=r"'synonym' applies to no model.*\['pop'\]"):
        res = run_suite(load_suite(tmp_path / "s.toml"), tmp_path / "out", quiet=True)
    assert not res.failed
    assert set(res.metrics[res.metrics["pass"] == "robustness"]["perturbation"]) == {
        "train_drop@0.2", "interactions@worst", "all@worst"}


def test_suite_file_and_schema():
    """The shipped suite loads, and the `[robustness]` JSON Schema (harness schema) accepts it
    and rejects a severity outside [0, 1] and an unknown perturbation."""
    import tomllib
    import jsonschema
    from harness.passes import get
    path = Path(__file__).resolve().parent.parent / "suites" / "ml100k-robustness.toml"
    spec = load_suite(path).passes["robustness"]
    assert {p.family for p in spec.perturbations} == {
        "typo", "format", "words", "fields", "interactions", "history", "order"}
    schema = get("robustness").schema()
    raw = tomllib.loads(path.read_text())["robustness"]
    jsonschema.validate(raw, schema)
    for bad in ({"name": "case", "severities": [1.5]}, {"name": "cse", "severities": [0.1]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"perturbations": [bad]}, schema)
