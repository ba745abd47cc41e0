"""`harness report`: tables per (dataset, split fingerprint, target, protocol), statistics checked
against ranx / scipy, merging shards, bad input, sections, plots, renderers, HTML in Chromium."""

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from harness.cli import main
from harness.report import stats
from harness.report.plots import pareto_front
from tests.report_data import make_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def report(args, capsys=None, plots=False) -> tuple[int, str, str]:
    """`harness report ARGS` (without plots unless asked: matplotlib takes time)."""
    rc = main(["report", *map(str, args), *([] if plots else ["--no-plots"])])
    if capsys is None:
        return rc, "", ""
    out, err = capsys.readouterr()
    return rc, out, err


def read_csv(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "report.csv", keep_default_na=True)


# --- a real run: p-values equal ranx.compare on the TREC runs of the same cells ------------

SUITE = """
[suite]
name = "rep"
seeds = [0]
[[datasets]]
name = "synthetic"
n_users = 150
n_items = 90
n_interactions = 3000
[[splits]]
protocol = "random_holdout"
[evaluation]
ks = [5, 10]
[[models]]
name = "pop"
[[models]]
name = "random"
[[models]]
name = "ease"
[[models]]
name = "itemknn"
"""


def test_real_run_report_matches_ranx_compare(tmp_path, write_suite, capsys):
    from ranx import Qrels, Run, compare
    assert main(["run", str(write_suite(SUITE)), "--out", str(tmp_path), "--save-runs",
                 "--quiet"]) == 0
    run_dir = next((tmp_path / "rep").iterdir())
    capsys.readouterr()
    rc, out, _ = report([run_dir, "--format", "md,csv,html,latex", "--reference", "pop",
                         "--metrics", "ndcg@10,map@10,recall"], capsys)
    assert rc == 0
    rep = run_dir / "report"
    assert {p.name for p in rep.iterdir()} >= {"report.md", "report.csv", "report.html",
                                               "report.tex"}
    assert out == (rep / "report.md").read_text() + "\n"  # stdout is the markdown report
    csv = read_csv(rep)
    assert set(csv["model"]) == {"pop", "random", "ease", "itemknn"}
    # column selection: ndcg@10, map@10, recall@5, recall@10
    assert set(zip(csv.metric, csv.k)) == {("ndcg", 10), ("map", 10), ("recall", 5),
                                           ("recall", 10)}
    metrics = pd.read_csv(run_dir / "metrics.csv")
    qrels = Qrels.from_file(str(next((run_dir / "runs").glob("*.qrels"))), kind="trec")
    runs = []
    for model in ("pop", "random", "ease", "itemknn"):
        cell = metrics[metrics.model == model]["cell"].iloc[0]
        run = Run.from_file(str(run_dir / "runs" / f"{cell}.run"), kind="trec")
        run.name = model
        runs.append(run)
    # one ranx metric only: each one costs a numba compilation (seconds)
    ranx_report = compare(qrels, runs, metrics=["ndcg@10"], stat_test="student")
    for model in ("random", "ease", "itemknn"):
        for metric in ("ndcg",):
            row = csv[(csv.model == model) & (csv.metric == metric) & (csv.k == 10)].iloc[0]
            expect = ranx_report.comparisons[frozenset([model, "pop"])][f"{metric}@10"]
            assert row["p"] == pytest.approx(float(expect["p_value"]), rel=1e-9, abs=1e-300)
            assert row["mean"] == pytest.approx(ranx_report.results[model][f"{metric}@10"],
                                                abs=1e-9)
            assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    # Holm over the 3 models x 4 columns = 12 comparisons of the table
    assert csv["p"].notna().sum() == 12
    assert np.allclose(csv["p_holm"].dropna(), stats.holm(csv["p"].dropna().to_numpy()))
    assert "| pop (ref) |" in out


# --- seeds: per-user values averaged over seeds, then bootstrap / paired test --------------

