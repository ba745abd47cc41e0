"""Settings of `harness check`: defaults, a suite's `[check]` table, command-line flags.

A suite may carry a `[check]` table (validated when the suite is loaded)::

    [check]
    tolerance = 0.01            # quality: largest allowed absolute drop
    alpha = 0.05                # quality: level of the one-sided paired test over users
    test = "t"                  # t | wilcoxon | randomization
    metrics = ["ndcg@10", "recall"]   # rows that gate: 'metric@k', or 'metric' (every k)
    latency_tolerance = 0.25    # efficiency: largest allowed relative worsening
    [check.per_metric."ndcg@10"]
    tolerance = 0.005
    [check.per_metric.latency_p90_ms]
    latency_tolerance = 0.5

Precedence for one row, first found wins: a command-line flag (`--tolerance`, `--alpha`,
`--latency-tolerance`, `--metrics`, `--test`), the suite's `per_metric` entry for 'metric@k',
then for 'metric', the suite's `[check]` value, the built-in default (`DEFAULTS`).

Which suite: the NEW run's. `find_suite_settings` looks, in order, at an explicit `--suite`
file, `RUN_DIR/suite.toml`, then the file named in the run's manifest (`suite.file`, relative
to the working directory). The last two must hash to the manifest's `suite.sha256` (a suite
edited after the run is an error: pass `--suite` to use it anyway); when neither exists the
defaults apply and the report says so.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from harness.errors import UserError, did_you_mean

DEFAULTS = {"tolerance": 0.01, "alpha": 0.05, "latency_tolerance": 0.25, "test": "t"}
TESTS = ("t", "wilcoxon", "randomization")
_NUMBERS = ("tolerance", "alpha", "latency_tolerance")
TABLE_KEYS = {*_NUMBERS, "test", "metrics", "per_metric"}


class CheckError(UserError):
    """The runs cannot be compared, or the check is misconfigured (exit 2)."""


def _number(fail: Callable[[str, str], None], key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(key, f"must be a number, got {value!r}")
    if key.endswith("alpha") and not 0 < value < 1:
        fail(key, f"must be in (0, 1), got {value}")
    if value < 0:
        fail(key, f"must be >= 0, got {value}")
    return float(value)


def check_selector(selector: str) -> str | None:
    """None when `selector` is well formed ('metric', or 'metric@k' with a quality metric and
    k > 0), else what is wrong. Bare names may be efficiency metrics (any identifier)."""
    from harness.metrics import METRICS
    if not isinstance(selector, str) or not selector:
        return f"must be a non-empty string, got {selector!r}"
    name, at, k = selector.partition("@")
    if at:
        if name not in METRICS:
            return f"unknown metric '{name}'{did_you_mean(name, METRICS)}"
        if not k.isdigit() or int(k) <= 0:
            return f"k must be a positive integer in '{selector}'"
    elif not name.replace("_", "").isalnum():
        return f"'{selector}' is not a metric name"
    return None


def validate_check_table(table, fail: Callable[[str, str], None]) -> dict:
    """Validate a suite's `[check]` table; `fail(key, message)` raises. Returns a plain dict
    (the same keys, numbers as floats)."""
    if not isinstance(table, dict):
        fail("check", f"must be a table, got {type(table).__name__}")
    out: dict = {}
    for key, value in table.items():
        where = f"check.{key}"
        if key not in TABLE_KEYS:
            fail(where, f"unknown key{did_you_mean(key, TABLE_KEYS)}")
        if key in _NUMBERS:
            out[key] = _number(fail, where, value)
        elif key == "test":
            if value not in TESTS:
                fail(where, f"unknown value {value!r}{did_you_mean(str(value), TESTS)}")
            out[key] = value
        elif key == "metrics":
            if not isinstance(value, list) or not value:
                fail(where, f"must be a non-empty list of 'metric@k' or 'metric', got {value!r}")
            for i, sel in enumerate(value):
                problem = check_selector(sel)
                if problem:
                    fail(f"{where}[{i}]", problem)
            out[key] = list(value)
        else:  # per_metric
            if not isinstance(value, dict):
                fail(where, f"must be a table of metric tables, got {type(value).__name__}")
            per = {}
            for sel, sub in value.items():
                problem = check_selector(sel)
                if problem:
                    fail(f"{where}.{sel}", problem)
                if not isinstance(sub, dict):
                    fail(f"{where}.{sel}", f"must be a table, got {type(sub).__name__}")
                for k, v in sub.items():
                    if k not in _NUMBERS:
                        fail(f"{where}.{sel}.{k}", f"unknown key{did_you_mean(k, _NUMBERS)}")
                per[sel] = {k: _number(fail, f"{where}.{sel}.{k}", v) for k, v in sub.items()}
            out[key] = per
    return out


@dataclass(frozen=True)
class RowSettings:
    """What decides one row's verdict."""

    tolerance: float
    alpha: float
    latency_tolerance: float


