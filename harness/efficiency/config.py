"""The suite's optional `[efficiency]` table: which scenarios, how many requests, which limits.

```toml
[efficiency]
scenarios = ["fit", "offline", "single_stream"]   # also "server"; default: these three
warmup = 8              # warm-up requests (single_stream, server) / users (offline), untimed
requests = 200          # timed single_stream requests
percentiles = [50, 90, 99]
timeout_s = 30          # per request (single_stream, server) and per offline batch
max_duration_s = 120    # per scenario: stop early after this long (fewer samples, never fewer
                        # than the warm-up); percentiles then need what was measured
min_duration_s = 1.0    # offline: repeat full passes over the users until at least this long
batch_size = 256        # offline users per score() call (default: [evaluation] batch_size)
threads = 2             # torch intra-op threads during the pass (default: leave as is)
fit_use_cache = false   # the timed fit bypasses the embedding cache (measures real work)
models = ["pop"]        # model labels that get the pass (default: all)
candidates = ["full"]   # candidate labels that get the pass (default: all)
memory_interval_ms = 5  # CPU peak-RSS sampling period
server = { qps = 50, duration_s = 5, seed = 0 }   # Poisson arrivals; requires "server" above
```
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

SCENARIOS = ("fit", "offline", "single_stream", "server")
DEFAULT_SCENARIOS = ("fit", "offline", "single_stream")
KEYS = {"scenarios": list, "warmup": int, "requests": int, "percentiles": list,
        "timeout_s": (int, float), "max_duration_s": (int, float),
        "min_duration_s": (int, float), "batch_size": int, "threads": int,
        "fit_use_cache": bool, "models": list, "candidates": list,
        "memory_interval_ms": (int, float), "server": dict}
SERVER_KEYS = {"qps": (int, float), "duration_s": (int, float), "seed": int}


@dataclass(frozen=True)
class ServerSpec:
    """Poisson arrivals at `qps` for `duration_s` seconds, schedule drawn from `seed`."""

    qps: float = 50.0
    duration_s: float = 5.0
    seed: int = 0


@dataclass(frozen=True)
class EfficiencySpec:
    """A validated `[efficiency]` table (see the module docstring for the keys)."""

    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS
    warmup: int = 8
    requests: int = 200
    percentiles: tuple[float, ...] = (50, 90, 99)
    timeout_s: float = 30.0
    max_duration_s: float = 120.0
    min_duration_s: float = 1.0
    batch_size: int | None = None
    threads: int | None = None
    fit_use_cache: bool = False
    models: tuple[str, ...] = ()
    candidates: tuple[str, ...] = ()
    memory_interval_ms: float = 5.0
    server: ServerSpec | None = None

    def applies_to(self, model_label: str, candidates_label: str) -> bool:
        """Whether the cell (model, candidate protocol) gets the efficiency pass."""
        return ((not self.models or model_label in self.models)
                and (not self.candidates or candidates_label in self.candidates))

    def to_dict(self) -> dict:
        return asdict(self)


def parse_efficiency(c, raw, model_labels: list[str], candidate_labels: list[str]
                     ) -> EfficiencySpec:
    """Validate the `[efficiency]` table with the suite's checker `c` (SuiteError on bad
    input: unknown keys, wrong types, unknown scenario / model / candidate names)."""
    c.keys("efficiency", raw, KEYS)
    scen = raw.get("scenarios", list(DEFAULT_SCENARIOS) + (["server"] if "server" in raw else []))
    if not scen or not all(isinstance(s, str) for s in scen):
        c.fail("efficiency.scenarios", f"must be a non-empty list of names, got {scen!r}")
    for i, s in enumerate(scen):
        c.choice(f"efficiency.scenarios[{i}]", s, SCENARIOS)
    if len(set(scen)) != len(scen):
        c.fail("efficiency.scenarios", f"duplicate scenario in {scen!r}")
    for key in ("warmup",):
        if key in raw and raw[key] < 0:
            c.fail(f"efficiency.{key}", f"must be >= 0, got {raw[key]}")
    for key in ("requests", "batch_size", "threads", "timeout_s", "max_duration_s",
                "memory_interval_ms"):
        if key in raw and raw[key] <= 0:
            c.fail(f"efficiency.{key}", f"must be positive, got {raw[key]}")
    if raw.get("min_duration_s", 0) < 0:
        c.fail("efficiency.min_duration_s", f"must be >= 0, got {raw['min_duration_s']}")
    pct = raw.get("percentiles", [50, 90, 99])
    ok = (pct and all(isinstance(p, (int, float)) and not isinstance(p, bool) and 0 < p < 100
                      for p in pct))
    if not ok:
        c.fail("efficiency.percentiles", f"must be a non-empty list of numbers in (0, 100), "
                                         f"got {pct!r}")
    for name, labels in (("models", model_labels), ("candidates", candidate_labels)):
        for j, lab in enumerate(raw.get(name, [])):
            c.choice(f"efficiency.{name}[{j}]", lab, labels)
    server = None
    if "server" in scen:
        s = raw.get("server", {})
        c.keys("efficiency.server", s, SERVER_KEYS)
        for key in ("qps", "duration_s"):
            if key in s and s[key] <= 0:
                c.fail(f"efficiency.server.{key}", f"must be positive, got {s[key]}")
        server = ServerSpec(float(s.get("qps", 50.0)), float(s.get("duration_s", 5.0)),
                            int(s.get("seed", 0)))
    elif "server" in raw:
        c.fail("efficiency.server", "given, but 'server' is not in efficiency.scenarios")
    return EfficiencySpec(
        tuple(scen), int(raw.get("warmup", 8)), int(raw.get("requests", 200)),
        tuple(sorted(set(float(p) for p in pct))), float(raw.get("timeout_s", 30.0)),
        float(raw.get("max_duration_s", 120.0)), float(raw.get("min_duration_s", 1.0)),
        raw.get("batch_size"), raw.get("threads"), bool(raw.get("fit_use_cache", False)),
        tuple(raw.get("models", [])), tuple(raw.get("candidates", [])),
        float(raw.get("memory_interval_ms", 5.0)), server)
