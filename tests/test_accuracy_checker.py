"""The accuracy checker on hand-made LoadGen accuracy logs, on the real test split and on a tiny IMDB layout.

Verdicts against the targets are judged on the real test split only: a log that covers it whole. A tiny layout
is not the IMDB v1.0 test split, so the checker refuses it unless ``--unofficial-dataset`` accepts it, and
then reports it, not judged; what it checks in the log itself (missing, duplicated, malformed entries: FAIL
whether judged or not) is tested there.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qsl.reviews import dataset_root, split_labels
from readback.accuracy import (
    REFERENCE_ACCURACY_LINE,
    AccuracyCheckError,
    accuracy_report,
    check_accuracy_log,
    decode_accuracy_log,
    read_accuracy_report,
    reference_accuracy,
)
from tools.accuracy_imdb import main

SAMPLES = 10
LABELS = np.array([1, 0] * (SAMPLES // 2), dtype=np.int64)  # the sample order interleaves pos and neg
#: the checker's opt-in for a test split that is not IMDB v1.0's, such as the tiny layout
UNOFFICIAL = "--unofficial-dataset"


def response(label: int, size: int = 8) -> str:
    """Hex of a response as LoadGen logs it: ``label`` as a little-endian integer of ``size`` bytes."""
    return label.to_bytes(size, "little", signed=True).hex().upper()


def entries_for(labels) -> list[dict]:
    return [{"seq_id": index, "qsl_idx": index, "data": response(int(label))} for index, label in enumerate(labels)]


def write_log(folder: Path, entries: list) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mlperf_log_accuracy.json"
    path.write_text(json.dumps(entries, indent=1))
    return path


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """An IMDB layout whose test split holds 5 positive and 5 negative (empty) reviews: its labels are LABELS."""
    root = tmp_path / "aclImdb"
    for label, folder in ((1, "pos"), (0, "neg")):
        (root / "test" / folder).mkdir(parents=True)
        for review_id in range(SAMPLES // 2):
            (root / "test" / folder / f"{review_id}_{8 if label else 2}.txt").write_text("")
    return root


@pytest.fixture(scope="module")
def real_labels(dataset_path) -> np.ndarray:
    """The labels of the real test split, in sample order (25,000)."""
    return split_labels(dataset_root(dataset_path), "test")


def run_main(tmp_path, dataset, entries, *extra: str) -> tuple[int, str]:
    log_path = write_log(tmp_path / "run", entries)
    status = main([
        "--mlperf-accuracy-file", str(log_path), "--dataset-path", str(dataset), "--reference-accuracy", "0.9", *extra
    ])
    return status, (tmp_path / "run" / "accuracy.txt").read_text()


def test_correct_log_passes(tmp_path, dataset_path, real_labels):
    status, text = run_main(tmp_path, dataset_path, entries_for(real_labels))

    assert status == 0
    lines = text.splitlines()
    assert lines[0] == "accuracy=100.000%, good=25000, total=25000"
    assert "99% target (accuracy >= 0.891000): PASS" in lines
    assert "99.9% target (accuracy >= 0.899100): PASS" in lines
    assert "log: 25000 entries for 25000 samples; 0 missing, 0 duplicated, 0 malformed, 0 repeated" in lines
    assert lines[-1] == "RESULT: PASS"


def test_a_test_split_that_is_not_imdbs_is_refused_unless_accepted_and_then_not_judged(tmp_path, tiny_dataset,
                                                                                        capsys):
    log_path = write_log(tmp_path / "run", entries_for(LABELS))
    arguments = ["--mlperf-accuracy-file", str(log_path), "--dataset-path", str(tiny_dataset), "--reference-accuracy", "0.9"]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert f"{tiny_dataset / 'test'} is not the IMDB v1.0 test split: test/pos holds 5 review files, the IMDB v1.0 " \
           "test split 12,500; test/neg holds 5 review files, the IMDB v1.0 test split 12,500" in error
    assert UNOFFICIAL in error and not (tmp_path / "run" / "accuracy.txt").exists()

    assert main([*arguments, UNOFFICIAL]) == 0
    lines = (tmp_path / "run" / "accuracy.txt").read_text().splitlines()
    assert lines[0] == "accuracy=100.000%, good=10, total=10"
    assert "99% target (accuracy >= 0.891000): not judged" in lines
    assert lines[-1].startswith("RESULT: NOT JUDGED (not the IMDB v1.0 test split: test/pos holds 5 review files")
    assert read_accuracy_report(tmp_path / "run" / "accuracy.txt").passed is None


def test_entries_may_come_in_any_order(tmp_path):
    accuracy_log = decode_accuracy_log(write_log(tmp_path, entries_for(LABELS)[::-1]), SAMPLES)
    assert accuracy_log.is_valid
    assert accuracy_log.predictions.tolist() == LABELS.tolist()


def test_99_percent_target_passes_while_99_9_fails(tmp_path, dataset_path, real_labels):
    predictions = real_labels.copy()
    predictions[:2500] = 1 - predictions[:2500]  # 9 in 10 right: 0.9 >= 0.99 * 0.905 but < 0.999 * 0.905
    status, text = run_main(tmp_path, dataset_path, entries_for(predictions), "--reference-accuracy", "0.905")

    assert status == 0
    assert "accuracy=90.000%, good=22500, total=25000" in text
    assert "99% target (accuracy >= 0.895950): PASS" in text
    assert "99.9% target (accuracy >= 0.904095): FAIL" in text
    assert text.endswith("RESULT: PASS\n")


def test_accuracy_below_99_percent_target_fails(tmp_path, dataset_path, real_labels):
    predictions = real_labels.copy()
    predictions[:5000] = 1 - predictions[:5000]
    status, text = run_main(tmp_path, dataset_path, entries_for(predictions))

    assert status == 1
    assert "accuracy=80.000%, good=20000, total=25000" in text
    assert "99% target (accuracy >= 0.891000): FAIL" in text and text.endswith("RESULT: FAIL\n")


def test_missing_samples_are_named(tmp_path, tiny_dataset):
    entries = [entry for entry in entries_for(LABELS) if entry["qsl_idx"] not in (3, 7, 8)]
    status, text = run_main(tmp_path, tiny_dataset, entries, UNOFFICIAL)

    assert status == 1
    assert "missing qsl_idx (3): 3, 7-8" in text
    assert "accuracy=70.000%, good=7, total=10" in text  # a missing sample counts as wrong
    assert text.endswith("RESULT: FAIL\n")


def test_duplicated_sample_with_different_labels_is_an_error(tmp_path, tiny_dataset):
    entries = entries_for(LABELS) + [{"seq_id": 10, "qsl_idx": 4, "data": response(1 - int(LABELS[4]))}]
    accuracy_log = decode_accuracy_log(write_log(tmp_path / "log", entries), SAMPLES)
    assert accuracy_log.duplicated == {4: [4, 10]}
    assert accuracy_log.predictions[4] == LABELS[4]  # the first response counts

    status, text = run_main(tmp_path, tiny_dataset, entries, UNOFFICIAL)
    assert status == 1
    assert "duplicated qsl_idx with different labels (1): 4 (seq_ids 4, 10)" in text
    assert text.endswith("RESULT: FAIL\n")  # a broken log fails, judged or not


def test_response_logged_twice_is_an_error(tmp_path, tiny_dataset):
    entries = entries_for(LABELS)
    entries.append(dict(entries[6]))
    status, text = run_main(tmp_path, tiny_dataset, entries, UNOFFICIAL)

    assert status == 1
    assert "malformed entry 10 (qsl_idx 6, seq_id 6): seq_id already logged by entry 6" in text


def test_sample_repeated_with_the_same_label_counts_once(tmp_path, tiny_dataset):
    """LoadGen's MultiStream padding issues a few samples twice: not an error."""
    entries = entries_for(LABELS) + [{"seq_id": 10, "qsl_idx": 5, "data": response(int(LABELS[5]))}]
    status, text = run_main(tmp_path, tiny_dataset, entries, UNOFFICIAL)

    assert status == 0
    assert "accuracy=100.000%, good=10, total=10" in text
    assert "repeated qsl_idx, same label, counted once (1): 5" in text
    assert "log: 11 entries for 10 samples; 0 missing, 0 duplicated, 0 malformed, 1 repeated" in text


