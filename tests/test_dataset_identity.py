"""Only the IMDB v1.0 test split is judged: another is refused before a run, or, with --unofficial-dataset, run
and reported, not judged.

Copies of the real test split stand for a damaged or edited dataset: hard links to the cached extraction
(nothing is copied), with one review deleted from test/neg, or one review of test/pos edited (its link
broken first, so the extraction keeps its own).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

import run
from model import evaluate
from qsl.identity import IMDB_TEST_SPLIT, imdb_differences
from qsl.reviews import REVIEW_NAME, dataset_root, folder_identities
from qsl.token_cache import tokenized_split
from qsl.vocabulary import Vocabulary
from readback.run_record import read_run_record
from tools.accuracy_imdb import main as check_accuracy

MISSING = "test/neg holds 12,499 review files, the IMDB v1.0 test split 12,500"


def linked_copy(root: Path, target: Path) -> Path:
    """``target`` holding a copy of ``root``'s test split, by hard links where the file system allows."""
    def link(source: str, destination: str) -> None:
        try:
            os.link(source, destination)
        except OSError:
            shutil.copy2(source, destination)

    shutil.copytree(root / "test", target / "test", copy_function=link)
    return target


def first_review(folder: Path) -> Path:
    """The review of ``folder`` with the smallest id: the split's first of its class."""
    return min((path for path in folder.iterdir() if REVIEW_NAME.match(path.name)),
               key=lambda path: int(path.name.split("_")[0]))


@pytest.fixture(scope="module")
def real_root(dataset_path) -> Path:
    return dataset_root(dataset_path)


@pytest.fixture(scope="module")
def one_review_missing(real_root, tmp_path_factory) -> Path:
    """The real test split without test/neg's first review: 12,500 positive and 12,499 negative reviews."""
    copy = linked_copy(real_root, tmp_path_factory.mktemp("missing"))
    first_review(copy / "test" / "neg").unlink()
    return copy


@pytest.fixture(scope="module")
def one_review_edited(real_root, tmp_path_factory) -> Path:
    """The real test split with test/pos's first review edited: the counts are IMDB's, one file's bytes are not."""
    copy = linked_copy(real_root, tmp_path_factory.mktemp("edited"))
    review = first_review(copy / "test" / "pos")
    text = review.read_bytes()
    review.unlink()  # a hard link to the cached extraction: replaced, never written through
    review.write_bytes(text + b" Edited.")
    return copy


def run_args(dataset: Path, out: Path, *extra: str) -> list[str]:
    return ["--scenario", "Offline", "--accuracy", "--dataset-path", str(dataset), "--output-dir", str(out), *extra]


def test_the_shipped_counts_and_digests_are_those_of_the_real_test_split(real_root):
    found = folder_identities(real_root)
    assert found == IMDB_TEST_SPLIT and imdb_differences(found) == []


def test_a_folders_digest_is_as_documented_and_computed_in_the_tokenizing_pass(tmp_path):
    """sha256 over the review files in numeric id order of: name, a zero byte, the sha256 of the file's bytes."""
    reviews = {"pos": {"10_9.txt": b"great", "2_7.txt": b"fine"}, "neg": {"3_1.txt": b"awful"}}
    for folder, files in reviews.items():
        (tmp_path / "test" / folder).mkdir(parents=True)
        (tmp_path / "test" / folder / "notes.md").write_text("not a review: not counted")
        for name, raw in files.items():
            (tmp_path / "test" / folder / name).write_bytes(raw)
    expected_pos = hashlib.sha256(b"2_7.txt\0" + hashlib.sha256(b"fine").digest()
                                  + b"10_9.txt\0" + hashlib.sha256(b"great").digest()).hexdigest()

    found = folder_identities(tmp_path)
    assert (found["pos"].files, found["pos"].sha256) == (2, expected_pos)
    assert found["neg"].files == 1
    assert tokenized_split(tmp_path, "test", Vocabulary(["great"], 5200), tmp_path / "cache").identity == found
    assert imdb_differences(found) == ["test/pos holds 2 review files, the IMDB v1.0 test split 12,500",
                                       "test/neg holds 1 review files, the IMDB v1.0 test split 12,500"]


@pytest.mark.parametrize("count", [None, "100"])
def test_a_test_split_missing_a_review_is_refused_before_the_run(count, one_review_missing, tmp_path, capsys):
    """Whole or a part (--count: the sample order shifts after the missing review), the run is refused: exit 2,
    the folder and the counts named, nothing written."""
    out = tmp_path / "run"
    extra = ["--count", count] if count else []
    assert run.main(run_args(one_review_missing, out, *extra)) == 2
    error = capsys.readouterr().err
    assert f"error: {one_review_missing / 'test'} is not the IMDB v1.0 test split: {MISSING}." in error
    assert "python -m qsl.download" in error and "--unofficial-dataset" in error and "Traceback" not in error
    assert not out.exists()


