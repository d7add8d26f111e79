"""LoadGen's own C API, reached in the library of its Python binding: queries and responses as arrays.

The binding hands the SUT each query as Python objects (``QuerySample``, or
two lists of ints for its "fast" SUT) and takes the responses as a list of
``QuerySampleResponse`` objects: one Python object per sample each way. A
response object costs about 0.44 us here, five times LoadGen's own work per
sample (0.08 us), so an Offline query of a million samples spent half a
second building objects. LoadGen's C API (``bindings/c_api.h``), compiled into
the same library as the binding, has the same calls over arrays:

- ``mlperf::c::ConstructSUT(client_data, name, name_length, issue, flush)``:
  a SUT whose ``issue(client_data, const QuerySample* samples, size_t count)``
  receives the query as an array of (id, index) pairs;
- ``mlperf::c::QuerySamplesComplete(QuerySampleResponse* responses, size_t
  count)``: the responses as an array of records (:data:`RESPONSE_RECORD`:
  ``id``, ``data``, ``size``, ``n_tokens``, LoadGen's ``struct
  QuerySampleResponse``), written with numpy.

It is the same LoadGen (one library, one test state), not a copy: a SUT made
here is started by the binding's ``StartTestWithLogSettings`` like any other.
The binding's library exports only its module init; the C API's functions are
in its symbol table (``.symtab``) without being exported, so :func:`c_api`
finds their offsets there (pyelftools), and their addresses from that of the
loaded module init. Where anything is missing (a stripped library, a layout
this module does not know, pyelftools not installed) the SUT uses the
binding's objects as before; ``run.json`` records which (``sut.completion``).
``SEQ2CNN_COMPLETION=objects`` in the environment chooses the objects (read
once per process): the way back, should a LoadGen build disagree with this.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from dataclasses import dataclass
from functools import cache
from typing import Callable

import mlperf_loadgen as lg
import numpy as np

log = logging.getLogger(__name__)

#: the C API's functions, as the compiler names them (namespace mlperf::c)
SYMBOLS = {
    "complete": "_ZN6mlperf1c20QuerySamplesCompleteEPNS_19QuerySampleResponseEm",
    "construct_sut": "_ZN6mlperf1c12ConstructSUTEmPKcmPFvmPKNS_11QuerySampleEmEPFvvE",
    "destroy_sut": "_ZN6mlperf1c10DestroySUTEPv",
}
#: the binding's one exported function: its address places the library in memory
MODULE_INIT = "PyInit_mlperf_loadgen"
#: ``objects`` here makes the SUT use the binding's objects
COMPLETION_VARIABLE = "SEQ2CNN_COMPLETION"

#: LoadGen's ``struct QuerySampleResponse`` since it has ``n_tokens`` (4.x on): 32 bytes
RESPONSE_RECORD = np.dtype([("id", "<u8"), ("data", "<u8"), ("size", "<u8"), ("n_tokens", "<i8")])
#: the same struct before ``n_tokens``: 24 bytes
RESPONSE_RECORD_WITHOUT_TOKENS = np.dtype([("id", "<u8"), ("data", "<u8"), ("size", "<u8")])
#: LoadGen's ``struct QuerySample``: the response id and the QSL index, 16 bytes
QUERY_SAMPLE_WORDS = 2

_IssueFunction = ctypes.CFUNCTYPE(None, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t)
_FlushFunction = ctypes.CFUNCTYPE(None)
#: the SUT's side of a query: (response ids (n,) uint64, QSL indices (n,) int64), both the SUT's own copies
IssueArrays = Callable[[np.ndarray, np.ndarray], None]


@dataclass(frozen=True)
class CApi:
    """The C API's functions in the loaded binding: :meth:`complete` and :meth:`construct_sut`."""

    complete_records: Callable[[int, int], None]
    _construct: Callable
    _destroy: Callable

    def complete(self, address: int, count: int) -> None:
        """Complete ``count`` response records at ``address`` (LoadGen copies what it keeps before it returns;
        the GIL is released meanwhile)."""
        self.complete_records(address, count)

    def construct_sut(self, name: str, issue: IssueArrays, flush: Callable[[], None]) -> "ArraySut":
        """A LoadGen SUT named ``name`` whose queries go to ``issue`` as arrays."""
        return ArraySut(self, name, issue, flush)


