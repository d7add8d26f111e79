"""Responses to LoadGen: each sample's predicted class as one little-endian int64.

A batch is answered in one call: with an array of LoadGen's response records where its C API can be
reached (:mod:`sut.loadgen_c_api`: no Python object per sample), else with the binding's list of
``QuerySampleResponse`` objects.
"""

from __future__ import annotations

from typing import Sequence

import mlperf_loadgen as lg
import numpy as np

from readback.accuracy import RESPONSE_DTYPE
from sut.loadgen_c_api import ResponseRecords, c_api

#: each thread's reserved records, for the array path
_records = ResponseRecords()


def complete_samples(sample_ids: Sequence[int], labels: np.ndarray) -> None:
    """Report ``labels[i]`` (8 bytes, little-endian int64) as the response of LoadGen sample ``sample_ids[i]``.

    The label buffer stays alive until ``QuerySamplesComplete`` returns, which
    is when LoadGen has copied what it logs.
    """
    api = c_api()
    if api is not None:
        api.complete(*_records.labelled(sample_ids, labels))
        return
    encoded = np.ascontiguousarray(labels, dtype=RESPONSE_DTYPE)
    base = encoded.ctypes.data
    responses = [
        lg.QuerySampleResponse(sample_id, base + row * RESPONSE_DTYPE.itemsize, RESPONSE_DTYPE.itemsize)
        for row, sample_id in enumerate(sample_ids)
    ]
    lg.QuerySamplesComplete(responses)


class ResponseBuffer:
    """Responses written into memory reserved once, for the scenarios in which LoadGen has one query
    outstanding at a time (SingleStream, MultiStream: it issues the next query only once every sample of the
    last one is complete), so that no array is made and no address looked up on every query's path (about
    3 us of a SingleStream query's 13 us in the SUT, measured with an instant backend).

    ``capacity`` is the most samples of one query; a larger query is answered by :func:`complete_samples`.
    """

    def __init__(self, capacity: int):
        self.labels = np.zeros(max(capacity, 1), dtype=RESPONSE_DTYPE)
        self._address = self.labels.ctypes.data

    def complete(self, sample_ids: Sequence[int], labels: np.ndarray) -> None:
        """Report ``labels[i]`` as the response of sample ``sample_ids[i]``, as :func:`complete_samples`."""
        count = len(sample_ids)
        if count > len(self.labels):
            complete_samples(sample_ids, labels)
            return
        size = RESPONSE_DTYPE.itemsize
        if count == 1:
            self.labels[0] = labels[0]
            lg.QuerySamplesComplete([lg.QuerySampleResponse(sample_ids[0], self._address, size)])
            return
        self.labels[:count] = labels
        lg.QuerySamplesComplete([lg.QuerySampleResponse(sample_id, self._address + row * size, size)
                                 for row, sample_id in enumerate(sample_ids)])


def complete_without_result(sample_ids: Sequence[int]) -> None:
    """Complete samples with an empty response, so LoadGen does not wait for them after a failure."""
    api = c_api()
    if api is not None:
        api.complete(*_records.without_result(sample_ids))
        return
    lg.QuerySamplesComplete([lg.QuerySampleResponse(sample_id, 0, 0) for sample_id in sample_ids])