def test_seed_averaging_ci_and_tests_by_hand(tmp_path, capsys):
    run = make_run(tmp_path / "r", seeds=(0, 1, 2))
    rc, out, _ = report([run, "--format", "csv,md", "--reference", "pop", "--metrics",
                         "ndcg@10", "--bootstrap", "500", "--seed", "3"], capsys)
    assert rc == 0
    csv = read_csv(run / "report")
    pu = pd.read_parquet(run / "per_user.parquet")
    pu = pu[(pu.metric == "ndcg") & (pu.k == 10)]
    pu = pu.assign(model=pu.cell.str.split("__").str[3])
    u = pu.groupby(["user", "model"])["value"].mean().unstack()  # seeds first
    m = pd.read_parquet(run / "metrics.parquet")
    m = m[(m.metric == "ndcg") & (m.k == 10)]
    for model in u.columns:
        row = csv[csv.model == model].iloc[0]
        seed_means = m[m.model == model]["value"]
        assert row["mean"] == pytest.approx(seed_means.mean(), abs=1e-12)
        assert row["mean"] == pytest.approx(u[model].mean(), abs=1e-12)  # same users per seed
        assert row["std_seeds"] == pytest.approx(seed_means.std(ddof=1), abs=1e-12)
        lo, hi = stats.bootstrap_ci(u[model].to_numpy(), 500, 3)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi), abs=1e-12)
        if model != "pop":
            p = sps.ttest_rel(u[model], u["pop"]).pvalue
            assert row["p"] == pytest.approx(p, rel=1e-9)
    # deterministic per seed, different with another seed
    again = (run / "report" / "report.csv").read_text()
    assert report([run, "--format", "csv", "--reference", "pop", "--metrics", "ndcg@10",
                   "--bootstrap", "500", "--seed", "3"])[0] == 0
    assert (run / "report" / "report.csv").read_text() == again
    report([run, "--format", "csv", "--reference", "pop", "--metrics", "ndcg@10",
            "--bootstrap", "500", "--seed", "4"])
    assert (run / "report" / "report.csv").read_text() != again


@pytest.mark.parametrize("test", ["wilcoxon", "randomization"])
def test_other_paired_tests(tmp_path, capsys, test):
    run = make_run(tmp_path / "r", models={"a": 0.30, "b": 0.29, "c": 0.1}, seeds=(0,))
    rc, out, _ = report([run, "--format", "csv", "--reference", "a", "--metrics", "ndcg@10",
                         "--test", test, "--permutations", "2000"], capsys)
    assert rc == 0
    csv = read_csv(run / "report").set_index("model")
    pu = pd.read_parquet(run / "per_user.parquet")
    pu = pu[(pu.metric == "ndcg") & (pu.k == 10)]
    v = {m: pu[pu.cell.str.contains(f"__{m}__")].sort_values("user")["value"].to_numpy()
         for m in "abc"}
    for m in "bc":
        expect = (sps.wilcoxon(v[m] - v["a"]).pvalue if test == "wilcoxon"
                  else stats.randomization(v[m], v["a"], 2000, 0))
        assert csv.loc[m, "p"] == pytest.approx(expect, rel=1e-9)
    name = "Wilcoxon signed-rank" if test == "wilcoxon" else "randomization test (2000"
    assert name in out


# --- merging run directories --------------------------------------------------------------

def _numbers(out: Path) -> pd.DataFrame:
    return read_csv(out).sort_values(["table", "model", "metric", "k"]).reset_index(drop=True)


def test_shards_merge_into_the_same_report_as_one_run(tmp_path, capsys):
    whole = make_run(tmp_path / "whole", seeds=(0, 1))
    s0 = make_run(tmp_path / "s0", seeds=(0,))
    s1 = make_run(tmp_path / "s1", seeds=(1,))
    assert report([whole, "--format", "csv"], capsys)[0] == 0
    assert report([s0, s1, "--out", tmp_path / "merged", "--format", "csv"], capsys)[0] == 0
    pd.testing.assert_frame_equal(_numbers(whole / "report"), _numbers(tmp_path / "merged"))
    # the same rows in two directories (identical): kept once
    shutil.copytree(s1, tmp_path / "s1copy")
    assert report([s0, s1, tmp_path / "s1copy", "--out", tmp_path / "m2", "--format", "csv"],
                  capsys)[0] == 0
    pd.testing.assert_frame_equal(_numbers(whole / "report"), _numbers(tmp_path / "m2"))