class ArraySut:
    """A SUT of the C API; :attr:`handle` is what ``StartTestWithLogSettings`` takes; :meth:`destroy` it after.

    ``issue`` gets each query as two arrays copied out of LoadGen's (valid only during its call). It must not
    raise: an exception cannot cross into LoadGen's thread (ctypes would print and drop it), so the caller's
    ``issue`` answers its own failures."""

    def __init__(self, api: CApi, name: str, issue: IssueArrays, flush: Callable[[], None]):
        def issue_query(_client_data: int, samples: int, count: int) -> None:
            words = np.ctypeslib.as_array(ctypes.cast(samples, ctypes.POINTER(ctypes.c_uint64)),
                                          shape=(count * QUERY_SAMPLE_WORDS,)) if count else np.zeros(0, np.uint64)
            pairs = words.reshape(count, QUERY_SAMPLE_WORDS)
            issue(pairs[:, 0].copy(), pairs[:, 1].astype(np.int64))

        # the ctypes functions must live as long as LoadGen may call them
        self._issue = _IssueFunction(issue_query)
        self._flush = _FlushFunction(flush)
        self._name = name.encode()
        self._api = api
        self.handle = api._construct(0, self._name, len(self._name), self._issue, self._flush)

    def destroy(self) -> None:
        self._api._destroy(self.handle)


def _symbol_offsets(library: str, names: set[str]) -> dict[str, int]:
    """The offsets in ``library`` of the functions ``names`` found in its symbol table."""
    from elftools.elf.elffile import ELFFile

    with open(library, "rb") as file:
        table = ELFFile(file).get_section_by_name(".symtab")
        if table is None:
            return {}
        return {symbol.name: symbol["st_value"] for symbol in table.iter_symbols()
                if symbol.name in names and symbol["st_info"]["type"] == "STT_FUNC" and symbol["st_value"]}


@cache
def record_dtype() -> np.dtype:
    """The layout of LoadGen's ``QuerySampleResponse`` in the binding loaded (with or without ``n_tokens``)."""
    return RESPONSE_RECORD if hasattr(lg.QuerySampleResponse(), "n_tokens") else RESPONSE_RECORD_WITHOUT_TOKENS


@cache
def c_api() -> CApi | None:
    """LoadGen's C API in the loaded binding, or None where it cannot be reached (the reason logged once) or
    ``SEQ2CNN_COMPLETION=objects`` asks for the binding's objects."""
    if os.environ.get(COMPLETION_VARIABLE, "arrays") == "objects":
        log.info("LoadGen gets one Python object per sample: %s=objects", COMPLETION_VARIABLE)
        return None
    library = lg.__file__
    try:
        offsets = _symbol_offsets(library, {*SYMBOLS.values(), MODULE_INIT})
    except ImportError:
        log.info("LoadGen gets one Python object per sample: pyelftools is not installed (pip install pyelftools)")
        return None
    except OSError as error:
        log.info("LoadGen gets one Python object per sample: its library cannot be read (%s)", error)
        return None
    if len(offsets) < len(SYMBOLS) + 1:
        log.info("LoadGen gets one Python object per sample: %s does not list its C API's functions", library)
        return None
    loaded = ctypes.CDLL(library)  # the library Python loaded already: the same copy, the same test state
    base = ctypes.cast(getattr(loaded, MODULE_INIT), ctypes.c_void_p).value - offsets[MODULE_INIT]

    def function(name: str, *signature):
        return ctypes.CFUNCTYPE(*signature)(base + offsets[SYMBOLS[name]])

    return CApi(function("complete", None, ctypes.c_void_p, ctypes.c_size_t),
                function("construct_sut", ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
                         _IssueFunction, _FlushFunction),
                function("destroy_sut", None, ctypes.c_void_p))


class ResponseRecords(threading.local):
    """Response records and the labels they point at, reserved per thread and reused for each batch it answers
    (LoadGen copies what it keeps before its call returns): a batch then costs two array copies, its ids and
    its labels, and no record built. Records stay pointed at the labels (``size`` 8, ``n_tokens`` 0); an
    empty response (after a failure) is written into a second set whose ``data`` and ``size`` are 0."""

    def __init__(self) -> None:
        self.capacity = 0

    def _reserve(self, count: int) -> None:
        capacity = max(count, 2 * self.capacity, 1024)
        self.labels = np.zeros(capacity, dtype="<i8")  # the response format: little-endian int64
        self.records = np.zeros(capacity, dtype=record_dtype())
        self.records["data"] = np.arange(capacity, dtype=np.uint64) * 8 + np.uint64(self.labels.ctypes.data)
        self.records["size"] = 8
        self.empty = np.zeros(capacity, dtype=record_dtype())
        self.capacity = capacity

    def labelled(self, sample_ids, labels: np.ndarray) -> tuple[int, int]:
        """(address, count) of records answering sample ``sample_ids[i]`` with the int64 ``labels[i]``."""
        count = len(sample_ids)
        if count > self.capacity:
            self._reserve(count)
        self.labels[:count] = labels
        self.records["id"][:count] = sample_ids
        return self.records.ctypes.data, count

    def without_result(self, sample_ids) -> tuple[int, int]:
        """(address, count) of empty responses for ``sample_ids``."""
        count = len(sample_ids)
        if count > self.capacity:
            self._reserve(count)
        self.empty["id"][:count] = sample_ids
        return self.empty.ctypes.data, count
