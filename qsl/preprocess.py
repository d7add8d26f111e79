"""Text -> tokens, exactly as the Seq2CNN reference does it.

1. newline characters are deleted,
2. every HTML tag (non-greedy ``<.*?>``) becomes one space,
3. spaCy's rule-based English tokenizer (``spacy.blank("en")``, no model
   download) splits the text, and the lower-cased form of every token that is
   neither punctuation nor a bracket is kept.

Any change to this module changes :data:`PREPROCESSING_VERSION` and therefore
invalidates cached token ids (see :mod:`qsl.token_cache`).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import spacy

HTML_TAG = re.compile(r"<.*?>")

#: Fingerprint of the preprocessing: this file's source and the spaCy version
#: (tokenizer rules change between spaCy releases).
PREPROCESSING_VERSION = hashlib.sha256(
    Path(__file__).read_bytes() + spacy.__version__.encode()
).hexdigest()[:16]


def clean_review(text: str) -> str:
    """Delete newlines and replace each HTML tag with a single space."""
    return HTML_TAG.sub(" ", text.replace("\n", ""))


@lru_cache(maxsize=1)
def _english_tokenizer():
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
