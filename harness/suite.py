"""Suite files (TOML): parsed, validated, frozen.

Every key has a declared type and range (the key tables below, harness.validation specs; the
same tables generate `harness schema`). The whole file is checked and one SuiteError lists every
problem found, each with file, line, key and the nearest valid value; nothing is written before
a suite is valid. Checks that need the loaded datasets are in harness.dataset_checks.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import SuiteError, UserError, did_you_mean
from harness.metrics import METRICS
from harness.names import dir_name_problem, file_part
from harness.validation import Bool, Checker, Int, List, Num, Str, Table

# Key tables: each key's type and range (harness.validation). The checker below and the JSON
# Schema (`harness schema`, harness.schema) are both generated from them.
SEED = Int(0, 2**32 - 1, doc="a random seed")
MAX_SEEDS = 1000
MAX_K = 100_000
LABEL = Str(label=True, doc="shown in tables and part of file names (no '/', '\\')")
_CAND_COMMON = {"label": LABEL, "protocol": Str(("full", "sampled", "rerank")),
                "models": List(Str(nonempty=True), min_items=0, unique=True,
                               doc="model labels run under this protocol (default: all)"),
                "max_users": Int(1, doc="a seeded subset of users")}
CANDIDATE_KEYS = {
    "full": {**_CAND_COMMON, "seed": SEED},
    "sampled": {**_CAND_COMMON, "seed": SEED, "n_negatives": Int(1, 1_000_000),
                "sampling": Str(("uniform", "popularity"))},
    "rerank": {**_CAND_COMMON, "first_stage": Str(nonempty=True), "m": Int(1, 1_000_000)},
}
TARGETS = ["test", "valid"]
DATASET_KEYS = {"name": Str(nonempty=True), "path": Str(nonempty=True), "label": LABEL,
                "min_rating": Num(doc="keep interactions with rating >= min_rating"),
                "kcore": Int(0, 100_000, doc="iterative k-core filtering (0: off)"),
                "n_users": Int(1, 10_000_000), "n_items": Int(1, 10_000_000),
                "n_interactions": Int(1, 100_000_000), "n_genres": Int(1, 1000),
                "seed": SEED}
SYNTHETIC_ONLY = ("n_users", "n_items", "n_interactions", "n_genres", "seed")
SECTION_KEYS = {
    "suite": {"name": Str(doc="folder name of the runs"), "description": str,
              "seeds": List(SEED, 1, MAX_SEEDS, unique=True, doc="model seeds")},
    "evaluation": {"target": Str(TARGETS), "metrics": List(Str(tuple(METRICS)), unique=True),
                   "ks": List(Int(1, MAX_K)), "batch_size": Int(1, 10_000_000),
                   "primary": Str(doc="'metric@k' the holistic leaderboard ranks by "
                                      "(default ndcg@10)")},
    "model": {"name": Str(nonempty=True, doc="registry name, 'family:variant' or "
                                              "'module:Class'"),
              "label": LABEL, "params": Table(doc="keyword arguments of the recommender")},
    "split": {"name": LABEL, "protocol": Str(), "seed": SEED},
}
# Split protocol parameters with a range (others: the type of the protocol's default).
SPLIT_PARAMS = {"ratios": List(Num(0, 1), 3, 3, doc="train, valid, test shares (sum 1)"),
                "item_share": Num(0, 1, lo_open=True, hi_open=True),
                "keep_cold_users": Bool()}
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
    primary: str = "ndcg@10"  # [evaluation] primary: the holistic leaderboard's accuracy column

    @property
    def efficiency(self):
        """The `[efficiency]` spec (parsed by the efficiency pass), or None."""
        return self.passes.get("efficiency")


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file. Raises one SuiteError listing every problem found
    (file, line, key, nearest valid choice), or UserError when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"suite file '{path}' does not exist")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise SuiteError(str(path), "<toml>", f"not UTF-8 text (byte {exc.start})",
                         line) from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(str(path), "<toml>", f"malformed TOML: {exc}") from exc
    from harness.tomllines import key_lines
    return parse_suite(raw, str(path), hashlib.sha256(data).hexdigest(), lines=key_lines(text))


def parse_suite(raw: dict, file: str = "<suite>", sha256: str = "", *,
                lines: dict | None = None) -> Suite:
    """Validate a parsed TOML dict into a Suite. Every section is checked even after another
    one failed; all problems are raised together as one SuiteError."""
    c = Checker(file, lines)
    with c.section():
        c.keys("<top>", raw, top_level_keys())
    for req in ("suite", "datasets", "splits", "models"):
        if req not in raw:
            c.problem(req, "missing required section")
    name, description, seeds = "", "", (0,)
    s = raw.get("suite", {})
    if isinstance(s, dict) and "name" in s:  # a folder name under --out: checked on its own
        problem = dir_name_problem(s["name"])
        if problem:
            c.problem("suite.name", problem)
    with c.section():
        c.keys("suite", s, SECTION_KEYS["suite"])
        if "name" not in s:
            c.fail("suite.name", "missing required key")
        name, description, seeds = s["name"], s.get("description", ""), tuple(s.get("seeds", [0]))
    target, metrics, ks, batch, ev_ok = "test", tuple(METRICS), (5, 10, 20), 256, False
    primary = "ndcg@10"
    with c.section():
        ev = raw.get("evaluation", {})
        c.keys("evaluation", ev, SECTION_KEYS["evaluation"])
        target, metrics = ev.get("target", "test"), tuple(ev.get("metrics", list(METRICS)))
        ks, batch = tuple(sorted(set(ev.get("ks", [5, 10, 20])))), ev.get("batch_size", 256)
        valid = [f"{m}@{k}" for m in metrics for k in ks]
        primary = ev.get("primary", "ndcg@10" if "ndcg@10" in valid else valid[0])
        if primary not in valid:
            c.problem("evaluation.primary", f"must be 'metric@k' with a metric of "
                                            f"[evaluation] metrics and a k of ks, got {primary!r}"
                                            f"{did_you_mean(str(primary), valid)}")
        ev_ok = True
    models = _models(c, raw.get("models"))
    labels = [m.label for m in models]
    cands = _candidates(c, raw.get("candidates", [{"protocol": "full"}]), labels,
                        max(ks) if ev_ok else None)
    datasets = _datasets(c, raw.get("datasets"))
    splits = _splits(c, raw.get("splits"))
    _unique_file_names(c, datasets, splits, cands, models)
    info = {"models": labels, "model_names": {m.label: m.name for m in models},
            "candidates": [x.label for x in cands], "ks": sorted(set(ks)), "metrics": list(metrics),
            "datasets": datasets, "target": target}
    from harness.passes import tables
    pass_specs = {}
    for table, p in tables().items():
        if table in raw and _finite(c, table, raw[table]):
            with c.section():
                pass_specs[table] = p.parse(c, raw[table], info)
    check = _check_table(c, raw.get("check", {}))
    execution = None
    with c.section():  # parse_execution checks finiteness key by key: every bad key is reported
        execution = _execution(c, raw.get("execution", {}), labels)
    c.raise_if_any()
    return Suite(file, name, description, seeds, datasets, splits, models, cands,
                 target, metrics, ks, batch, sha256, raw, check=check, passes=pass_specs,
                 execution=execution, primary=primary)


def _check_table(c: Checker, table) -> dict:
    """The [check] table (harness.check.config), checked key by key so that every bad key is
    reported."""
    from harness.check.config import validate_check_table
    if not isinstance(table, dict):
        c.problem("check", f"must be a table, got {table!r}")
        return {}
    out: dict = {}
    for key, value in table.items():
        with c.section():
            if _finite(c, f"check.{key}", value):
                out.update(validate_check_table({key: value}, c.fail))
    return out


def _finite(c: Checker, where: str, value) -> bool:
    """Record every NaN or infinite number in a table parsed by other code (a pass, [check],
    [execution]); True when there is none. No suite value may be NaN or infinite."""
    bad = list(_non_finite(where, value))
    for key, v in bad:
        c.problem(key, f"must be a finite number, got {v!r}")
    return not bad


def _non_finite(where: str, value):
    """(key, value) of every NaN or infinite number inside `value`."""
    if isinstance(value, float) and not math.isfinite(value):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _non_finite(f"{where}.{k}", v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _non_finite(f"{where}[{i}]", v)


def _array(c: Checker, key: str, value) -> list:
    """The entries of an array of tables ([] after recording a problem)."""
    if value is None:
        return []
    if not isinstance(value, list) or not value:
        c.problem(key, f"must be a non-empty array of tables ([[{key}]]), got {value!r}")
        return []
    return value


def _unique(c: Checker, key: str, labels: list[str]) -> None:
    seen: set[str] = set()
    files: dict[str, str] = {}  # file-name form -> first label with it
    for i, lab in enumerate(labels):
        if lab in seen:
            c.problem(f"{key}[{i}]", f"duplicate label '{lab}' (set a distinct 'label')")
        elif file_part(lab) in files:
            c.problem(f"{key}[{i}]", f"label '{lab}' has the same file name as "
                                     f"'{files[file_part(lab)]}' ('{file_part(lab)}'); set a "
                                     "distinct 'label'")
        seen.add(lab)
        files.setdefault(file_part(lab), lab)


def _unique_file_names(c: Checker, datasets, splits, cands, models) -> None:
    """Cell folder names join four labels with '__': no two cells may share one."""
    seen: dict[str, tuple] = {}
    for d in datasets:
        for s in splits:
            for x in cands:
                for m in models:
                    key = file_part(f"{d.label}__{s.label}__{x.label}__{m.label}")
                    combo = (d.label, s.label, x.label, m.label)
                    same = key in seen and all(file_part(a) == file_part(b)
                                               for a, b in zip(seen[key], combo))
                    if key in seen and not same:  # (same: a label clash, reported by _unique)
                        c.problem("models", f"labels {combo} and {seen[key]} give the same cell "
                                            f"folder '{key}' (avoid '__' in labels)")
                        return
                    seen[key] = combo


def _datasets(c: Checker, value) -> tuple[DatasetSpec, ...]:
    from harness.data.registry import DATASETS
    out = []
    for i, d in enumerate(_array(c, "datasets", value)):
        key = f"datasets[{i}]"
        with c.section():
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
                    if k in SYNTHETIC_ONLY:
                        c.problem(f"{key}.{k}", "only valid for the 'synthetic' dataset")
            else:
                _synthetic_sizes(c, key, opts)
            label = d.get("label") or d.get("name") or Path(d["path"]).name
            out.append(DatasetSpec(label, d.get("name"), d.get("path"), opts))
    _unique(c, "datasets", [d.label for d in out])
    return tuple(out)


def _synthetic_sizes(c: Checker, key: str, opts: dict) -> None:
    from harness.data.synthetic import synthetic_tables
    defaults = {n: p.default for n, p in inspect.signature(synthetic_tables).parameters.items()}
    size = {n: opts.get(n, defaults[n]) for n in ("n_users", "n_items", "n_interactions")}
    pairs = size["n_users"] * size["n_items"]
    if size["n_interactions"] > pairs:
        c.problem(f"{key}.n_interactions",
                  f"must be <= n_users x n_items = {pairs} (distinct pairs), got "
                  f"{size['n_interactions']} (nearest valid: {pairs})")


def _splits(c: Checker, value) -> tuple[SplitSpec, ...]:
    from harness.splits.make import PROTOCOLS, protocol_params, validate_params
    out = []
    for i, sp in enumerate(_array(c, "splits", value)):
        key = f"splits[{i}]"
        with c.section():
            if not isinstance(sp, dict):
                c.fail(key, f"must be a table, got {sp!r}")
            if "protocol" not in sp:
                c.fail(f"{key}.protocol", "missing required key")
            c.choice(f"{key}.protocol", sp["protocol"], PROTOCOLS)
            c.keys(key, sp, {**SECTION_KEYS["split"], **split_param_specs(sp["protocol"])})
            params = {k: v for k, v in sp.items() if k not in SECTION_KEYS["split"]}
            try:
                params = validate_params(sp["protocol"], params)
            except UserError as exc:
                c.fail(key, str(exc))
            out.append(SplitSpec(sp.get("name", sp["protocol"]), sp["protocol"],
                                 sp.get("seed", 0), params))
    _unique(c, "splits", [s.label for s in out])
    return tuple(out)


def split_param_specs(protocol: str) -> dict:
    """Key specs of a protocol's parameters (SPLIT_PARAMS, else the type of the default)."""
    from harness.splits.make import protocol_params
    out = {}
    for name, default in protocol_params(protocol).items():
        if name in SPLIT_PARAMS:
            out[name] = SPLIT_PARAMS[name]
        elif isinstance(default, bool):
            out[name] = Bool()
        elif isinstance(default, (int, float)):
            out[name] = Num() if isinstance(default, float) else Int()
        else:
            out[name] = object
    return out


