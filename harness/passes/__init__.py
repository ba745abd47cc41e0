"""The pass registry: name -> 'module:Class'. A new pass is one module plus one line here.

The core refers to passes only through this registry (strings, imported on use), so it imports
no pass module at import time.
"""

from __future__ import annotations

import importlib
from functools import lru_cache

from harness.errors import UserError, did_you_mean
from harness.passes.base import Pass, PassContext, PassResult

PASSES = {
    "accuracy": "harness.passes.accuracy:AccuracyPass",
    "fairness": "harness.passes.fairness:FairnessPass",
    "robustness": "harness.passes.robustness:RobustnessPass",
    "efficiency": "harness.passes.efficiency:EfficiencyPass",
}


def _available() -> dict[str, str]:
    """Registered passes whose module exists (a pass under construction is simply absent)."""
    out = {}
    for name, ref in PASSES.items():
        module = ref.partition(":")[0]
        if importlib.util.find_spec(module) is not None:
            out[name] = ref
    return out


@lru_cache(maxsize=None)
def get(name: str) -> Pass:
    """The pass instance registered under `name`."""
    refs = _available()
    if name not in refs:
        raise UserError(f"unknown pass '{name}'{did_you_mean(name, refs)}")
    module, _, cls = refs[name].partition(":")
    return getattr(importlib.import_module(module), cls)()


def all_passes() -> list[Pass]:
    """Every registered pass, in run order."""
    return sorted((get(n) for n in _available()), key=lambda p: (p.order, p.name))


def tables() -> dict[str, Pass]:
    """Suite table name -> the pass that owns it."""
    return {p.table: p for p in all_passes() if p.table}


def higher_is_better(pass_name: str, metric: str) -> bool:
    """The declared direction of `metric` in the rows of pass `pass_name`: the pass's own
    declaration, else the accuracy pass's (robustness and fairness rows of accuracy metrics),
    else any registered pass that declares the metric. Unknown metrics are a KeyError
    (directions are declared, never guessed from names)."""
    avail = _available()
    names = [pass_name, "accuracy"] + [n for n in avail if n not in (pass_name, "accuracy")]
    for name in names:
        if name in avail:
            hib = get(name).higher_is_better(metric)
            if hib is not None:
                return hib
    raise KeyError(f"no pass declares a direction for metric '{metric}' (pass '{pass_name}')")


__all__ = ["PASSES", "Pass", "PassContext", "PassResult", "all_passes", "get",
           "higher_is_better", "tables"]
