"""Recommender registry: built-in names, `module:Class` references, entry-point plugins."""

from __future__ import annotations

import importlib
import inspect
import math
import os
import re
import sys
from functools import lru_cache
from importlib.metadata import entry_points

from harness.errors import UserError, did_you_mean

ENTRY_POINT_GROUP = "harness.recommenders"
OWN_DISTRIBUTION = "recsys-harness"  # registers the built-ins as entry points too
# Built-ins are referenced by string so that the core never imports `baselines` at import time.
BUILTINS = {
    "pop": "baselines.pop:Pop",
    "random": "baselines.random_rec:RandomRec",
    "itemknn": "baselines.itemknn:ItemKNN",
    "ease": "baselines.ease:EASE",
    "als": "baselines.als:ALS",
    "bpr": "baselines.bpr:BPR",
    "sasrec": "baselines.sasrec:SASRec",
    "null": "baselines.null:Null",
    "recbole": "baselines.recbole:RecBoleRecommender",
    "implicit": "baselines.implicit_family:ImplicitRecommender",
    "cornac": "baselines.cornac_family:CornacRecommender",
    "llm-embed": "harness.llm.embed:LLMEmbed",
    "llm-rank": "harness.llm.rank:LLMRank",
    "llm-hybrid": "harness.llm.hybrid:LLMHybrid",
    "llm-classifier": "harness.llm.classifier:LLMClassifier",
    "llm-embed-ft": "harness.llm.embed_ft:LLMEmbedFT",
    "llm-rank-ft": "harness.llm.rank_ft:LLMRankFT",
}


def _entry_points() -> list:
    """Installed entry points of the group (scanned once per sys.path: a scan takes ~15 ms)."""
    return _scan(tuple(sys.path))


@lru_cache(maxsize=8)
def _scan(path: tuple) -> list:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def clashes() -> dict[str, str]:
    """Entry points whose name is a built-in's but whose target differs: name -> message.
    (The project registers its own built-ins as entry points too; those agree.)"""
    out = {}
    for ep in _entry_points():
        if ep.name not in BUILTINS or ep.value == BUILTINS[ep.name]:
            continue
        dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
        if dist != OWN_DISTRIBUTION:  # (the harness's own metadata may be stale: not a clash)
            out[ep.name] = (f"entry point '{ep.name}' = '{ep.value}' of {dist} clashes with the "
                            f"built-in '{ep.name}' ({BUILTINS[ep.name]}); rename the entry "
                            f"point in its package's metadata, or reference the class as "
                            f"'{ep.value}'")
    return out


def available() -> dict[str, str]:
    """Registry name -> 'module:Class' for built-ins and installed entry points (a clashing
    entry point is listed under its built-in's name; resolving that name is an error)."""
    names = dict(BUILTINS)
    for ep in _entry_points():
        names.setdefault(ep.name, ep.value)
    return names


def _missing_module(module: str, exc: ModuleNotFoundError) -> bool:
    """True when `module` itself (or a parent package) is what was not found."""
    missing = exc.name or ""
    return bool(missing) and (module == missing or module.startswith(missing + "."))


