"""The shipped weights on real test reviews."""

import numpy as np
import pytest
import torch

from model.backends import ReferenceBackend
from model.train import predict_logits
from model.weights import load_model


@pytest.mark.slow
def test_shipped_weights_reach_86_percent_on_first_4000_test_reviews(test_split):
    head = test_split.head(4000)
    assert head.labels.sum() == 2000  # balanced by the sample order
    logits = predict_logits(load_model(), head.token_ids, torch.device("cpu"), desc="4,000 test reviews")
    accuracy = float((logits.argmax(1) == head.labels).mean())
    assert accuracy >= 0.86, f"accuracy {accuracy:.4f} on the first 4,000 test reviews"


def test_reference_backend_agrees_with_length_batching_on_real_reviews(test_split):
    """The reference path (padding to 1000) and length batching give the same logits."""
    sample = [test_split.token_ids[i] for i in range(0, 25000, 2500)]
    reference = ReferenceBackend().logits(sample)
    batched = predict_logits(load_model(), sample, torch.device("cpu"))
    np.testing.assert_allclose(batched, reference, atol=1e-3)
