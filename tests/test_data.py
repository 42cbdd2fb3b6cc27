"""Manifests, validation errors, decoding, tf.data and TFRecords."""

import csv
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import mmkeras as mmk
from mmkeras.data import demo
from mmkeras.data.decode import decode_image, decode_wav, resample
from mmkeras.data.manifest import ManifestError, load_examples, read_manifest
from mmkeras.data.pipeline import make_dataset
from mmkeras.data.tfrecord import tfrecord_dataset, write_tfrecords

LABELS = ["ok", "scratch", "dent", "contamination"]


def inspection_specs():
    return [
        mmk.ImageInput("part_image", size=(32, 32)),
        mmk.SensorInput("readings", features=["temperature", "vibration_rms", "current"]),
        mmk.AudioInput("machine_sound", sample_rate=16000, seconds=0.5),
    ]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("inspection")
    demo.generate("inspection", out, num_examples=12, image_size=32)
    return out


def rewrite_manifest(demo_dir, tmp_path, edit):
    """Copies the demo manifest with `edit(rows)` applied; paths made absolute."""
    with open(demo_dir / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for column in ("part_image", "machine_sound"):
            row[column] = str(demo_dir / row[column])
    edit(rows)
    path = tmp_path / "manifest.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def load(path, on_error="raise", **kwargs):
    # Rewritten manifests point at the demo folder's files, outside their own folder.
    kwargs.setdefault("allow_outside_paths", True)
    return load_examples(path, inspection_specs(), "label", LABELS, on_error=on_error, **kwargs)


def test_valid_manifest_loads_every_row(demo_dir):
    examples, errors = load(demo_dir / "manifest.csv")
    assert len(examples) == 12 and errors == []
    assert examples.columns["readings"].shape == (12, 3)
    assert all(os.path.isabs(p) for p in examples.columns["part_image"])
    assert set(examples.labels) <= set(range(len(LABELS)))


def corrupt(demo_dir, tmp_path):
    """One row per kind of bad input; returns the manifest and expected errors."""
    bad_image = tmp_path / "corrupt.png"
    bad_image.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes((demo_dir / "audio" / "00000.wav").read_bytes()[:30])

    def edit(rows):
        rows[1]["part_image"] = str(bad_image)
        rows[2]["machine_sound"] = str(truncated)
        rows[3]["part_image"] = str(tmp_path / "missing.png")
        rows[4]["label"] = "rust"
        rows[5]["current"] = "twelve"

    expected = {(2, "part_image"): "cannot decode image", (3, "machine_sound"): "cannot decode audio",
                (4, "part_image"): "file not found", (5, "label"): "unknown label",
                (6, "current"): "not a number"}
    return rewrite_manifest(demo_dir, tmp_path, edit), expected


def test_image_pixel_limit_is_checked_before_decoding_and_configurable():
    buffer = io.BytesIO()
    Image.new("RGB", (20, 16)).save(buffer, format="PNG")
    assert decode_image(buffer.getvalue(), (4, 4), "photo", max_pixels=320).shape == (4, 4, 3)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="Input photo declares 20 x 16 pixels, more than the limit of 319"):
        decode_image(buffer.getvalue(), (4, 4), "photo", max_pixels=319)
    spec = mmk.ImageInput("photo", max_pixels=319)
    assert mmk.ImageInput.from_config(spec.get_config()).max_pixels == 319


def test_long_text_cells_load_and_an_oversize_cell_is_a_row_error(tmp_path, monkeypatch):
    path = tmp_path / "m.csv"
    path.write_text("note,label\n" + f"{'word ' * 40000},ok\n" + f"{'x' * 50},ok\n")
    rows = read_manifest(path)  # 200 KB in one cell: over the csv module's default limit
    assert len(rows) == 2 and len(rows[0]["note"]) == 200000
    previous = csv.field_size_limit()
    monkeypatch.setattr("mmkeras.data.manifest.MAX_CELL_BYTES", 10)
    try:
        csv.field_size_limit(10)
        with pytest.raises(ManifestError, match=r"row 1, column '\*': not valid CSV: field larger"):
            read_manifest(path)
    finally:
        csv.field_size_limit(previous)


