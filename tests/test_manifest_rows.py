"""Manifest rows: columns and the split column read from every row (issue 23, item 3); the
reasons a bad file gives, in the words the pipeline and the server use."""

import json
import sys
from pathlib import Path

import numpy as np

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


def test_a_bad_file_gives_the_inputs_own_reason_without_tensorflow_internals(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    import bad_inputs

    (tmp_path / "float.wav").write_bytes(bad_inputs.float_wav(bad_inputs.tone()))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (tmp_path / "m.csv").write_text("voice,photo,label\nfloat.wav,,ok\n,broken.png,ok\n")
    specs = [mmk.AudioInput("voice", sample_rate=16000, seconds=0.5), mmk.ImageInput("photo", size=(8, 8))]
    with pytest.raises(ManifestError) as info:
        load_examples(tmp_path / "m.csv", specs, "label", ["ok"])
    reasons = {error.row: error.reason for error in info.value.errors}
    assert reasons[1].endswith("float.wav: Input voice must be 16-bit PCM WAV; received format code 3 with "
                               "32 bits per sample (1 is PCM, 3 float, 65534 extensible)")
    assert reasons[2].endswith("broken.png: Invalid PNG. Failed to initialize decoder.")
    assert not np.any(["function_node" in reason or "[Op:" in reason for reason in reasons.values()])
