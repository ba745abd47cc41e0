"""Suite files (TOML): parsed, validated against a schema, frozen. Errors name file and key."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import SuiteError, UserError, did_you_mean
from harness.metrics import METRICS

CANDIDATE_KEYS = {
    "full": {"label": str, "protocol": str, "models": list, "max_users": int, "seed": int},
    "sampled": {"label": str, "protocol": str, "models": list, "max_users": int, "seed": int,
                "n_negatives": int, "sampling": str},
    "rerank": {"label": str, "protocol": str, "models": list, "max_users": int,
               "first_stage": str, "m": int},
}
TARGETS = ["test", "valid"]
DATASET_KEYS = {"name": str, "path": str, "label": str, "min_rating": (int, float), "kcore": int,
                "n_users": int, "n_items": int, "n_interactions": int, "n_genres": int,
                "seed": int}
SECTION_KEYS = {
    "suite": {"name": str, "description": str, "seeds": list},
    "evaluation": {"target": str, "metrics": list, "ks": list, "batch_size": int},
    "model": {"name": str, "label": str, "params": dict},
    "split": {"name": str, "protocol": str, "seed": int},
}
TOP_LEVEL = {"suite", "datasets", "splits", "candidates", "evaluation", "models", "check",
             "execution"}


def top_level_keys() -> set[str]:
    """The core tables plus every registered pass's table ([efficiency], [fairness], ...)."""
    from harness.passes import tables
    return TOP_LEVEL | set(tables())


@dataclass(frozen=True)
class DatasetSpec:
    label: str
    name: str | None
    path: str | None
    options: dict


@dataclass(frozen=True)
class SplitSpec:
    label: str
    protocol: str
    seed: int
    params: dict


@dataclass(frozen=True)
class ModelSpec:
    label: str
    name: str
    params: dict


@dataclass(frozen=True)
class CandidateSpec:
    """A candidate protocol: `full`, `sampled` or `rerank`, run for `models` (empty = all)."""

    label: str
    protocol: str
    params: dict
    models: tuple[str, ...] = ()

    def applies_to(self, model_label: str) -> bool:
        return not self.models or model_label in self.models


@dataclass(frozen=True)
class Suite:
    """A validated suite. `sha256` hashes the file's bytes."""

    file: str
    name: str
    description: str
    seeds: tuple[int, ...]
    datasets: tuple[DatasetSpec, ...]
    splits: tuple[SplitSpec, ...]
    models: tuple[ModelSpec, ...]
    candidates: tuple[CandidateSpec, ...] = (CandidateSpec("full", "full", {}),)
    target: str = "test"
    metrics: tuple[str, ...] = tuple(METRICS)
    ks: tuple[int, ...] = (5, 10, 20)
    batch_size: int = 256
    sha256: str = ""
    raw: dict = field(default_factory=dict, compare=False)
    check: dict = field(default_factory=dict, compare=False)  # [check]: harness.check.config
    passes: dict = field(default_factory=dict, compare=False)  # table name -> its pass's spec
    execution: Any = field(default=None, compare=False)  # [execution]: ExecutionSpec

    @property
    def efficiency(self):
        """The `[efficiency]` spec (parsed by the efficiency pass), or None."""
        return self.passes.get("efficiency")


def _type_name(t) -> str:
    return " or ".join(x.__name__ for x in t) if isinstance(t, tuple) else t.__name__


class _Checker:
    def __init__(self, file: str):
        self.file = file

    def fail(self, key: str, msg: str):
        raise SuiteError(self.file, key, msg)

    def keys(self, where: str, table: Any, allowed: dict | set, extra: set = frozenset()):
        if not isinstance(table, dict):
            self.fail(where, f"must be a table, got {type(table).__name__}")
        for key in table:
            if key not in allowed and key not in extra:
                self.fail(f"{where}.{key}", f"unknown key{did_you_mean(key, set(allowed) | extra)}")
        if isinstance(allowed, dict):
            for key, typ in allowed.items():
                if key in table:
                    value = table[key]
                    bad_bool = isinstance(value, bool) and typ is not bool
                    if bad_bool or not isinstance(value, typ):
                        self.fail(f"{where}.{key}", f"must be {_type_name(typ)}, "
                                                    f"got {value!r}")

    def choice(self, key: str, value: str, choices) -> None:
        if value not in choices:
            self.fail(key, f"unknown value '{value}'{did_you_mean(value, choices)}")


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file; raises SuiteError (file, key, nearest valid choice)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"suite file '{path}' does not exist")
    data = path.read_bytes()
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SuiteError(str(path), "<toml>", f"malformed TOML: {exc}") from exc
    return parse_suite(raw, str(path), hashlib.sha256(data).hexdigest())


