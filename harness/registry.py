"""Recommender registry: built-in names, `module:Class` references, entry-point plugins."""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points

from harness.errors import UserError, did_you_mean

ENTRY_POINT_GROUP = "harness.recommenders"
# Built-ins are referenced by string so that the core never imports `baselines` at import time.
BUILTINS = {
    "pop": "baselines.pop:Pop",
    "random": "baselines.random_rec:RandomRec",
    "itemknn": "baselines.itemknn:ItemKNN",
    "ease": "baselines.ease:EASE",
    "als": "baselines.als:ALS",
    "bpr": "baselines.bpr:BPR",
    "null": "baselines.null:Null",
    "recbole": "baselines.recbole:RecBoleRecommender",
    "llm-embed": "harness.llm.embed:LLMEmbed",
    "llm-rank": "harness.llm.rank:LLMRank",
}


def available() -> dict[str, str]:
    """Registry name -> 'module:Class' for built-ins and installed entry points."""
    names = dict(BUILTINS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        names.setdefault(ep.name, ep.value)
    return names


def _import_ref(ref: str, shown: str):
    module, _, attr = ref.partition(":")
    try:
        obj = importlib.import_module(module)
    except ImportError as exc:
        raise UserError(f"recommender '{shown}': cannot import module '{module}' ({exc})") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserError(f"recommender '{shown}': module '{module}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    return obj


def resolve(name: str):
    """The recommender class for a registry name, a 'family:variant' name whose family is
    registered (e.g. 'recbole:BPR'), or a 'module:Class' reference."""
    names = available()
    family = name.split(":", 1)[0]
    if name in names:
        cls = _import_ref(names[name], name)
    elif ":" in name and family in names:
        cls = _import_ref(names[family], name)
    elif ":" in name:
        cls = _import_ref(name, name)
    else:
        raise UserError(f"unknown recommender '{name}'{did_you_mean(name, names)}")
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


def check_params(name: str, cls, params: dict) -> None:
    """Unknown hyperparameters and type mismatches against defaults raise UserError."""
    known = hyperparameters(cls)
    for key, value in params.items():
        if key not in known:
            if accepts_any(cls):
                continue
            raise UserError(f"recommender '{name}' has no parameter '{key}'"
                            f"{did_you_mean(key, known)}")
        default = known[key]
        if default is inspect.Parameter.empty or default is None:
            continue
        ok = isinstance(value, type(default)) or (isinstance(default, float)
                                                   and isinstance(value, int)
                                                   and not isinstance(value, bool))
        if isinstance(default, bool) != isinstance(value, bool):
            ok = False
        if not ok:
            raise UserError(f"recommender '{name}': parameter '{key}' must be "
                            f"{type(default).__name__}, got {value!r}")
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