def test_a_test_split_with_an_edited_review_is_refused_naming_the_digest(one_review_edited, tmp_path, capsys):
    out = tmp_path / "run"
    assert run.main(run_args(one_review_edited, out)) == 2
    error = capsys.readouterr().err
    expected = IMDB_TEST_SPLIT["pos"].sha256[:16]
    assert (f"{one_review_edited / 'test'} is not the IMDB v1.0 test split: test/pos's 12,500 files differ in "
            "content from the IMDB v1.0 test split's (sha256 ") in error
    assert f"expected {expected}...): a damaged or edited copy." in error and "test/neg" not in error
    assert not out.exists()


def test_model_evaluate_refuses_a_test_split_that_is_not_imdbs(one_review_missing, capsys):
    assert evaluate.main(["--dataset-path", str(one_review_missing), "--count", "10"]) == 2
    assert MISSING in capsys.readouterr().err


def test_the_accuracy_checker_refuses_other_counts_and_judges_imdbs_labels(one_review_missing, one_review_edited,
                                                                        tmp_path, capsys):
    """The checker reads file names only: the labels in sample order follow from the two counts, so a split
    with IMDB's counts is judged against IMDB's labels (its contents are the run's to check)."""
    labels = [1, 0] * 12_500
    log_path = tmp_path / "mlperf_log_accuracy.json"
    entries = ",".join(f'{{"seq_id": {i}, "qsl_idx": {i}, "data": "{label:02X}00000000000000"}}'
                       for i, label in enumerate(labels))
    log_path.write_text(f"[{entries}]")
    arguments = ["--mlperf-accuracy-file", str(log_path), "--reference-accuracy", "0.9"]
    assert check_accuracy([*arguments, "--dataset-path", str(one_review_missing), "--output",
                           str(tmp_path / "missing.txt")]) == 2
    assert MISSING in capsys.readouterr().err and not (tmp_path / "missing.txt").exists()

    assert check_accuracy([*arguments, "--dataset-path", str(one_review_edited), "--output",
                           str(tmp_path / "edited.txt")]) == 0
    assert (tmp_path / "edited.txt").read_text().endswith("RESULT: PASS\n")


@pytest.mark.slow
def test_the_opt_in_runs_a_split_that_is_not_imdbs_and_reports_it_not_judged(one_review_missing, tmp_path, capsys,
                                                                              folded_backend):
    out = tmp_path / "run"
    assert run.main(run_args(one_review_missing, out, "--unofficial-dataset"), backend=folded_backend) == 0
    printed = capsys.readouterr().out
    assert "Samples    : 24999 test reviews" in printed
    assert f"NOT JUDGED: not the IMDB v1.0 test split: {MISSING}; the targets apply to that split only" in printed
    report = (out / "accuracy.txt").read_text().splitlines()
    assert "99% target (accuracy >= 0.881694): not judged" in report
    assert report[-1].startswith(f"RESULT: NOT JUDGED (not the IMDB v1.0 test split: {MISSING}")
    record = read_run_record(out)
    assert record.dataset.unofficial == MISSING and record.dataset.whole_split and not record.dataset.judged
    assert record.accuracy.judged is False and record.accuracy.passed is None
    assert MISSING in record.accuracy.not_judged_reason and record.config["unofficial_dataset"] is True


@pytest.mark.slow
def test_the_real_test_split_is_verified_and_judged(dataset_path, tmp_path, capsys, folded_backend):
    out = tmp_path / "run"
    assert run.main(run_args(dataset_path, out), backend=folded_backend) == 0
    assert "99% target PASS, 99.9% target PASS" in capsys.readouterr().out
    assert (out / "accuracy.txt").read_text().endswith("RESULT: PASS\n")
    record = read_run_record(out)
    assert record.dataset.unofficial is None and record.dataset.judged and record.dataset.samples == 25_000
    assert record.accuracy.judged is True and record.accuracy.passed is True and record.accuracy.not_judged_reason is None


@pytest.mark.slow
def test_model_evaluate_with_the_opt_in_says_its_figure_is_not_comparable(one_review_missing, capsys):
    assert evaluate.main(["--dataset-path", str(one_review_missing), "--count", "100", "--unofficial-dataset"]) == 0
    assert f"NOT the IMDB v1.0 test split ({MISSING}): not comparable with the reference accuracy" in capsys.readouterr().out
