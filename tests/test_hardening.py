"""Hardening (issue 16, issue 10 items 6 and 8): every problem of a suite at once with file,
line, key and nearest valid value; the issue's malformed values; checks against the loaded
datasets; names that become paths; markdown with `|` in labels; plugin errors; the JSON
Schema of the suite format."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import jsonschema
import pytest
import tomllib

from harness import registry
from harness.cli import main
from harness.errors import SuiteError, UserError
from harness.suite import load_suite
from harness.tomllines import key_lines, lookup

ROOT = Path(__file__).resolve().parent.parent
SMALL = """[suite]
name = "hz"
[[datasets]]
name = "synthetic"
n_users = 40
n_items = 30
n_interactions = 400
[[splits]]
protocol = "random_holdout"
[evaluation]
ks = [5]
[[models]]
name = "pop"
"""


def run(tmp_path, text: str, *extra: str, capsys=None, name: str = "s.toml"):
    """`harness run` in-process: (exit code, stderr, out dir)."""
    path = tmp_path / name
    path.write_text(text)
    out = tmp_path / "out"
    code = main(["run", str(path), "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err if capsys is not None else ""
    return code, err, out


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


# ---- every problem at once -----------------------------------------------------------------

ALL_AT_ONCE = """[suite]
name = "../x"
seeds = [0, -1]

[[datasets]]
name = "synthetic"
n_users = 0

[[splits]]
protocol = 3

[evaluation]
metrics = [5, ["ndcg"], "ndgc"]
ks = [9223372036854775807]

[[models]]
name = "als"
params = { factors = -8 }

[[models]]
name = "itemknn"
params = { k = 0 }

[[models]]
name = "no_such_module_h16:Thing"

[[candidates]]
protocol = "full"
models = [3]

