"""Parse MLflow's run-filter grammar, extended with OR, NOT and parentheses.

Grammar (keywords are case-insensitive)::

    filter     := or_expr
    or_expr    := and_expr ("OR" and_expr)*
    and_expr   := not_expr ("AND" not_expr)*
    not_expr   := "NOT" not_expr | "(" or_expr ")" | clause
    clause     := identifier comparator value
                | identifier "IS" ["NOT"] "NULL"
                | identifier ["NOT"] "IN" "(" string ("," string)* ")"
    identifier := [prefix "."] key        prefix: metrics, params, tags, attributes, dataset
                                            (and MLflow's aliases: metric, param, parameter, ...)
    key        := name | `quoted name` | "quoted name" | 'quoted name'

The parser only builds a tree (``nbtrack.search.ast``); the store compiles that tree to
parameterised SQL, so no text of a filter ever reaches a query.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from nbtrack.exceptions import FilterSyntaxError
from nbtrack.search.ast import (
    ATTRIBUTE,
    ATTRIBUTE_ALIASES,
    DATASET,
    DATASET_FIELDS,
    METRIC,
    NUMERIC_ATTRIBUTES,
    PARAM,
    STRING_ATTRIBUTES,
    TAG,
    And,
    Comparison,
    Node,
    Not,
    Or,
    OrderKey,
)

PREFIXES = {
    "metric": METRIC,
    "metrics": METRIC,
    "param": PARAM,
    "params": PARAM,
    "parameter": PARAM,
    "parameters": PARAM,
    "tag": TAG,
    "tags": TAG,
    "attribute": ATTRIBUTE,
    "attributes": ATTRIBUTE,
    "attr": ATTRIBUTE,
    "run": ATTRIBUTE,
    "dataset": DATASET,
    "datasets": DATASET,
}
KEYWORDS = {"AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE"}
#: how deep NOT and parentheses may nest (the parser and the SQL compiler recurse per level)
MAX_DEPTH = 100
NUMERIC_OPS = ("=", "!=", "<", "<=", ">", ">=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity|nan)\b", re.I)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Token:
    """A lexical unit: ``kind`` is one of name, string, number, op, punct, keyword, end."""

    kind: str
    text: str
    #: a name's dotted parts, a string's text, a number's value, an operator or keyword
    value: list[str] | str | float | None
    position: int


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read a quoted run starting at ``start``; a doubled quote stands for itself (as in SQL)."""
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                out.append(quote)
                i += 2
            else:
                return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise FilterSyntaxError(text, start, f"Unclosed {quote} quote")


def _read_identifier(text: str, start: int) -> tuple[list[str], int]:
    """Read ``prefix.key`` where each dotted part may be plain, `backticked` or "quoted"."""
    parts: list[str] = []
    i = start
    while True:
        if (i < len(text) and text[i] in "`\"'" and parts) or (i < len(text) and text[i] == "`"):
            part, i = _read_quoted(text, i)
        else:
            match = _NAME.match(text, i)
            if not match:
                raise FilterSyntaxError(text, i, "Expected a key after '.'")
            part, i = match.group(), match.end()
        parts.append(part)
        if i < len(text) and text[i] == ".":
            i += 1
            continue
        return parts, i


