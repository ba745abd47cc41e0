"""Text perturbations (HELM's augmentations as the model; written here, no library, offline).

Severity s in [0, 1] is a per-unit probability (unit: a letter, a word, a gap between words,
a number), so s = 0 is the identity and the expected share of changed units is s. Letters are
ASCII letters; words are maximal runs of non-space characters.

| name | family | what happens to each unit with probability s |
|---|---|---|
| typo_keyboard | typo | a letter becomes a QWERTY neighbour at distance 1 (case kept) |
| typo_swap | typo | a letter is swapped with the next letter of its word |
| typo_delete | typo | a letter is deleted (a word keeps at least one letter) |
| typo_insert | typo | a QWERTY neighbour of a letter is inserted after it |
| case | format | a word is lower-cased (`mode`: lower, upper, random of lower/upper/title) |
| whitespace | format | a gap between words becomes 2..`max_spaces` spaces |
| number_format | format | a number is rewritten: a year 1900-2029 as '95, 0-999 in words, larger with commas |
| word_drop | words | a word is dropped (at least one word is kept) |
| word_order | words | the chosen words are permuted among their positions |
| synonym | words | a word in the offline lexicon (synonyms.tsv) becomes another of its group |
"""

from __future__ import annotations

import re

import numpy as np

from harness.perturb.base import TextPerturbation

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_OFFSET = (0.0, 0.25, 0.75)  # horizontal stagger of the rows, in key widths


def _keyboard() -> dict[str, str]:
    """letter -> its QWERTY neighbours at distance 1: the keys beside it in its row and the
    keys of the adjacent rows whose centres are within 0.75 key widths horizontally."""
    pos = {ch: (r, c + _OFFSET[r]) for r, row in enumerate(_ROWS) for c, ch in enumerate(row)}
    out = {}
    for ch, (r, x) in pos.items():
        out[ch] = "".join(o for o, (r2, x2) in pos.items() if o != ch and (
            (r2 == r and abs(x2 - x) == 1) or (abs(r2 - r) == 1 and abs(x2 - x) <= 0.75)))
    return out


KEYBOARD = _keyboard()


def _neighbour(ch: str, rng: np.random.Generator) -> str:
    near = KEYBOARD[ch.lower()]
    new = near[rng.integers(len(near))]
    return new.upper() if ch.isupper() else new