def test_bad_rows_raise_one_error_naming_each_row_column_and_reason(demo_dir, tmp_path):
    path, expected = corrupt(demo_dir, tmp_path)
    with pytest.raises(ManifestError) as info:
        load(path)
    found = {(e.row, e.column): e.reason for e in info.value.errors}
    assert set(found) == set(expected)
    for key, reason in expected.items():
        assert reason in found[key]
        assert f"row {key[0]}, column {key[1]!r}" in str(info.value)
    assert str(path) in str(info.value)


def test_skip_mode_drops_bad_rows_and_reports_them(demo_dir, tmp_path):
    path, expected = corrupt(demo_dir, tmp_path)
    report = tmp_path / "skipped.csv"
    examples, errors = load(path, on_error="skip", report_path=report)
    assert len(examples) == 12 - len(expected)
    assert sorted(examples.rows) == [r for r in range(1, 13) if r not in {row for row, _ in expected}]
    with open(report) as f:
        reported = {(int(r["row"]), r["column"]) for r in csv.DictReader(f)}
    assert reported == set(expected)


def test_missing_column_and_empty_values(demo_dir, tmp_path):
    def drop_column(rows):
        for row in rows:
            del row["current"]

    with pytest.raises(ManifestError, match="'current': column not found"):
        load(rewrite_manifest(demo_dir, tmp_path, drop_column))

    def blank(rows):
        rows[0]["temperature"] = ""
        rows[0]["part_image"] = ""

    examples, _ = load(rewrite_manifest(demo_dir, tmp_path, blank))
    assert np.isnan(examples.columns["readings"][0, 0])
    assert examples.columns["part_image"][0] == ""


def test_jsonl_manifest_and_multi_label(tmp_path):
    lines = [{"note": "cough", "findings": "nodule|effusion"}, {"note": "fine", "findings": ""}]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    examples, _ = load_examples(path, [mmk.TextInput("note")], "findings",
                                ["effusion", "nodule"], multi_label=True)
    np.testing.assert_array_equal(examples.labels, [[1, 1], [0, 0]])
    lines.append({"note": 3, "findings": "tumour"})
    path.write_text("\n".join(json.dumps(line) for line in lines))
    with pytest.raises(ManifestError) as info:
        load_examples(path, [mmk.TextInput("note")], "findings", ["effusion", "nodule"], multi_label=True)
    assert {e.column for e in info.value.errors} == {"note", "findings"}


def encode(array, fmt, mode=None):
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF"])
def test_decode_image_formats(fmt):
    pixels = np.full((10, 14, 3), 200, np.uint8)
    image = decode_image(encode(pixels, fmt), (8, 8)).numpy()
    assert image.shape == (8, 8, 3) and image.dtype == np.float32
    assert abs(image.mean() - 200) < 8


def test_decode_image_grey_rgba_and_missing():
    grey = decode_image(encode(np.full((6, 6), 50, np.uint8), "PNG"), (6, 6)).numpy()
    np.testing.assert_allclose(grey, 50)
    rgba = decode_image(encode(np.full((6, 6, 4), 90, np.uint8), "PNG", "RGBA"), (6, 6)).numpy()
    np.testing.assert_allclose(rgba, 90)
    assert np.isnan(decode_image(b"", (6, 6)).numpy()).all()


def test_decode_wav_mixes_down_resamples_and_fits_length():
    t = np.arange(8000) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 300 * t)], axis=1) * 0.5
    wav = tf.audio.encode_wav(stereo.astype("float32"), 8000)
    out = decode_wav(wav, 16000, 12000).numpy()
    expected = 0.5 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000)
    np.testing.assert_allclose(out[200:11000], expected[200:11000], atol=1e-3)
    short = decode_wav(tf.audio.encode_wav(np.zeros((100, 1), "float32"), 16000), 16000, 400).numpy()
    assert short.shape == (400,) and (short == 0).all()
    assert np.isnan(decode_wav(b"", 16000, 400).numpy()).all()
    np.testing.assert_array_equal(resample(tf.constant([1.0, 2.0]), 8000, 8000).numpy(), [1.0, 2.0])


