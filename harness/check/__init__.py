"""`harness check`: regression gate of a run against a committed reference run.

    config.py   defaults, the suite's [check] table, flags; which suite a run came from
    compare.py  row matching, comparability errors, verdicts (paired tests from report.stats)
    render.py   the diff table as text
    update.py   --update-reference: replace a reference explicitly, saying what changed
    command.py  the `harness check` subcommand (exit 0 pass, 1 regression, 2 error)

The pytest fixture `harness_check` lives in `harness.pytest_plugin`. See docs/check.md.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"CheckError": "compare", "CheckResult": "compare", "compare_runs": "compare",
            "CheckSettings": "config", "render_text": "render", "update_reference": "update"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Lazy exports: `harness.suite` imports `harness.check.config` (validation of [check])
    without pulling in pandas, scipy and the report package."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"harness.check.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'harness.check' has no attribute {name!r}")