def _import_module(module: str, shown: str):
    """Import `module` with the current directory on sys.path (restored afterwards), so that
    a 'module:Class' plugin can be a .py file next to the suite you run."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if _missing_module(module, exc):
            raise UserError(
                f"recommender '{shown}': cannot import module '{module}': no such module in "
                f"the current directory ({cwd}) or the installed packages. A 'module:Class' "
                f"reference "
                f"names an importable module and a class in it, e.g. 'my_model:MyRecommender' "
                f"for my_model.py in the current directory") from exc
        raise UserError(f"recommender '{shown}': cannot import module '{module}': {exc} "
                        "(a dependency of the module is not installed)") from exc
    except Exception as exc:  # noqa: BLE001 - any error while importing a plugin is its own
        raise UserError(f"recommender '{shown}': cannot import module '{module}': it "
                        f"raised {type(exc).__name__}: {exc}") from exc
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _import_ref(ref: str, shown: str):
    module, _, attr = ref.partition(":")
    if not module or not attr:
        raise UserError(f"recommender '{shown}': '{ref}' is not a 'module:Class' reference")
    obj = _import_module(module, shown)
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_") and inspect.isclass(
                getattr(obj, n, None))]
            raise UserError(f"recommender '{shown}': module '{module}' has no attribute "
                            f"'{attr}'{did_you_mean(part, names) if names else ''}")
        obj = getattr(obj, part)
    return obj


def resolve(name: str):
    """The recommender class for a registry name, a 'family:variant' name whose family is
    registered (e.g. 'recbole:BPR'), or a 'module:Class' reference."""
    names = available()
    family = name.split(":", 1)[0]
    clash = clashes()
    if name in clash or (":" in name and family in clash):
        raise UserError(clash[name if name in clash else family])
    if name in names:
        cls = _import_ref(names[name], name)
    elif ":" in name and family in names:
        cls = _import_ref(names[family], name)
    elif ":" in name:
        cls = _import_ref(name, name)
    else:
        raise UserError(f"unknown recommender '{name}'{did_you_mean(name, names)}"
                        " (or a 'module:Class' reference)")
    if not (callable(getattr(cls, "fit", None)) and callable(getattr(cls, "score", None))):
        raise UserError(f"recommender '{name}' ({cls!r}) lacks fit() and score()")
    return cls


def hyperparameters(cls) -> dict:
    """Keyword parameters of the class's `__init__` with defaults (`seed` excluded)."""
    sig = inspect.signature(cls.__init__)
    return {n: p.default for n, p in sig.parameters.items()
            if n not in ("self", "seed") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def accepts_any(cls) -> bool:
    """True when `__init__` takes **kwargs (parameters cannot be checked statically)."""
    return any(p.kind == p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values())


_INTERVAL = re.compile(r"^\s*([\[(])\s*(-?inf|[-+0-9.e]+)\s*,\s*(-?inf|[-+0-9.e]+)\s*([\])])\s*$")


def parse_interval(text: str):
    """'[1, inf)' -> Spec with lo=1 (inclusive), no upper bound; '(0, 1)' -> open bounds."""
    from harness.validation import Num
    m = _INTERVAL.match(text)
    if not m:
        raise ValueError(f"bad interval {text!r}; write e.g. '[1, inf)' or '(0, 1]'")
    lo, hi = float(m.group(2)), float(m.group(3))
    return Num(None if lo == -math.inf else lo, None if hi == math.inf else hi,
               lo_open=m.group(1) == "(", hi_open=m.group(4) == ")")


def param_specs(cls) -> dict:
    """Each hyperparameter's spec: type of its default, range from `cls.param_ranges`
    (interval strings such as {"factors": "[1, inf)", "lr": "(0, inf)"})."""
    from dataclasses import replace

    from harness.validation import Spec
    ranges = getattr(cls, "param_ranges", {}) or {}
    out = {}
    for key, default in hyperparameters(cls).items():
        if default is inspect.Parameter.empty or default is None:
            types: tuple = ()
        elif isinstance(default, bool):
            types = (bool,)
        elif isinstance(default, float):
            types = (int, float)
        else:
            types = (type(default),)
        spec = Spec(types or (object,))
        if key in ranges:
            try:
                r = parse_interval(ranges[key])
            except (ValueError, TypeError) as exc:
                raise UserError(f"recommender class {cls.__module__}.{cls.__name__}: "
                                f"param_ranges['{key}']: {exc}") from exc
            spec = replace(spec, lo=r.lo, hi=r.hi, lo_open=r.lo_open, hi_open=r.hi_open,
                           types=types or r.types)
        out[key] = spec
    return out


def describe(cls) -> list[str]:
    """'name = default  range' for each hyperparameter (for `harness list`)."""
    from harness.validation import range_text
    out = []
    for key, spec in param_specs(cls).items():
        default = hyperparameters(cls)[key]
        shown = "(required)" if default is inspect.Parameter.empty else repr(default)
        rng = f"  {range_text(spec)}" if spec.lo is not None or spec.hi is not None else ""
        out.append(f"{key} = {shown}{rng}")
    if accepts_any(cls):
        out.append("**params (passed through)")
    return out


def param_problems(name: str, cls, params) -> list[str]:
    """Every problem of `params`: not a table, unknown names (did-you-mean), wrong types
    against the defaults, values outside `param_ranges`, NaN."""
    from harness.validation import problems
    if not isinstance(params, dict):
        return [f"must be a table of parameters, got {params!r}"]
    specs = param_specs(cls)
    out = []
    for key, value in params.items():
        if key not in specs:
            if not accepts_any(cls):
                out.append(f"recommender '{name}' has no parameter '{key}'"
                           f"{did_you_mean(key, specs)}")
            continue
        spec = specs[key]
        if isinstance(value, float) and not math.isfinite(value):
            out.append(f"recommender '{name}': parameter '{key}' must be a finite number, "
                       f"got {value!r}")
            continue
        if spec.types == (object,):
            continue
        for _, msg in problems(value, spec):
            out.append(f"recommender '{name}': parameter '{key}' {msg}")
    return out


def check_params(name: str, cls, params: dict) -> None:
    """Unknown hyperparameters, type mismatches against defaults and values outside the
    declared ranges raise UserError (the first problem); then a family's `check_variant`."""
    found = param_problems(name, cls, params)
    if found:
        raise UserError(found[0])
    family, _, variant = name.partition(":")
    if variant and family in available() and callable(getattr(cls, "check_variant", None)):
        cls.check_variant(variant, params)  # e.g. 'recbole:<Model>': name and RecBole params


def build(name: str, params: dict | None = None, seed: int = 0):
    """Resolve, validate parameters, and instantiate with `seed`."""
    cls = resolve(name)
    params = dict(params or {})
    check_params(name, cls, params)
    sig = inspect.signature(cls.__init__).parameters
    if "seed" in sig or accepts_any(cls):
        params["seed"] = seed
    if ":" in name and name.split(":", 1)[0] in available() and "model" in sig:
        params.setdefault("model", name.split(":", 1)[1])
    return cls(**params)
