"""The suite's optional `[fairness]` table: parsed and validated, then checked against datasets.

```toml
[fairness]
ks = [10]                      # cutoffs (each in [evaluation] ks; default: all of them)
metrics = ["ndcg", "recall"]   # accuracy metrics per user group (default: [evaluation] metrics)
user_groups = ["gender", "age", "occupation", "activity"]  # user fields or "activity"
                               # (default: "activity" + every user field with <= 30 values
                               #  + the bucketed fields)
buckets = { age = [18, 25, 35, 45, 50, 56] }  # numeric user fields in half-open buckets
                               # (default: this one for a dataset with an 'age' field)
activity_quantiles = [0.333333, 0.666667]     # train-size quantile cuts (default: terciles)
min_group_size = 20            # smaller groups: reported as too small, never as numbers
permutations = 2000            # label shuffles of the permutation test of each gap
bootstrap = 1000               # stratified bootstrap resamples of each gap
confidence = 0.95              # CI level
seed = 0                       # seeds every permutation and resample
item_groups = ["popularity", "class"]   # "popularity" (head/mid/tail) or item fields
popularity_cuts = [0.2, 0.8]   # cumulative train-interaction shares that end head and mid
models = ["pop"]               # model labels that get the pass (default: all)
candidates = ["full"]          # candidate labels that get the pass (default: all)

[fairness.counterfactual]      # text recommenders only (FaiRLLM); others are invariant
attributes = ["gender", "age"] # user fields swapped in the user text
values = { gender = ["M", "F"], age = ["20", "40", "60"] }  # default: the field's values
max_users = 50                 # seeded subset of the evaluated users (default: all)
seed = 0
models = ["llm-embed"]         # default: every model the pass applies to
```
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from harness.errors import SuiteError, did_you_mean
from harness.fairness.groups import ACTIVITY, POPULARITY

DEFAULT_BUCKETS = {"age": (18.0, 25.0, 35.0, 45.0, 50.0, 56.0)}
AUTO_MAX_LEVELS = 30
KEYS = {"ks": list, "metrics": list, "user_groups": list, "buckets": dict,
        "activity_quantiles": list, "min_group_size": int, "permutations": int,
        "bootstrap": int, "confidence": (int, float), "seed": int, "item_groups": list,
        "popularity_cuts": list, "models": list, "candidates": list, "counterfactual": dict}
CF_KEYS = {"attributes": list, "values": dict, "max_users": int, "seed": int, "models": list}


@dataclass(frozen=True)
class CounterfactualSpec:
    attributes: tuple[str, ...]
    values: tuple[tuple[str, tuple[str, ...]], ...] = ()  # explicit values per attribute
    max_users: int | None = None
    seed: int = 0
    models: tuple[str, ...] = ()

    def values_for(self, attribute: str) -> tuple[str, ...] | None:
        return dict(self.values).get(attribute)


@dataclass(frozen=True)
class FairnessSpec:
    """A validated `[fairness]` table (see the module docstring)."""

    ks: tuple[int, ...]
    metrics: tuple[str, ...]
    user_groups: tuple[str, ...] | None = None  # None = automatic (see `resolve_user_groups`)
    buckets: tuple[tuple[str, tuple[float, ...]], ...] | None = None  # None = DEFAULT_BUCKETS
    activity_quantiles: tuple[float, ...] = (1 / 3, 2 / 3)
    min_group_size: int = 20
    permutations: int = 2000
    bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0
    item_groups: tuple[str, ...] = (POPULARITY,)
    popularity_cuts: tuple[float, ...] = (0.2, 0.8)
    models: tuple[str, ...] = ()
    candidates: tuple[str, ...] = ()
    counterfactual: CounterfactualSpec | None = None

    def applies_to(self, model_label: str, candidates_label: str) -> bool:
        return ((not self.models or model_label in self.models)
                and (not self.candidates or candidates_label in self.candidates))

    def bucket_map(self, users_table) -> dict[str, tuple[float, ...]]:
        """Bucketed fields: the explicit ones, or the defaults the dataset has."""
        if self.buckets is not None:
            return dict(self.buckets)
        cols = set(users_table.columns) if users_table is not None else set()
        return {f: e for f, e in DEFAULT_BUCKETS.items() if f in cols}

    def resolve_user_groups(self, users_table) -> list[str]:
        """The explicit groupings, or: activity + bucketed fields + every categorical user
        field with at most AUTO_MAX_LEVELS distinct non-empty values."""
        if self.user_groups is not None:
            return list(self.user_groups)
        out = [ACTIVITY]
        if users_table is None:
            return out
        buckets = self.bucket_map(users_table)
        for col in users_table.columns:
            n = users_table[col].astype(str).str.strip().replace("", None).nunique()
            if col in buckets or n <= AUTO_MAX_LEVELS:
                out.append(col)
        return out

    def to_dict(self) -> dict:
        """JSON-ready (lists and tables as in the suite file; None = automatic)."""
        d = json.loads(json.dumps(asdict(self)))
        if self.buckets is not None:
            d["buckets"] = {f: list(e) for f, e in self.buckets}
        if self.counterfactual is not None:
            d["counterfactual"]["values"] = {a: list(v) for a, v in self.counterfactual.values}
        return d


def _numbers(c, key: str, value, lo=None, hi=None, strict: bool = True) -> tuple[float, ...]:
    ok = (isinstance(value, list) and value
          and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value))
    if not ok:
        c.fail(key, f"must be a non-empty list of numbers, got {value!r}")
    if any(b <= a for a, b in zip(value, value[1:])):
        c.fail(key, f"must be strictly increasing, got {value!r}")
    if (lo is not None and any(x <= lo for x in value)) or (
            hi is not None and any(x >= hi for x in value)):
        c.fail(key, f"values must lie in ({lo}, {hi}), got {value!r}")
    return tuple(float(x) for x in value)


def _names(c, key: str, value, choices=None) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(x, str) and x
                                                           for x in value):
        c.fail(key, f"must be a non-empty list of names, got {value!r}")
    if len(set(value)) != len(value):
        c.fail(key, f"has duplicates: {value!r}")
    if choices is not None:
        for i, x in enumerate(value):
            c.choice(f"{key}[{i}]", x, choices)
    return tuple(value)


def parse_fairness(c, raw, info: dict) -> FairnessSpec:
    """Validate `[fairness]` with the suite's checker `c` (SuiteError: file, key, nearest
    valid value). `info`: the suite's models, candidates, ks, metrics."""
    c.keys("fairness", raw, KEYS)
    ks = (_ints(c, "fairness.ks", raw["ks"], info["ks"]) if "ks" in raw else tuple(info["ks"]))
    metrics = (_names(c, "fairness.metrics", raw["metrics"], info["metrics"])
               if "metrics" in raw else tuple(info["metrics"]))
    groups = _names(c, "fairness.user_groups", raw["user_groups"]) if "user_groups" in raw \
        else None
    buckets = None
    if "buckets" in raw:
        buckets = tuple((f, _numbers(c, f"fairness.buckets.{f}", e))
                        for f, e in raw["buckets"].items())
        if groups is not None:
            for f, _ in buckets:
                if f not in groups:
                    c.fail(f"fairness.buckets.{f}", "is not in fairness.user_groups"
                           f"{did_you_mean(f, groups)}")
    quant = (_numbers(c, "fairness.activity_quantiles", raw["activity_quantiles"], 0, 1)
             if "activity_quantiles" in raw else (1 / 3, 2 / 3))
    cuts = (_numbers(c, "fairness.popularity_cuts", raw["popularity_cuts"], 0, 1)
            if "popularity_cuts" in raw else (0.2, 0.8))
    for key in ("min_group_size", "permutations", "bootstrap"):
        if key in raw and raw[key] <= 0:
            c.fail(f"fairness.{key}", f"must be positive, got {raw[key]}")
    conf = raw.get("confidence", 0.95)
    if not 0 < conf < 1:
        c.fail("fairness.confidence", f"must be in (0, 1), got {conf}")
    items = (_names(c, "fairness.item_groups", raw["item_groups"]) if "item_groups" in raw
             else (POPULARITY,))
    models = _names(c, "fairness.models", raw["models"], info["models"]) \
        if "models" in raw else ()
    cands = _names(c, "fairness.candidates", raw["candidates"], info["candidates"]) \
        if "candidates" in raw else ()
    cf = _counterfactual(c, raw["counterfactual"], models or info["models"]) \
        if "counterfactual" in raw else None
    return FairnessSpec(ks, metrics, groups, buckets, quant, int(raw.get("min_group_size", 20)),
                        int(raw.get("permutations", 2000)), int(raw.get("bootstrap", 1000)),
                        float(conf), int(raw.get("seed", 0)), items, cuts, models, cands, cf)


