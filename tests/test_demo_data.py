"""Tests for mmkeras.data.demo: files, determinism, and how the signal is spread.

The signal tests extract simple hand features per modality and fit a small
numpy logistic regression on each modality alone and on all of them together:
each modality must carry signal, but only the fusion gets close to all of it.
"""

import csv
import hashlib
import pathlib
import re
import wave

import numpy as np
import pytest
from PIL import Image

from mmkeras.data import demo

SIGNAL_EXAMPLES = 400


def read_manifest(path):
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        return reader.fieldnames, list(reader)


def folder_digest(folder):
    """sha256 over every file's relative path and bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def read_wav(path):
    with wave.open(str(path), "rb") as reader:
        params = (reader.getnchannels(), reader.getsampwidth(), reader.getframerate())
        frames = reader.readframes(reader.getnframes())
    return params, np.frombuffer(frames, dtype="<i2").astype(np.float64) / 32768.0


@pytest.fixture(scope="module")
def signal_sets(tmp_path_factory):
    """The three apps generated once with SIGNAL_EXAMPLES examples each."""
    root = tmp_path_factory.mktemp("demo_signal")
    return {
        app: demo.generate(app, root / app, num_examples=SIGNAL_EXAMPLES, seed=7)
        for app in demo.DEMO_APPS
    }


# === Hand features ===


# A generic sentiment lexicon and clinical term list, as a rule-based baseline
# would use; "not"/"no"/"denies" in the same phrase flips a term.
POSITIVE = (
    "great excellent amazing love sturdy perfect comfortable reliable fantastic lovely "
    "solid impressive smooth recommend good"
).split()
NEGATIVE = (
    "terrible awful flimsy useless disappointing cheap poor broken horrible loud faulty "
    "wobbly returned bad waste"
).split()
NEUTRAL = "okay average fine decent standard acceptable ordinary special job".split()
CLINICAL_TERMS = (
    "fever", "cough", "crackles", "white count", "edema", "heart failure", "bnp", "nodule",
    "ct", "breath sounds", "percussion", "effusion", "smoker", "hypertension",
)
NEGATION = re.compile(r"\b(not|no|denies|without|equal|afebrile)\b")


def phrases(text):
    return [p.strip() for p in re.split(r"[.,;]| but ", text.lower()) if p.strip()]


def lexicon_features(text):
    """Counts of positive / negative / neutral words, plain and negated."""
    counts = np.zeros(6)
    for phrase in phrases(text):
        negated = 3 if NEGATION.search(phrase) else 0
        words = re.findall(r"[a-z]+", phrase)
        for offset, lexicon in enumerate((POSITIVE, NEGATIVE, NEUTRAL)):
            counts[negated + offset] += sum(word in lexicon for word in words)
    return counts


def clinical_features(text):
    """Per clinical term: mentioned affirmatively, mentioned negated."""
    features = np.zeros(2 * len(CLINICAL_TERMS) + 1)
    for phrase in phrases(text):
        negated = bool(NEGATION.search(phrase))
        for i, term in enumerate(CLINICAL_TERMS):
            if re.search(r"\b" + term + r"\b", phrase):
                features[2 * i + negated] += 1
        features[-1] += "afebrile" in phrase
    return features


def box_blur(image, radius):
    """Mean over a (2r+1)^2 window, edges padded by reflection."""
    padded = np.pad(image, radius, mode="reflect")
    cumulative = padded.cumsum(0).cumsum(1)
    cumulative = np.pad(cumulative, ((1, 0), (1, 0)))
    k = 2 * radius + 1
    h, w = image.shape
    window = cumulative[k:, k:] - cumulative[:-k, k:] - cumulative[k:, :-k] + cumulative[:-k, :-k]
    return window[:h, :w] / k**2


def photo_features(path):
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) + 1.0
    border = np.concatenate([rgb[:6].reshape(-1, 3), rgb[-6:].reshape(-1, 3)])
    log_rb = np.log(rgb[..., 0] / rgb[..., 2])
    # The brightest pixels are mostly white-ish surfaces: they show the light's colour.
    brightest = rgb.sum(-1) >= np.percentile(rgb.sum(-1), 97)
    return np.concatenate([
        rgb.reshape(-1, 3).mean(0) / 255.0,
        border.mean(0) / 255.0,
        [np.log(border[:, 0] / border[:, 2]).mean(), log_rb.mean(), np.median(log_rb)],
        [log_rb[brightest].mean(), rgb[brightest].mean() / 255.0],
    ])


def radiograph_features(path):
    gray = np.asarray(Image.open(path).convert("L"), dtype=np.float64) / 255.0
    size = gray.shape[0]
    rows = lambda a, b: slice(int(a * size), int(b * size))
    # Lung fields are the dark areas inside the body; measure against them.
    lungs = box_blur(gray, 3) < np.percentile(gray, 55)
    lung_level = np.median(gray[lungs])
    spot = (box_blur(gray, 1) - box_blur(gray, 4))[lungs]  # small bright blobs
    haze = box_blur(gray, 3)[lungs] - lung_level  # diffuse opacities
    thirds = [rows(0, 1 / 3), rows(1 / 3, 2 / 3), rows(2 / 3, 1)]
    zones = [gray[r, c].mean() - lung_level for r in thirds for c in thirds]
    # Heart width: bright pixels across the lower middle, by row.
    heart = gray[rows(0.58, 0.66), rows(0.2, 0.8)]
    centre = heart[:, heart.shape[1] // 2 - 1 : heart.shape[1] // 2 + 1].mean(1, keepdims=True)
    heart_width = np.mean(heart > (centre + lung_level) / 2)
    # Fluid at the lateral lung bases.
    bases = [gray[rows(0.6, 0.76), rows(0.14, 0.32)], gray[rows(0.6, 0.76), rows(0.68, 0.86)]]
    base_levels = sorted(b.mean() - lung_level for b in bases)
    return np.array(zones + [
        spot.max(), np.percentile(spot, 99), spot.std(), haze.max(), np.percentile(haze, 97),
        heart_width, *base_levels,
    ])


def part_features(path):
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0
    gray = rgb.mean(-1)
    # Only the part's interior: its rim and bolt holes are strong edges too.
    inside = box_blur((gray > 0.35).astype(float), 3) > 0.999
    fine = np.abs(gray - box_blur(gray, 2))[inside]  # thin lines
    coarse = (box_blur(gray, 1) - box_blur(gray, 5))[inside]  # shaded blobs
    chroma = rgb - rgb.mean(-1, keepdims=True)
    colour = np.linalg.norm(chroma - chroma[inside].mean(0), axis=-1)[inside]
    return np.array([
        np.percentile(fine, 99.5), np.percentile(fine, 98), np.mean(fine > 0.08),
        np.percentile(coarse, 99.5), -np.percentile(coarse, 0.5), coarse.std(),
        np.percentile(colour, 99), np.percentile(colour, 99.8), np.mean(colour > 0.06),
    ])


def audio_features(path):
    _, samples = read_wav(path)
    frames = samples[: len(samples) // 320 * 320].reshape(-1, 320)
    frame_rms = np.sqrt((frames**2).mean(1))
    loud = frame_rms > 0.5 * frame_rms.max()
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1.0 / 16000)
    edges = [0, 150, 300, 600, 1000, 1600, 2500, 4000, 8001]
    bands = [spectrum[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in zip(edges, edges[1:])]
    return np.concatenate([
        [np.sqrt((samples**2).mean()), np.mean(np.abs(np.diff(np.sign(samples)))) / 2],
        [frame_rms.std() / frame_rms.mean(), np.abs(samples).max() / frame_rms.max()],
        [np.sum(loud[1:] & ~loud[:-1])],
        np.log(np.array(bands) / spectrum.sum() + 1e-9),
    ])


def sensor_features(rows):
    names = demo.DEMO_APPS["inspection"].columns_of_kind("sensor")
    values = np.array([[float(r[n]) if r[n] else np.nan for n in names] for r in rows])
    missing = np.isnan(values)
    values = np.where(missing, np.nanmean(values, axis=0), values)
    return np.concatenate([values, missing.astype(float)], axis=1)


# === Tiny classifiers ===


def fit_softmax(x, y, num_classes, l2=1e-2, steps=400, rate=0.5):
    """Multinomial logistic regression by full-batch gradient descent."""
    w = np.zeros((x.shape[1], num_classes))
    b = np.zeros(num_classes)
    onehot = np.eye(num_classes)[y]
    for _ in range(steps):
        logits = x @ w + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad = (p - onehot) / len(x)
        w -= rate * (x.T @ grad + l2 * w)
        b -= rate * grad.sum(0)
    return w, b


def cross_val_predict(features, targets, num_classes, folds=4):
    """Out-of-fold class predictions, features standardised on each training fold."""
    predictions = np.zeros(len(targets), dtype=int)
    fold_of = np.arange(len(targets)) % folds
    for fold in range(folds):
        train, test = fold_of != fold, fold_of == fold
        mean, std = features[train].mean(0), features[train].std(0) + 1e-6
        w, b = fit_softmax((features[train] - mean) / std, targets[train], num_classes)
        predictions[test] = np.argmax(((features[test] - mean) / std) @ w + b, axis=1)
    return predictions


def balanced_accuracy(features, labels, classes):
    """Mean per-class recall, out of fold: 1 / len(classes) by chance."""
    targets = np.array([classes.index(label) for label in labels])
    predictions = cross_val_predict(features, targets, len(classes))
    return float(np.mean([np.mean(predictions[targets == c] == c) for c in range(len(classes))]))


def subset_accuracy(features, label_sets, classes):
    """Multi-label exact match, out of fold, one binary classifier per class."""
    correct = np.ones(len(label_sets), dtype=bool)
    for name in classes:
        targets = np.array([name in labels for labels in label_sets], dtype=int)
        correct &= cross_val_predict(features, targets, 2) == targets
    return float(correct.mean())


def label_shares(rows, app):
    labels = [row["label"] for row in rows]
    return {label: labels.count(label) / len(labels) for label in demo.DEMO_APPS[app].labels}


def label_sets(rows, column):
    return [frozenset(row[column].split("|")) - {""} for row in rows]


def modality_features(app, manifest):
    """Dict of modality column -> feature matrix, and the rows."""
    _, rows = read_manifest(manifest)
    folder = manifest.parent
    spec = demo.DEMO_APPS[app]
    extract_image = {
        "sentiment": photo_features, "medical": radiograph_features, "inspection": part_features
    }[app]
    features = {}
    for column, kind in spec.columns.items():
        if kind == "text":
            extract_text = lexicon_features if app == "sentiment" else clinical_features
            features[column] = np.array([extract_text(r[column]) for r in rows])
        elif kind == "image":
            features[column] = np.array([extract_image(folder / r[column]) for r in rows])
        elif kind == "audio":
            features[column] = np.array([audio_features(folder / r[column]) for r in rows])
    if spec.columns_of_kind("sensor"):
        features["sensors"] = sensor_features(rows)
    return features, rows


# === Tests ===


@pytest.mark.parametrize("app", sorted(demo.DEMO_APPS))
def test_generate_writes_manifest_and_decodable_files(tmp_path, app):
    manifest = demo.generate(app, tmp_path / app, num_examples=6, seed=1, image_size=40)
    assert manifest == tmp_path / app / "manifest.csv"
    header, rows = read_manifest(manifest)
    spec = demo.DEMO_APPS[app]
    assert header == list(spec.columns) == list(demo.APP_COLUMNS[app])
    assert len(rows) == 6
    for row in rows:
        for column, kind in spec.columns.items():
            value = row[column]
            if kind == "image":
                assert not pathlib.PurePath(value).is_absolute() and value.startswith("images/")
                with Image.open(manifest.parent / value) as image:
                    image.load()
                    assert image.size == (40, 40)
                    assert image.mode == ("L" if app == "medical" else "RGB")
                    assert image.format == ("JPEG" if app == "inspection" else "PNG")
            elif kind == "audio":
                assert value.startswith("audio/")
                params, samples = read_wav(manifest.parent / value)
                assert params == (1, 2, demo.SAMPLE_RATE)
                assert len(samples) == int(demo.SAMPLE_RATE * demo.AUDIO_SECONDS)
                assert 0.01 < np.sqrt(np.mean(samples**2)) < 0.5
            elif kind == "text":
                assert len(value.split()) >= 4
            elif kind == "sensor":
                assert value == "" or np.isfinite(float(value))
        if spec.multi_label:
            assert label_sets([row], spec.label_column)[0] <= set(spec.labels)
        else:
            assert row[spec.label_column] in spec.labels
    assert not list((tmp_path / app).rglob("*.tmp"))


@pytest.mark.parametrize("app", sorted(demo.DEMO_APPS))
def test_same_seed_gives_identical_bytes_and_other_seeds_differ(tmp_path, app):
    first = demo.generate(app, tmp_path / "a", num_examples=5, seed=3).parent
    again = demo.generate(app, tmp_path / "b", num_examples=5, seed=3).parent
    other = demo.generate(app, tmp_path / "c", num_examples=5, seed=4).parent
    assert folder_digest(first) == folder_digest(again)
    assert folder_digest(first) != folder_digest(other)
    assert read_manifest(first / "manifest.csv") != read_manifest(other / "manifest.csv")
    image = next((first / "images").iterdir()).name
    assert (first / "images" / image).read_bytes() != (other / "images" / image).read_bytes()


def test_more_examples_extend_fewer(tmp_path):
    small = demo.generate("inspection", tmp_path / "small", num_examples=3, seed=2)
    large = demo.generate("inspection", tmp_path / "large", num_examples=5, seed=2)
    assert read_manifest(large)[1][:3] == read_manifest(small)[1]
    last_small = (tmp_path / "small/audio/00002.wav").read_bytes()
    assert (tmp_path / "large/audio/00002.wav").read_bytes() == last_small


def test_interrupted_run_leaves_no_manifest(tmp_path, monkeypatch):
    out_dir = tmp_path / "sentiment"
    demo.generate("sentiment", out_dir, num_examples=3, seed=0)
    calls = []

    def failing_write_wav(path, samples, sample_rate=demo.SAMPLE_RATE):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(demo, "_write_wav", failing_write_wav)
    with pytest.raises(KeyboardInterrupt):
        demo.generate("sentiment", out_dir, num_examples=3, seed=5)
    # The old manifest would describe files the crashed run half replaced.
    assert not (out_dir / "manifest.csv").exists()
    monkeypatch.undo()
    manifest = demo.generate("sentiment", out_dir, num_examples=3, seed=5)
    assert all((out_dir / row["voice"]).exists() for row in read_manifest(manifest)[1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"app": "vision"}, "Unknown demo app 'vision'"),
        ({"num_examples": 0}, "num_examples=0"),
        ({"seed": -1}, "seed=-1"),
        ({"image_size": 8}, "image_size=8"),
    ],
)
def test_invalid_arguments_name_what_was_received(tmp_path, kwargs, message):
    arguments = {"app": "sentiment", "out_dir": tmp_path, "num_examples": 2, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        demo.generate(**arguments)
    assert not (tmp_path / "manifest.csv").exists()


def test_label_balance(signal_sets):
    _, rows = read_manifest(signal_sets["sentiment"])
    shares = label_shares(rows, "sentiment")
    assert 0.15 < shares["neutral"] < 0.35
    assert 0.28 < shares["negative"] < 0.48 and 0.28 < shares["positive"] < 0.48

    _, rows = read_manifest(signal_sets["inspection"])
    shares = label_shares(rows, "inspection")
    assert 0.47 < shares["ok"] < 0.63
    assert all(0.08 < shares[d] < 0.24 for d in ("scratch", "dent", "contamination"))

    _, rows = read_manifest(signal_sets["medical"])
    sets = label_sets(rows, "findings")
    for finding in demo.DEMO_APPS["medical"].labels:
        assert 0.12 < np.mean([finding in s for s in sets]) < 0.42
    assert 0.2 < np.mean([not s for s in sets]) < 0.45
    assert np.mean([len(s) >= 2 for s in sets]) > 0.1


def test_sensor_cells_are_sometimes_missing(signal_sets):
    _, rows = read_manifest(signal_sets["inspection"])
    cells = [r[n] for r in rows for n in demo.DEMO_APPS["inspection"].columns_of_kind("sensor")]
    assert 0.01 < np.mean([c == "" for c in cells]) < 0.06
    temperatures = [float(r["temperature"]) for r in rows if r["temperature"]]
    assert 35 < np.mean(temperatures) < 70


def test_texts_look_like_their_domain(signal_sets):
    _, reviews = read_manifest(signal_sets["sentiment"])
    reviews = [r["review"].lower() for r in reviews]
    assert np.mean([any(w in re.findall(r"[a-z]+", r) for w in POSITIVE + NEGATIVE) for r in reviews]) > 0.6
    assert any(" not " in f" {r}" for r in reviews)
    assert len(set(reviews)) > 0.9 * len(reviews)
    _, notes = read_manifest(signal_sets["medical"])
    notes = [r["note"].lower() for r in notes]
    assert all("year-old" in n for n in notes)
    assert np.mean([bool(NEGATION.search(n)) for n in notes]) > 0.3


@pytest.mark.parametrize("app", sorted(demo.DEMO_APPS))
def test_each_modality_carries_part_of_the_signal(signal_sets, app):
    features, rows = modality_features(app, signal_sets[app])
    spec = demo.DEMO_APPS[app]
    if spec.multi_label:
        sets = label_sets(rows, spec.label_column)
        score = lambda x: subset_accuracy(x, sets, list(spec.labels))
        # Always answering the most common set of findings.
        chance = max(sets.count(s) for s in set(sets)) / len(sets)
    else:
        labels = [r[spec.label_column] for r in rows]
        score = lambda x: balanced_accuracy(x, labels, list(spec.labels))
        chance = 1.0 / len(spec.labels)
    single = {name: score(x) for name, x in features.items()}
    fused = score(np.concatenate(list(features.values()), axis=1))
    assert len(single) == {"sentiment": 3, "medical": 2, "inspection": 3}[app]
    for name, value in single.items():
        assert value > chance + 0.1, (name, value, chance)
        assert value < fused - 0.1, (name, value, fused)
    assert fused > 0.75, (fused, single)