def test_pipeline_batches_decoded_inputs(demo_dir):
    specs = inspection_specs()
    examples, _ = load(demo_dir / "manifest.csv")
    x, y = next(iter(make_dataset(examples, specs, batch_size=5)))
    assert x["part_image"].shape == (5, 32, 32, 3)
    assert x["machine_sound"].shape == (5, 8000)
    assert x["readings"].shape == (5, 3)
    np.testing.assert_array_equal(y.numpy(), examples.labels[:5])
    train = make_dataset(examples, specs, batch_size=12, training=True)
    assert sorted(next(iter(train))[1].numpy()) == sorted(examples.labels)


def test_tfrecords_give_the_same_examples_as_the_manifest(demo_dir, tmp_path):
    specs = inspection_specs()
    examples, _ = load(demo_dir / "manifest.csv")
    paths = write_tfrecords(examples, specs, tmp_path / "records", num_shards=3)
    assert len(paths) == 3 and not list((tmp_path / "records").glob("*.tmp"))
    from_records = tfrecord_dataset(str(tmp_path / "records" / "*.tfrecord"), specs,
                                    num_classes=len(LABELS), batch_size=12)
    from_manifest = make_dataset(examples, specs, batch_size=12)
    (xr, yr), (xm, ym) = next(iter(from_records)), next(iter(from_manifest))
    order_r, order_m = np.argsort(xr["readings"][:, 0]), np.argsort(xm["readings"][:, 0])
    np.testing.assert_array_equal(yr.numpy()[order_r], ym.numpy()[order_m])
    for name in ("part_image", "machine_sound", "readings"):
        np.testing.assert_allclose(xr[name].numpy()[order_r], xm[name].numpy()[order_m], equal_nan=True)


def test_training_augmentation_changes_images_but_keeps_missing_ones(demo_dir, tmp_path):
    def blank_first_image(rows):
        rows[0]["part_image"] = ""

    examples, _ = load(rewrite_manifest(demo_dir, tmp_path, blank_first_image))
    specs = [mmk.ImageInput("part_image", size=(32, 32), augment="randaugment")]
    plain = next(iter(make_dataset(examples, specs, batch_size=12)))[0]["part_image"].numpy()
    augmented = next(iter(make_dataset(examples, specs, batch_size=12, training=True,
                                       seed=1)))[0]["part_image"].numpy()
    missing = np.isnan(augmented).all(axis=(1, 2, 3))
    assert np.isnan(plain[0]).all() and missing.sum() == 1 and not np.isnan(augmented[~missing]).any()
    # Shuffled and augmented: compare the pixel distributions of the present images.
    assert not np.allclose(np.sort(plain[1:].ravel()), np.sort(augmented[~missing].ravel()))
    with pytest.raises(ValueError, match="augment"):
        mmk.ImageInput("photo", augment="mixup")
    # Flips change the label of digits or oriented parts: only an app that says so gets them.
    assert mmk.ImageInput("photo").augment is False


def test_dihedral_augmentation_turns_and_mirrors_each_square_image(demo_dir):
    examples, _ = load(demo_dir / "manifest.csv")
    specs = [mmk.ImageInput("part_image", size=(32, 32), augment="dihedral")]
    plain = next(iter(make_dataset(examples, specs, batch_size=12)))[0]["part_image"].numpy()
    turned = next(iter(make_dataset(examples, specs, batch_size=12, training=True,
                                    seed=1)))[0]["part_image"].numpy()

    def quarter_turns(image):
        """How many quarter turns (before an optional mirror) make `image` from an original."""
        return {k for original in plain for k in range(4)
                for view in (np.rot90(original, k), np.rot90(original, k)[:, ::-1])
                if np.array_equal(image, view)}

    turns = [quarter_turns(image) for image in turned]
    assert all(turns), "every augmented image is one of the 8 turns and mirrors of an original"
    assert any(k % 2 for t in turns for k in t) and any(k % 2 == 0 for t in turns for k in t)
    # A turn by 90 degrees swaps height and width.
    with pytest.raises(ValueError, match="square size.*\\[32, 48\\].*'photo'"):
        mmk.ImageInput("photo", size=(32, 48), augment="dihedral")


