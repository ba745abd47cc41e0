"""Field-level perturbations: they change one field value of the item or user table (a title, a
year, a genre list), so the change reaches every text a model renders from that field.

| name | family | with probability s per (row, field) |
|---|---|---|
| field_drop | fields | the value becomes empty (default fields: every field but the first, the name) |
| title_format | format | an eligible title is rewritten between the catalogue form 'Godfather, The' and the natural form 'The Godfather' (`direction`: front = catalogue -> natural, back = natural -> catalogue); a trailing parenthetical such as an alternative title or a year stays at the end |
"""

from __future__ import annotations

import re

from harness.perturb.base import TextPerturbation

ARTICLES = ("The", "A", "An", "Les", "La", "Le", "L'", "Il", "El", "Das", "Die", "Der", "Los",
            "Las")
_ART = "|".join(re.escape(a) for a in ARTICLES)
_TAIL = r"(?P<tail>(?:\s*\([^()]*\))*)"
_CATALOGUE = re.compile(rf"^(?P<body>.+?), (?P<art>{_ART}){_TAIL}$")
_NATURAL = re.compile(rf"^(?P<art>{_ART})(?:\s+|(?<=')) ?(?P<body>.+?){_TAIL}$")


def to_natural(title: str) -> str:
    """'Godfather, The (1972)' -> 'The Godfather (1972)'; "Amour, L'" -> "L'Amour"; other titles
    unchanged."""
    m = _CATALOGUE.match(title)
    if not m:
        return title
    sep = "" if m["art"].endswith("'") else " "
    return f"{m['art']}{sep}{m['body']}{m['tail']}"


def to_catalogue(title: str) -> str:
    """'The Godfather (1972)' -> 'Godfather, The (1972)'; other titles unchanged."""
    m = _NATURAL.match(title)
    if not m or not m["body"].strip():
        return title
    return f"{m['body']}, {m['art']}{m['tail']}"


class FieldDrop(TextPerturbation):
    name, family = "field_drop", "fields"
    field_only = True
    doc = "each field value becomes empty with probability s"

    def perturb(self, text, s, rng):
        return "" if rng.random() < s else text


class TitleFormat(TextPerturbation):
    name, family = "title_format", "format"
    field_only = True
    default_fields = ("movie_title",)
    PARAMS = {"direction": (str, "front", ("front", "back"))}
    doc = "'Godfather, The' <-> 'The Godfather' with probability s per eligible title"

    def perturb(self, text, s, rng):
        if rng.random() >= s:
            return text
        return to_natural(text) if self.params["direction"] == "front" else to_catalogue(text)


FIELDS = (FieldDrop, TitleFormat)