def test_conflicting_duplicates_are_an_error(tmp_path, capsys):
    a = make_run(tmp_path / "a", seeds=(0,))
    b = make_run(tmp_path / "b", seeds=(0,), shift=0.01)
    rc, _, err = report([a, b, "--out", tmp_path / "o"], capsys)
    assert rc == 2
    assert "conflicting duplicate metrics row" in err and str(a) in err and str(b) in err
    # per-user values differing while the run-level rows agree: also an error
    c = tmp_path / "c"
    shutil.copytree(a, c)
    pu = pd.read_parquet(c / "per_user.parquet")
    pu.loc[0, "value"] += 0.5
    pu.to_parquet(c / "per_user.parquet", index=False)
    rc, _, err = report([a, c, "--out", tmp_path / "o"], capsys)
    assert rc == 2 and "conflicting duplicate per-user row" in err


def test_same_label_different_model_parameters_is_an_error(tmp_path, capsys):
    s0 = make_run(tmp_path / "s0", seeds=(0,))
    s1 = make_run(tmp_path / "s1", seeds=(1,))
    for run, k in ((s0, 50), (s1, 100)):
        man = json.loads((run / "manifest.json").read_text())
        for c in man["cells"]:
            c.update(recommender=c["model"], params={"k": k} if c["model"] == "itemknn" else {})
        (run / "manifest.json").write_text(json.dumps(man))
    rc, _, err = report([s0, s1, "--out", tmp_path / "o"], capsys)
    assert rc == 2 and "model 'itemknn' is defined differently" in err
    assert '"k": 50' in err and '"k": 100' in err and str(s0) in err


# --- bad input ----------------------------------------------------------------------------

def test_unfinished_run_dir_is_a_user_error(tmp_path, capsys):
    unfinished = make_run(tmp_path / "suite" / "r1", manifest=False)
    rc, out, err = report([unfinished], capsys)
    assert rc == 2 and str(unfinished) in err and "no manifest.json" in err
    assert not (unfinished / "report").exists()
    make_run(tmp_path / "suite" / "r2")
    rc, _, err = report([tmp_path / "suite"], capsys)
    assert rc == 2 and "finished runs below it" in err and "r2" in err
    rc, _, err = report([tmp_path / "nope"], capsys)
    assert rc == 2 and "not found" in err
    good = make_run(tmp_path / "good")
    rc, _, err = report([good, unfinished, "--out", tmp_path / "o"], capsys)
    assert rc == 2 and str(unfinished) in err


def test_cli_option_errors(tmp_path, capsys):
    run = make_run(tmp_path / "r", seeds=(0,))
    rc, _, err = report([run, "--metrics", "ndgc@10"], capsys)
    assert rc == 2 and "did you mean 'ndcg@10'" in err
    rc, _, err = report([run, "--format", "pdf"], capsys)
    assert rc == 2 and "--format" in err
    rc, _, err = report([run, run.parent / "other"], capsys)
    assert rc == 2 and "--out is required" in err
    rc, _, err = report([run, "--alpha", "1.5"], capsys)
    assert rc == 2 and "--alpha" in err
    with pytest.raises(SystemExit):
        main(["report", str(run), "--test", "z"])