@pytest.mark.parametrize("extension, subtype, tolerance", [
    ("flac", "PCM_16", 2e-3), ("ogg", "VORBIS", 0.05), ("mp3", "MPEG_LAYER_III", 0.05)])
def test_compressed_audio_is_decoded_with_soundfile(extension, subtype, tolerance, tmp_path):
    import soundfile

    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)
    soundfile.write(tmp_path / f"clip.{extension}", tone, 8000, subtype=subtype)
    (tmp_path / "m.csv").write_text(f"voice,label\nclip.{extension},ok\n")
    spec = mmk.AudioInput("voice", sample_rate=16000, seconds=0.5)
    examples, _ = load_examples(tmp_path / "m.csv", [spec], "label", ["ok", "bad"])
    waveform = next(iter(make_dataset(examples, [spec], batch_size=1)))[0]["voice"].numpy()[0]
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)
    np.testing.assert_allclose(waveform[100:7900], expected[100:7900], atol=tolerance)
    # TFRecords store it as WAV, which the serving signature accepts.
    write_tfrecords(examples, [spec], tmp_path / "records", num_shards=1)
    from_records = tfrecord_dataset(str(tmp_path / "records" / "*.tfrecord"), [spec], num_classes=2, batch_size=1)
    np.testing.assert_allclose(next(iter(from_records))[0]["voice"].numpy()[0], waveform, atol=1e-4)


def test_undecodable_compressed_audio_names_the_file(tmp_path):
    (tmp_path / "clip.flac").write_bytes(b"not audio at all")
    (tmp_path / "m.csv").write_text("voice,label\nclip.flac,ok\n")
    spec = mmk.AudioInput("voice", sample_rate=16000, seconds=0.5)
    with pytest.raises(ManifestError, match=r"row 1.*cannot decode audio file .*clip\.flac"):
        load_examples(tmp_path / "m.csv", [spec], "label", ["ok", "bad"])


def test_structural_problems_name_their_row(tmp_path):
    specs = [mmk.TextInput("note"), mmk.SensorInput("vitals", features=["hr"])]
    (tmp_path / "m.csv").write_text("note,hr,label\nfine,60,ok\nshort row\ntoo,70,ok,many\n   ,,ok\n")
    with pytest.raises(ManifestError) as info:
        load_examples(tmp_path / "m.csv", specs, "label", ["ok", "bad"])
    found = {(e.row, e.column): e.reason for e in info.value.errors}
    assert "fewer fields" in found[(2, "hr")] and "fewer fields" in found[(2, "label")]
    assert "more field(s)" in found[(3, "*")]
    assert "every modality of this example is missing" in found[(4, "*")]  # blank text is missing
    (tmp_path / "m.jsonl").write_text('{"note": "a", "hr": 1, "label": "ok"}\n{"note": "b", "labl": "ok"}\n[1, 2]\n')
    with pytest.raises(ManifestError, match="row 3, column '\\*': expected a JSON object"):
        load_examples(tmp_path / "m.jsonl", specs, "label", ["ok", "bad"])
    (tmp_path / "m.jsonl").write_text('{"note": "a", "hr": 1, "label": "ok"}\n{"note": "b", "labl": "ok"}\n')
    with pytest.raises(ManifestError) as info:
        load_examples(tmp_path / "m.jsonl", specs, "label", ["ok", "bad"])
    assert {(e.row, e.column) for e in info.value.errors} == {(2, "hr"), (2, "label")}


