"""The pieces of the report's HTML page: escaped text, tables, verdict badges, notes, collapsible text,
the figures embedded as data URIs (:class:`Page`) and the page's inline CSS (:data:`STYLE`)."""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable, Mapping


def esc(value: object) -> str:
    return html.escape(str(value))


def slug(*parts: str) -> str:
    """A file- and anchor-safe name: lower case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-") or "run"


def shown(value: object) -> str:
    """A value as a table cell shows it: nested values as compact JSON."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def table(rows: Iterable[Iterable[object]], header: Iterable[str] | None = None) -> str:
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{esc(shown(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def mapping_table(values: Mapping[str, object]) -> str:
    """A two-column table: each key as a row heading, its value beside it."""
    rows = "".join(f"<tr><th>{esc(key)}</th><td>{esc(shown(value))}</td></tr>" for key, value in values.items())
    return f"<table>{rows}</table>"


def badge(text: str, good: bool | None) -> str:
    tone = {True: "good", False: "bad", None: "neutral"}[good]
    return f'<span class="badge {tone}">{esc(text)}</span>'


def verdict_text(passed: bool | None) -> str:
    """A compliance check's verdict; None when no file states one."""
    return {True: "PASS", False: "FAIL", None: "no verdict"}[passed]


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def collapsible(title: str, text: str) -> str:
    return f"<details><summary>{esc(title)}</summary><pre>{esc(text)}</pre></details>"


class Page:
    """The figures of a page being built: each one saved as a PNG file and embedded as a data URI."""

    def __init__(self) -> None:
        self.figures: dict[str, bytes] = {}

    def figure(self, name: str, png: bytes, caption: str) -> str:
        """HTML for ``png`` saved as ``<name>.png`` (made unique on the page) with ``caption``."""
        file_name, number = f"{name}.png", 2
        while file_name in self.figures:
            file_name, number = f"{name}-{number}.png", number + 1
        self.figures[file_name] = png
        data = base64.b64encode(png).decode("ascii")
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
                f'<figcaption>{esc(caption)} (<a href="{esc(file_name)}">{esc(file_name)}</a>)</figcaption></figure>')


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #ccc; margin-top: 2em; } h3 { margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; vertical-align: top; word-break: break-all; }
th { background: #f0f0f0; }
.badge { display: inline-block; font-size: 2em; font-weight: bold; padding: 0.1em 0.6em; border-radius: 0.3em; color: white; }
h4 .badge { font-size: 1em; }
.good { background: #2e7d32; } .bad { background: #c62828; } .neutral { background: #757575; }
.reasons { color: #c62828; font-weight: bold; }
.quick { background: #fff3cd; border: 1px solid #e0b000; padding: 0.5em; font-weight: bold; }
.note { color: #555; font-style: italic; }
figure { margin: 1em 0; } figure img { max-width: 100%; } figcaption { font-size: 0.85em; color: #555; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
"""