def test_different_fingerprints_protocols_and_datasets_never_share_a_table(tmp_path, capsys):
    a = make_run(tmp_path / "a", fingerprint="fpA", seeds=(0,))
    b = make_run(tmp_path / "b", fingerprint="fpB", seeds=(0,))
    c = make_run(tmp_path / "c", fingerprint="fpA", seeds=(0,), protocol="sampled-100")
    d = make_run(tmp_path / "d", dataset="other", seeds=(0,))
    # same protocol label as `a`, defined differently (other parameters)
    e = make_run(tmp_path / "e", fingerprint="fpA", seeds=(1,))
    man = json.loads((e / "manifest.json").read_text())
    next(iter(man["candidates"].values()))["params"] = {"seed": 0, "max_users": 50}
    (e / "manifest.json").write_text(json.dumps(man))
    rc, out, _ = report([a, b, c, d, e, "--out", tmp_path / "o", "--format", "csv,md"],
                        capsys)
    assert rc == 0
    csv = read_csv(tmp_path / "o")
    keys = csv.groupby("table")[["dataset", "split_fingerprint", "protocol",
                                 "candidates_def"]].nunique()
    assert len(keys) == 5 and (keys == 1).all().all()
    assert csv.groupby("table")["model"].count().eq(4 * 4).all()  # 4 models x 4 columns
    assert out.count("### Table") == 5
    assert "split fingerprint fpB ≠ fpA" in out and "candidates sampled-100 ≠ full" in out
    assert "candidate definition full(max_users=50, seed=0) ≠ full(seed=0)" in out
    assert "never pooled or compared" in out
    # a and b share cell names (different split fingerprints): a's table is as if alone
    report([a, "--format", "csv"], capsys)
    alone = read_csv(a / "report").drop(columns="table")
    merged = csv[(csv.split_fingerprint == "fpA") & (csv.protocol == "full")
                 & (csv.candidates_def == "full(seed=0)")]
    pd.testing.assert_frame_equal(merged.drop(columns="table").reset_index(drop=True), alone)


def test_reference_missing_everywhere_or_in_some_tables(tmp_path, capsys):
    a = make_run(tmp_path / "a", models={"ease": 0.3, "pop": 0.1}, fingerprint="fpA",
                 seeds=(0,))
    b = make_run(tmp_path / "b", models={"itemknn": 0.3, "random": 0.1}, fingerprint="fpB",
                 seeds=(0,))
    rc, _, err = report([a, b, "--out", tmp_path / "o", "--reference", "itemnn"], capsys)
    assert rc == 2
    assert "--reference 'itemnn' is in no table" in err and "did you mean 'itemknn'" in err
    assert "table 1" in err and "ease, pop" in err and "itemknn, random" in err
    rc, out, _ = report([a, b, "--out", tmp_path / "o", "--reference", "pop", "--format",
                         "csv,md"], capsys)
    assert rc == 0
    assert ("No significance tests in this table: reference 'pop' is not in it (models here: "
            "itemknn, random)") in out
    csv = read_csv(tmp_path / "o")
    assert csv[csv.split_fingerprint == "fpB"]["p"].isna().all()
    assert csv[(csv.split_fingerprint == "fpA") & (csv.model == "ease")]["p"].notna().all()
    # default reference: each table's top model by its first column
    rc, out, _ = report([a, b, "--out", tmp_path / "o"], capsys)
    assert "| ease (ref) |" in out and "| itemknn (ref) |" in out


# --- sections, plots, renderers -----------------------------------------------------------