def test_empty_and_tiny_wav_files(tmp_path):
    for name, frames, rate in (("empty.wav", 0, 44100), ("one.wav", 1, 44100)):
        (tmp_path / name).write_bytes(tf.audio.encode_wav(np.zeros((frames, 1), "float32"), rate).numpy())
    (tmp_path / "m.csv").write_text("voice,label\nempty.wav,ok\none.wav,ok\n")
    spec = mmk.AudioInput("voice", sample_rate=16000, seconds=0.1)
    examples, errors = load_examples(tmp_path / "m.csv", [spec], "label", ["ok", "bad"], on_error="skip",
                                     report_path=tmp_path / "skipped.csv")
    assert [(e.row, "no samples" in e.reason) for e in errors] == [(1, True)]
    # The one-sample clip resamples to nothing: zeros, not a crashed process.
    waveform = next(iter(make_dataset(examples, [spec], batch_size=1)))[0]["voice"].numpy()
    assert waveform.shape == (1, 1600) and (waveform == 0).all()


def with_split_column(values):
    def edit(rows):
        for row, value in zip(rows, values):
            row["split"] = value
    return edit


def test_a_split_column_puts_each_row_in_its_split(demo_dir, tmp_path):
    from mmkeras.data.splits import split_examples

    values = ["test", "val", "Validation", "test"] + ["train"] * 8
    examples, _ = load(rewrite_manifest(demo_dir, tmp_path, with_split_column(values)))
    train, val, test = split_examples(examples, validation_fraction=0.5, test_fraction=0.1, seed=3)
    assert (train.rows, val.rows, test.rows) == (list(range(5, 13)), [2, 3], [1, 4])
    assert list(test.splits) == ["test", "test"]
    everything_train = load(rewrite_manifest(demo_dir, tmp_path, with_split_column(["train"] * 12)))[0]
    with pytest.raises(ValueError, match="split column leave the validation and test split"):
        split_examples(everything_train, 0.15, 0.15)


def test_a_bad_split_value_is_an_error_naming_the_row(demo_dir, tmp_path):
    values = ["train"] * 4 + ["holdout"] + ["train"] * 7
    with pytest.raises(ManifestError, match=r"row 5, column 'split': unknown split 'holdout'; "
                                            r"expected one of \['train', 'val', 'validation', 'test'\]"):
        load(rewrite_manifest(demo_dir, tmp_path, with_split_column(values)))


def test_paths_that_leave_the_manifests_folder_are_refused_unless_allowed(tmp_path):
    data, outside = tmp_path / "data", tmp_path / "elsewhere"
    (data / "images").mkdir(parents=True)
    outside.mkdir()
    png = encode(np.zeros((4, 4, 3), np.uint8), "PNG")
    for folder in (data / "images", outside):
        (folder / "a.png").write_bytes(png)
    (data / "images" / "link.png").symlink_to(outside / "a.png")
    (data / "m.csv").write_text("photo,label\nimages/a.png,ok\n../elsewhere/a.png,ok\n"
                                f"{outside / 'a.png'},ok\nimages/link.png,ok\ngs://bucket/a.png,ok\n")
    spec = mmk.ImageInput("photo", size=(4, 4))
    with pytest.raises(ManifestError) as info:
        load_examples(data / "m.csv", [spec], "label", ["ok", "bad"])
    assert [(e.row, e.column) for e in info.value.errors] == [(2, "photo"), (3, "photo"), (4, "photo"),
                                                              (5, "photo")]
    assert all("leaves the manifest's folder" in e.reason and "allow_outside_paths" in e.reason
               for e in info.value.errors)
    (data / "m.csv").write_text(f"photo,label\nimages/a.png,ok\n../elsewhere/a.png,ok\n"
                                f"{outside / 'a.png'},ok\nimages/link.png,ok\n")
    examples, _ = load_examples(data / "m.csv", [spec], "label", ["ok", "bad"], allow_outside_paths=True)
    assert len(examples) == 4


# === Stratified splits ===


def examples_with_labels(labels):
    from mmkeras.data import Examples

    labels = np.asarray(labels)
    return Examples({"note": np.array(["a b"] * len(labels), object)}, labels, list(range(1, len(labels) + 1)))


