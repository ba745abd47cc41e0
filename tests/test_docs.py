"""README and docs/ stay true: every TOML snippet loads, every Python example runs, every
relative link points to a file in the repo."""

import re
import sys
import tomllib
from pathlib import Path

import pytest

from harness.suite import parse_suite

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
BASE = """
[suite]
name = "snippet"
[[datasets]]
name = "synthetic"
n_users = 60
n_items = 40
n_interactions = 600
[[splits]]
protocol = "random_holdout"
[[models]]
name = "pop"
[[models]]
name = "ease"
"""


def _blocks(lang: str):
    for page in PAGES:
        text = page.read_text()
        for m in re.finditer(r"^( *)```" + lang + r"\n(.*?)^\1```", text, re.S | re.M):
            body = "\n".join(line[len(m.group(1)):] for line in m.group(2).splitlines())
            yield pytest.param(page, body, id=f"{page.name}:{text[:m.start()].count(chr(10)) + 1}")


def _page_examples(page: Path, tmp_path: Path, monkeypatch) -> None:
    """Make a page's Python example classes importable under the module names its TOML uses
    (docs/plugins.md: `my_module:MyPop`)."""
    text = page.read_text()
    for body in (b.values[1] for b in _blocks("python") if b.values[0] == page):
        for cls in re.findall(r"^class (\w+)", body, re.M):
            for mod in re.findall(r'"(\w+):' + cls + '"', text):
                (tmp_path / f"{mod}.py").write_text(body)
                monkeypatch.syspath_prepend(str(tmp_path))


@pytest.mark.parametrize("page,body", list(_blocks("toml")))
def test_every_toml_snippet_loads(page, body, tmp_path, monkeypatch):
    _page_examples(page, tmp_path, monkeypatch)
    raw = tomllib.loads(body)
    if "project" in raw:  # a pyproject.toml snippet (entry points): 'module.path:Class' values
        for group in raw["project"]["entry-points"].values():
            assert all(re.fullmatch(r"[\w.]+:[\w.]+", v) for v in group.values())
        return
    if "suite" in raw:
        parse_suite(raw, f"{page.name} snippet")
        return
    # a fragment: it must load on top of a minimal suite (its labels refer to pop/ease, or to
    # the labels it defines itself)
    merged = tomllib.loads(BASE)
    for key, value in raw.items():
        if key == "models":
            merged["models"] = [m for m in merged["models"]
                                if m["name"] not in {x.get("label", x["name"]) for x in value}]
            merged["models"] += value
        else:
            merged[key] = value
    labels = {m.get("label", m["name"]) for m in merged["models"]}
    named = [name for cand in merged.get("candidates", [])
             for name in cand.get("models", []) + ([cand["first_stage"]] if "first_stage" in cand
                                                   else [])]
    named += list(merged.get("execution", {}).get("models", {}))  # [execution.models.<label>]
    for name in named:
        if name not in labels:
            merged["models"].append({"name": name})
            labels.add(name)
    parse_suite(merged, f"{page.name} snippet")


def test_links_point_to_files_in_the_repo():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path = (page.parent / target).resolve()
            assert path.exists(), f"{page.name} links to missing {target}"
            assert ROOT in path.parents or path == ROOT, f"{page.name} links outside the repo"


@pytest.mark.parametrize("page,body", [p for p in _blocks("python")
                                       if p.values[0].parent.name == "docs"
                                       and re.search(r"^class \w+", p.values[1], re.M)])
def test_python_examples_in_docs_run(page, body, tmp_path, monkeypatch, small_suite_text):
    """The example recommender / pass of a docs page, as a module, in a real run."""
    from harness import passes
    from harness.runner import run_suite
    from harness.suite import load_suite
    mod = f"docs_example_{page.stem}"
    (tmp_path / f"{mod}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = re.search(r"^class (\w+)", body, re.M).group(1)
    text = small_suite_text
    if "(Pass)" in body:
        name = re.search(r'name = "(\w+)"', body).group(1)
        monkeypatch.setitem(passes.PASSES, name, f"{mod}:{cls}")
        passes.get.cache_clear()
        text += f"\n[{name}]\n[[models]]\nname = \"pop\"\n"
    else:
        text += f'\n[[models]]\nname = "{mod}:{cls}"\n'
    suite_file = tmp_path / "s.toml"
    suite_file.write_text(text)
    try:
        res = run_suite(load_suite(suite_file), tmp_path / "out", quiet=True)
    finally:
        passes.get.cache_clear()
        sys.modules.pop(mod, None)
    assert not res.failed and res.manifest["n_failed_passes"] == 0
    assert len(res.metrics) > 0