def test_sections_tables_and_plots(tmp_path, capsys):
    run = make_run(tmp_path / "r", sections=True, seeds=(0, 1))
    rc, out, _ = report([run, "--format", "md,csv,latex", "--metrics", "ndcg"], capsys,
                        plots=True)
    assert rc == 0
    for title in ("## Leaderboards", "## Fairness (per group)", "## Robustness (perturbed inputs)",
                  "## Efficiency"):
        assert title in out
    csv = read_csv(run / "report")
    fair = csv[(csv.section == "fairness") & (csv.attribute == "gender")]
    gap = fair[(fair.model == "ease") & (fair.slice == "gap(max-min)")]["mean"].item()
    f, mm = (fair[(fair.model == "ease") & (fair.slice == s)]["mean"].item()
             for s in ("gender=F", "gender=M"))
    assert gap == pytest.approx(abs(mm - f))
    rob = csv[csv.section == "robustness"]
    assert sorted(set(rob.severity)) == [0.0, 0.1, 0.2, 0.4]
    clean = rob[(rob.model == "pop") & (rob.severity == 0)]["mean"].item()
    acc = csv[(csv.section == "accuracy") & (csv.model == "pop") & (csv.k == 10)]["mean"].item()
    assert clean == pytest.approx(acc)
    assert "| model | clean | typo@0.1 | typo@0.2 | typo@0.4 | worst Δ% |" in out
    eff = out[out.index("## Efficiency"):]
    # lowest latency (random) and highest throughput (random) are bold
    assert "| random | **0.201 ± 0.001414** | **0.402 ± 0.002828** | **2512 ± 17.68** |" in eff
    names = {p.name for p in (run / "report").iterdir()}
    for kind in ("per_k", "groups", "degradation", "pareto"):
        pngs = [n for n in names if n.endswith(f"__{kind}.png")]
        assert pngs, kind
        for png in pngs:
            assert (run / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            ET.parse(run / "report" / png.replace(".png", ".svg"))  # well-formed SVG
    assert "__pareto.png)" in out
    tex = (run / "report" / "report.tex").read_text()
    assert r"\textbf{" in tex and r"latency\_p90\_ms" in tex and r"\toprule" in tex
    assert r"$^\dagger$" in tex and "±" not in tex


def test_pareto_front():
    lat = [4.0, 9.0, 0.5, 0.4, 4.0, np.nan]
    q = [0.32, 0.31, 0.16, 0.09, 0.30, 0.9]
    assert pareto_front(lat, q) == [3, 2, 0]  # by ascending latency; 4 (dominated by 0), 1, nan out
    assert pareto_front([1, 1], [0.5, 0.5]) == [0, 1]  # equal points do not dominate each other
    assert pareto_front([], []) == []


def test_markdown_marks_best_and_significance(tmp_path, capsys):
    run = make_run(tmp_path / "r", models={"a": 0.3, "b": 0.4, "c": 0.05}, seeds=(0,))
    rc, out, _ = report([run, "--metrics", "ndcg@10", "--reference", "c"], capsys)
    assert rc == 0
    rows = {line.split("|")[1].strip(): line for line in out.splitlines()
            if line.startswith("| ") and "model" not in line}
    best = [name for name, line in rows.items() if "**" in line]
    assert best == ["b"] and "c (ref)" in rows and list(rows)[0] == "b"  # sorted, best bold
    assert "† p<0.001" in rows["a"] and "† p<0.001" in rows["b"]
    assert "p=" not in rows["c (ref)"] and "p<" not in rows["c (ref)"]


# --- HTML in a real browser ---------------------------------------------------------------

def _chromium(args, tmp_path: Path, name: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{name}"
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian package 'chromium' (/usr/bin/chromium) is "
                    "not installed: apt-get install -y chromium (the test setup installs it)")
def test_html_report_loads_in_headless_chromium(tmp_path, capsys):
    run = make_run(tmp_path / "r", sections=True, seeds=(0, 1))
    assert report([run, "--format", "html", "--metrics", "ndcg,recall@10"], capsys,
                  plots=True)[0] == 0
    page = run / "report" / "report.html"
    text = page.read_text()
    # self-contained: every image is a data: URI, nothing is fetched from elsewhere
    assert text.count('src="data:image/png;base64,') == 5
    assert "http://" not in text and "https://" not in text and "<link" not in text
    dom = _chromium(["--dump-dom", page.as_uri()], tmp_path, "dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "<title>harness report: synth-suite</title>" in html
    assert '<table id="table-1" class="accuracy">' in html
    for needle in ("<th>ndcg@10</th>", "<th>recall@10</th>", "<td>ease</td>",
                   "<td>itemknn</td>", "<td>pop</td>", "<td>random</td>"):
        assert needle in html
    # the embedded PNGs decode in the browser: count images with a natural width after load
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", "<script>addEventListener('load', () => "
                                  "document.body.setAttribute('data-ok', [...document.images]"
                                  ".filter(i => i.complete && i.naturalWidth > 0).length))"
                                  "</script></body>"))
    dom = _chromium(["--dump-dom", probe.as_uri()], tmp_path, "probe")
    assert 'data-ok="5"' in dom.stdout
    shot = tmp_path / "report.png"
    res = _chromium(["--window-size=1300,2400", f"--screenshot={shot}", page.as_uri()],
                    tmp_path, "shot")
    assert res.returncode == 0 and shot.read_bytes()[:4] == b"\x89PNG"
