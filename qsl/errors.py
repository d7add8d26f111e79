"""Errors of the data layer, each worded so that a user can act on it."""

from common.errors import BadInputError


class DatasetError(BadInputError):
    """The IMDB dataset is missing, incomplete or unreadable."""


class UnsafeArchiveError(DatasetError):
    """An archive member would escape the extraction folder or is not a plain file."""