def parse_suite(raw: dict, file: str = "<suite>", sha256: str = "") -> Suite:
    """Validate a parsed TOML dict into a Suite."""
    from harness.check.config import validate_check_table
    c = _Checker(file)
    c.keys("<top>", raw, top_level_keys())
    for req in ("suite", "datasets", "splits", "models"):
        if req not in raw:
            c.fail(req, "missing required section")
    s = raw["suite"]
    c.keys("suite", s, SECTION_KEYS["suite"])
    if "name" not in s:
        c.fail("suite.name", "missing required key")
    seeds = s.get("seeds", [0])
    if not seeds or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds):
        c.fail("suite.seeds", f"must be a non-empty list of integers, got {seeds!r}")
    ev = raw.get("evaluation", {})
    c.keys("evaluation", ev, SECTION_KEYS["evaluation"])
    target = ev.get("target", "test")
    c.choice("evaluation.target", target, TARGETS)
    metrics = ev.get("metrics", list(METRICS))
    for i, m in enumerate(metrics):
        c.choice(f"evaluation.metrics[{i}]", m, METRICS)
    ks = ev.get("ks", [5, 10, 20])
    if not ks or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 for k in ks):
        c.fail("evaluation.ks", f"must be a non-empty list of positive integers, got {ks!r}")
    batch = ev.get("batch_size", 256)
    if batch <= 0:
        c.fail("evaluation.batch_size", f"must be positive, got {batch}")
    models = _models(c, raw["models"])
    cands = _candidates(c, raw.get("candidates", [{"protocol": "full"}]), models, max(ks))
    datasets = _datasets(c, raw["datasets"])
    info = {"models": [m.label for m in models], "model_names": {m.label: m.name for m in models},
            "candidates": [x.label for x in cands], "ks": sorted(set(ks)), "metrics": list(metrics),
            "datasets": datasets, "target": target}
    from harness.passes import tables
    pass_specs = {table: p.parse(c, raw[table], info) for table, p in tables().items()
                  if table in raw}
    return Suite(file, s["name"], s.get("description", ""), tuple(seeds),
                 datasets, _splits(c, raw["splits"]), models, cands,
                 target, tuple(metrics), tuple(sorted(set(ks))), batch, sha256, raw,
                 check=validate_check_table(raw.get("check", {}), c.fail), passes=pass_specs,
                 execution=_execution(c, raw.get("execution", {}), models))


def _array(c: _Checker, key: str, value) -> list:
    if not isinstance(value, list) or not value:
        c.fail(key, f"must be a non-empty array of tables ([[{key}]]), got {type(value).__name__}")
    return value


def _unique(c: _Checker, key: str, labels: list[str]) -> None:
    seen = set()
    for i, lab in enumerate(labels):
        if lab in seen:
            c.fail(f"{key}[{i}]", f"duplicate label '{lab}' (set a distinct 'label')")
        seen.add(lab)


def _datasets(c: _Checker, value) -> tuple[DatasetSpec, ...]:
    from harness.data.registry import DATASETS
    out = []
    for i, d in enumerate(_array(c, "datasets", value)):
        key = f"datasets[{i}]"
        c.keys(key, d, DATASET_KEYS)
        if ("name" in d) == ("path" in d):
            c.fail(key, "give exactly one of 'name' (registry) or 'path' (atomic-files dir)")
        if "name" in d:
            c.choice(f"{key}.name", d["name"], DATASETS)
        if "path" in d and not Path(d["path"]).is_dir():
            c.fail(f"{key}.path", f"directory '{d['path']}' does not exist")
        opts = {k: v for k, v in d.items() if k not in ("name", "path", "label")}
        if d.get("name") != "synthetic":
            for k in opts:
                if k not in ("min_rating", "kcore"):
                    c.fail(f"{key}.{k}", "only valid for the 'synthetic' dataset")
        label = d.get("label") or d.get("name") or Path(d["path"]).name
        out.append(DatasetSpec(label, d.get("name"), d.get("path"), opts))
    _unique(c, "datasets", [d.label for d in out])
    return tuple(out)