def _ints(c, key: str, value, allowed) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in value):
        c.fail(key, f"must be a non-empty list of integers, got {value!r}")
    for i, k in enumerate(value):
        if k not in allowed:
            c.fail(f"{key}[{i}]", f"{k} is not in [evaluation] ks {list(allowed)}")
    return tuple(sorted(set(value)))


def _counterfactual(c, raw, model_labels) -> CounterfactualSpec:
    where = "fairness.counterfactual"
    c.keys(where, raw, CF_KEYS)
    if "attributes" not in raw:
        c.fail(f"{where}.attributes", "missing required key")
    attrs = _names(c, f"{where}.attributes", raw["attributes"])
    values = []
    for a, vals in raw.get("values", {}).items():
        if a not in attrs:
            c.fail(f"{where}.values.{a}", f"is not in {where}.attributes{did_you_mean(a, attrs)}")
        values.append((a, _names(c, f"{where}.values.{a}", vals)))
    if raw.get("max_users", 1) <= 0:
        c.fail(f"{where}.max_users", f"must be positive, got {raw['max_users']}")
    models = _names(c, f"{where}.models", raw["models"], model_labels) if "models" in raw else ()
    return CounterfactualSpec(attrs, tuple(values), raw.get("max_users"), int(raw.get("seed", 0)),
                              models)