ENTRY_2 = "entry 2 (qsl_idx 2, seq_id 2)"


@pytest.mark.parametrize(
    "bad_entry, message",
    [
        ({"data": "zz00000000000000"}, f"{ENTRY_2}: data 'zz00000000000000' is not a hex string"),
        ({"data": response(1, size=4)}, f"{ENTRY_2}: response is 4 bytes, expected 8"),
        ({"data": response(2)}, f"{ENTRY_2}: predicted label 2 is not 0 or 1"),
        ({"data": response(-1)}, f"{ENTRY_2}: predicted label -1 is not 0 or 1"),
        ({"data": None}, f"{ENTRY_2}: data is NoneType, expected a hex string"),
        ({"seq_id": "2"}, "entry 2: expected an object with integer seq_id and qsl_idx"),
    ],
)
def test_malformed_entry_is_named(tmp_path, tiny_dataset, bad_entry, message):
    entries = entries_for(LABELS)
    entries[2] = entries[2] | bad_entry
    accuracy_log = decode_accuracy_log(write_log(tmp_path / "log", entries), SAMPLES)
    assert not accuracy_log.is_valid
    assert len(accuracy_log.malformed) == 1 and accuracy_log.malformed[0].startswith(message)

    status, text = run_main(tmp_path, tiny_dataset, entries, UNOFFICIAL)
    assert status == 1
    assert f"malformed {message}" in text
    assert "accuracy=90.000%, good=9, total=10" in text


