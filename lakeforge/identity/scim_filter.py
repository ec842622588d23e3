"""SCIM filter expressions (RFC 7644 §3.4.2.2), evaluated against rendered SCIM resources.

    userName eq "a@x.com"        displayName co "eng" and active eq true
    emails[type eq "work" and value ew "@x.com"]      not (id eq "123")      externalId pr

Attribute names are case-insensitive; string comparisons are too (SCIM's caseExact=false, which
holds for every attribute we serve). A path into a multi-valued attribute matches when any of its
values matches; a complex value without a sub-attribute compares by its `value`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from lakeforge.errors import InvalidParameter

Predicate = Callable[[dict], bool]

COMPARE = {"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"}
MAX_DEPTH = 32  # nested parentheses and brackets; deeper is a mistake or an attack on the parser
_TOKEN = re.compile(r'\s*(?:(\(|\)|\[|\])|("(?:[^"\\]|\\.)*")|([^\s()\[\]"]+))')
# Resource-qualified paths ("urn:ietf:params:scim:schemas:core:2.0:User:userName") name the same attribute.
_URN = re.compile(r"^urn:[^\s]*:", re.IGNORECASE)


def parse(text: str) -> Predicate:
    """Compile a filter; InvalidParameter (400) names what is wrong with it."""
    parser = _Parser(text)
    pred = parser.expression()
    if parser.peek() is not None:
        parser.fail(f"unexpected '{parser.peek()}'")
    return pred


def values_at(resource: Any, path: str) -> list[Any]:
    """Every value at a dotted attribute path, flattening multi-valued attributes."""
    current = [resource]
    for part in strip_urn(path).split("."):
        nxt = []
        for item in current:
            for v in item if isinstance(item, list) else [item]:
                if isinstance(v, dict):
                    hit = get_ci(v, part)
                    if hit is not None:
                        nxt.extend(hit if isinstance(hit, list) else [hit])
        current = nxt
    # A complex value compared as a whole compares by its "value" sub-attribute.
    return [get_ci(v, "value") if isinstance(v, dict) else v for v in current]


def get_ci(d: dict, key: str) -> Any:
    if key in d:
        return d[key]
    low = key.lower()
    for k, v in d.items():
        if k.lower() == low:
            return v
    return None


def strip_urn(path: str) -> str:
    return _URN.sub("", path) if path.lower().startswith("urn:") else path


def _fold(v: Any) -> Any:
    return v.casefold() if isinstance(v, str) else v


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        # JSON booleans only equal booleans; "true" the string is not true the boolean.
        same = isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
        return same if op == "eq" else (not same if op == "ne" else False)
    if expected is None:
        return (actual is None) if op == "eq" else (actual is not None if op == "ne" else False)
    a, e = _fold(actual), _fold(expected)
    if isinstance(a, str) != isinstance(e, str):
        a, e = str(a).casefold(), str(e).casefold()
    if op == "eq":
        return a == e
    if op == "ne":
        return a != e
    if op in ("co", "sw", "ew"):
        if not isinstance(a, str):
            return False
        return e in a if op == "co" else (a.startswith(e) if op == "sw" else a.endswith(e))
    try:
        return {"gt": a > e, "ge": a >= e, "lt": a < e, "le": a <= e}[op]
    except TypeError:
        return False


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, str]] = []  # (kind, text): kind is punct | string | word
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                self.fail("unterminated string")
            punct, string, word = m.groups()
            self.tokens.append(("punct", punct) if punct else ("string", string) if string else ("word", word))
            pos = m.end()
        self.i = 0
        self.depth = 0

    def fail(self, why: str):
        raise InvalidParameter(f"Invalid filter '{self.text}': {why}")

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def next(self) -> tuple[str, str]:
        if self.i >= len(self.tokens):
            self.fail("unexpected end of filter")
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and self.tokens[self.i][0] == "word" and tok.lower() == word:
            self.i += 1
            return True
        return False

    def expect(self, punct: str) -> None:
        kind, text = self.next()
        if kind != "punct" or text != punct:
            self.fail(f"expected '{punct}' but found '{text}'")

    def expression(self) -> Predicate:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"nested deeper than {MAX_DEPTH} levels")
        terms = [self.term()]
        while self.keyword("or"):
            terms.append(self.term())
        self.depth -= 1
        return terms[0] if len(terms) == 1 else (lambda r: any(t(r) for t in terms))

    def term(self) -> Predicate:
        factors = [self.factor()]
        while self.keyword("and"):
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else (lambda r: all(f(r) for f in factors))

    def factor(self) -> Predicate:
        if self.keyword("not"):
            self.expect("(")
            inner = self.expression()
            self.expect(")")
            return lambda r: not inner(r)
        if self.peek() == "(":
            self.next()
            inner = self.expression()
            self.expect(")")
            return inner
        kind, path = self.next()
        if kind != "word":
            self.fail(f"expected an attribute name but found '{path}'")
        if self.peek() == "[":
            # A value path: some element of a multi-valued attribute satisfies the inner filter.
            self.next()
            inner = self.expression()
            self.expect("]")

            def any_element(r, path=path, inner=inner):
                items = get_path_items(r, path)
                return any(inner(x) for x in items if isinstance(x, dict))

            return any_element
        kind, op = self.next()
        op = op.lower()
        if kind != "word" or (op not in COMPARE and op != "pr"):
            self.fail(f"unknown operator '{op}'")
        if op == "pr":
            return lambda r: any(v not in (None, "", [], {}) for v in values_at(r, path))
        expected = self.literal()
        if op == "ne":
            return lambda r: not any(_compare("eq", v, expected) for v in values_at(r, path))
        return lambda r: any(_compare(op, v, expected) for v in values_at(r, path))

    def literal(self) -> Any:
        kind, text = self.next()
        if kind == "string":
            try:
                return json.loads(text)
            except ValueError:
                self.fail(f"bad string {text}")
        if kind == "word":
            low = text.lower()
            if low in ("true", "false", "null"):
                return {"true": True, "false": False, "null": None}[low]
            try:
                return json.loads(text)
            except ValueError:
                pass
        self.fail(f"expected a value but found '{text}'; quote strings with \"")


def get_path_items(resource: dict, path: str) -> list[Any]:
    """The elements of the (multi-valued) attribute at `path`, unflattened."""
    hit = get_ci(resource, strip_urn(path))
    if hit is None:
        return []
    return hit if isinstance(hit, list) else [hit]