def _models(c: Checker, value) -> tuple[ModelSpec, ...]:
    from harness import registry
    out = []
    for i, m in enumerate(_array(c, "models", value)):
        key = f"models[{i}]"
        with c.section():
            if isinstance(m, dict) and isinstance(m.get("name"), str):  # keep the label known
                label = m.get("label", m["name"])
                if isinstance(label, str):
                    out.append(ModelSpec(label, m["name"], dict(m.get("params", {}))
                                         if isinstance(m.get("params", {}), dict) else {}))
            c.keys(key, m, SECTION_KEYS["model"])
            if "name" not in m:
                c.fail(f"{key}.name", "missing required key")
            try:
                cls = registry.resolve(m["name"])
            except UserError as exc:
                c.fail(f"{key}.name", str(exc))
            try:
                found = registry.param_problems(m["name"], cls, m.get("params", {}))
            except UserError as exc:  # the class's own declarations are broken
                c.fail(f"{key}.name", str(exc))
            for msg in found:
                c.problem(f"{key}.params", msg)
            if found:
                continue
            try:  # also runs check_variant and the validation in the class's __init__
                registry.build(m["name"], m.get("params", {}), 0)
            except UserError as exc:  # a family's unknown variant is a problem of the name
                where = "name" if str(exc).startswith("unknown recommender") else "params"
                c.fail(f"{key}.{where}", str(exc))
            except (ValueError, TypeError, AssertionError) as exc:
                c.fail(f"{key}.params", f"recommender '{m['name']}' rejects these "
                                        f"parameters: {type(exc).__name__}: {exc}")
    _unique(c, "models", [m.label for m in out])
    return tuple(out)


