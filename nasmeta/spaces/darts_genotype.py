"""The DARTS genotype string: a parser for the reference code's printed form (Liu, Simonyan & Yang, "DARTS:
Differentiable Architecture Search", ICLR 2019; ``genotypes.py`` of the reference implementation):

    Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=range(2, 6))

Read by a small recursive-descent parser over Python-literal syntax (lists, tuples, strings, integers and
``range(a, b)``), never ``eval``; a malformed string raises a ``ValueError`` with the position.  The ops and inputs
of the pairs are checked by :class:`nasmeta.spaces.darts.DartsSpace`, which owns the edge candidates.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["CELL_TYPES", "CONCAT", "parse_genotype"]

#: the two cells of a genotype, in the order of its fields
CELL_TYPES = ("normal", "reduce")
#: the nodes both cells concatenate (``normal_concat`` / ``reduce_concat``)
CONCAT = (2, 3, 4, 5)

_TOKEN = re.compile(
    r"\s*(?:(?P<name>[A-Za-z_][A-Za-z_0-9]*)|(?P<str>'[^'\n]*'|\"[^\"\n]*\")|(?P<int>-?\d+)|(?P<punct>[()\[\],=]))"
)


class _Parser:
    """Recursive descent over Python-literal syntax: lists, tuples, strings, ints and ``range(a, b)``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, Any, int]] = []
        pos = 0
        stripped = text.rstrip()
        while pos < len(stripped):
            m = _TOKEN.match(stripped, pos)
            if m is None or m.end() == pos:
                raise self.error(f"unexpected character {stripped[pos:].lstrip()[:1]!r}", pos)
            kind = m.lastgroup
            raw = m.group(kind)
            value: Any = int(raw) if kind == "int" else raw[1:-1] if kind == "str" else raw
            self.tokens.append((kind, value, m.start(kind)))
            pos = m.end()
        self.i = 0

    def error(self, what: str, pos: int | None = None) -> ValueError:
        if pos is None:
            pos = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)
        return ValueError(f"malformed DARTS genotype {self.text!r}: {what} at position {pos}")

    def peek(self) -> tuple[str, Any, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def expect(self, value: str) -> None:
        tok = self.peek()
        if tok is None or tok[0] != "punct" or tok[1] != value:
            found = "the end" if tok is None else repr(tok[1])
            raise self.error(f"expected {value!r}, found {found}")
        self.i += 1

    def accept(self, value: str) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] == "punct" and tok[1] == value:
            self.i += 1
            return True
        return False

    def sequence(self, close: str) -> list[Any]:
        items: list[Any] = []
        while not self.accept(close):
            items.append(self.value())
            if not self.accept(","):
                self.expect(close)
                break
        return items

    def value(self) -> Any:
        tok = self.peek()
        if tok is None:
            raise self.error("unexpected end")
        kind, value, _ = tok
        self.i += 1
        if kind in ("int", "str"):
            return value
        if kind == "punct" and value == "[":
            return self.sequence("]")
        if kind == "punct" and value == "(":
            return tuple(self.sequence(")"))
        if kind == "name" and value == "range":
            self.expect("(")
            args = self.sequence(")")
            if len(args) != 2 or not all(isinstance(a, int) for a in args):
                raise self.error(f"range() takes two integers, got {args!r}")
            return list(range(*args))
        raise self.error(f"unexpected {value!r}")

    def genotype(self) -> dict[str, Any]:
        tok = self.peek()
        if tok is None or tok[:2] != ("name", "Genotype"):
            raise self.error("expected 'Genotype('")
        self.i += 1
        self.expect("(")
        fields: dict[str, Any] = {}
        while not self.accept(")"):
            tok = self.peek()
            if tok is None or tok[0] != "name":
                raise self.error("expected a field name")
            self.i += 1
            if tok[1] in fields:
                raise self.error(f"field {tok[1]!r} given twice", tok[2])
            self.expect("=")
            fields[tok[1]] = self.value()
            if not self.accept(","):
                self.expect(")")
                break
        if self.peek() is not None:
            raise self.error(f"trailing text {self.peek()[1]!r}")
        return fields


def parse_genotype(text: str) -> tuple[list, list]:
    """(normal, reduce) lists of the ``Genotype(...)`` string; checks fields and concat, not the ops."""
    if not isinstance(text, str):
        raise ValueError(f"a DARTS genotype must be a string, got {text!r}")
    fields = _Parser(text).genotype()
    unknown = sorted(set(fields) - {"normal", "normal_concat", "reduce", "reduce_concat"})
    if unknown:
        raise ValueError(f"unknown genotype field(s) {unknown} in {text!r}")
    for cell in CELL_TYPES:
        if cell not in fields:
            raise ValueError(f"genotype {text!r} has no {cell!r} field")
        concat = fields.get(f"{cell}_concat", list(CONCAT))
        if list(concat) != list(CONCAT):
            raise ValueError(f"{cell}_concat must be {list(CONCAT)} in this space, got {concat!r}")
    return fields["normal"], fields["reduce"]
