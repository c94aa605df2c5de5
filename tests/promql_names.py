"""The metric and label names a PromQL expression reads, so tests can hold them against what jobq
processes export. promtool parses (``check rules``) but cannot list names, and no PromQL parser
ships for Python, so this is a small lexer: it knows strings, ``[...]`` ranges, ``{...}``
matchers, grouping clauses and function calls, which is all a selector can hide behind."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
MATCHER = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*")
# Words that are never metric names where they stand (PromQL keywords and literals).
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end"}
AGGREGATIONS = {"sum", "avg", "count", "min", "max", "stddev", "stdvar", "topk", "bottomk",
                "quantile", "count_values", "group", "limitk", "limit_ratio"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}


@dataclass
class Selector:
    """One vector selector: its metric name (None for ``{__name__=~...}``) and matcher labels."""

    metric: str | None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Names:
    selectors: list[Selector] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)  # labels of by/without/on/ignoring/group_*

    @property
    def metrics(self) -> set[str]:
        return {s.metric for s in self.selectors if s.metric}


class PromQLSyntaxError(ValueError):
    """The lexer met something it cannot place (promtool would refuse it too)."""


def _string_end(expr: str, i: int) -> int:
    """Index after the string literal starting at ``expr[i]``."""
    quote = expr[i]
    j = i + 1
    while j < len(expr):
        if expr[j] == "\\" and quote != "`":
            j += 2
            continue
        if expr[j] == quote:
            return j + 1
        j += 1
    raise PromQLSyntaxError(f"unterminated string at {i} in {expr!r}")


def _read_string(expr: str, i: int) -> tuple[str, int]:
    end = _string_end(expr, i)
    return expr[i + 1 : end - 1], end


def _skip_space(expr: str, i: int) -> int:
    while i < len(expr) and expr[i].isspace():
        i += 1
    return i


def _matchers(expr: str, i: int) -> tuple[dict[str, str], int]:
    """Parse ``{a="x", b=~"y"}`` starting at the ``{``; label -> value (operator dropped)."""
    labels: dict[str, str] = {}
    i += 1
    while True:
        i = _skip_space(expr, i)
        if i < len(expr) and expr[i] == "}":
            return labels, i + 1
        m = MATCHER.match(expr, i)
        if not m or m.end() >= len(expr) or expr[m.end()] not in "\"'`":
            raise PromQLSyntaxError(f"bad label matcher at {i} in {expr!r}")
        value, i = _read_string(expr, m.end())
        labels[m.group(1)] = value
        i = _skip_space(expr, i)
        if i < len(expr) and expr[i] == ",":
            i += 1


def _label_list(expr: str, i: int) -> tuple[set[str], int]:
    """Parse ``(a, b)`` starting at the ``(``."""
    end = expr.index(")", i)
    names = {part.strip() for part in expr[i + 1 : end].split(",") if part.strip()}
    bad = [n for n in names if not IDENT.fullmatch(n)]
    if bad:
        raise PromQLSyntaxError(f"bad label list {bad} in {expr!r}")
    return names, end + 1


def names_in(expr: str) -> Names:
    """Every selector's metric and matcher labels, and every grouping label, of ``expr``."""
    found = Names()
    i = 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            i = _string_end(expr, i)
        elif c == "[":  # range or subquery: durations only
            i = expr.index("]", i) + 1
        elif c == "{":  # a selector with no metric name
            labels, i = _matchers(expr, i)
            found.selectors.append(Selector(labels.pop("__name__", None), labels))
        elif c.isdigit() or (c == "." and i + 1 < len(expr) and expr[i + 1].isdigit()):
            while i < len(expr) and (expr[i].isalnum() or expr[i] in "._"):
                i += 1  # numbers and durations: 0.95, 1e3, 5m30s
        elif m := IDENT.match(expr, i):
            word, i = m.group(), m.end()
            after = _skip_space(expr, i)
            nxt = expr[after] if after < len(expr) else ""
            if word in GROUPING:
                if nxt == "(":
                    labels, i = _label_list(expr, after)
                    found.grouping |= labels
            elif word.lower() in KEYWORDS or nxt == "(":
                pass  # a keyword, or a function / aggregation called here
            elif word in AGGREGATIONS and (n := IDENT.match(expr, after)) and \
                    n.group() in ("by", "without"):
                pass  # an aggregation written `sum by (x) (...)`
            else:
                labels = {}
                if nxt == "{":
                    labels, i = _matchers(expr, after)
                found.selectors.append(Selector(word, labels))
        else:
            i += 1
    return found
