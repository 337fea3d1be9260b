"""Action-unit strings of every dataset, parsed into one normal form.

    parse_aus("4(B/C)+7B").numbers        -> (4, 7)
    parse_aus("L12 or 14").alternatives   -> ((12, 14),)
    parse_aus("R4+AD38").descriptors      -> ("AD38",)
    au_matrix(samples, au_set("cross12")) -> (n, 12) bool

What the datasets write (each handled, and recorded on the parsed code):

- AU numbers joined by ``+`` (CASME, CASME II, SAMM, CAS(ME)^3 Part A, 4DME, MMEW), by ``,``
  (CAS(ME)^3 Part C, once with a full-width comma ``4，11``), ``;``, ``&`` or spaces;
- an ``AU`` prefix (4DME: ``AU1+AU2``), and ``AD`` for FACS action descriptors (DFME:
  ``AD38``, nostril dilate): a descriptor is recorded but is not an AU;
- a laterality / location prefix: ``L`` left, ``R`` right, ``T`` top and ``B`` bottom (FACS
  scores e.g. AU28 on one lip), ``A`` and ``U`` (asymmetric / unilateral, as some coders
  write them): ``R12``, ``T28``;
- an intensity suffix ``A``-``E``, possibly undecided: ``7B``, ``4(B/C)``;
- other marks in parentheses, kept verbatim: ``(k)`` (4DME; its meaning is *unconfirmed*), and
  a trailing ``?``;
- alternatives the coders could not decide between, ``L12 or 14`` (SAMM) and ``12/14``: they
  bind to the neighbouring codes only (``4+L12 or 14`` is AU4 and one of 12, 14).

``numbers`` is the union over alternatives (every AU the coders considered present); ``certain``
leaves out the AUs of an undecided alternative (``R14 or 14`` is certain: both name AU14).
Blank cells and ``/``, ``-``, ``?``, ``none``, ``n/a`` mean no AU was coded. A token that is
none of the above is kept in ``unparsed`` (the adapters note it on the sample) and never
guessed at.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from mer_prep.errors import InvalidArgumentError

SIDES = "LRTBAU"
_BLANK = {"", "/", "-", "--", "?", "none", "n/a", "na", "nan", "null", "0"}
# full-width and ideographic separators seen in Chinese-locale sheets
_SEPARATORS = re.compile(r"[+,;&\s\uff0c\uff0b\uff1b\u3001]+")
_OR = re.compile(r"(?i)\s+or\s+|\s*\|\s*")
# "AU12", "AD38", "AUR12" (the AU/AD word first) or "R12", "A1", "RAU12" (the side first)
_CODE = re.compile(
    r"^(?:(?P<kind>AU|AD)(?P<side>[LRTBU])?|(?P<side2>[LRTBAU])(?P<kind2>AU|AD)?)?(?P<number>\d{1,3})"
    r"(?P<intensity>[A-E])?(?P<marks>(?:\([^()]*\))*)(?P<intensity2>[A-E])?(?P<query>\?)?$"
)
_INTENSITIES = re.compile(r"^[A-E](?:/[A-E])*$")


@dataclass(frozen=True)
class AUCode:
    """One coded action unit (or action descriptor): ``R12``, ``4(B/C)``, ``AD38``, ``1(k)``."""

    number: int
    side: str = ""  # L, R, T, B, A, U or ""
    intensity: str = ""  # A-E, "B/C" when undecided, or ""
    marks: tuple[str, ...] = ()
    descriptor: bool = False  # an action descriptor (AD38), not an AU

    def __str__(self) -> str:
        intensity = f"({self.intensity})" if "/" in self.intensity else self.intensity
        marks = "".join(f"({m})" if m != "?" else "?" for m in self.marks)
        return f"{self.side}{'AD' if self.descriptor else ''}{self.number}{intensity}{marks}"


@dataclass(frozen=True)
class ParsedAUs:
    """An AU cell in normal form.

    terms: the cell's codes, each term a tuple of alternatives (one code when decided);
    unparsed: tokens that are not AU codes, verbatim.
    """

    raw: str
    terms: tuple[tuple[AUCode, ...], ...]
    unparsed: tuple[str, ...] = ()

    @property
    def codes(self) -> tuple[AUCode, ...]:
        return tuple(code for term in self.terms for code in term)

    @property
    def numbers(self) -> tuple[int, ...]:
        """Sorted AU numbers, alternatives included, descriptors left out."""
        return tuple(sorted({c.number for c in self.codes if not c.descriptor}))

    @property
    def certain(self) -> tuple[int, ...]:
        """Sorted AU numbers of the decided terms (an alternative naming one AU twice counts)."""
        out = set()
        for term in self.terms:
            numbers = {c.number for c in term if not c.descriptor}
            if len(numbers) == 1 and all(not c.descriptor for c in term):
                out |= numbers
        return tuple(sorted(out))

    @property
    def alternatives(self) -> tuple[tuple[int, ...], ...]:
        """The undecided terms as sorted AU-number tuples (``L12 or 14`` -> (12, 14))."""
        found = []
        for term in self.terms:
            numbers = tuple(sorted({c.number for c in term if not c.descriptor}))
            if len(numbers) > 1:
                found.append(numbers)
        return tuple(found)

    @property
    def descriptors(self) -> tuple[str, ...]:
        return tuple(f"AD{c.number}" for c in self.codes if c.descriptor)

    @property
    def normal(self) -> str:
        """One spelling for every dataset: ``+``-joined terms, ``|`` between alternatives."""
        return "+".join("|".join(str(c) for c in term) for term in self.terms)


def _code(token: str) -> AUCode | None:
    text = token.strip().upper().replace(" ", "")
    text = text.replace("（", "(").replace("）", ")")
    match = _CODE.match(text)
    if not match:
        return None
    side = match.group("side") or match.group("side2") or ""
    kind = match.group("kind") or match.group("kind2") or "AU"
    intensity = match.group("intensity") or match.group("intensity2") or ""
    marks: list[str] = []
    for mark in re.findall(r"\(([^()]*)\)", match.group("marks")):
        mark = mark.strip()
        if _INTENSITIES.match(mark) and not intensity:
            intensity = mark
        elif mark:
            marks.append(mark.lower() if len(mark) == 1 else mark)
    if match.group("query"):
        marks.append("?")
    return AUCode(int(match.group("number")), side, intensity, tuple(marks), kind == "AD")


def _outside_parens(text: str, pattern: str, replacement: str) -> str:
    """``text`` with ``pattern`` replaced outside parentheses only (``4(B/C)`` keeps its ``/``)."""
    out, depth = [], 0
    for char in text:
        depth += char in "(（"
        depth -= char in ")）" and depth > 0
        out.append(replacement if depth == 0 and char == pattern else char)
    return "".join(out)


@lru_cache(maxsize=4096)
def parse_aus(value: Any) -> ParsedAUs:
    """The normal form of one AU cell (a string, a number such as ``4`` or ``12.0``, or None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ParsedAUs("", ())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    raw = str(value).strip()
    if raw.lower() in _BLANK:
        return ParsedAUs(raw, ())
    text = _outside_parens(raw, "/", "|")
    text = re.sub(r"(?i)\b(AU|AD)\s+(?=[LRTBU]?\d)", r"\1", text)  # "AU 12"
    text = _OR.sub("|", text)
    terms: list[tuple[AUCode, ...]] = []
    unparsed: list[str] = []
    for token in _SEPARATORS.split(text):
        if not token or token == "|":
            continue
        codes = [_code(part) for part in token.split("|") if part]
        if codes and all(codes):
            terms.append(tuple(codes))  # type: ignore[arg-type]
        else:
            unparsed.append(token)
    return ParsedAUs(raw, tuple(terms), tuple(unparsed))


def au_numbers(value: Any) -> tuple[int, ...]:
    """Shorthand for ``parse_aus(value).numbers``."""
    return parse_aus(value).numbers


def _au_list(au_list: Sequence[int | str] | str) -> list[int]:
    if isinstance(au_list, str):
        from mer_prep.labels import au_set

        return list(au_set(au_list))
    out = []
    for au in au_list:
        number = au if isinstance(au, int) else re.sub(r"(?i)^AU", "", str(au).strip())
        try:
            out.append(int(number))
        except ValueError:
            raise InvalidArgumentError(f"{au!r} is not an AU (write 12 or 'AU12')") from None
    if len(set(out)) != len(out):
        raise InvalidArgumentError(f"AU list {out} names an AU twice")
    return out


def au_matrix(samples_or_strings: Iterable[Any], au_list: Sequence[int | str] | str) -> np.ndarray:
    """(n, len(au_list)) bool: which of ``au_list`` each sample (its ``aus``, or its parsed
    ``action_units`` when ``aus`` is empty) or AU string codes. ``au_list``: AU numbers, ``"AU12"``
    names, or the name of an AU set (``"cross12"``). AUs outside the list are ignored."""
    columns = _au_list(au_list)
    index = {au: k for k, au in enumerate(columns)}
    rows = []
    for item in samples_or_strings:
        if hasattr(item, "action_units"):
            numbers = getattr(item, "aus", ()) or au_numbers(item.action_units)
        else:
            numbers = au_numbers(item)
        row = np.zeros(len(columns), dtype=bool)
        for number in numbers:
            if number in index:
                row[index[number]] = True
        rows.append(row)
    return np.stack(rows) if rows else np.zeros((0, len(columns)), dtype=bool)


__all__ = ["AUCode", "ParsedAUs", "parse_aus", "au_numbers", "au_matrix", "SIDES"]
