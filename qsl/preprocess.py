"""Text -> tokens, exactly as the Seq2CNN reference does it, in time linear in the text's length.

1. newline characters are deleted,
2. every HTML tag (non-greedy ``<.*?>``) becomes one space,
3. spaCy's rule-based English tokenizer (``spacy.blank("en")``, no model
   download) splits the text, and the lower-cased form of every token that is
   neither punctuation nor a bracket is kept.

Two guards keep hostile text from stalling a run, without changing the tokens
of any real review:

- Step 2 is done by :func:`replace_html_tags`, a scan with ``str.find`` that
  gives the regular expression's result but in linear time (the expression
  itself is quadratic on a ``<`` that is never closed: 32 KB of ``<`` took
  5.6 s).
- spaCy's affix rules take time quadratic in the length of a run of
  non-whitespace characters (512 ``<`` in one run: 50 ms; 8,000: 26 s). A run
  longer than :data:`MAX_RUN_CHARS` characters is cut into pieces of that
  length before spaCy sees it. The longest run in the 50,000 labeled IMDB
  reviews, after step 2, has 78 characters, so no real review is affected.

Any change to this module changes :data:`PREPROCESSING_VERSION` and therefore
invalidates cached token ids (see :mod:`qsl.token_cache`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

#: the reference's tag pattern; :func:`replace_html_tags` computes its substitution in linear time
HTML_TAG = re.compile(r"<.*?>")
#: the longest run of non-whitespace characters handed to spaCy in one piece
MAX_RUN_CHARS = 128
#: a run longer than MAX_RUN_CHARS (the look-behind makes each match start at a run's first character)
_OVERLONG_RUN = re.compile(rf"(?<!\S)\S{{{MAX_RUN_CHARS + 1},}}")

#: Fingerprint of the preprocessing: this file's source and the spaCy version
#: (tokenizer rules change between spaCy releases). spaCy itself is imported only
#: to tokenize (about 50 MB of memory a run with cached token ids does without).
PREPROCESSING_VERSION = hashlib.sha256(
    Path(__file__).read_bytes() + version("spacy").encode()
).hexdigest()[:16]


def replace_html_tags(text: str) -> str:
    """``HTML_TAG.sub(" ", text)`` for a text without newlines, in linear time.

    The non-greedy pattern matches from the leftmost ``<`` to the first ``>``
    after it; once no ``>`` follows a ``<``, no later ``<`` has one either.
    """
    pieces, position = [], 0
    while (opening := text.find("<", position)) >= 0 and (closing := text.find(">", opening + 1)) >= 0:
        pieces.append(text[position:opening])
        pieces.append(" ")
        position = closing + 1
    pieces.append(text[position:])
    return "".join(pieces)


def _cut_run(match: re.Match) -> str:
    run = match.group()
    return " ".join(run[start:start + MAX_RUN_CHARS] for start in range(0, len(run), MAX_RUN_CHARS))


def clean_review(text: str) -> str:
    """Delete newlines, replace each HTML tag with a single space, and cut over-long runs (see the module docstring)."""
    cleaned = replace_html_tags(text.replace("\n", ""))
    return _OVERLONG_RUN.sub(_cut_run, cleaned)


@lru_cache(maxsize=1)
def _english_tokenizer():
    import spacy

    return spacy.blank("en").tokenizer


def _kept_tokens(doc) -> list[str]:
    return [token.lower_ for token in doc if not (token.is_punct or token.is_bracket)]


def tokenize(text: str) -> list[str]:
    """Tokens of one raw review (HTML, newlines and all), lower-cased."""
    return _kept_tokens(_english_tokenizer()(clean_review(text)))


def tokenize_many(texts: Iterable[str], batch_size: int = 256) -> Iterator[list[str]]:
    """Like :func:`tokenize` for a stream of reviews, using spaCy's batched pipe."""
    cleaned = (clean_review(text) for text in texts)
    for doc in _english_tokenizer().pipe(cleaned, batch_size=batch_size):
        yield _kept_tokens(doc)
