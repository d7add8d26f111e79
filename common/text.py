"""Words for people: a module docstring as ``--help`` shows it, the article before a word, ordinals."""

from __future__ import annotations

import re

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def plain(doc: str | None, values: dict[str, str] | None = None) -> str:
    """``doc`` without reStructuredText markup: ``:mod:`x``` and ``:class:`x``` become ``x``, double backticks go.

    ``values`` gives the words for names that a reader of ``--help`` should see as values, not as names:
    ``{"MAX_RSS_GROWTH": "5%"}`` turns ``:data:`MAX_RSS_GROWTH``` into ``5%``."""
    values = values or {}
    return _ROLE.sub(lambda role: values.get(role.group(1), role.group(1)), doc or "").replace("``", "")


def with_article(word: str) -> str:
    """``word`` after "a" or "an" as it is spoken: "an edge", "an Offline", "a SingleStream", "a datacenter"."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def ordinal(number: int) -> str:
    """``number`` as an ordinal: 1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, 102nd."""
    suffix = "th" if number % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"
