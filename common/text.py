"""Words for people: a module docstring as ``--help`` shows it, and the article before a word."""

from __future__ import annotations

import re

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def plain(doc: str | None) -> str:
    """``doc`` without reStructuredText markup: ``:mod:`x``` and ``:class:`x``` become ``x``, double backticks go."""
    return _ROLE.sub(r"\1", doc or "").replace("``", "")


def with_article(word: str) -> str:
    """``word`` after "a" or "an" as it is spoken: "an edge", "an Offline", "a SingleStream", "a datacenter"."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"