@pytest.mark.parametrize("qsl_idx", [SAMPLES, -1])
def test_qsl_idx_out_of_range_is_named(tmp_path, tiny_dataset, qsl_idx):
    entries = entries_for(LABELS) + [{"seq_id": 10, "qsl_idx": qsl_idx, "data": response(1)}]
    status, text = run_main(tmp_path, tiny_dataset, entries, UNOFFICIAL)

    assert status == 1
    assert f"malformed entry 10 (qsl_idx {qsl_idx}, seq_id 10): qsl_idx is outside 0..9" in text


@pytest.mark.parametrize("content, reason", [
    (b'[{"seq_id": 0,', "not valid JSON"),
    (b'{"seq_id": 0}', "expected LoadGen's list"),
    (b'[{"seq_id": 0, "qsl_idx": 0, "data": "\xff\xfe"}]', "is not UTF-8 text"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
])
def test_a_log_that_is_not_a_list_of_entries_stops_with_its_path(tmp_path, tiny_dataset, capsys, content, reason):
    path = tmp_path / "run" / "mlperf_log_accuracy.json"
    path.parent.mkdir()
    path.write_bytes(content)
    assert main(["--mlperf-accuracy-file", str(path), "--dataset-path", str(tiny_dataset),
                 "--reference-accuracy", "1", UNOFFICIAL]) == 2
    error = capsys.readouterr().err
    assert str(path) in error and reason in error
    assert not (path.parent / "accuracy.txt").exists()


def test_labels_follow_the_qsl_order(tiny_dataset):
    assert split_labels(dataset_root(tiny_dataset), "test").tolist() == LABELS.tolist()


def test_count_outside_the_split_is_refused(tmp_path, tiny_dataset, capsys):
    log_path = write_log(tmp_path / "run", entries_for(LABELS))
    assert main(["--mlperf-accuracy-file", str(log_path), "--dataset-path", str(tiny_dataset), "--count", "11",
                 UNOFFICIAL]) == 2
    assert "outside 1..10" in capsys.readouterr().err


def test_reference_accuracy_is_read_from_the_model_card(tmp_path):
    card = tmp_path / "MODEL.md"
    card.write_text("# Seq2CNN\n\n" + REFERENCE_ACCURACY_LINE.format(accuracy=0.88123) + "\n")
    assert reference_accuracy(card) == 0.8812

    card.write_text("# Seq2CNN\n\nReference accuracy: to be measured\n")
    with pytest.raises(AccuracyCheckError) as raised:
        reference_accuracy(card)
    assert f"no line of the form '{REFERENCE_ACCURACY_LINE.format(accuracy=0.8812)}'" in str(raised.value)


def test_labels_of_a_wrong_length_are_refused(tmp_path):
    accuracy_log = decode_accuracy_log(write_log(tmp_path, entries_for(LABELS)), SAMPLES)
    with pytest.raises(ValueError, match="expected \\(10,\\)"):
        accuracy_report(accuracy_log, LABELS[:5], 0.9)


def test_run_folder_check_writes_accuracy_txt(tmp_path):
    write_log(tmp_path, entries_for(LABELS))
    report = check_accuracy_log(tmp_path, LABELS, reference=0.9)

    assert report.passed is True and report.accuracy == 1.0
    assert (tmp_path / "accuracy.txt").read_text() == report.text()
    assert report.summary().targets == {"99%": True, "99.9%": True}
    stated = read_accuracy_report(tmp_path / "accuracy.txt")
    assert (stated.accuracy, stated.correct, stated.total, stated.passed) == (1.0, 10, 10, True)


def test_a_part_of_the_split_is_reported_but_not_judged(tmp_path):
    """Five of ten right: far below the target, but over a part of the split the target does not apply."""
    predictions = LABELS.copy()
    predictions[:5] = 1 - predictions[:5]
    write_log(tmp_path, entries_for(predictions))
    report = check_accuracy_log(tmp_path, LABELS, judged=False, reference=0.9)

    assert report.passed is None and report.verdict == "NOT JUDGED" and report.accuracy == 0.5
    text = (tmp_path / "accuracy.txt").read_text()
    assert "99% target (accuracy >= 0.891000): not judged" in text
    assert text.splitlines()[-1].startswith("RESULT: NOT JUDGED (the first 10 test reviews only")
    assert read_accuracy_report(tmp_path / "accuracy.txt").passed is None
    assert report.summary().targets == {"99%": None, "99.9%": None}


def test_a_split_that_is_not_imdbs_is_reported_with_its_reason_and_not_judged(tmp_path):
    write_log(tmp_path, entries_for(LABELS))
    reason = "not the IMDB v1.0 test split: test/neg holds 4 review files, the IMDB v1.0 test split 12,500"
    report = check_accuracy_log(tmp_path, LABELS, judged=False, reference=0.9, not_judged_reason=reason)

    assert report.passed is None and report.accuracy == 1.0
    assert (tmp_path / "accuracy.txt").read_text().splitlines()[-1] == f"RESULT: NOT JUDGED ({reason})"
    summary = report.summary()
    assert summary.not_judged_reason == reason and summary.judged is False
    assert summary.summary_line().startswith(f"100.000% (10/10); NOT JUDGED: {reason} (fp32 reference 90.00%")


def test_a_broken_log_fails_even_when_not_judged(tmp_path):
    write_log(tmp_path, entries_for(LABELS)[:-1])
    assert check_accuracy_log(tmp_path, LABELS, judged=False, reference=0.9).passed is False


def test_accuracy_txt_not_written_by_the_checker_is_refused(tmp_path):
    (tmp_path / "accuracy.txt").write_text("looks fine to me\n")
    with pytest.raises(AccuracyCheckError, match="no 'accuracy=...' line"):
        read_accuracy_report(tmp_path / "accuracy.txt")


def test_real_test_split_labels(tmp_path, dataset_path):
    labels = split_labels(dataset_root(dataset_path), "test")
    assert labels.shape == (25_000,) and labels.sum() == 12_500
    assert labels[:4].tolist() == [1, 0, 1, 0]

    predictions = labels[:200].copy()
    predictions[:3] = 1 - predictions[:3]
    status, text = run_main(tmp_path, dataset_path, entries_for(predictions), "--count", "200")
    assert status == 0
    assert text.startswith("accuracy=98.500%, good=197, total=200\n")
    assert "RESULT: NOT JUDGED" in text


def test_a_runs_own_report_is_never_written_over(tmp_path, tiny_dataset, capsys):
    log_path = write_log(tmp_path / "run", entries_for(LABELS))
    own = tmp_path / "run" / "accuracy.txt"
    own.write_text("the run's own report\n")
    arguments = ["--mlperf-accuracy-file", str(log_path), "--dataset-path", str(tiny_dataset), "--reference-accuracy", "1",
                 UNOFFICIAL]
    assert main(arguments) == 2
    assert f"{own} exists" in capsys.readouterr().err and own.read_text() == "the run's own report\n"
    assert main([*arguments, "--output", str(tmp_path / "again.txt")]) == 0
    assert (tmp_path / "again.txt").read_text().startswith("accuracy=100.000%")
