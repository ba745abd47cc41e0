"""Base classes of the perturbations: declared parameters, a stable identity, seeded application.

A perturbation is a small class with a `name`, a `family` (worst cases are taken per family, as
in HELM), a `kind` (what it perturbs: `text`, `field`, `train`, `history`, `order`) and typed
parameters (`PARAMS`: name -> (type, default, allowed values or None)). Severity is a number in
[0, 1]; severity 0 is always the identity. Every random draw comes from
`derive_rng(seed, *key, ident, severity)` where `key` names the perturbed thing (an item, a user,
a field), so the output for a given input never depends on anything else in the suite.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from harness.perturb.rng import derive_rng


class Perturbation:
    """Base: `name`, `family`, `kind`, `PARAMS`; instances hold validated `params`."""

    name: str = ""
    family: str = ""
    kind: str = "text"
    PARAMS: dict[str, tuple[type, Any, tuple | None]] = {}
    doc: str = ""  # one line for the docs / schema

    def __init__(self, **params):
        self.params = self.check_params(params)

    @classmethod
    def check_params(cls, raw: dict) -> dict:
        """The parameters with defaults filled in; ValueError('key: message') on bad input."""
        out = {}
        for key in raw:
            if key not in cls.PARAMS:
                from harness.errors import did_you_mean
                raise ValueError(f"{key}: unknown parameter of '{cls.name}'"
                                 f"{did_you_mean(key, cls.PARAMS) if cls.PARAMS else '; it takes none'}")
        for key, (typ, default, choices) in cls.PARAMS.items():
            value = raw.get(key, default)
            if isinstance(value, bool) and typ is not bool or not isinstance(value, typ):
                raise ValueError(f"{key}: must be {getattr(typ, '__name__', typ)}, got {value!r}")
            if choices is not None and value not in choices:
                from harness.errors import did_you_mean
                raise ValueError(f"{key}: unknown value '{value}'{did_you_mean(str(value), choices)}")
            out[key] = value
        return out

    @property
    def ident(self) -> str:
        """name plus canonical parameters: part of every RNG key (suite labels never are)."""
        return self.name + json.dumps(self.params, sort_keys=True)

    def rng(self, seed: int, severity: float, *key) -> np.random.Generator:
        return derive_rng(seed, *key, self.ident, float(severity))


class TextPerturbation(Perturbation):
    """Perturbs one string: `perturb(text, severity, rng)`; call it with (text, severity, seed,
    *key). `field_only` perturbations apply to field values only (a title, a year), never to a
    rendered text."""

    kind = "text"
    field_only = False
    default_fields: tuple[str, ...] | None = None  # None: every field but the first (the name)

    def perturb(self, text: str, severity: float, rng: np.random.Generator) -> str:
        raise NotImplementedError

    def __call__(self, text: str, severity: float, seed: int, *key) -> str:
        if severity <= 0 or not text:
            return text
        return self.perturb(text, severity, self.rng(seed, severity, *key))
