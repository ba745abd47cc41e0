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
peak_tflops = 0.2       # the device's peak TFLOP/s, for `mfu` (default: NVIDIA's dense bf16
                        # figure for known GPUs, see facts.PEAK_BF16_FLOPS; none on CPU)
server = { qps = 50, duration_s = 5, seed = 0 }   # Poisson arrivals; requires "server" above
```
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from harness.validation import Bool, Int, List, Num, Str, Table, table_schema

SCENARIOS = ("fit", "offline", "single_stream", "server")
DEFAULT_SCENARIOS = ("fit", "offline", "single_stream")
SECONDS = Num(0, 1e6, lo_open=True)
KEYS = {"scenarios": List(Str(SCENARIOS), unique=True), "warmup": Int(0, 1_000_000),
        "requests": Int(1, 10_000_000), "percentiles": List(Num(0, 100, True, True)),
        "timeout_s": SECONDS, "max_duration_s": SECONDS, "min_duration_s": Num(0, 1e6),
        "batch_size": Int(1, 10_000_000), "threads": Int(1, 4096), "fit_use_cache": Bool(),
        "models": List(Str(nonempty=True), min_items=0),
        "candidates": List(Str(nonempty=True), min_items=0),
        "memory_interval_ms": Num(0, 60_000, lo_open=True),
        "peak_tflops": Num(0, 1e6, lo_open=True), "server": Table()}
SERVER_KEYS = {"qps": Num(0, 1e6, lo_open=True), "duration_s": SECONDS,
               "seed": Int(0, 2**32 - 1)}
EXAMPLE = {"scenarios": ["fit", "offline", "single_stream", "server"], "server": {"qps": 50}}


def schema() -> dict:
    """JSON Schema of the `[efficiency]` table (from KEYS and SERVER_KEYS)."""
    out = table_schema({**KEYS, "server": Table(SERVER_KEYS)})
    out["examples"] = [EXAMPLE]
    return out


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
    peak_tflops: float | None = None

    def applies_to(self, model_label: str, candidates_label: str) -> bool:
        """Whether the cell (model, candidate protocol) gets the efficiency pass."""
        return ((not self.models or model_label in self.models)
                and (not self.candidates or candidates_label in self.candidates))

    def to_dict(self) -> dict:
        return asdict(self)


def parse_efficiency(c, raw, model_labels: list[str], candidate_labels: list[str]
                     ) -> EfficiencySpec:
    """Validate the `[efficiency]` table with the suite's checker `c` (SuiteError on bad
    input: unknown keys, wrong types, values out of range or not finite, unknown scenario /
    model / candidate names)."""
    c.keys("efficiency", raw, KEYS)
    scen = raw.get("scenarios", list(DEFAULT_SCENARIOS) + (["server"] if "server" in raw else []))
    pct = raw.get("percentiles", [50, 90, 99])  # types and ranges: checked by KEYS above
    for name, labels in (("models", model_labels), ("candidates", candidate_labels)):
        for j, lab in enumerate(raw.get(name, [])):
            c.choice(f"efficiency.{name}[{j}]", lab, labels)
    server = None
    if "server" in scen:
        s = raw.get("server", {})
        c.keys("efficiency.server", s, SERVER_KEYS)
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
        float(raw.get("memory_interval_ms", 5.0)), server,
        float(raw["peak_tflops"]) if "peak_tflops" in raw else None)
