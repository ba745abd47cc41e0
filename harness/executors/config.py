"""The suite's optional `[execution]` table: time limits, retries, resources and user shards.

```toml
[execution]
timeout_s = 600          # per cell (fit + every pass); default: no limit
retries = 1              # re-runs of a cell whose worker process or node was lost (not timeouts)
num_cpus = 1             # Ray resources per cell (also the torch threads of a worker cell)
num_gpus = 0             # fractional allowed (0.5: two cells share one GPU)
memory_gb = 4            # Ray memory reservation per cell; default: none
shards = 1               # evaluate each cell's users as N shards of one fitted model
shard_users = 100000     # ... or: one shard per this many evaluated users (a threshold)

[execution.pass_timeout_s]   # per pass, by pass name; default: no limit
accuracy = 300
robustness = 900

[execution.models.llm-rank]  # per model label: overrides of the keys above
num_gpus = 0.5
timeout_s = 3600
```

Every value is checked at load (type, range, finiteness, known pass and model names).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from harness.errors import did_you_mean

RESOURCE_KEYS = {"timeout_s": (int, float), "num_cpus": (int, float), "num_gpus": (int, float),
                 "memory_gb": (int, float), "shards": int, "shard_users": int, "retries": int}
KEYS = {**RESOURCE_KEYS, "pass_timeout_s": dict, "models": dict}
MAX_SHARDS = 4096
MAX_RETRIES = 100


@dataclass(frozen=True)
class CellResources:
    """What one cell asks for (after per-model overrides)."""

    timeout_s: float | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_gb: float | None = None
    shards: int = 1
    shard_users: int | None = None
    retries: int = 1

    def n_shards(self, n_users: int, batch_size: int) -> int:
        """How many user-range shards to evaluate `n_users` users in (>= 1, never more shards
        than scoring batches, so every shard holds whole batches)."""
        n = self.shards
        if self.shard_users is not None:
            n = max(n, math.ceil(n_users / self.shard_users))
        return max(1, min(n, math.ceil(n_users / batch_size)))


@dataclass(frozen=True)
class ExecutionSpec:
    """A validated `[execution]` table."""

    default: CellResources = CellResources()
    pass_timeout_s: dict = field(default_factory=dict)  # pass name -> seconds
    models: dict = field(default_factory=dict)  # model label -> CellResources

    def for_model(self, label: str) -> CellResources:
        return self.models.get(label, self.default)

    @property
    def has_timeouts(self) -> bool:
        """Whether any cell or pass has a time limit (cells then run in killable processes)."""
        return bool(self.pass_timeout_s) or any(
            r.timeout_s is not None for r in (self.default, *self.models.values()))

    def to_dict(self) -> dict:
        return {"default": asdict(self.default), "pass_timeout_s": dict(self.pass_timeout_s),
                "models": {k: asdict(v) for k, v in self.models.items()}}


def _report(c):
    """Record a problem and go on (a checker that collects every problem), else raise."""
    return getattr(c, "problem", c.fail)


def _number(c, key: str, value, positive: bool = True, upper: float | None = None,
            integer: bool = False) -> bool:
    """Type, range and finiteness check of one number; False (problem recorded) when bad."""
    kind = "an integer" if integer else "a finite number"
    ok_type = (isinstance(value, int) if integer else isinstance(value, (int, float)))
    if isinstance(value, bool) or not ok_type:
        _report(c)(key, f"must be {kind}, got {value!r}")
        return False
    if not math.isfinite(value) or (value <= 0 if positive else value < 0):
        _report(c)(key, f"must be {kind} {'> 0' if positive else '>= 0'}, got {value!r}")
        return False
    if upper is not None and value > upper:
        _report(c)(key, f"must be <= {upper:g}, got {value!r}")
        return False
    return True


def _unknown(c, where: str, table: dict, keys: dict) -> None:
    for key in table:
        if key not in keys:
            _report(c)(f"{where}.{key}", f"unknown key{did_you_mean(key, keys)}")


def _resources(c, where: str, raw: dict, base: CellResources) -> CellResources:
    out = {}
    checks = {"timeout_s": (True, None), "num_cpus": (True, 1024), "num_gpus": (False, 64),
              "memory_gb": (True, 1 << 20), "shards": (True, MAX_SHARDS),
              "shard_users": (True, None), "retries": (False, MAX_RETRIES)}
    for key, (positive, upper) in checks.items():
        if key not in raw:
            continue
        value = raw[key]
        if _number(c, f"{where}.{key}", value, positive, upper, RESOURCE_KEYS[key] is int):
            out[key] = value if RESOURCE_KEYS[key] is int else float(value)
    return replace(base, **out)


def parse_execution(c, raw, model_labels: list[str], pass_names: list[str]) -> ExecutionSpec:
    """Validate `[execution]` with the suite's checker `c` (SuiteError naming the key)."""
    if not isinstance(raw, dict):
        c.fail("execution", f"must be a table, got {raw!r}")
        return ExecutionSpec()
    _unknown(c, "execution", raw, KEYS)
    default = _resources(c, "execution", raw, CellResources())
    timeouts = {}
    pt = raw.get("pass_timeout_s", {})
    if not isinstance(pt, dict):
        _report(c)("execution.pass_timeout_s", f"must be a table of pass = seconds, got {pt!r}")
    else:
        for name, value in pt.items():
            if name not in pass_names:
                _report(c)(f"execution.pass_timeout_s.{name}", f"unknown pass '{name}'"
                                                               f"{did_you_mean(name, pass_names)}")
            elif _number(c, f"execution.pass_timeout_s.{name}", value):
                timeouts[name] = float(value)
    models = {}
    per_model = raw.get("models", {})
    if not isinstance(per_model, dict):
        _report(c)("execution.models", f"must be a table of model label = table, got "
                                       f"{per_model!r}")
    else:
        for label, table in per_model.items():
            where = f"execution.models.{label}"
            if label not in model_labels:
                _report(c)(where, f"unknown model label '{label}'"
                                  f"{did_you_mean(label, model_labels)}")
            elif not isinstance(table, dict):
                _report(c)(where, f"must be a table, got {table!r}")
            else:
                _unknown(c, where, table, RESOURCE_KEYS)
                models[label] = _resources(c, where, table, default)
    return ExecutionSpec(default, timeouts, models)