def tokenize(text: str) -> list[Token]:
    """Split a filter into tokens, each with its position for error messages."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "(),":
            tokens.append(Token("punct", ch, ch, i))
            i += 1
        elif text.startswith(("!=", "<>", "<=", ">=", "=="), i):
            op = {"<>": "!=", "==": "="}.get(text[i : i + 2], text[i : i + 2])
            tokens.append(Token("op", text[i : i + 2], op, i))
            i += 2
        elif ch in "=<>":
            tokens.append(Token("op", ch, ch, i))
            i += 1
        elif ch in "'\"":
            value, end = _read_quoted(text, i)
            tokens.append(Token("string", text[i:end], value, i))
            i = end
        elif ch == "`" or ch.isalpha() or ch == "_":
            word = _NAME.match(text, i)
            if word and word.group().upper() in KEYWORDS and (
                word.end() == len(text) or text[word.end()] != "."
            ):
                tokens.append(Token("keyword", word.group(), word.group().upper(), i))
                i = word.end()
                continue
            number = _NUMBER.match(text, i)
            if number and number.end() == (word.end() if word else -1):
                tokens.append(Token("number", number.group(), float(number.group()), i))
                i = number.end()
                continue
            parts, end = _read_identifier(text, i)
            tokens.append(Token("name", text[i:end], parts, i))
            i = end
        else:
            number = _NUMBER.match(text, i)
            if not number:
                raise FilterSyntaxError(text, i, f"Unexpected character {ch!r}")
            tokens.append(Token("number", number.group(), float(number.group()), i))
            i = number.end()
    tokens.append(Token("end", "", None, len(text)))
    return tokens


@dataclass(frozen=True)
class Vocabulary:
    """What a filter may name: the prefixed entities and the attributes, by type."""

    entities: tuple[str, ...]
    strings: tuple[str, ...]
    numbers: tuple[str, ...]
    aliases: dict = field(default_factory=dict)

    def describe(self) -> str:
        prefixes = {METRIC: "metrics.<key>", PARAM: "params.<key>", TAG: "tags.<key>",
                    DATASET: "dataset.<field>"}
        named = [prefixes[e] for e in self.entities if e in prefixes]
        return f"use {', '.join(named)}, or one of the attributes " + ", ".join(
            self.strings + self.numbers)


#: run attributes that MLflow's filters do not take, and what to use instead
_NOT_FILTERS = {
    "lifecycle_stage": " Choose deleted runs with run_view_type=ViewType.DELETED_ONLY (or ALL).",
    "experiment_id": " Choose experiments with experiment_ids (or experiment_names).",
}
RUNS = Vocabulary((METRIC, PARAM, TAG, ATTRIBUTE, DATASET), STRING_ATTRIBUTES,
                  NUMERIC_ATTRIBUTES, ATTRIBUTE_ALIASES)
EXPERIMENTS = Vocabulary((TAG, ATTRIBUTE), ("name", "experiment_id", "lifecycle_stage",
                                            "artifact_location"),
                         ("creation_time", "last_update_time"))


def resolve_identifier(text: str, token: Token, vocab: Vocabulary = RUNS) -> tuple[str, str]:
    """Turn identifier parts into ``(entity, key)``, checking prefixes and attribute names."""
    parts = token.value
    assert isinstance(parts, list), "a name token holds its dotted parts"
    if len(parts) > 1 and parts[0].lower() in PREFIXES:
        entity, key = PREFIXES[parts[0].lower()], ".".join(parts[1:])
    else:
        entity, key = ATTRIBUTE, ".".join(parts)
    if entity not in vocab.entities:
        raise FilterSyntaxError(text, token.position,
                                f"{token.text} cannot be used here: {vocab.describe()}")
    if entity == ATTRIBUTE:
        key = vocab.aliases.get(key.lower(), key.lower())
        if key not in vocab.strings and key not in vocab.numbers:
            hint = _NOT_FILTERS.get(key, "") if vocab is RUNS else ""
            raise FilterSyntaxError(
                text, token.position,
                f"Invalid attribute key {key!r} specified.{hint} Valid keys: {vocab.describe()}"
            )
    elif entity == DATASET and key.lower() not in DATASET_FIELDS:
        raise FilterSyntaxError(
            text, token.position, f"Unknown dataset field {key!r}: use {', '.join(DATASET_FIELDS)}"
        )
    elif entity == DATASET:
        key = key.lower()
    if not key:
        raise FilterSyntaxError(text, token.position, "Expected a key after the prefix")
    return entity, key


class _Parser:
    def __init__(self, text: str, vocab: Vocabulary) -> None:
        self.text = text
        self.vocab = vocab
        self.tokens = tokenize(text)
        self.pos = 0
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.pos]

    def fail(self, message: str, token: Token | None = None) -> FilterSyntaxError:
        token = token or self.current
        found = "the end of the filter" if token.kind == "end" else repr(token.text)
        return FilterSyntaxError(self.text, token.position, f"{message}, found {found}")

    def accept_keyword(self, *words: str) -> bool:
        if self.current.kind == "keyword" and self.current.value in words:
            self.pos += 1
            return True
        return False

    def expect_punct(self, ch: str) -> None:
        if self.current.kind != "punct" or self.current.value != ch:
            raise self.fail(f"Expected {ch!r}")
        self.pos += 1

    def parse(self) -> Node:
        node = self.or_expr()
        if self.current.kind != "end":
            raise self.fail("Expected AND, OR or the end of the filter")
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.accept_keyword("OR"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.accept_keyword("AND"):
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Node:
        if (self.current.kind == "keyword" and self.current.value == "NOT") or (
                self.current.kind == "punct" and self.current.value == "("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.fail(f"The filter nests NOT and parentheses more than {MAX_DEPTH} "
                                "deep; write it flatter (De Morgan, IN lists)")
            try:
                if self.accept_keyword("NOT"):
                    return Not(self.not_expr())
                self.pos += 1
                node = self.or_expr()
                self.expect_punct(")")
                return node
            finally:
                self.depth -= 1
        return self.clause()

    def clause(self) -> Comparison:
        token = self.current
        if token.kind != "name":
            raise self.fail("Expected an identifier such as metrics.rmse, params.alpha or status")
        self.pos += 1
        entity, key = resolve_identifier(self.text, token, self.vocab)
        if self.accept_keyword("IS"):
            negated = self.accept_keyword("NOT")
            if not self.accept_keyword("NULL"):
                raise self.fail("Expected NULL after IS")
            return Comparison(entity, key, "IS NOT NULL" if negated else "IS NULL", None,
                              token.position)
        if self.accept_keyword("NOT"):
            if not self.accept_keyword("IN"):
                raise self.fail("Expected IN after NOT")
            return self.in_clause(entity, key, "NOT IN", token)
        if self.accept_keyword("IN"):
            return self.in_clause(entity, key, "IN", token)
        op_token = self.current
        op = op_token.value
        is_like = op_token.kind == "keyword" and op in ("LIKE", "ILIKE")
        if not (isinstance(op, str) and (op_token.kind == "op" or is_like)):
            raise self.fail("Expected a comparator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, IS)")
        self.pos += 1
        numeric = entity == METRIC or (entity == ATTRIBUTE and key in self.vocab.numbers)
        allowed = NUMERIC_OPS if numeric else STRING_OPS
        if op not in allowed:
            raise self.fail(
                f"{op} does not apply to {token.text}, which takes {' '.join(allowed)}", op_token
            )
        value_token = self.current
        if numeric:
            if value_token.kind != "number":
                raise self.fail(f"Expected a number to compare {token.text} with")
        elif value_token.kind != "string":
            hint = f" (write {token.text} {op} '{value_token.text}')" if value_token.text else ""
            raise self.fail(f"Expected a quoted string to compare {token.text} with{hint}")
        self.pos += 1
        value = value_token.value
        assert isinstance(value, (float, str)), "number and string tokens hold one value"
        return Comparison(entity, key, op, value, token.position)

    def in_clause(self, entity: str, key: str, op: str, token: Token) -> Comparison:
        if entity == METRIC or key in self.vocab.numbers:
            raise self.fail(f"{op} applies to text (params, tags, text attributes and dataset "
                            f"fields), not to {token.text}", token)
        self.expect_punct("(")
        values: list[str] = []
        while True:
            value = self.current.value
            if self.current.kind != "string" or not isinstance(value, str):
                raise self.fail("Expected a quoted string in the IN list")
            values.append(value)
            self.pos += 1
            if self.current.kind == "punct" and self.current.value == ",":
                self.pos += 1
                continue
            self.expect_punct(")")
            return Comparison(entity, key, op, tuple(values), token.position)


def parse_filter(text: str | None, vocab: Vocabulary = RUNS) -> Node | None:
    """Parse a filter string into a tree; an empty filter gives None.

    Raises:
        FilterSyntaxError: naming the position and what was expected there.

    """
    if text is None or not str(text).strip():
        return None
    return _Parser(str(text), vocab).parse()


def parse_order_by(order_by: str | Iterable[str] | None,
                   vocab: Vocabulary = RUNS) -> list[OrderKey]:
    """Parse order-by keys such as ``["metrics.rmse ASC", "start_time DESC"]``.

    A single string may hold several keys separated by commas.
    """
    if order_by is None:
        return []
    clauses = [order_by] if isinstance(order_by, str) else list(order_by)
    keys: list[OrderKey] = []
    for clause in clauses:
        tokens = tokenize(str(clause))
        i = 0
        while tokens[i].kind != "end":
            token = tokens[i]
            if token.kind != "name":
                found = repr(token.text) if token.kind != "end" else "the end"
                raise FilterSyntaxError(
                    str(clause), token.position,
                    f"Expected a key such as metrics.rmse to order by, found {found}",
                )
            entity, key = resolve_identifier(str(clause), token, vocab)
            i += 1
            ascending = True
            if tokens[i].kind == "name" and tokens[i].text.upper() in ("ASC", "DESC"):
                ascending = tokens[i].text.upper() == "ASC"
                i += 1
            keys.append(OrderKey(entity, key, ascending))
            if tokens[i].kind == "punct" and tokens[i].value == ",":
                i += 1
            elif tokens[i].kind != "end":
                raise FilterSyntaxError(
                    str(clause), tokens[i].position, "Expected ASC, DESC or ',' after the key"
                )
    return keys