def _splits(c: _Checker, value) -> tuple[SplitSpec, ...]:
    from harness.splits.make import PROTOCOLS, protocol_params, validate_params
    out = []
    for i, sp in enumerate(_array(c, "splits", value)):
        key = f"splits[{i}]"
        if not isinstance(sp, dict) or "protocol" not in sp:
            c.fail(f"{key}.protocol", "missing required key")
        c.choice(f"{key}.protocol", sp["protocol"], PROTOCOLS)
        c.keys(key, sp, SECTION_KEYS["split"], set(protocol_params(sp["protocol"])))
        params = {k: v for k, v in sp.items() if k not in SECTION_KEYS["split"]}
        try:
            params = validate_params(sp["protocol"], params)
        except UserError as exc:
            c.fail(key, str(exc))
        out.append(SplitSpec(sp.get("name", sp["protocol"]), sp["protocol"], sp.get("seed", 0),
                             params))
    _unique(c, "splits", [s.label for s in out])
    return tuple(out)


def _models(c: _Checker, value) -> tuple[ModelSpec, ...]:
    from harness import registry
    out = []
    for i, m in enumerate(_array(c, "models", value)):
        key = f"models[{i}]"
        c.keys(key, m, SECTION_KEYS["model"])
        if "name" not in m:
            c.fail(f"{key}.name", "missing required key")
        params = m.get("params", {})
        try:
            cls = registry.resolve(m["name"])
            registry.check_params(m["name"], cls, params)
        except UserError as exc:
            c.fail(f"{key}.name" if "unknown recommender" in str(exc) else f"{key}.params",
                   str(exc))
        out.append(ModelSpec(m.get("label", m["name"]), m["name"], dict(params)))
    _unique(c, "models", [m.label for m in out])
    return tuple(out)


def _candidates(c: _Checker, value, models, kmax: int) -> tuple[CandidateSpec, ...]:
    labels = [m.label for m in models]
    out = []
    for i, cd in enumerate(_array(c, "candidates", value)):
        key = f"candidates[{i}]"
        if not isinstance(cd, dict) or "protocol" not in cd:
            c.fail(f"{key}.protocol", "missing required key")
        c.choice(f"{key}.protocol", cd["protocol"], CANDIDATE_KEYS)
        proto = cd["protocol"]
        c.keys(key, cd, CANDIDATE_KEYS[proto])
        for j, m in enumerate(cd.get("models", [])):
            c.choice(f"{key}.models[{j}]", m, labels)
        for name in ("max_users", "n_negatives", "m"):
            if name in cd and cd[name] <= 0:
                c.fail(f"{key}.{name}", f"must be positive, got {cd[name]}")
        if proto == "sampled":
            c.choice(f"{key}.sampling", cd.get("sampling", "uniform"), ["uniform", "popularity"])
        if proto == "rerank":
            for req in ("first_stage", "m"):
                if req not in cd:
                    c.fail(f"{key}.{req}", "missing required key for protocol 'rerank'")
            c.choice(f"{key}.first_stage", cd["first_stage"], labels)
            if cd["m"] < kmax:
                c.fail(f"{key}.m", f"must be >= the largest k ({kmax}), got {cd['m']}")
        defaults = {"full": {"seed": 0, "max_users": None},
                    "sampled": {"seed": 0, "max_users": None, "n_negatives": 100,
                                "sampling": "uniform"},
                    "rerank": {"max_users": None}}[proto]
        params = {**defaults, **{k: v for k, v in cd.items()
                                 if k not in ("label", "protocol", "models")}}
        out.append(CandidateSpec(cd.get("label", proto), proto, params,
                                 tuple(cd.get("models", []))))
    _unique(c, "candidates", [x.label for x in out])
    return tuple(out)


def _execution(c: _Checker, value, models):
    from harness.executors.config import parse_execution
    from harness.passes import PASSES
    return parse_execution(c, value, [m.label for m in models], list(PASSES))