[efficiency]
timeout_s = nan
"""


def test_every_problem_is_reported_at_once_with_line_and_nearest_value(tmp_path, capsys):
    code, err, out = run(tmp_path, ALL_AT_ONCE, capsys=capsys)
    assert code == 2 and "Traceback" not in err and not out.exists()
    expected = [(2, "suite.name", "nearest valid: 'x'"), (3, "suite.seeds", "nearest valid: 0"),
                (7, "datasets[0].n_users", "nearest valid: 1"),
                (10, "splits[0].protocol", "must be str, got 3"),
                (13, "evaluation.metrics[0]", "got 5"),
                (13, "evaluation.metrics[1]", "got ['ndcg']"),
                (13, "evaluation.metrics[2]", "did you mean 'ndcg'"),
                (14, "evaluation.ks", "nearest valid: 100000"),
                (18, "models[0].params", "'factors' must be a positive integer"),
                (22, "models[1].params", "'k' must be a positive integer, got 0 (nearest valid: 1)"),
                (25, "models[2].name", "cannot import module 'no_such_module_h16'"),
                (29, "candidates[0].models[0]", "must be str, got 3"),
                (32, "efficiency.timeout_s", "must be a finite number, got nan")]
    lines = err.strip().splitlines()
    assert lines[0].endswith(f"{len(expected)} problems"), err
    for line, key, hint in expected:
        assert any(l.startswith(f"{tmp_path / 's.toml'}:{line}: [{key}]") and hint in l
                   for l in lines), (line, key, hint, err)


def test_suite_error_keeps_every_problem():
    with pytest.raises(SuiteError) as exc:
        from harness.suite import parse_suite
        parse_suite(tomllib.loads(ALL_AT_ONCE), "x.toml")
    assert len(exc.value.problems) == 13 and exc.value.key == "suite.name"


# ---- the issue's examples: values that used to pass the loader -------------------------------

@pytest.mark.parametrize("edit, key, hint", [
    (("[evaluation]", "[evaluation]\nmetrics = []"), "evaluation.metrics", "at least 1"),
    (("ks = [5]", "ks = [9223372036854775807]"), "evaluation.ks", "<= 100000"),
    (('name = "pop"', 'name = "als"\nparams = { factors = -8 }'), "models[0].params",
     "'factors'"),
    (('name = "hz"', 'name = "hz"\nseeds = [-3]'), "suite.seeds", "non-negative"),
    (('name = "pop"', 'name = "itemknn"\nparams = { k = 0 }'), "models[0].params", "'k'"),
    (("[evaluation]", "[efficiency]\ntimeout_s = nan\n[evaluation]"), "efficiency.timeout_s",
     "finite"),
    (('name = "hz"', 'name = ""'), "suite.name", "plain folder name"),
    (('name = "hz"', f'name = "hz"\nseeds = {list(range(1001))}'), "suite.seeds",
     "at most 1000"),
    (('ks = [5]', 'ks = [5]\nmetrics = [3]'), "evaluation.metrics[0]", "must be str"),
    (('ks = [5]', 'ks = [5]\nmetrics = [["ndcg"]]'), "evaluation.metrics[0]", "must be str"),
    (('protocol = "random_holdout"', 'protocol = 1'), "splits[0].protocol", "must be str"),
    (("[evaluation]", '[[candidates]]\nprotocol = "full"\nmodels = [1]\n[evaluation]'),
     "candidates[0].models[0]", "must be str"),
    (('name = "pop"', 'name = "bpr"\nparams = { lr = 0.0 }'), "models[0].params", "> 0"),
    (('name = "pop"', 'name = "ease"\nparams = { l2 = inf }'), "models[0].params", "finite"),
])
def test_issue_examples_exit_2_before_anything_is_written(tmp_path, capsys, edit, key, hint):
    code, err, out = run(tmp_path, SMALL.replace(*edit), capsys=capsys)
    assert code == 2 and "Traceback" not in err and not out.exists(), err
    assert f"[{key}]" in err and hint in err, err


def test_cli_seeds_and_run_id_are_checked(tmp_path, capsys):
    for extra, hint in ((["--seeds", "-1"], "--seeds"), (["--run-id", "../x"], "--run-id"),
                        (["--run-id", str(tmp_path / "abs")], "--run-id")):
        code, err, out = run(tmp_path, SMALL, *extra, capsys=capsys)
        assert code == 2 and hint in err and not out.exists(), err
        assert not (tmp_path / "abs").exists()


def test_model_init_validation_is_a_suite_error(tmp_path, capsys, monkeypatch):
    """A recommender whose __init__ rejects a value fails at load, under its params key."""
    (tmp_path / "strict_rec_h16.py").write_text(
        "from harness.recommender import Recommender\n"
        "class Strict(Recommender):\n"
        "    def __init__(self, heads: int = 2, width: int = 8, seed: int = 0):\n"
        "        super().__init__(seed)\n"
        "        if width % heads:\n"
        "            raise ValueError(f'width {width} is not a multiple of heads {heads}')\n"
        "    def fit(self, split, dataset): pass\n"
        "    def score(self, users, items): pass\n")
    monkeypatch.chdir(tmp_path)
    text = SMALL.replace('name = "pop"', 'name = "strict_rec_h16:Strict"\n'
                                         'params = { heads = 3 }')
    code, err, out = run(tmp_path, text, capsys=capsys)
    assert code == 2 and "[models[0].params]" in err and "not a multiple" in err, err
    sys.modules.pop("strict_rec_h16", None)


def test_checks_against_the_loaded_datasets(tmp_path, capsys):
    """k and sampled negatives larger than the catalog: exit 2 at preflight, nothing written."""
    text = SMALL.replace("ks = [5]", "ks = [5, 50]") + (
        '[[candidates]]\nprotocol = "sampled"\nn_negatives = 99\n')
    code, err, out = run(tmp_path, text, capsys=capsys)
    assert code == 2 and "Traceback" not in err, err
    assert "[evaluation.ks] k = 50 is larger than the catalog" in err
    assert "nearest valid: 30" in err and "[candidates[0].n_negatives]" in err
    assert "nearest valid: 29" in err
    assert not (out / "hz").exists()


# ---- names that become paths ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["../x", "ABSOLUTE", "..", ".hidden", "a/b", "-x", "x" * 101])
def test_hostile_suite_names_write_nothing(tmp_path, capsys, name):
    name = str(tmp_path / "abs") if name == "ABSOLUTE" else name
    before = files_under(tmp_path.parent)
    code, err, out = run(tmp_path, SMALL.replace('name = "hz"', f'name = {json.dumps(name)}'),
                         capsys=capsys)
    assert code == 2 and "[suite.name]" in err, err
    assert files_under(tmp_path.parent) - before == {tmp_path / "s.toml"}


@pytest.mark.parametrize("where, text", [
    ("datasets[0].label", ('name = "synthetic"', 'name = "synthetic"\nlabel = "../d"')),
    ("splits[0].name", ('protocol = "random_holdout"', 'protocol = "random_holdout"\n'
                                                       'name = "a/../../b"')),
    ("models[0].label", ('name = "pop"', 'name = "pop"\nlabel = "\\\\x"')),
    ("candidates[0].label", ("[evaluation]", '[[candidates]]\nprotocol = "full"\n'
                                             'label = "/abs"\n[evaluation]')),
    ("models[0].label", ('name = "pop"', 'name = "pop"\nlabel = "a\\nb"')),
])
def test_labels_with_separators_are_rejected(tmp_path, capsys, where, text):
    code, err, out = run(tmp_path, SMALL.replace(*text), capsys=capsys)
    assert code == 2 and f"[{where}]" in err and not out.exists(), err


def test_labels_with_the_same_file_name_are_rejected(tmp_path, capsys):
    text = SMALL + '[[models]]\nname = "pop"\nlabel = "a:b"\n[[models]]\nname = "pop"\n' \
                   'label = "a-b"\n'
    code, err, out = run(tmp_path, text, capsys=capsys)
    assert code == 2 and "[models[2]]" in err and "same file name" in err, err
    two = SMALL.replace('[[splits]]', '[[datasets]]\nname = "synthetic"\nlabel = "x__y"\n'
                                      '[[splits]]') + '[[splits]]\nprotocol = "random_holdout"' \
                                                      '\nname = "random_holdout__z"\n'
    two = two.replace('name = "synthetic"\nn_users', 'name = "synthetic"\nlabel = "x"\nn_users')
    two = two.replace('name = "random_holdout__z"', 'name = "y__random_holdout"')
    code, err, out = run(tmp_path, two, capsys=capsys)
    assert code == 2 and "same cell folder" in err, err


HOSTILE = SMALL.replace('name = "synthetic"', 'name = "synthetic"\nlabel = ".."').replace(
    'protocol = "random_holdout"', 'protocol = "random_holdout"\nname = "..|.."').replace(
    'name = "pop"', 'name = "pop"\nlabel = "po|p"') + (
    '[[models]]\nname = "itemknn"\nlabel = "knn | k=5 ..."\nparams = { k = 5 }\n'
    '[[candidates]]\nprotocol = "full"\nlabel = ".."\n')


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """A finished run whose labels are '..', '..|..', 'po|p' (with TREC files)."""
    root = tmp_path_factory.mktemp("hostile")
    cwd = root / "cwd"
    cwd.mkdir()
    (cwd / "s.toml").write_text(HOSTILE)
    import os
    old = os.getcwd()
    os.chdir(cwd)
    try:
        code = main(["run", "s.toml", "--out", "out", "--quiet", "--save-runs",
                     "--run-id", "r1"])
    finally:
        os.chdir(old)
    return code, root, cwd / "out" / "hz" / "r1"


def test_hostile_labels_write_only_inside_out(hostile_run):
    code, root, run_dir = hostile_run
    assert code == 0
    written = files_under(root)
    out = root / "cwd" / "out"
    assert written - {root / "cwd" / "s.toml"} <= files_under(out)
    assert all(out in p.parents for p in written if p.name != "s.toml")
    cells = sorted(p.name for p in (run_dir / "cells").iterdir())
    assert cells == ["..__..-..__..__knn---k=5-...__s0", "..__..-..__..__po-p__s0"]
    runs = sorted(p.name for p in (run_dir / "runs").iterdir())
    assert runs == ["..__..-..__..__knn---k=5-...__s0.run", "..__..-..__..__po-p__s0.run",
                    "..__..-..__..__test.qrels"]


def _md_tables(text: str) -> list[list[list[str]]]:
    """Tables of a markdown text as rows of cell texts, parsed by markdown-it-py (GFM tables)."""
    from markdown_it import MarkdownIt
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    tables, row, cell = [], None, None
    for t in tokens:
        if t.type == "table_open":
            tables.append([])
        elif t.type == "tr_open":
            row = []
        elif t.type == "tr_close":
            tables[-1].append(row)
        elif t.type in ("th_open", "td_open"):
            cell = ""
        elif t.type == "inline" and cell is not None:
            cell += t.content
        elif t.type in ("th_close", "td_close"):
            row.append(cell)
            cell = None
    return tables


def _assert_tables_keep_labels(text: str) -> None:
    tables = _md_tables(text)
    assert tables, text
    labels = set()
    for table in tables:
        width = len(table[0])
        assert all(len(r) == width for r in table), table  # no row split by a '|'
        labels |= {c.replace("\\|", "|") for r in table for c in r}
    for label in ("po|p", "knn | k=5 ..."):  # the report may append ' (ref)'
        assert any(c == label or c.startswith(label + " (") for c in labels), (label, labels)


def test_leaderboard_and_report_markdown_stay_valid_tables(hostile_run, tmp_path):
    code, root, run_dir = hostile_run
    _assert_tables_keep_labels((run_dir / "leaderboard.md").read_text())
    assert main(["report", str(run_dir), "--out", str(tmp_path / "rep"), "--no-plots",
                 "--bootstrap", "0", "--permutations", "200"]) == 0
    _assert_tables_keep_labels((tmp_path / "rep" / "report.md").read_text())


# ---- plugin errors (issue 10 item 6) -------------------------------------------------------

def test_missing_module_is_reported_under_the_model_name(tmp_path, capsys):
    text = SMALL.replace('name = "pop"', 'name = "my_missing_model_h16:MyModel"')
    code, err, _ = run(tmp_path, text, capsys=capsys)
    assert code == 2 and "[models[0].name]" in err and "[models[0].params]" not in err, err
    assert "current directory" in err and "my_model.py" in err


def test_module_class_is_found_in_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "cwd_model_h16.py").write_text(
        "import torch\nfrom harness.recommender import Recommender\n"
        "class Mine(Recommender):\n"
        "    def fit(self, split, dataset): self.n = split.dataset.n_items\n"
        "    def score(self, users, items): return torch.zeros(len(users), len(items))\n")
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)
    try:
        suite = load_suite(_write(tmp_path, SMALL.replace('name = "pop"',
                                                          'name = "cwd_model_h16:Mine"')))
        assert suite.models[0].name == "cwd_model_h16:Mine"
        assert sys.path == path_before  # the current directory was on sys.path only to import
    finally:
        sys.modules.pop("cwd_model_h16", None)


def test_plugin_that_fails_to_import_is_exit_2(tmp_path, capsys, monkeypatch):
    (tmp_path / "broken_h16.py").write_text("def oops(:\n")
    monkeypatch.chdir(tmp_path)
    code, err, _ = run(tmp_path, SMALL.replace('name = "pop"', 'name = "broken_h16:X"'),
                       capsys=capsys)
    assert code == 2 and "[models[0].name]" in err and "SyntaxError" in err, err
    (tmp_path / "ranges_h16.py").write_text(
        "from harness.recommender import Recommender\n"
        "class R(Recommender):\n"
        "    param_ranges = {'k': 'between 1 and 2'}\n"
        "    def __init__(self, k: int = 1, seed: int = 0): super().__init__(seed)\n"
        "    def fit(self, split, dataset): pass\n"
        "    def score(self, users, items): pass\n")
    code, err, _ = run(tmp_path, SMALL.replace('name = "pop"', 'name = "ranges_h16:R"\n'
                                                               'params = { k = 1 }'),
                       capsys=capsys)
    assert code == 2 and "[models[0].name]" in err and "param_ranges['k']" in err, err
    sys.modules.pop("ranges_h16", None)


@pytest.fixture
def clashing_distribution(tmp_path, monkeypatch):
    """An installed distribution (a real .dist-info on sys.path) whose entry point 'pop'
    clashes with the built-in, and one 'extra-pop' that does not."""
    site = tmp_path / "site"
    info = site / "clashpkg_h16-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: clashpkg-h16\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[harness.recommenders]\npop = tests.plugins:CountingPop\n"
        "extra-pop = tests.plugins:CountingPop\n")
    monkeypatch.syspath_prepend(str(site))
    return site


def test_entry_point_clashing_with_a_builtin_is_an_error(clashing_distribution, tmp_path,
                                                         capsys):
    with pytest.raises(UserError, match="entry point 'pop' = 'tests.plugins:CountingPop' of "
                                        "clashpkg-h16 clashes with the built-in 'pop'"):
        registry.resolve("pop")
    assert registry.resolve("extra-pop").__name__ == "CountingPop"
    code, err, _ = run(tmp_path, SMALL, capsys=capsys)
    assert code == 2 and "[models[0].name]" in err and "clashes" in err, err
    assert main(["list"]) == 0
    assert "error: entry point 'pop'" in capsys.readouterr().out


def test_list_shows_parameters_defaults_and_ranges(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    def block(name):
        lines = out.split(f"\n  {name} ")[1].splitlines()[1:]
        return [l.strip() for l in lines[:next(i for i, l in enumerate(lines)
                                                if not l.startswith("      "))]]
    assert block("itemknn") == ["k = 200  a positive integer", "shrink = 10.0  >= 0"]
    assert "factors = 64  a positive integer <= 100000" in block("als")
    assert block("pop") == []


def _write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


# ---- the JSON Schema (issue 10 item 8) -----------------------------------------------------

@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    out = tmp_path_factory.mktemp("schema") / "suite.schema.json"
    assert main(["schema", "--out", str(out)]) == 0
    s = json.loads(out.read_text())
    jsonschema.Draft202012Validator.check_schema(s)
    return s


def _snippets():
    """(file, TOML text) of every ```toml block of README.md and docs/*.md."""
    out = []
    for f in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = f.read_text(encoding="utf-8")
        for m in re.finditer(r"^( *)```toml\n(.*?)^\1```", text, re.S | re.M):
            out.append((f.name, "\n".join(l[len(m.group(1)):] for l in
                                          m.group(2).splitlines())))
    return out


def test_schema_accepts_every_suite_and_every_suite_snippet(schema):
    validator = jsonschema.Draft202012Validator(schema)
    suites = sorted((ROOT / "suites").glob("*.toml"))
    assert len(suites) >= 5
    for path in suites:
        raw = tomllib.loads(path.read_text())
        assert not list(validator.iter_errors(raw)), path
        load_suite(path)  # and the checker agrees
    partial = jsonschema.Draft202012Validator({k: v for k, v in schema.items()
                                               if k != "required"})
    checked = 0
    for name, text in _snippets():
        raw = tomllib.loads(text)
        if not set(raw) <= set(schema["properties"]):
            continue  # not suite content (e.g. pyproject.toml entry points)
        v = validator if "suite" in raw else partial
        assert not [e.message for e in v.iter_errors(raw)], (name, text)
        checked += 1
    assert checked >= 6


@pytest.mark.parametrize("edit", [
    lambda s: s["evaluation"].update(ks=[0]),
    lambda s: s.update(evaluaton={}),
    lambda s: s["models"].append({"name": "als", "params": {"factors": -8}}),
    lambda s: s["models"].append({"name": "itemknn", "params": {"kk": 3}}),
    lambda s: s["candidates"].append({"protocol": "rerank", "first_stage": "pop"}),
    lambda s: s["datasets"].append({"name": "ml-100k", "n_users": 5}),
    lambda s: s["splits"].append({"protocol": "random_holdot"}),
    lambda s: s["splits"].append({"protocol": "cold_items", "ratios": [0.8, 0.1, 0.1]}),
    lambda s: s["models"][0].update(label="a/b"),
    lambda s: s["suite"].update(name="../x"),
    lambda s: s.update(efficiency={"warmup": -1}),
    lambda s: s.update(check={"alpha": 1.5}),
])
def test_schema_rejects_invalid_suites(schema, edit):
    raw = tomllib.loads(SMALL)
    raw["candidates"] = [{"protocol": "full"}]
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(raw)
    bad = copy.deepcopy(raw)
    edit(bad)
    assert not validator.is_valid(bad)


def test_schema_is_generated_from_the_checker_key_tables(schema):
    from harness.suite import CANDIDATE_KEYS, DATASET_KEYS, SECTION_KEYS
    props = schema["properties"]
    assert set(SECTION_KEYS["suite"]) == set(props["suite"]["properties"])
    assert set(SECTION_KEYS["evaluation"]) == set(props["evaluation"]["properties"])
    assert set(DATASET_KEYS) == set(props["datasets"]["items"]["properties"])
    assert set(SECTION_KEYS["model"]) == set(props["models"]["items"]["properties"])
    for case in props["candidates"]["items"]["allOf"]:
        proto = case["if"]["properties"]["protocol"]["const"]
        assert set(case["then"]["properties"]) == set(CANDIDATE_KEYS[proto])
    from harness.passes import tables
    assert set(tables()) <= set(props)
    als = next(c for c in props["models"]["items"]["allOf"]
               if c["if"]["properties"]["name"]["const"] == "als")
    assert als["then"]["properties"]["params"]["properties"]["factors"] == {
        "type": "integer", "minimum": 1, "maximum": 100000, "default": 64}


# ---- helpers: line numbers and k-core ------------------------------------------------------

def test_key_lines():
    text = ('# c\n[suite]\nname = "a"\n\n[[models]]\nname = "x"\n[[models]]\nname = "y"\n'
            'params = { k = 1,\n  shrink = 2 }\nlabel = "z"\n[efficiency.server]\nqps = 1\n'
            '[check.per_metric."ndcg@10"]\ntolerance = 1\n[evaluation]\nmetrics = [\n'
            '  "ndcg",\n]\nks = [1]\n')
    lines = key_lines(text)
    assert lookup(lines, "suite.name") == 3
    assert lookup(lines, "models[1]") == 7 and lookup(lines, "models[1].name") == 8
    assert lookup(lines, "models[1].params") == 9 and lookup(lines, "models[1].params.k") == 9
    assert lookup(lines, "models[1].label") == 11
    assert lookup(lines, "efficiency.server.qps") == 13
    assert lookup(lines, "check.per_metric.ndcg@10.tolerance") == 15
    assert lookup(lines, "evaluation.metrics[0]") == 17 and lookup(lines, "evaluation.ks") == 20
    assert lookup(lines, "nothing.here") is None


def test_largest_kcore_matches_brute_force():
    import numpy as np
    import pandas as pd

    from harness.data.preprocess import kcore, largest_kcore
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"user_id": rng.integers(0, 30, 400).astype(str),
                       "item_id": rng.integers(0, 20, 400).astype(str)}).drop_duplicates()
    brute = max(k for k in range(1, 40) if len(kcore(df, k)))
    assert largest_kcore(df) == brute and len(kcore(df, brute + 1)) == 0