@dataclass(frozen=True)
class CheckSettings:
    """Resolved settings: command-line flags (None: not given) over the suite's `[check]`
    table over `DEFAULTS`. `source` says where the suite settings came from."""

    flags: dict = field(default_factory=dict)
    suite: dict = field(default_factory=dict)
    source: str = "built-in defaults"

    def _global(self, key: str):
        if self.flags.get(key) is not None:
            return self.flags[key]
        return self.suite.get(key, DEFAULTS.get(key))

    @property
    def test(self) -> str:
        return self._global("test")

    @property
    def metrics(self) -> list[str] | None:
        """Selectors of the rows that gate (None: every row)."""
        return self._global("metrics")

    def for_row(self, metric: str, k: int) -> RowSettings:
        per = self.suite.get("per_metric", {})
        values = {}
        for key in _NUMBERS:
            if self.flags.get(key) is not None:
                values[key] = self.flags[key]
                continue
            for sel in (f"{metric}@{k}", metric):
                if key in per.get(sel, {}):
                    values[key] = per[sel][key]
                    break
            else:
                values[key] = self.suite.get(key, DEFAULTS[key])
        return RowSettings(**values)

    def with_flags(self, **flags) -> "CheckSettings":
        return replace(self, flags={k: v for k, v in flags.items() if v is not None})

    def describe(self) -> dict:
        return {"flags": self.flags, "suite": self.suite, "source": self.source,
                "defaults": DEFAULTS}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_table(path: Path) -> dict:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CheckError(f"{path}: cannot read the suite ({exc})") from exc

    def fail(key: str, msg: str):
        raise CheckError(f"{path}: [{key}] {msg}")

    return validate_check_table(raw.get("check", {}), fail)


def find_suite_settings(run_dir: Path, manifest: dict,
                        suite_file: Path | None = None) -> CheckSettings:
    """The `[check]` table of the suite that produced `run_dir` (see the module docstring)."""
    if suite_file is not None:
        suite_file = Path(suite_file)
        if not suite_file.is_file():
            raise CheckError(f"--suite: file '{suite_file}' does not exist")
        return CheckSettings(suite=_read_table(suite_file), source=f"{suite_file} (--suite)")
    info = manifest.get("suite") or {}
    want = info.get("sha256", "")
    candidates = [Path(run_dir) / "suite.toml"]
    if info.get("file"):
        candidates.append(Path(info["file"]))
    for path in candidates:
        if not path.is_file():
            continue
        got = _sha256(path)
        if want and got != want:
            raise CheckError(f"suite file '{path}' changed since the run {run_dir} (sha256 "
                            f"{got[:12]} now, {want[:12]} in its manifest): its [check] "
                            "settings may not be the run's. Re-run the suite, or pass "
                            f"--suite {path} to use this file's [check] table anyway")
        return CheckSettings(suite=_read_table(path), source=str(path))
    named = f" ('{info['file']}' not found)" if info.get("file") else ""
    return CheckSettings(source=f"built-in defaults: no suite file for {run_dir}{named}")
