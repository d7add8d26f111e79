"""Errors of the data layer, each worded so that a user can act on it."""


class DatasetError(RuntimeError):
    """The IMDB dataset is missing, incomplete or unreadable."""


class UnsafeArchiveError(DatasetError):
    """An archive member would escape the extraction folder or is not a plain file."""
