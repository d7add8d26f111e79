"""The fast backends compute the reference function: random weights on edge lengths, shipped weights on real reviews."""

import numpy as np
import pytest
import torch

from model.backends import BACKENDS, FoldedBackend, ReferenceBackend, TrimmedBackend, create_backend
from model.batching import pad_to_width
from model.folded import FoldedTables
from model.weights import load_model

#: largest |logit difference| accepted between a fast backend and the reference (fp32 sums in another order)
LOGIT_TOLERANCE = 1e-3

EDGE_LENGTHS = (0, 1, 2, 3, 4, 5, 57, 232, 995, 996, 997, 998, 999, 1000, 1001, 1400)


@pytest.fixture(scope="module")
def edge_reviews():
    rng = np.random.default_rng(5)
    reviews = [rng.integers(1, 5200, n).astype(np.int16) for n in EDGE_LENGTHS]
    reviews.append(np.full(10, 5199, dtype=np.int16))  # the clip id
    return reviews


def test_all_backends_are_registered():
    assert list(BACKENDS) == ["reference", "trimmed", "folded"]
    with pytest.raises(ValueError, match="unknown backend 'fastest'"):
        create_backend("fastest")


@pytest.mark.parametrize("backend_class", [TrimmedBackend, FoldedBackend])
def test_fast_backend_matches_reference_at_every_length(backend_class, random_weights, edge_reviews):
    reference = ReferenceBackend(random_weights).logits(edge_reviews)
    fast = backend_class(random_weights).logits(edge_reviews)
    assert fast.shape == reference.shape == (len(edge_reviews), 2)
    np.testing.assert_allclose(fast, reference, atol=LOGIT_TOLERANCE, rtol=0)


def test_folded_reviews_are_independent_of_their_batch(random_weights, edge_reviews):
    backend = FoldedBackend(random_weights)
    together = backend.logits(edge_reviews)
    alone = np.concatenate([backend.logits([review]) for review in edge_reviews])
    np.testing.assert_allclose(together, alone, atol=1e-5, rtol=0)  # only the classifier's BLAS blocking differs


def test_torch_folded_path_matches_reference(random_weights, edge_reviews):
    """The path used on GPUs, run here on the CPU."""
    model = load_model(random_weights)
    with torch.inference_mode():
        reference = model(pad_to_width(edge_reviews, 1000)).numpy()
    gathered = FoldedTables.from_model(model).to_torch(torch.device("cpu")).logits(edge_reviews)
    np.testing.assert_allclose(gathered, reference, atol=LOGIT_TOLERANCE, rtol=0)


def test_cuda_without_a_gpu_is_a_clear_error(random_weights):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="no CUDA device"):
        FoldedBackend(random_weights, device="cuda")


@pytest.mark.slow
def test_fast_backends_agree_with_reference_on_real_reviews(test_split):
    """A slice of real reviews (every 50th, all lengths) with the shipped weights: same labels, close logits."""
    reviews = [test_split.token_ids[i] for i in range(0, len(test_split), 50)]
    reference = ReferenceBackend().logits(reviews)
    for name in ("trimmed", "folded"):
        fast = create_backend(name).logits(reviews)
        assert (fast.argmax(1) == reference.argmax(1)).all(), name
        np.testing.assert_allclose(fast, reference, atol=LOGIT_TOLERANCE, rtol=0, err_msg=name)
