"""Responses to LoadGen: each sample's predicted class as one little-endian int64."""

from __future__ import annotations

from typing import Sequence

import mlperf_loadgen as lg
import numpy as np

from readback.accuracy import RESPONSE_DTYPE


def complete_samples(sample_ids: Sequence[int], labels: np.ndarray) -> None:
    """Report ``labels[i]`` (8 bytes, little-endian int64) as the response of LoadGen sample ``sample_ids[i]``.

    The label buffer stays alive until ``QuerySamplesComplete`` returns, which
    is when LoadGen has copied what it logs.
    """
    encoded = np.ascontiguousarray(labels, dtype=RESPONSE_DTYPE)
    base = encoded.ctypes.data
    responses = [
        lg.QuerySampleResponse(sample_id, base + row * RESPONSE_DTYPE.itemsize, RESPONSE_DTYPE.itemsize)
        for row, sample_id in enumerate(sample_ids)
    ]
    lg.QuerySamplesComplete(responses)


def complete_without_result(sample_ids: Sequence[int]) -> None:
    """Complete samples with an empty response, so LoadGen does not wait for them after a failure."""
    lg.QuerySamplesComplete([lg.QuerySampleResponse(sample_id, 0, 0) for sample_id in sample_ids])

