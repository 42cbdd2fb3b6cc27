"""Tests for mmkeras.data.demo: files, determinism, and how the signal is spread.

The signal tests extract simple hand features per modality and fit a small
numpy logistic regression on each modality alone and on all of them together:
each modality must carry signal, but only the fusion gets close to all of it.
"""

import csv
import hashlib
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
    return {app: demo.generate(app, root / app, num_examples=SIGNAL_EXAMPLES, seed=7) for app in demo.DEMO_APPS}


# === Hand features ===


# A generic sentiment lexicon and clinical term list, as a rule-based baseline
# would use; "not"/"no"/"denies" in the same phrase flips a term.
POSITIVE = "great excellent amazing love sturdy perfect comfortable reliable fantastic lovely solid impressive smooth recommend good".split()
NEGATIVE = "terrible awful flimsy useless disappointing cheap poor broken horrible loud faulty wobbly returned bad waste".split()
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


def block_means(image, blocks=8):
    h, w = image.shape[:2]
    trimmed = image[: h // blocks * blocks, : w // blocks * blocks]
    return trimmed.reshape(blocks, h // blocks, blocks, w // blocks, -1).mean(axis=(1, 3)).ravel()


def photo_features(path):
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) + 1.0
    border = np.concatenate([rgb[:6].reshape(-1, 3), rgb[-6:].reshape(-1, 3)])
    log_rb = np.log(rgb[..., 0] / rgb[..., 2])
    return np.concatenate([
        rgb.reshape(-1, 3).mean(0) / 255.0,
        border.mean(0) / 255.0,
        [np.log(border[:, 0] / border[:, 2]).mean(), log_rb.mean(), np.median(log_rb)],
        np.percentile(log_rb, [10, 90]),
    ])


def radiograph_features(path):
    gray = np.asarray(Image.open(path).convert("L"), dtype=np.float64) / 255.0
    size = gray.shape[0]
    # Lung fields are the dark areas inside the body; look for bright spots there.
    lungs = box_blur(gray, 3) < np.percentile(gray, 55)
    spot = (box_blur(gray, 1) - box_blur(gray, 4))[lungs]
    haze = box_blur(gray, 3)[lungs] - np.median(gray[lungs])  # diffuse opacities
    thirds = [slice(0, size // 3), slice(size // 3, 2 * size // 3), slice(2 * size // 3, size)]
    zones = [gray[r, c].mean() for r in thirds for c in thirds]
    heart_rows = gray[int(0.55 * size) : int(0.68 * size)]
    bases = gray[int(0.58 * size) : int(0.74 * size)]
    left, right = bases[:, int(0.18 * size) : int(0.4 * size)], bases[:, int(0.6 * size) : int(0.82 * size)]
    return np.array(zones + [
        spot.max(), np.percentile(spot, 99), spot.std(), haze.max(), np.percentile(haze, 97),
        np.mean(heart_rows > gray.mean() + 0.08), gray.mean(),
        left.mean(), right.mean(), max(left.mean(), right.mean()) - min(left.mean(), right.mean()),
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


def accuracy(features, labels, classes):
    targets = np.array([classes.index(label) for label in labels])
    return float(np.mean(cross_val_predict(features, targets, len(classes)) == targets))


def subset_accuracy(features, label_sets, classes):
    """Multi-label exact match, one binary classifier per class."""
    correct = np.ones(len(label_sets), dtype=bool)
    for name in classes:
        targets = np.array([name in labels for labels in label_sets], dtype=int)
        correct &= cross_val_predict(features, targets, 2) == targets
    return float(correct.mean())


def modality_features(app, manifest):
    """Dict of modality column -> feature matrix, and the rows."""
    _, rows = read_manifest(manifest)
    folder = manifest.parent
    spec = demo.DEMO_APPS[app]
    extract_image = {"sentiment": photo_features, "medical": radiograph_features, "inspection": part_features}[app]
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
