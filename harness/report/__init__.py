"""`harness report`: leaderboards with CIs and paired tests, section tables, plots, renderers.

    load.py      read finished run directories, merge shards (duplicates must be identical)
    stats.py     bootstrap CI, paired t / Wilcoxon / randomization tests, Holm correction
    holistic.py  the holistic leaderboard (HELM's summary): accuracy, fairness, robustness,
                 efficiency and mean win rate per model; the report opens with it
    tables.py    leaderboards per (dataset, split fingerprint, target, candidate protocol)
    sections.py  fairness, robustness and efficiency tables
    plots.py     metric per k, per group, degradation, quality vs p90 latency (Pareto)
    render.py    markdown, LaTeX, HTML (self-contained), CSV
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import UserError
from harness.io import write_csv, write_text
from harness.report.load import load_runs
from harness.report.holistic import holistic_tables
from harness.report.sections import (efficiency_tables, fairness_tables, robustness_tables,
                                     robustness_summary_tables)
from harness.report.stats import TESTS
from harness.report.tables import ReportOptions, Table, accuracy_tables, separation_notes, slugify

FORMATS = ("md", "latex", "html", "csv")
__all__ = ["FORMATS", "Report", "ReportOptions", "build_report", "report_from_tables",
           "write_report"]


@dataclass
class Report:
    """The holistic leaderboard (`summary`, tables H1, H2, ... when passes besides accuracy
    ran), then numbered tables (accuracy, fairness, robustness, efficiency) and plots."""

    suites: list[str]
    header: list[str]
    tables: list[Table]
    options: ReportOptions
    plots: list[dict] = field(default_factory=list)
    summary: list[Table] = field(default_factory=list)  # holistic tables: H1, H2, ... first

    def numbered(self) -> list[tuple]:
        """(number, table) in report order: holistic tables 'H1', 'H2', ... (so adding a pass
        never renumbers the others), then tables 1, 2, ..."""
        return ([(f"H{i}", t) for i, t in enumerate(self.summary, 1)]
                + list(enumerate(self.tables, 1)))

    def plots_for(self, number: int) -> list[dict]:
        return [p for p in self.plots if p["table"] == number]


def _check_options(opts: ReportOptions) -> None:
    if opts.test not in TESTS:
        raise UserError(f"--test: '{opts.test}' is not one of {', '.join(TESTS)}")
    if not 0 < opts.alpha < 1:
        raise UserError(f"--alpha must be in (0, 1), got {opts.alpha}")
    if opts.n_boot < 0 or opts.n_permutations < 1:
        raise UserError("--bootstrap must be >= 0 and --permutations >= 1")


def _has_sections(metrics) -> bool:
    """Whether the runs have rows of a pass besides accuracy (the holistic table then opens the
    report; an accuracy-only report starts with its leaderboards)."""
    return bool(len(metrics)) and bool((metrics["pass"] != "accuracy").any())


def report_from_tables(metrics, per_user, opts: ReportOptions, suites=(), header=(),
                       primary: str | None = None) -> Report:
    """Build every table from merged metrics / per-user frames (see tables.py, sections.py)."""
    _check_options(opts)
    acc = accuracy_tables(metrics, per_user, opts)
    separation_notes(acc)
    holistic = holistic_tables(metrics, primary) if _has_sections(metrics) else []
    tables = acc + fairness_tables(metrics) + robustness_tables(metrics, primary) + \
        robustness_summary_tables(metrics, primary) + \
        efficiency_tables(metrics)
    if not tables:
        raise UserError("the runs have no metrics rows to report")
    for n, t in enumerate(tables, 1):
        t.slug = slugify(f"t{n:02d}-{t.section}-{t.key.get('dataset', '')}-"
                         f"{t.key.get('protocol', '')}")
        if "table" in t.data.columns:
            t.data["table"] = n
    for n, t in enumerate(holistic, 1):
        t.slug = slugify(f"h{n:02d}-holistic-{t.key.get('dataset', '')}-"
                         f"{t.key.get('protocol', '')}")
    return Report(list(suites), list(header), tables, opts, summary=holistic)


def build_report(paths: list[Path], opts: ReportOptions) -> Report:
    """Load, validate and merge the run directories, then build every table."""
    runs, metrics, per_user = load_runs(paths)
    suites = list(dict.fromkeys(str(r.manifest.get("suite", {}).get("name", "?")) for r in runs))
    header = []
    for r in runs:
        git = r.manifest.get("git") or {}
        commit = str(git.get("commit", "?"))[:12] + (" (dirty)" if git.get("dirty") else "")
        header.append(f"run {r.path}: suite {r.manifest.get('suite', {}).get('name')}, "
                      f"run id {r.manifest.get('run_id')}, finished {r.manifest.get('finished')}"
                      f", commit {commit}, {r.manifest.get('n_cells')} cells "
                      f"({r.manifest.get('n_failed')} failed)")
    header.append("Tables group rows by (dataset, split fingerprint, target, candidate "
                  "protocol); rows of different groups are never pooled or compared.")
    primary = next((r.manifest.get("evaluation", {}).get("primary") for r in runs
                    if r.manifest.get("evaluation", {}).get("primary")), None)
    return report_from_tables(metrics, per_user, opts, suites, header, primary)


def write_report(report: Report, out: Path, formats: list[str], plots: bool = True,
                 ) -> list[Path]:
    """Write report.{md,tex,html,csv} (and the figures) into `out`; returns the files."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("warning: matplotlib is not installed; no plots (pip install matplotlib)",
                  file=sys.stderr)
        else:
            from harness.report.plots import make_plots
            report.plots = make_plots(report.tables, out)
            written += [p[k] for p in report.plots for k in ("png", "svg")]
    from harness.report import render
    for fmt in formats:
        if fmt == "md":
            path = out / "report.md"
            write_text(path, render.to_markdown(report, out))
        elif fmt == "latex":
            path = out / "report.tex"
            write_text(path, render.to_latex(report))
        elif fmt == "html":
            path = out / "report.html"
            write_text(path, render.to_html(report))
        elif fmt == "csv":
            path = out / "report.csv"
            write_csv(path, render.to_csv_frame(report))
        else:
            raise UserError(f"--format: '{fmt}' is not one of {', '.join(FORMATS)}")
        written.append(path)
    return written
