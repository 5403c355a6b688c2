"""The grammar of formulas and rules: text to an expression tree (:mod:`privsynth.schema.expression`).

A recursive-descent :class:`Parser` over tokens (numbers, quoted strings, operators, names).
Formulas are sums of products of powers; rules are implications between disjunctions of
conjunctions of negations of atoms (comparisons, ``in [...]``, ``is missing``/``is present``,
boolean columns). A text that does not parse raises :class:`RuleSyntaxError`, saying where
and what was expected.
"""

from __future__ import annotations

import re

from privsynth.schema.expression import (
    Arithmetic,
    Column,
    Compare,
    Flag,
    Implies,
    IsMissing,
    Logic,
    Member,
    Node,
    Not,
    Number,
)

_TOKEN = re.compile(r"""\s*(?:(?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)
                         |(?P<string>'[^']*'|"[^"]*")
                         |(?P<op>->|<=|>=|==|!=|\*\*|[-+*/()<>\[\],])
                         |(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*))""", re.VERBOSE)


class RuleSyntaxError(ValueError):
    """A formula or rule that does not parse; the message says where and what was expected."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise RuleSyntaxError(f"unexpected character {text[pos]!r} at position {pos + 1}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "string":
            value = value[1:-1]
        out.append((kind, value))
        pos = m.end()
    return out


class Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise RuleSyntaxError("the text ends too early")
        self.i += 1
        return token

    def accept(self, value: str) -> bool:
        token = self.peek()
        if token is not None and token[1] == value and token[0] in ("op", "name"):
            self.i += 1
            return True
        return False

    def expect(self, value: str) -> None:
        if not self.accept(value):
            found = self.peek()
            raise RuleSyntaxError(f"expected '{value}'" + (f", found '{found[1]}'" if found else " at the end"))

    def done(self) -> None:
        if self.peek() is not None:
            raise RuleSyntaxError(f"unexpected '{self.peek()[1]}' after a complete expression")  # type: ignore[index]

    # -- formulas (arithmetic) -----------------------------------------------------------
    def sum(self) -> Node:
        node = self.product()
        while (tok := self.peek()) is not None and tok[1] in ("+", "-") and tok[0] == "op":
            self.take()
            node = Arithmetic(tok[1], node, self.product())
        return node

    def product(self) -> Node:
        node = self.power()
        while (tok := self.peek()) is not None and tok[1] in ("*", "/") and tok[0] == "op":
            self.take()
            node = Arithmetic(tok[1], node, self.power())
        return node

    def power(self) -> Node:
        node = self.unary()
        if self.accept("**"):
            return Arithmetic("**", node, self.power())
        return node

    def unary(self) -> Node:
        if self.accept("-"):
            return Arithmetic("-", Number(0.0), self.unary())
        return self.value()

    def value(self) -> Node:
        kind, text = self.take()
        if kind == "number":
            return Number(float(text))
        if kind == "name" and text not in KEYWORDS:
            return Column(text)
        if text == "(":
            node = self.sum()
            self.expect(")")
            return node
        raise RuleSyntaxError(f"expected a column or a number, found '{text}'")

    # -- rules (logic) -------------------------------------------------------------------
    def rule(self) -> Node:
        left = self.disjunction()
        if self.accept("->"):
            return Implies(left, self.disjunction())
        return left

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.accept("or"):
            node = Logic("or", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.negation()
        while self.accept("and"):
            node = Logic("and", node, self.negation())
        return node

    def negation(self) -> Node:
        if self.accept("not"):
            return Not(self.negation())
        if self.peek() is not None and self.peek() == ("op", "("):  # a parenthesised condition
            start = self.i
            self.take()
            try:
                node = self.disjunction()
                self.expect(")")
                return node
            except RuleSyntaxError:
                self.i = start  # maybe arithmetic: (a + b) <= c
        return self.atom()

    def atom(self) -> Node:
        kind, name = self.peek() or ("", "")
        nxt = self.peek(1)
        if kind == "name" and name not in KEYWORDS and (nxt is None or nxt[1] in ("and", "or", "->", ")")):
            self.take()
            return Flag(name)
        if kind == "name" and name not in KEYWORDS and nxt is not None and nxt[1] in ("in", "not", "is"):
            self.take()
            if self.accept("is"):
                word = self.take()[1]
                if word not in ("missing", "present"):
                    raise RuleSyntaxError(f"expected 'missing' or 'present' after 'is', found '{word}'")
                return IsMissing(name, word == "missing")
            negate = self.accept("not")
            self.expect("in")
            return Member(name, self.codes(), negate)
        left = self.sum()
        token = self.peek()
        if token is None or token[1] not in COMPARISONS:
            raise RuleSyntaxError("expected a comparison (<, <=, >, >=, ==, !=), 'in', 'is' or a boolean column")
        self.take()
        return Compare(token[1], left, self.sum())

    def codes(self) -> tuple[str, ...]:
        self.expect("[")
        out: list[str] = []
        while True:
            kind, text = self.take()
            if kind not in ("name", "number", "string"):
                raise RuleSyntaxError(f"expected a code in the list, found '{text}'")
            out.append(text)
            if self.accept("]"):
                return tuple(out)
            self.expect(",")


KEYWORDS = frozenset({"and", "or", "not", "in", "is"})
COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")
