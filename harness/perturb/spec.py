"""The suite's `[robustness]` table: which perturbations, at which severities, for whom.

```toml
[robustness]
seed = 0               # perturbation seed: RNG key (seed, item or user id, perturbation, severity)
rbo_p = 0.9            # RBO persistence
bootstrap = 1000       # paired bootstrap resamples for the CI of the change vs clean (0: none)
kendall = true         # Kendall τ vs the clean scores on per-user candidate lists
models = ["..."]       # model labels that get the pass (default: all)
candidates = ["..."]   # candidate labels that get the pass (default: all)

[[robustness.perturbations]]
name = "typo_keyboard"           # see harness.perturb.PERTURBATIONS
severities = [0.05, 0.2]         # each in [0, 1]; 0 = the identity
target = "items"                 # text perturbations: items (default) or users
fields = ["movie_title"]         # text perturbations: perturb these fields of the target
                                 # table instead of the rendered text
label = "typo"                   # row label (default: the name); labels must be unique
models = ["llm-embed"]           # only these models (default: every model it applies to)
params = { mode = "upper" }      # the perturbation's own parameters
```
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from harness.perturb import PERTURBATIONS

KEYS = {"seed": int, "rbo_p": (int, float), "bootstrap": int, "kendall": bool, "models": list,
        "candidates": list, "perturbations": list}
ENTRY_KEYS = {"name": str, "severities": list, "target": str, "fields": list, "label": str,
              "models": list, "params": dict}
TEXT_KINDS = ("text",)


@dataclass(frozen=True)
class PerturbationSpec:
    """One `[[robustness.perturbations]]` entry, validated."""

    name: str
    label: str
    severities: tuple[float, ...]
    target: str | None = None
    fields: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    params: dict = field(default_factory=dict, compare=False)

    @property
    def kind(self) -> str:
        return PERTURBATIONS[self.name].kind

    @property
    def family(self) -> str:
        return PERTURBATIONS[self.name].family

    def make(self):
        return PERTURBATIONS[self.name](**self.params)


@dataclass(frozen=True)
class RobustnessSpec:
    """A validated `[robustness]` table."""

    perturbations: tuple[PerturbationSpec, ...]
    seed: int = 0
    rbo_p: float = 0.9
    bootstrap: int = 1000
    kendall: bool = True
    models: tuple[str, ...] = ()
    candidates: tuple[str, ...] = ()

    def applies_to(self, model_label: str, candidates_label: str) -> bool:
        return ((not self.models or model_label in self.models)
                and (not self.candidates or candidates_label in self.candidates))

    def to_dict(self) -> dict:
        return asdict(self)


def _labels(c, key: str, value, choices) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        c.fail(key, f"must be a list of labels, got {value!r}")
    for j, lab in enumerate(value):
        c.choice(f"{key}[{j}]", lab, choices)
    return tuple(value)


def _entry(c, i: int, e, models: list[str]) -> PerturbationSpec:
    key = f"robustness.perturbations[{i}]"
    c.keys(key, e, ENTRY_KEYS)
    if "name" not in e:
        c.fail(f"{key}.name", "missing required key")
    c.choice(f"{key}.name", e["name"], PERTURBATIONS)
    cls = PERTURBATIONS[e["name"]]
    sev = e.get("severities")
    if sev is None:
        c.fail(f"{key}.severities", "missing required key (a list of numbers in [0, 1])")
    if not sev or not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in sev):
        c.fail(f"{key}.severities", f"must be a non-empty list of numbers in [0, 1], got {sev!r}")
    for j, s in enumerate(sev):
        if not 0 <= s <= 1:
            c.fail(f"{key}.severities[{j}]", f"severity must be in [0, 1], got {s}")
    if len(set(sev)) != len(sev):
        c.fail(f"{key}.severities", f"duplicate severity in {sev!r}")
    text = cls.kind in TEXT_KINDS
    for opt in ("target", "fields"):
        if opt in e and not text:
            c.fail(f"{key}.{opt}", f"only text perturbations take '{opt}'; '{cls.name}' "
                                   f"perturbs {cls.kind}")
    target = e.get("target", "items") if text else None
    if text:
        c.choice(f"{key}.target", target, ("items", "users"))
    fields = e.get("fields", [])
    if "fields" in e and (not fields or not all(isinstance(f, str) for f in fields)):
        c.fail(f"{key}.fields", f"must be a non-empty list of field names, got {fields!r}")
    try:
        params = cls.check_params(e.get("params", {}))
    except ValueError as exc:
        sub, _, msg = str(exc).partition(": ")
        c.fail(f"{key}.params.{sub}", msg)
    return PerturbationSpec(cls.name, e.get("label", cls.name),
                            tuple(float(s) for s in sorted(sev)), target, tuple(fields),
                            _labels(c, f"{key}.models", e.get("models", []), models), params)


def parse_robustness(c, raw, suite_info: dict) -> RobustnessSpec:
    """Validate `[robustness]` with the suite's checker `c` (SuiteError names file and key)."""
    c.keys("robustness", raw, KEYS)
    entries = raw.get("perturbations")
    if not isinstance(entries, list) or not entries:
        c.fail("robustness.perturbations", "missing or empty: give at least one "
                                           "[[robustness.perturbations]] entry")
    specs = [_entry(c, i, e, suite_info["models"]) for i, e in enumerate(entries)]
    seen: dict[str, int] = {}
    for i, s in enumerate(specs):
        if s.label in seen:
            c.fail(f"robustness.perturbations[{i}].label",
                   f"duplicate label '{s.label}' (also entry {seen[s.label]}); set a distinct "
                   "'label'")
        seen[s.label] = i
    p = raw.get("rbo_p", 0.9)
    if not 0 < p < 1:
        c.fail("robustness.rbo_p", f"must be in (0, 1), got {p}")
    if raw.get("bootstrap", 1000) < 0:
        c.fail("robustness.bootstrap", f"must be >= 0, got {raw['bootstrap']}")
    return RobustnessSpec(tuple(specs), int(raw.get("seed", 0)), float(p),
                          int(raw.get("bootstrap", 1000)), bool(raw.get("kendall", True)),
                          _labels(c, "robustness.models", raw.get("models", []),
                                  suite_info["models"]),
                          _labels(c, "robustness.candidates", raw.get("candidates", []),
                                  suite_info["candidates"]))


def schema() -> dict:
    """JSON Schema of `[robustness]`."""
    entry = {"type": "object", "additionalProperties": False, "required": ["name", "severities"],
             "properties": {
                 "name": {"enum": sorted(PERTURBATIONS)},
                 "severities": {"type": "array", "minItems": 1, "uniqueItems": True,
                                "items": {"type": "number", "minimum": 0, "maximum": 1}},
                 "target": {"enum": ["items", "users"]},
                 "fields": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                 "label": {"type": "string"},
                 "models": {"type": "array", "items": {"type": "string"}},
                 "params": {"type": "object"}}}
    return {"type": "object", "additionalProperties": False, "required": ["perturbations"],
            "properties": {
                "seed": {"type": "integer"},
                "rbo_p": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "bootstrap": {"type": "integer", "minimum": 0},
                "kendall": {"type": "boolean"},
                "models": {"type": "array", "items": {"type": "string"}},
                "candidates": {"type": "array", "items": {"type": "string"}},
                "perturbations": {"type": "array", "minItems": 1, "items": entry}}}
