"""The backends' errors of a bad request, apart from the backends so that every backend module can raise them."""

from common.errors import BadInputError


class DeviceError(BadInputError, ValueError):
    """A ``--device`` that torch or the backend's runtime does not know, does not see, or that no backend runs on."""
