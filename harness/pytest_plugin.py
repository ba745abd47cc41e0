"""pytest plugin (entry point `pytest11: harness`): the `harness_check` fixture.

Run a suite (or some of its cells) inside a test and gate it against a reference run::

    def test_itemknn_quality(harness_check):
        harness_check("suites/quick.toml", "results/reference/quick", models=["itemknn"])

The call runs the suite into a temporary directory (`--harness-results DIR` keeps the runs),
compares it with the reference exactly as `harness check` does (the suite's `[check]` table,
then the keyword arguments, which win) and fails the test with the diff table on a regression,
or with the reason when the runs cannot be compared (missing reference, split fingerprint
mismatch, missing rows, failed cells). On success it returns the `CheckResult`.

`pytest --harness-update-reference` replaces the references instead of checking them (the whole
suite only: with `models` / `seeds` filters the update is refused). Relative suite and reference
paths are resolved against pytest's rootdir.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("harness", "recsys-harness regression checks")
    group.addoption("--harness-update-reference", action="store_true", default=False,
                    help="harness_check: replace the reference runs with the new runs instead "
                         "of checking them")
    group.addoption("--harness-results", default=None, metavar="DIR",
                    help="harness_check: write the runs under DIR (default: pytest's tmp dir)")


class HarnessCheck:
    """The callable behind the `harness_check` fixture; `last` is the latest CheckResult."""

    def __init__(self, config, tmp_path_factory):
        self.config = config
        self.tmp = tmp_path_factory
        self.last = None

    def _path(self, p) -> Path:
        p = Path(p)
        return p if p.is_absolute() else Path(self.config.rootpath) / p

    def __call__(self, suite, reference, *, models: list[str] | None = None,
                 seeds: list[int] | None = None, tolerance: float | None = None,
                 alpha: float | None = None, metrics: list[str] | None = None,
                 latency_tolerance: float | None = None, test: str | None = None):
        reference = self._path(reference)
        update = self.config.getoption("harness_update_reference")
        if update and (models or seeds):
            pytest.fail("harness_check: --harness-update-reference replaces the whole "
                        "reference; it cannot be combined with models/seeds filters",
                        pytrace=False)
        from harness.check import CheckSettings, compare_runs, render_text, update_reference
        from harness.errors import UserError
        from harness.runner import run_suite
        from harness.suite import load_suite
        try:
            spec = load_suite(self._path(suite))
        except UserError as exc:
            pytest.fail(f"harness_check: {exc}", pytrace=False)
        keep = self.config.getoption("harness_results")
        out = Path(keep) if keep else self.tmp.mktemp("harness-run")
        cache = self.tmp.getbasetemp() / "harness-cache"
        res = run_suite(spec, out, models, seeds, quiet=True, cache_dir=cache)
        if res.failed:
            pytest.fail("harness_check: failed cells in " + str(res.run_dir) + ": " +
                        "; ".join(f"{f['cell']}: {f.get('error')}" for f in res.failed),
                        pytrace=False)
        settings = CheckSettings().with_flags(tolerance=tolerance, alpha=alpha, test=test,
                                              metrics=metrics,
                                              latency_tolerance=latency_tolerance)
        try:
            if update:
                text, self.last = update_reference(res.run_dir, reference, settings)
                print(text)
                return self.last
            if not (reference / "manifest.json").exists():
                pytest.fail(f"harness_check: no reference run at {reference}; create it with "
                            "pytest --harness-update-reference (or harness check NEW --against "
                            f"{reference} --update-reference)", pytrace=False)
            self.last = compare_runs(res.run_dir, reference, settings, None, models, seeds)
        except UserError as exc:
            pytest.fail(f"harness_check: {exc}", pytrace=False)
        if not self.last.passed:
            pytest.fail("harness_check: regression\n" + render_text(self.last, True),
                        pytrace=False)
        return self.last


@pytest.fixture
def harness_check(request, tmp_path_factory) -> HarnessCheck:
    """Run a suite and assert it against a reference run: see `harness.pytest_plugin`."""
    return HarnessCheck(request.config, tmp_path_factory)