def _candidates(c: Checker, value, labels: list[str], kmax: int | None
                ) -> tuple[CandidateSpec, ...]:
    out = []
    for i, cd in enumerate(_array(c, "candidates", value)):
        key = f"candidates[{i}]"
        with c.section():
            if not isinstance(cd, dict):
                c.fail(key, f"must be a table, got {cd!r}")
            if "protocol" not in cd:
                c.fail(f"{key}.protocol", "missing required key")
            c.choice(f"{key}.protocol", cd["protocol"], CANDIDATE_KEYS)
            proto = cd["protocol"]
            c.keys(key, cd, CANDIDATE_KEYS[proto])
            for j, m in enumerate(cd.get("models", [])):
                if m not in labels:
                    c.choice(f"{key}.models[{j}]", m, labels)
            if proto == "rerank":
                for req in ("first_stage", "m"):
                    if req not in cd:
                        c.fail(f"{key}.{req}", "missing required key for protocol 'rerank'")
                c.choice(f"{key}.first_stage", cd["first_stage"], labels)
                if kmax is not None and cd["m"] < kmax:
                    c.fail(f"{key}.m", f"must be >= the largest k ({kmax}), got {cd['m']} "
                                       f"(nearest valid: {kmax})")
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


def _execution(c, value, labels: list[str]):
    """The [execution] table (harness.executors.config)."""
    from harness.executors.config import parse_execution
    from harness.passes import PASSES
    return parse_execution(c, value, labels, list(PASSES))