def preflight(spec: FairnessSpec, datasets: dict, file: str) -> None:
    """Fields named by the table must exist in every dataset (SuiteError naming the file, the
    key and the dataset's fields); bucketed fields must be numeric."""
    import pandas as pd
    for label, ds in datasets.items():
        users, items = ds.users, ds.items
        ufields = list(users.columns) if users is not None else []
        ifields = list(items.columns) if items is not None else []
        explicit = [(f"fairness.user_groups[{i}]", g) for i, g in
                    enumerate(spec.user_groups or ()) if g != ACTIVITY]
        explicit += [(f"fairness.buckets.{f}", f) for f, _ in (spec.buckets or ())]
        if spec.counterfactual is not None:
            explicit += [(f"fairness.counterfactual.attributes[{i}]", a)
                         for i, a in enumerate(spec.counterfactual.attributes)]
        for key, name in explicit:
            if users is None:
                raise SuiteError(file, key, f"asks for user field '{name}', but dataset "
                                            f"'{label}' has no user table")
            if name not in ufields:
                raise SuiteError(file, key, f"dataset '{label}' has no user field '{name}'"
                                            f"{did_you_mean(name, ufields)}")
        for f in spec.bucket_map(users):
            if users is not None and f in ufields:
                x = pd.to_numeric(users[f].replace("", None), errors="coerce")
                if x.isna().all():
                    raise SuiteError(file, f"fairness.buckets.{f}", f"user field '{f}' of "
                                     f"dataset '{label}' has no numeric values")
        for i, g in enumerate(spec.item_groups):
            if g == POPULARITY:
                continue
            if items is None:
                raise SuiteError(file, f"fairness.item_groups[{i}]",
                                 f"asks for item field '{g}', but dataset '{label}' has no item "
                                 "table")
            if g not in ifields:
                raise SuiteError(file, f"fairness.item_groups[{i}]",
                                 f"dataset '{label}' has no item field '{g}'"
                                 f"{did_you_mean(g, ifields + [POPULARITY])}")
        if spec.counterfactual is not None:
            for i, a in enumerate(spec.counterfactual.attributes):
                if spec.counterfactual.values_for(a) is None:
                    n = users[a].astype(str).str.strip().replace("", None).nunique()
                    if n > AUTO_MAX_LEVELS:
                        raise SuiteError(file, f"fairness.counterfactual.attributes[{i}]",
                                         f"user field '{a}' of dataset '{label}' has {n} "
                                         f"values; give them in fairness.counterfactual.values."
                                         f"{a}")


def schema() -> dict:
    """JSON Schema of the `[fairness]` table."""
    names = {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
             "uniqueItems": True}
    increasing = {"type": "array", "items": {"type": "number"}, "minItems": 1}
    unit = {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0,
                                       "exclusiveMaximum": 1}, "minItems": 1}
    pos = {"type": "integer", "minimum": 1}
    cf = {"type": "object", "additionalProperties": False, "required": ["attributes"],
          "properties": {"attributes": names,
                         "values": {"type": "object", "additionalProperties": names},
                         "max_users": pos, "seed": {"type": "integer"}, "models": names}}
    return {"type": "object", "additionalProperties": False, "properties": {
        "ks": {"type": "array", "items": pos, "minItems": 1}, "metrics": names,
        "user_groups": names, "buckets": {"type": "object", "additionalProperties": increasing},
        "activity_quantiles": unit, "min_group_size": pos, "permutations": pos,
        "bootstrap": pos, "confidence": {"type": "number", "exclusiveMinimum": 0,
                                         "exclusiveMaximum": 1},
        "seed": {"type": "integer"}, "item_groups": names, "popularity_cuts": unit,
        "models": names, "candidates": names, "counterfactual": cf}}