def _is_letter(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


class TypoKeyboard(TextPerturbation):
    name, family = "typo_keyboard", "typo"
    doc = "each letter becomes a QWERTY neighbour with probability s"

    def perturb(self, text, s, rng):
        hit = rng.random(len(text)) < s
        return "".join(_neighbour(ch, rng) if h and _is_letter(ch) else ch
                       for ch, h in zip(text, hit))


class TypoSwap(TextPerturbation):
    name, family = "typo_swap", "typo"
    doc = "each letter is swapped with the next letter of its word with probability s"

    def perturb(self, text, s, rng):
        chars, hit = list(text), rng.random(len(text)) < s
        i = 0
        while i < len(chars) - 1:
            if hit[i] and _is_letter(chars[i]) and _is_letter(chars[i + 1]) \
                    and chars[i] != chars[i + 1]:
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
                i += 2
            else:
                i += 1
        return "".join(chars)


class TypoDelete(TextPerturbation):
    name, family = "typo_delete", "typo"
    doc = "each letter is deleted with probability s (every word keeps a letter)"

    def perturb(self, text, s, rng):
        out = []
        for word in re.split(r"(\s+)", text):
            if not word or word.isspace():
                out.append(word)
                continue
            hit = rng.random(len(word)) < s
            kept = "".join(ch for ch, h in zip(word, hit) if not (h and _is_letter(ch)))
            out.append(kept if any(_is_letter(c) for c in kept) or not any(
                _is_letter(c) for c in word) else word[0])
        return "".join(out)


class TypoInsert(TextPerturbation):
    name, family = "typo_insert", "typo"
    doc = "after each letter a QWERTY neighbour is inserted with probability s"

    def perturb(self, text, s, rng):
        hit = rng.random(len(text)) < s
        return "".join(ch + _neighbour(ch, rng) if h and _is_letter(ch) else ch
                       for ch, h in zip(text, hit))


class Case(TextPerturbation):
    name, family = "case", "format"
    PARAMS = {"mode": (str, "lower", ("lower", "upper", "random"))}
    doc = "each word is lower-cased (mode: lower, upper, random) with probability s"

    def perturb(self, text, s, rng):
        parts = re.split(r"(\s+)", text)
        hit = rng.random(len(parts)) < s
        styles = rng.integers(0, 3, len(parts))
        mode = self.params["mode"]
        out = []
        for p, h, st in zip(parts, hit, styles):
            if h and not p.isspace():
                if mode == "lower" or (mode == "random" and st == 0):
                    p = p.lower()
                elif mode == "upper" or st == 1:
                    p = p.upper()
                else:
                    p = p.title()
            out.append(p)
        return "".join(out)


class Whitespace(TextPerturbation):
    name, family = "whitespace", "format"
    PARAMS = {"max_spaces": (int, 3, None)}
    doc = "each single space between words becomes 2..max_spaces spaces with probability s"

    @classmethod
    def check_params(cls, raw):
        out = super().check_params(raw)
        if out["max_spaces"] < 2:
            raise ValueError(f"max_spaces: must be >= 2, got {out['max_spaces']}")
        return out

    def perturb(self, text, s, rng):
        parts = text.split(" ")
        hit = rng.random(len(parts)) < s
        runs = rng.integers(2, self.params["max_spaces"] + 1, len(parts))
        out = parts[0]
        for p, h, n in zip(parts[1:], hit[1:], runs[1:]):
            out += (" " * int(n) if h else " ") + p
        return out


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """0..999 in English words ('twenty-four', 'one hundred five')."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10 - 2] + ("" if n % 10 == 0 else "-" + _ONES[n % 10])
    rest = n % 100
    return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))


def reformat_number(token: str) -> str:
    """A year 1900-2029 -> '95; 0..999 -> words; larger integers -> thousands separators."""
    n = int(token)
    if len(token) == 4 and 1900 <= n <= 2029:
        return "'" + token[2:]
    if len(token) > 1 and token.startswith("0"):
        return token
    return number_words(n) if n < 1000 else f"{n:,}"


class NumberFormat(TextPerturbation):
    name, family = "number_format", "format"
    doc = "each number is rewritten (year -> '95, 0-999 in words, thousands separators)"

    def perturb(self, text, s, rng):
        tokens = re.split(r"(?<![\d.,])(\d+)(?![\d.,]\d)", text)
        hit = rng.random(len(tokens)) < s
        return "".join(reformat_number(t) if i % 2 and h else t
                       for i, (t, h) in enumerate(zip(tokens, hit)))


class WordDrop(TextPerturbation):
    name, family = "word_drop", "words"
    doc = "each word is dropped with probability s (at least one word is kept)"

    def perturb(self, text, s, rng):
        words = text.split()
        keep = rng.random(len(words)) >= s
        if not keep.any() and words:
            keep[rng.integers(len(words))] = True
        return " ".join(w for w, k in zip(words, keep) if k)


class WordOrder(TextPerturbation):
    name, family = "word_order", "words"
    doc = "each word is chosen with probability s; the chosen words are permuted"

    def perturb(self, text, s, rng):
        words = text.split()
        chosen = np.flatnonzero(rng.random(len(words)) < s)
        if len(chosen) > 1:
            perm = chosen[rng.permutation(len(chosen))]
            words = list(words)
            moved = [words[i] for i in perm]
            for i, w in zip(chosen, moved):
                words[i] = w
        return " ".join(words)


class Synonym(TextPerturbation):
    name, family = "synonym", "words"
    doc = "each word of the offline lexicon becomes another of its synonyms with probability s"

    def perturb(self, text, s, rng):
        from harness.perturb.lexicon import synonyms
        table = synonyms()
        parts = re.split(r"(\W+)", text)
        hit = rng.random(len(parts)) < s
        out = []
        for p, h in zip(parts, hit):
            options = table.get(p.lower()) if h else None
            if options:
                new = options[rng.integers(len(options))]
                p = (new.upper() if p.isupper() and len(p) > 1 else
                     new[0].upper() + new[1:] if p[0].isupper() else new)
            out.append(p)
        return "".join(out)


TEXT = (TypoKeyboard, TypoSwap, TypoDelete, TypoInsert, Case, Whitespace, NumberFormat,
        WordDrop, WordOrder, Synonym)
