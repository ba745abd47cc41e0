"""Perturbations for the robustness pass: text (item / user text, field values), training
interactions (refit), histories at inference, candidate order. Each is a small seeded class
(see base.py, text.py, fields.py, interactions.py); `PERTURBATIONS` maps name -> class."""

from __future__ import annotations

from harness.errors import UserError, did_you_mean
from harness.perturb.base import Perturbation, TextPerturbation
from harness.perturb.fields import FIELDS
from harness.perturb.interactions import INTERACTIONS
from harness.perturb.rng import derive_rng
from harness.perturb.text import TEXT

PERTURBATIONS: dict[str, type[Perturbation]] = {c.name: c for c in TEXT + FIELDS + INTERACTIONS}
FAMILIES: dict[str, str] = {name: c.family for name, c in PERTURBATIONS.items()}


def make(name: str, params: dict | None = None) -> Perturbation:
    """An instance of perturbation `name` (UserError with did-you-mean on an unknown name,
    ValueError on bad parameters)."""
    if name not in PERTURBATIONS:
        raise UserError(f"unknown perturbation '{name}'{did_you_mean(name, PERTURBATIONS)}")
    return PERTURBATIONS[name](**(params or {}))


def family_of(name: str) -> str:
    """The family of a perturbation name (the name itself when unknown)."""
    return FAMILIES.get(name, name)


__all__ = ["FAMILIES", "PERTURBATIONS", "Perturbation", "TextPerturbation", "derive_rng",
           "family_of", "make"]