def class_counts(part, num_classes):
    return np.bincount(part.labels, minlength=num_classes).tolist()


def test_a_stratified_split_puts_a_rare_class_in_every_split():
    from mmkeras.data.splits import split_examples

    examples = examples_with_labels([0] * 60 + [1] * 37 + [2] * 3)
    for seed in range(10):
        split = split_examples(examples, 0.15, 0.15, seed=seed)
        assert [class_counts(part, 3)[2] for part in split] == [1, 1, 1], f"seed {seed}"
        assert split.how == {"method": "stratified", "note": None}
        assert [len(part) for part in split] == [70, 15, 15]
        assert sorted(sum((part.rows for part in split), [])) == examples.rows
    again = split_examples(examples, 0.15, 0.15, seed=9)
    assert [part.rows for part in again] == [part.rows for part in split]


def test_a_class_too_small_for_every_split_falls_back_to_random_with_a_note():
    from mmkeras.data.splits import split_examples

    examples = examples_with_labels([0] * 50 + [1] * 49 + [2])
    split = split_examples(examples, 0.15, 0.15, seed=0, labels=["ok", "scratch", "dent"])
    assert split.how["method"] == "random"
    assert "class 'dent' has 1 example(s), too few for one in each of the 3 splits" in split.how["note"]
    # The seeded random split, unchanged.
    order = np.random.default_rng(0).permutation(100)
    assert split[2].rows == sorted((order[:15] + 1).tolist())
    # Without names the note says the class id.
    assert "class 2 has 1 example(s)" in split_examples(examples, 0.15, 0.15).how["note"]


def test_a_multi_label_split_stays_random():
    from mmkeras.data.splits import split_examples

    targets = np.zeros((40, 3), "float32")
    targets[:, 0], targets[:2, 2] = 1, 1  # a rare label, as stratifying would protect
    split = split_examples(examples_with_labels(targets), 0.25, 0.25, seed=1)
    assert split.how["method"] == "random" and "multi-label" in split.how["note"]
    order = np.random.default_rng(1).permutation(40)
    assert [part.rows for part in split] == [sorted((order[i:j] + 1).tolist()) for i, j in
                                             ((20, 40), (10, 20), (0, 10))]


def test_a_split_column_split_notes_a_class_it_leaves_out():
    from mmkeras.data.splits import split_examples

    examples = examples_with_labels([0] * 8 + [1] * 2)
    examples.splits = np.array(["train"] * 6 + ["validation", "test", "train", "train"], object)
    split = split_examples(examples, 0.15, 0.15, labels=["a", "b"])
    assert split.how["method"] == "manifest"
    assert split.how["note"] == ("class 'b' has no example in the validation split; "
                                 "class 'b' has no example in the test split")


def test_write_split_records_how_the_split_was_made(tmp_path):
    from mmkeras.data.splits import split_examples, write_split

    split = split_examples(examples_with_labels([0] * 10 + [1] * 10), 0.2, 0.2)
    write_split(tmp_path, "m.csv", 0, *split, how=split.how)
    record = json.load(open(tmp_path / "split.json"))
    assert record["how"] == {"method": "stratified", "note": None}
    assert record["rows"]["test"] == split[2].rows
    write_split(tmp_path, "m.csv", 0, *split)  # the caller that does not say: still a record
    assert json.load(open(tmp_path / "split.json"))["how"] is None


def test_the_summary_shows_the_split_and_how_it_was_made():
    from mmkeras.data.splits import split_examples
    from mmkeras.data.summary import format_summary, summarize

    def last_line(labels):
        examples = examples_with_labels(labels)
        split = split_examples(examples, 0.15, 0.15, labels=["no", "yes"])
        return format_summary(summarize(examples, [mmk.TextInput("note")], ["no", "yes"], split=split))[-1]

    assert last_line([0] * 17 + [1] * 3) == "split: train 14, validation 3, test 3 (stratified by class)"
    assert last_line([0] * 19 + [1]).startswith("split: train 14, validation 3, test 3 (random); a random split: "
                                               "class 'yes' has 1 example(s)")
