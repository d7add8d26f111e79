"""The word -> id table of Seq2CNN, built once from the IMDB train split, and the id sequence it makes.

Ids follow ``collections.Counter.most_common()`` over the train split's tokens
(ties keep first-seen order) and start at 1; 0 is padding. Every train word
keeps its rank in the file, but ids at or above ``clip_id`` (5199) are clipped
to ``clip_id`` at encoding time; words never seen in training are dropped.
A review's id sequence is cut at :data:`MAX_LENGTH` ids (the benchmark pads
every review to that length with :data:`PAD_ID`); these constants define the
model's input and are the single source of :class:`model.network.Seq2CNNConfig`'s.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from common.errors import BadInputError
from common.files import write_text_atomically

#: ids 0..5199: padding, the ranked train words, and 5199 for every rarer word
VOCAB_SIZE = 5200
#: the id of padding
PAD_ID = 0
#: ids kept per review (the first ones); the reference pads every review to this length
MAX_LENGTH = 1000
FORMAT = "seq2cnn-vocabulary/1"
#: the shipped vocabulary, built by ``python -m qsl.build_vocab``
DEFAULT_VOCABULARY = Path(__file__).resolve().parent.parent / "model" / "vocab.json"


class VocabularyError(BadInputError, ValueError):
    """A vocabulary file is missing or malformed."""


@dataclass
class Vocabulary:
    """Train-split words in id order: ``words[0]`` has id 1."""

    words: list[str]
    vocab_size: int = VOCAB_SIZE
    _ids: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._ids = {word: rank for rank, word in enumerate(self.words, start=1)}
        if len(self._ids) != len(self.words):
            raise VocabularyError("vocabulary lists a word twice")

    @property
    def clip_id(self) -> int:
        """The id that every rarer train word is mapped to (5199)."""
        return self.vocab_size - 1

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], vocab_size: int = VOCAB_SIZE) -> "Vocabulary":
        """Count words over ``token_lists`` (in sample order) and rank them."""
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        return cls([word for word, _ in counts.most_common()], vocab_size)

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """Token ids of one review, shape ``(n_known_tokens,)``, int16."""
        ids = [self._ids[token] for token in tokens if token in self._ids]
        return np.minimum(np.asarray(ids, dtype=np.int32), self.clip_id).astype(np.int16)

    def save(self, path: Path) -> None:
        payload = {"format": FORMAT, "vocab_size": self.vocab_size, "words": self.words}
        write_text_atomically(Path(path), json.dumps(payload, ensure_ascii=False, indent=0) + "\n")

    @classmethod
    def load(cls, path: Path) -> "Vocabulary":
        path = Path(path)
        if not path.is_file():
            raise VocabularyError(f"vocabulary file not found: {path}")
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise VocabularyError(f"vocabulary file {path} is not valid JSON: {error}") from error
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise VocabularyError(f"{path} is not a {FORMAT} file")
        return cls(list(payload["words"]), int(payload["vocab_size"]))

    def fingerprint(self) -> str:
        """sha256 of the table's content, for cache keys."""
        digest = hashlib.sha256(str(self.vocab_size).encode())
        for word in self.words:
            digest.update(word.encode("utf-8") + b"\0")
        return digest.hexdigest()

