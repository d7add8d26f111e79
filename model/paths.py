"""Where the model's files live: the weights, their checksum file, the model card. No torch needed."""

from __future__ import annotations

from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parent
DEFAULT_WEIGHTS = MODEL_DIR / "seq2cnn.safetensors"
#: the model card: recipe, accuracy figures, quality targets
MODEL_CARD = MODEL_DIR / "MODEL.md"


def checksum_file(weights_path: Path) -> Path:
    """The ``<weights>.sha256`` file beside ``weights_path``."""
    return Path(f"{weights_path}.sha256")


def recorded_sha256(weights_path: Path) -> str | None:
    """The sha256 recorded beside ``weights_path``, lower-case; None when there is no checksum file."""
    record = checksum_file(weights_path)
    if not record.is_file():
        return None
    return record.read_text().split()[0].lower()
