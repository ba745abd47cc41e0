"""Checks of a valid suite against its loaded datasets, run before anything is written (the
runner's preflight): every k within each catalog, timestamps for time-ordered split protocols,
sampled negatives and rerank depths within the catalog. One SuiteError lists every problem,
with the suite file's lines."""

from __future__ import annotations

from pathlib import Path

from harness.suite import Suite
from harness.validation import Checker


def check_datasets(suite: Suite, datasets: dict) -> None:
    """Checks of the suite against its loaded datasets (label -> Dataset), before anything is
    written: every k within each catalog, timestamps for time-ordered split protocols, sampled
    negatives and rerank depths within the catalog. One SuiteError lists every problem."""
    c = Checker(suite.file, _lines_of(suite.file))
    timed = {"leave_one_out", "temporal"}
    for label, ds in datasets.items():
        where = f"dataset '{label}' ({ds.n_items} items after preprocessing)"
        for k in suite.ks:
            if k > ds.n_items:
                c.problem("evaluation.ks", f"k = {k} is larger than the catalog of {where} "
                                           f"(nearest valid: {ds.n_items})")
        for i, sp in enumerate(suite.splits):
            if sp.protocol in timed and ds.interactions.timestamp is None:
                c.problem(f"splits[{i}].protocol",
                          f"'{sp.protocol}' orders interactions by time, but dataset '{label}' "
                          "has no timestamp column (use random_holdout or cold_items)")
        for i, cd in enumerate(suite.candidates):
            for name in ("n_negatives", "m"):
                v, most = cd.params.get(name), ds.n_items - (name == "n_negatives")
                if v is not None and v > most:
                    c.problem(f"candidates[{i}].{name}", f"{name} = {v} is larger than {where} "
                                                         f"allows (nearest valid: {most})")
    c.raise_if_any()


def _lines_of(file: str) -> dict:
    try:
        from harness.tomllines import key_lines
        return key_lines(Path(file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return {}
