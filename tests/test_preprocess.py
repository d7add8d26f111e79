"""Preprocessing by hand-written cases: HTML, punctuation, brackets, unicode, empty, over-long."""

import numpy as np
import pytest

from model.batching import pad_to_width, padded_batch
from qsl.preprocess import clean_review, tokenize, tokenize_many
from qsl.vocabulary import Vocabulary


def test_html_tags_become_spaces_and_newlines_vanish():
    assert clean_review("a<br /><br />b") == "a  b"
    assert clean_review("line\none") == "lineone"
    assert clean_review("<i>so</i> <b class='x'>good</b>") == " so   good "
    # non-greedy: two tags on one line are two matches, not one span
    assert "text" in clean_review("<a>text</a>")


def test_tokens_are_lowercase_without_punctuation_or_brackets():
    assert tokenize("Great Movie!!! (Really) [sic] {ok}") == ["great", "movie", "really", "sic", "ok"]
    assert tokenize("It wasn't bad, was it?") == ["it", "was", "n't", "bad", "was", "it"]
    assert tokenize("Wow.<br /><br />Loved it") == ["wow", " ", "loved", "it"]


def test_unicode_is_kept_and_lowercased():
    assert tokenize("Amélie is CAFÉ-worthy — ÜBER") == ["amélie", "is", "café", "worthy", "über"]
    assert tokenize("日本映画 😀") == ["日本映画", "😀"]


def test_empty_and_markup_only_reviews():
    assert tokenize("") == []
    # spaCy keeps runs of extra whitespace as a token; the reference did too
    assert tokenize("<br /><br />") == ["  "]
    assert tokenize("!!! ... ???") == []


def test_batched_tokenizer_matches_single():
    texts = ["One <br />two", "", "Three, four (five)", "x" * 50]
    assert list(tokenize_many(texts)) == [tokenize(text) for text in texts]


def make_vocab():
    # "the" most frequent, then ties in first-seen order
    return Vocabulary.build([["the", "movie", "the"], ["plot", "movie", "the"]], vocab_size=3)


def test_vocabulary_ranks_by_count_with_ties_in_first_seen_order():
    vocab = Vocabulary.build([["b", "a", "c"], ["a", "c", "d"]])
    assert vocab.words == ["a", "c", "b", "d"]


def test_vocabulary_clips_rare_ids_and_drops_unknown_words():
    vocab = make_vocab()  # ids: the=1, movie=2, plot=3 -> clipped to vocab_size - 1 = 2
    assert vocab.clip_id == 2
    assert vocab.encode(["the", "plot", "unknown", "movie"]).tolist() == [1, 2, 2]
    assert vocab.encode([]).dtype == np.int16


def test_shipped_vocabulary_clips_at_5199(vocabulary):
    assert vocabulary.vocab_size == 5200 and vocabulary.clip_id == 5199
    assert len(vocabulary.words) > 5199
    rare = vocabulary.words[-1]
    assert vocabulary.encode([vocabulary.words[0], rare, "zzzz-never-seen-zzzz"]).tolist() == [1, 5199]


def test_vocabulary_round_trips_through_json(tmp_path):
    vocab = make_vocab()
    vocab.save(tmp_path / "v.json")
    loaded = Vocabulary.load(tmp_path / "v.json")
    assert loaded.words == vocab.words and loaded.fingerprint() == vocab.fingerprint()


def test_vocabulary_file_errors_name_the_file(tmp_path):
    from qsl.vocabulary import VocabularyError

    with pytest.raises(VocabularyError, match="not found"):
        Vocabulary.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(VocabularyError, match="bad.json"):
        Vocabulary.load(tmp_path / "bad.json")


def test_padding_and_truncation_to_1000():
    short = np.array([5, 6, 7], dtype=np.int16)
    long = np.arange(1, 1201, dtype=np.int16) % 5000 + 1
    batch = pad_to_width([short, long, np.zeros(0, np.int16)], 1000)
    assert batch.shape == (3, 1000)
    assert batch[0, :3].tolist() == [5, 6, 7] and int(batch[0, 3:].abs().sum()) == 0
    assert batch[1].tolist() == long[:1000].tolist()
    assert int(batch[2].abs().sum()) == 0  # an empty review is all padding


def test_length_batches_keep_four_padding_ids_up_to_1000():
    assert padded_batch([np.ones(10, np.int16), np.ones(3, np.int16)]).shape == (2, 14)
    assert padded_batch([np.ones(998, np.int16)]).shape == (1, 1000)
    assert padded_batch([np.ones(1500, np.int16)]).shape == (1, 1000)
    assert padded_batch([np.zeros(0, np.int16)]).shape == (1, 4)


def test_tag_scan_equals_the_reference_pattern_on_tricky_markup():
    from qsl.preprocess import HTML_TAG, replace_html_tags

    cases = ["", "<", ">", "<>", "a<b", "a>b<c>d", "<<a>>", "<a<b>c>", "x<y", "<i>so</i> <b>ok", "<<<", "><><"]
    for text in cases:
        assert replace_html_tags(text) == HTML_TAG.sub(" ", text), text


def test_every_real_test_review_is_cleaned_as_the_reference_pattern_cleans_it(dataset_path):
    """No review of the test split is touched by the linear-time guards: same text into spaCy as before."""
    from qsl.preprocess import HTML_TAG
    from qsl.reviews import dataset_root, read_review, split_reviews

    reviews = split_reviews(dataset_root(dataset_path), "test")
    changed = [review.name for review in reviews
               if clean_review(text := read_review(review.path)) != HTML_TAG.sub(" ", text.replace("\n", ""))]
    assert len(reviews) == 25_000 and changed == []


@pytest.mark.parametrize("unit", ["<", "!", "<a", "x" * 200 + "<", "(*'-"])
def test_hostile_text_reaches_spacy_in_runs_of_bounded_length(unit):
    """spaCy's affix rules are quadratic in a run's length; bounded runs make the whole text linear."""
    from qsl.preprocess import MAX_RUN_CHARS

    text = unit * (64_000 // len(unit))
    assert max(map(len, clean_review(text).split())) <= MAX_RUN_CHARS
    assert all(token.strip() for token in tokenize(text))  # it finishes, and keeps only real tokens


def test_an_overlong_run_is_cut_into_pieces_and_short_runs_are_not():
    from qsl.preprocess import MAX_RUN_CHARS

    run = "a" * (2 * MAX_RUN_CHARS + 5)
    assert clean_review(f"x {run} y") == f"x {run[:MAX_RUN_CHARS]} {run[MAX_RUN_CHARS:2 * MAX_RUN_CHARS]} {run[-5:]} y"
    fine = "b" * MAX_RUN_CHARS
    assert clean_review(f"{fine} {fine}") == f"{fine} {fine}"
