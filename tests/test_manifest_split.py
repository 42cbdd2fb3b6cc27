"""A manifest's columns and its split column are read from every row, not the first (issue 23, item 3)."""

import json

import pytest

import mmkeras as mmk
from mmkeras.data.manifest import ManifestError, load_examples
from mmkeras.data.splits import split_examples

SPECS = [mmk.TextInput("note"), mmk.SensorInput("vitals", features=["hr"])]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_a_split_key_absent_from_the_first_object_still_splits(tmp_path):
    rows = [{"note": "a", "hr": 1, "label": "ok"}] + [
        {"note": f"n{i}", "hr": i, "label": "ok", "split": split}
        for i, split in enumerate(["train", "train", "validation", "test", "test"])]
    with pytest.raises(ManifestError) as info:
        load_examples(write_jsonl(tmp_path / "m.jsonl", rows), SPECS, "label", ["ok", "bad"])
    (error,) = info.value.errors
    assert (error.row, error.column) == (1, "split") and "other rows have one" in error.reason
    examples, errors = load_examples(tmp_path / "m.jsonl", SPECS, "label", ["ok", "bad"], on_error="skip",
                                     report_path=str(tmp_path / "skipped.csv"))
    assert len(errors) == 1
    train, val, test = split_examples(examples, 0.2, 0.2)
    assert (train.rows, val.rows, test.rows) == ([2, 3], [4], [5, 6])  # test rows are never trained on


def test_a_column_absent_from_the_first_object_is_not_a_missing_column(tmp_path):
    rows = [{"note": "a", "label": "ok"}, {"note": "b", "hr": 2, "label": "ok"}]
    with pytest.raises(ManifestError) as info:
        load_examples(write_jsonl(tmp_path / "m.jsonl", rows), SPECS, "label", ["ok", "bad"])
    (error,) = info.value.errors
    assert (error.row, error.column) == (1, "hr") and "missing field" in error.reason
