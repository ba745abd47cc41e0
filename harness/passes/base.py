"""The pass interface: one module per pass (accuracy, fairness, robustness, efficiency, ...).

A pass owns its suite table (`[efficiency]`, `[fairness]`, ...): it parses and validates it
(`parse`), checks it against the loaded datasets before anything is written (`preflight`), says
which cells it applies to (`applies_to`) and, for each such cell, turns a `PassContext` into a
`PassResult`: metrics rows (the long `metrics` table with `pass = <name>`), per-user rows, and a
record (stored in the cell's status and the manifest). Passes run in `order`, each in its own
failure boundary; later passes see earlier results in `ctx.earlier` (fairness reuses the accuracy
pass's top-k lists and per-user values instead of scoring again).

Metric directions are declared by the pass that produces the metric (`higher_is_better`), never
guessed from a name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd

if TYPE_CHECKING:  # imported for annotations only
    from harness.candidates import Candidates
    from harness.options import FitOptions
    from harness.splits.base import Split
    from harness.suite import Suite
    from harness.task import CellTask

ROW_KEYS = ["metric", "k", "value", "n_users", "slice", "perturbation"]
PER_USER_KEYS = ["user", "metric", "k", "perturbation", "value"]


@dataclass
class PassResult:
    """What one pass produced for one cell.

    rows: DataFrame with columns metric, k, value, n_users and optionally slice (default 'all')
        and perturbation (default 'none'); the cell adds the constant columns.
    per_user: DataFrame with columns user (dataset user id, str), metric, k, value and optionally
        perturbation (default 'none'), or None.
    record: JSON-serialisable details (stored under status['passes'][name]).
    artifacts: in-memory objects for later passes of the same cell (never written).
    """

    rows: pd.DataFrame
    per_user: pd.DataFrame | None = None
    record: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)


@dataclass
class PassContext:
    """Everything a pass may use for one cell (built by the cell; nothing global)."""

    task: "CellTask"
    suite: "Suite"
    spec: Any  # the pass's parsed suite table (None for a pass without one)
    split: "Split"
    candidates: "Candidates"
    model: Any  # the cell's fitted model
    options: "FitOptions"
    log: Any  # logging.Logger of the run
    quiet: bool
    earlier: dict[str, PassResult] = field(default_factory=dict)
    fit_model: Callable[..., Any] | None = None  # fit_model(split=None, options=None) -> fresh fitted model
    new_model: Callable[[], Any] | None = None  # a fresh, unfitted instance (same name, params, seed)


class Pass:
    """Base class of a pass. Subclasses set `name`, `table` and `order` and implement `run`."""

    name: str = ""
    table: str | None = None  # the suite table that enables and configures it; None = always on
    order: int = 100  # passes run in increasing order (accuracy 0, efficiency last)
    requires: tuple[str, ...] = ()  # passes whose results it reads from ctx.earlier

    def parse(self, checker, raw: Any, suite_info: dict) -> Any:
        """Validate the pass's suite table (`checker.fail(key, msg)` raises SuiteError) and
        return a frozen, picklable spec. `suite_info` has: models (labels), model_names
        (label -> recommender name), candidates (labels), ks, metrics, datasets (specs)."""
        return raw

    def preflight(self, spec: Any, suite: "Suite", datasets: dict, file: str) -> None:
        """Checks that need the loaded datasets (label -> Dataset); raise SuiteError. Runs before
        anything is written."""

    def applies_to(self, spec: Any, task: "CellTask") -> bool:
        """Whether this pass runs for the cell."""
        return True

    def run(self, ctx: PassContext) -> PassResult:
        raise NotImplementedError

    def higher_is_better(self, metric: str) -> bool | None:
        """The declared direction of a metric this pass produces (None: not this pass's)."""
        return None

    def manifest_entry(self, spec: Any) -> dict | None:
        """The pass's configuration as recorded in manifest.json (None: nothing to record)."""
        return None

    def leaderboard_section(self, metrics: pd.DataFrame, statuses: list[dict]) -> list[str]:
        """Markdown lines for leaderboard.md (empty: no section)."""
        return []

    def schema(self) -> dict:
        """The JSON Schema of the pass's suite table (for `harness schema`)."""
        return {"type": "object"}
