"""Procedural demo data for the three application templates.

Each generator writes real files (PNG/JPEG images, 16-bit mono WAV clips) and a
CSV manifest, deterministically from a seed, with numpy and Pillow only.

The label-generating processes are built so that fusion matters: every example
has a hidden cue per modality, and the label needs cues from several
modalities. Label-independent nuisance (lighting, speaker pitch, patient
position, machine load, ...) varies on top. A model that reads every
modality's cue can reach over 90% accuracy (exact match for "medical"); the
best use of one modality alone reaches about 55-75% of that (sentiment 59%,
medical 69% radiograph / 58% note, inspection about 71% each, on average).

- "sentiment": text, photo and voice each carry a cue in {-1, 0, +1}; the label
  is the sign of their sum (negative / neutral / positive).
- "medical": nodule and cardiomegaly are mostly seen on the radiograph,
  pneumonia mostly in the note; effusions and nodules are seen on the image
  when large, and the note mentions mainly the small ones the image misses.
- "inspection": the camera, the sensors and the microphone each may show a
  defect signature (or a harmless false alarm); a part is defective when at
  least two of them agree on the defect type.

Example:
>>> import tempfile
>>> manifest = generate("sentiment", tempfile.mkdtemp(), num_examples=4)
>>> manifest.name
'manifest.csv'
"""

import csv
import dataclasses
import io
import os
import pathlib
import wave

import numpy as np
from PIL import Image

SAMPLE_RATE = 16000
AUDIO_SECONDS = 1.0
MANIFEST_NAME = "manifest.csv"
# The hidden cues each example was drawn with, keyed by manifest row; the
# manifest itself (what a model sees) never holds them. See `mmkeras.data.ceiling`.
CUES_NAME = "cues.csv"


@dataclasses.dataclass(frozen=True)
class DemoApp:
    """Describes one demo application's manifest.

    Args:
        name: application name.
        columns: dict of manifest column -> kind, one of "text", "image",
            "audio", "sensor" or "label", in manifest order.
        label_column: the column that holds the label.
        labels: class names, in the order a model's head should use.
        multi_label: whether the label column is a "|"-separated subset of
            `labels` (possibly empty) instead of one class.
        cue_sources: each source of a hidden cue -> the manifest columns that
            show it (the three sensor readings show one signature).

    Example:
    >>> DEMO_APPS["inspection"].columns_of_kind("sensor")
    ['temperature', 'vibration_rms', 'current']
    """

    name: str
    columns: dict
    label_column: str
    labels: tuple
    cue_sources: dict
    multi_label: bool = False

    def columns_of_kind(self, kind):
        """Returns the column names whose kind is `kind`, in manifest order."""
        return [column for column, k in self.columns.items() if k == kind]


DEMO_APPS = {
    "sentiment": DemoApp(
        name="sentiment",
        columns={"review": "text", "photo": "image", "voice": "audio", "label": "label"},
        label_column="label",
        labels=("negative", "neutral", "positive"),
        cue_sources={"review": ("review",), "photo": ("photo",), "voice": ("voice",)},
    ),
    "medical": DemoApp(
        name="medical",
        columns={"radiograph": "image", "note": "text", "findings": "label"},
        label_column="findings",
        labels=("effusion", "nodule", "cardiomegaly", "pneumonia"),
        cue_sources={"radiograph": ("radiograph",), "note": ("note",)},
        multi_label=True,
    ),
    "inspection": DemoApp(
        name="inspection",
        columns={
            "part_image": "image",
            "temperature": "sensor",
            "vibration_rms": "sensor",
            "current": "sensor",
            "machine_sound": "audio",
            "label": "label",
        },
        label_column="label",
        labels=("ok", "scratch", "dent", "contamination"),
        cue_sources={"part_image": ("part_image",),
                     "readings": ("temperature", "vibration_rms", "current"),
                     "machine_sound": ("machine_sound",)},
    ),
}

# Column name -> kind, per app (the same information as `DEMO_APPS`).
APP_COLUMNS = {name: dict(app.columns) for name, app in DEMO_APPS.items()}

# Mixed into every example's seed so that the apps do not share random draws.
_APP_SALT = {"sentiment": 101, "medical": 202, "inspection": 303}


# === Files ===


def _atomic_write_bytes(path, data):
    # A crash mid-write leaves a stray ".tmp", never a truncated file.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_image(path, pixels):
    """Writes a uint8 `[H, W]` or `[H, W, 3]` array as PNG or JPEG (by suffix)."""
    buffer = io.BytesIO()
    image = Image.fromarray(pixels)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        # No chroma subsampling: small coloured spots must survive encoding.
        image.save(buffer, format="JPEG", quality=95, subsampling=0)
    else:
        image.save(buffer, format="PNG")
    _atomic_write_bytes(path, buffer.getvalue())


def _write_wav(path, samples, sample_rate=SAMPLE_RATE):
    """Writes float samples in [-1, 1] as 16-bit mono PCM WAV."""
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(pcm.tobytes())
    _atomic_write_bytes(path, buffer.getvalue())


def _write_csv(path, columns, rows):
    # The manifest is written last and renamed into place: a manifest only
    # ever lists files that are already complete.
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row[column] for column in columns])
    os.replace(tmp, path)
    return path


# === Drawing helpers ===


def _grid(size):
    """Pixel-centre coordinates `(yy, xx)` in (0, 1), each `[size, size]`."""
    centres = (np.arange(size) + 0.5) / size
    return np.meshgrid(centres, centres, indexing="ij")


def _coverage(signed_distance, size):
    """Anti-aliased inside-ness (0..1) from a signed distance (negative inside)."""
    return np.clip(0.5 - signed_distance * size, 0.0, 1.0)


def _ellipse(yy, xx, cy, cx, ry, rx, size):
    radius = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    return _coverage((radius - 1.0) * min(ry, rx), size)


def _gaussian(yy, xx, cy, cx, sigma):
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * sigma**2))


def _polyline_distance(yy, xx, points):
    """Distance from each pixel to the nearest of the densely sampled `points`."""
    dy = yy[..., None] - points[:, 0]
    dx = xx[..., None] - points[:, 1]
    return np.sqrt(dy**2 + dx**2).min(axis=-1)


def _blend(image, colour, alpha):
    """Alpha-blends a colour (scalar or RGB) into a float image."""
    alpha = alpha[..., None] if image.ndim == 3 else alpha
    return image * (1.0 - alpha) + np.asarray(colour, dtype=float) * alpha


def _to_uint8(image):
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _normalise_rms(signal, rms):
    return signal * (rms / (np.sqrt(np.mean(signal**2)) + 1e-9))


def _band_noise(rng, num_samples, low_hz, high_hz, sample_rate=SAMPLE_RATE):
    """White noise restricted to [low_hz, high_hz], unit RMS."""
    spectrum = np.fft.rfft(rng.normal(size=num_samples))
    freqs = np.fft.rfftfreq(num_samples, 1.0 / sample_rate)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0.0
    return _normalise_rms(np.fft.irfft(spectrum, n=num_samples), 1.0)


def _time_axis(seconds=AUDIO_SECONDS, sample_rate=SAMPLE_RATE):
    return np.arange(int(round(seconds * sample_rate))) / sample_rate


# === Sentiment ===

_SENTIMENT_LABELS = ("negative", "neutral", "positive")
# Probability of cue -1, 0, +1 per modality; fewer zeros make single cues a
# little more telling (about 59% accuracy alone) and keep "neutral" at ~23%.
_SENTIMENT_CUE_PROBS = (0.375, 0.25, 0.375)

_PRODUCTS = (
    "headphones", "blender", "backpack", "desk lamp", "phone case", "kettle",
    "keyboard", "water bottle", "sneakers", "toaster", "speaker", "jacket",
)
_ASPECTS = (
    "battery", "sound", "build", "price", "fit", "design", "handle", "lid",
    "strap", "packaging", "finish", "buttons", "cable", "zipper",
)
_POSITIVE_WORDS = (
    "great", "excellent", "amazing", "sturdy", "perfect", "comfortable",
    "reliable", "fantastic", "lovely", "solid", "impressive", "smooth",
)
_NEGATIVE_WORDS = (
    "terrible", "awful", "flimsy", "useless", "disappointing", "cheap", "poor",
    "broken", "horrible", "loud", "faulty", "wobbly",
)
_NEUTRAL_WORDS = ("okay", "average", "fine", "decent", "standard", "acceptable", "ordinary")
_FILLERS = (
    "bought this {product} for my {person}",
    "arrived on {day}",
    "used it for {weeks} weeks now",
    "ordered the {colour} one",
    "this is my second {product}",
    "got it on sale last {day}",
    "colour is as pictured",
    "my {person} picked it",
)
_PERSONS = ("sister", "dad", "mom", "office", "son", "roommate", "partner", "kitchen")
_DAYS = ("monday", "tuesday", "friday", "saturday", "sunday")
_COLOURS = ("black", "white", "blue", "red", "grey", "green")
_NOISE_WORDS = ("tbh", "lol", "imo", "fwiw", "btw", "hmm", "ok so", "idk", "anyway")


def _sentiment_cue_phrase(rng, cue):
    aspect = rng.choice(_ASPECTS)
    pos, neg = rng.choice(_POSITIVE_WORDS), rng.choice(_NEGATIVE_WORDS)
    if cue > 0:
        options = (
            f"the {aspect} is {pos}",
            f"{pos} {aspect}",
            f"i love the {aspect}",
            f"not {neg} at all",
            f"really {pos} and would buy again",
            f"highly recommend, {pos}",
        )
    elif cue < 0:
        options = (
            f"the {aspect} is {neg}",
            f"{neg} {aspect}",
            f"the {aspect} is not {pos}",
            f"not {pos} at all",
            f"{neg}, would not recommend",
            f"returned it, {neg} {aspect}",
        )
    else:
        other = rng.choice(_ASPECTS)
        options = (
            f"the {aspect} is {rng.choice(_NEUTRAL_WORDS)}",
            "it does the job",
            f"{pos} {aspect} but {neg} {other}",
            f"nothing special, {rng.choice(_NEUTRAL_WORDS)} {aspect}",
            f"{rng.choice(_NEUTRAL_WORDS)} for the price",
        )
    return str(rng.choice(options))


def _add_typo(rng, sentence):
    words = sentence.split(" ")
    index = int(rng.integers(len(words)))
    word = words[index]
    if len(word) > 3:
        cut = int(rng.integers(1, len(word) - 1))
        words[index] = word[:cut] + word[cut + 1] + word[cut] + word[cut + 2 :]
    return " ".join(words)


def _sentiment_review(rng, cue):
    fillers = [
        str(rng.choice(_FILLERS)).format(
            product=rng.choice(_PRODUCTS),
            person=rng.choice(_PERSONS),
            day=rng.choice(_DAYS),
            weeks=int(rng.integers(1, 9)),
            colour=rng.choice(_COLOURS),
        )
        for _ in range(int(rng.integers(1, 3)))
    ]
    cues = [_sentiment_cue_phrase(rng, cue) for _ in range(int(rng.integers(1, 3)))]
    sentences = fillers + cues
    rng.shuffle(sentences)
    if rng.random() < 0.4:
        sentences.insert(0, str(rng.choice(_NOISE_WORDS)))
    if rng.random() < 0.3:
        index = int(rng.integers(len(sentences)))
        sentences[index] = _add_typo(rng, sentences[index])
    return ". ".join(s[:1].upper() + s[1:] for s in sentences) + "."


# Neutral studio backdrops, so that the light's colour stays visible.
_BACKDROPS = ((222, 220, 214), (122, 124, 128), (196, 190, 180), (92, 95, 100))


def _sentiment_photo(rng, cue, size):
    yy, xx = _grid(size)
    # Backdrop: table or wall with a vertical light falloff.
    backdrop = np.array(_BACKDROPS[int(rng.integers(len(_BACKDROPS)))], dtype=float)
    falloff = 1.0 + rng.uniform(-0.25, 0.25) * (yy - 0.5)
    image = backdrop * falloff[..., None] * np.ones((size, size, 3))

    # Product: a box, a round object or a bottle, any colour, anywhere central.
    cy, cx = rng.uniform(0.45, 0.58), rng.uniform(0.38, 0.62)
    ry, rx = rng.uniform(0.2, 0.3), rng.uniform(0.16, 0.28)
    shape = int(rng.integers(3))
    if shape == 0:
        inside = np.maximum(np.abs(yy - cy) - ry, np.abs(xx - cx) - rx)
        mask = _coverage(inside, size)
    elif shape == 1:
        mask = _ellipse(yy, xx, cy, cx, ry, ry, size)
    else:
        mask = np.maximum(
            _ellipse(yy, xx, cy + 0.05, cx, ry, rx * 0.7, size),
            _ellipse(yy, xx, cy - ry * 0.9, cx, ry * 0.35, rx * 0.3, size),
        )
    shadow = _ellipse(yy, xx, cy + ry + 0.02, cx + 0.03, 0.05, rx * 1.1, size)
    image = image * (1.0 - 0.35 * shadow[..., None])
    colour = rng.uniform(40, 230, size=3)
    shading = 1.0 - 0.35 * (xx - cx) + 0.15 * (cy - yy)
    image = _blend(image, colour * shading[..., None], mask)

    # Sticker with a mouth-like arc: curves up (cue +1), flat (0) or down (-1).
    sy, sx, radius = cy, cx, min(ry, rx) * 0.75
    image = _blend(image, (236, 232, 220), _ellipse(yy, xx, sy, sx, radius, radius, size))
    u = np.linspace(-1.0, 1.0, 40)
    bend = (0.55 * cue + rng.normal(0.0, 0.08)) * radius
    arc = np.stack([sy + 0.25 * radius + bend * (u**2 - 0.5), sx + 0.6 * radius * u], axis=-1)
    stroke = _coverage(_polyline_distance(yy, xx, arc) - max(radius * 0.1, 0.6 / size), size)
    image = _blend(image, (40, 36, 34), stroke)

    # Warm, bright light for positive; cool, dim light for negative.
    warmth = 0.12 * cue + rng.normal(0.0, 0.03)
    brightness = 1.0 + 0.08 * cue + rng.normal(0.0, 0.03)
    image = image * np.array([1.0 + warmth, 1.0 + 0.3 * warmth, 1.0 - warmth]) * brightness
    image = image + rng.normal(0.0, 4.0, size=image.shape)
    return _to_uint8(image)


def _sentiment_voice(rng, cue):
    t = _time_axis()
    # Speaker pitch (label-independent) times an affect factor and contour.
    base = rng.uniform(95, 135) if rng.random() < 0.5 else rng.uniform(170, 230)
    slope = 0.12 * cue + rng.normal(0.0, 0.03)
    vibrato = 0.02 * np.sin(2 * np.pi * rng.uniform(4, 6) * t + rng.uniform(0, 2 * np.pi))
    f0 = base * (1.0 + 0.1 * cue) * (1.0 + slope * (t - 0.5) + vibrato)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE

    # Harmonics shaped by two formants (vowel colour is nuisance).
    formants = (rng.uniform(450, 850), rng.uniform(1100, 2000))
    harmonics = np.arange(1, int(4000 // f0.max()) + 1)
    freqs = harmonics * f0.mean()
    gains = sum(np.exp(-(((freqs - f) / 180.0) ** 2)) for f in formants) + 0.15
    # sin(k * phase) by the Chebyshev recurrence: one multiply-add per
    # harmonic instead of one sin call.
    voiced, previous, current = np.zeros_like(t), np.zeros_like(t), np.sin(phase)
    twice_cos = 2.0 * np.cos(phase)
    for gain in gains / harmonics:
        voiced += gain * current
        previous, current = current, twice_cos * current - previous

    # Syllables: faster for positive, slower for negative.
    rate = (3.9 + 1.3 * cue) * rng.uniform(0.9, 1.1)
    envelope = np.zeros_like(t)
    onset = rng.uniform(0.0, 0.15)
    while onset < t[-1]:
        length = rng.uniform(0.55, 0.8) / rate
        inside = (t >= onset) & (t < onset + length)
        envelope[inside] += rng.uniform(0.6, 1.0) * np.sin(np.pi * (t[inside] - onset) / length)
        onset += rng.uniform(0.85, 1.15) / rate
    signal = voiced * envelope + 0.02 * rng.normal(size=t.shape)

    # Energy: louder for positive; recording gain is nuisance.
    rms = (0.12 + 0.05 * cue) * rng.uniform(0.85, 1.15)
    return np.clip(_normalise_rms(signal, rms), -1.0, 1.0)


def sentiment_cues(rng):
    """Draws one example's label and the cue each source shows (-1, 0 or +1)."""
    cues = rng.choice([-1, 0, 1], size=3, p=_SENTIMENT_CUE_PROBS)
    label = _SENTIMENT_LABELS[int(np.sign(int(cues.sum()))) + 1]
    return label, dict(zip(("review", "photo", "voice"), (int(c) for c in cues)))


def _sentiment_example(rng, index, out_dir, image_size):
    label, cues = sentiment_cues(rng)
    photo = f"images/{index:05d}.png"
    voice = f"audio/{index:05d}.wav"
    _write_image(out_dir / photo, _sentiment_photo(rng, cues["photo"], image_size))
    _write_wav(out_dir / voice, _sentiment_voice(rng, cues["voice"]))
    review = _sentiment_review(rng, cues["review"])
    return {"review": review, "photo": photo, "voice": voice, "label": label}, cues


# === Medical ===

# Prevalence of each finding, independently.
_FINDING_PREVALENCE = {"effusion": 0.25, "nodule": 0.2, "cardiomegaly": 0.25, "pneumonia": 0.3}
# Probability that a present finding is clearly visible on the radiograph.
_FINDING_VISIBLE = {"effusion": 0.55, "nodule": 0.7, "cardiomegaly": 1.0, "pneumonia": 0.4}
# Probability that the note mentions a finding's cue: (when not visible on the
# image, when visible, when absent). Notes mostly describe what the image
# misses, as a clinician adds what was found by exam or earlier CT.
_NOTE_MENTIONS = {
    "effusion": (0.95, 0.3, 0.02),
    "nodule": (0.9, 0.3, 0.02),
    "cardiomegaly": (0.45, 0.45, 0.1),
    "pneumonia": (0.95, 0.6, 0.02),
}
_NOTE_CUES = {
    "effusion": (
        "decreased breath sounds at the {side} base",
        "dullness to percussion at the {side} base",
        "bedside ultrasound shows a small {side} effusion",
    ),
    "nodule": (
        "known {mm} mm pulmonary nodule on prior CT",
        "incidental {side} lung nodule on outside imaging, follow-up requested",
    ),
    "cardiomegaly": (
        "history of congestive heart failure",
        "bilateral pitting ankle edema",
        "elevated BNP",
    ),
    "pneumonia": (
        "fever of 38.{tenth} C with productive cough",
        "crackles over the {side} lower lobe and fever",
        "elevated white count, productive cough for {days} days",
    ),
}
_NOTE_NEGATIONS = {
    "effusion": ("no effusion on prior ultrasound", "breath sounds equal bilaterally"),
    "nodule": ("no known pulmonary nodules", "prior CT without nodules"),
    "cardiomegaly": ("no ankle edema", "no history of heart failure"),
    "pneumonia": ("afebrile", "no fever", "denies productive cough"),
}
_COMPLAINTS = (
    "shortness of breath", "cough", "chest discomfort", "fatigue",
    "pre-operative assessment", "follow-up visit", "fall at home",
)
_HISTORY = (
    "history of hypertension", "type 2 diabetes", "former smoker", "non-smoker",
    "asthma since childhood", "on statins", "no known allergies",
)


def _clinical_note(rng, findings, visible):
    fill = {
        "side": rng.choice(("left", "right")),
        "mm": int(rng.integers(5, 12)),
        "tenth": int(rng.integers(2, 10)),
        "days": int(rng.integers(2, 8)),
    }
    age, sex = int(rng.integers(28, 90)), rng.choice(("male", "female"))
    opening = f"{age}-year-old {sex} presenting with {rng.choice(_COMPLAINTS)}"
    statements = [str(h) for h in rng.choice(_HISTORY, size=int(rng.integers(1, 3)), replace=False)]
    said = {}
    for finding in _NOTE_MENTIONS:
        said[finding], statement = _note_statement(rng, finding, finding in findings, visible[finding], fill)
        if statement:
            statements.append(statement)
    rng.shuffle(statements)
    sentences = [opening] + statements
    return ". ".join(s[:1].upper() + s[1:] for s in sentences) + ".", said


def _note_statement(rng, finding, present, visible, fill):
    """What the note says of one finding: ("mentioned" | "negated" | "silent", text or None)."""
    hidden, shown, absent = _NOTE_MENTIONS[finding]
    if rng.random() < ((shown if visible else hidden) if present else absent):
        return "mentioned", str(rng.choice(_NOTE_CUES[finding])).format(**fill)
    if not present and rng.random() < 0.35:
        return "negated", str(rng.choice(_NOTE_NEGATIONS[finding]))
    return "silent", None


def _lung_point(rng, side_x):
    """A random point inside a lung field, away from its edges."""
    return rng.uniform(0.3, 0.62), side_x + rng.uniform(-0.07, 0.07)


def _radiograph(rng, findings, visible, size):
    yy, xx = _grid(size)
    # Patient position and size are nuisance: work in a shifted, scaled frame.
    scale = rng.uniform(0.93, 1.05)
    y = (yy - 0.5 - rng.uniform(-0.03, 0.03)) / scale + 0.5
    x = (xx - 0.5 - rng.uniform(-0.03, 0.03)) / scale + 0.5

    image = np.full((size, size), 12.0)
    image = _blend(image, 95.0, _ellipse(y, x, 0.58, 0.5, 0.62, 0.46, size))
    sides = (0.31, 0.69)  # image left = patient's right lung
    lungs = []
    for side_x in sides:
        dome = 0.74 + 0.05 * ((x - side_x) / 0.15) ** 2  # diaphragm
        lung = _ellipse(y, x, 0.45, side_x, 0.31, 0.15, size) * np.clip((dome - y) * size, 0, 1)
        lungs.append(lung)
        image = _blend(image, 32.0, lung)
    lung_area = np.maximum(*lungs)

    # Ribs and clavicles: faint bright arcs over the lungs.
    for side_x in sides:
        for k in range(9):
            # Posterior ribs run level near the spine and drop laterally.
            rib_y = 0.14 + 0.066 * k + 0.12 * (np.abs(x - 0.5) / 0.35) ** 2
            rib = _coverage(np.abs(y - rib_y) - 0.011, size) * (np.abs(x - side_x) < 0.19)
            image = image + 16.0 * rib * (0.4 + 0.6 * lung_area)
        clavicle_y = 0.15 + 0.12 * np.abs(x - 0.5)
        clavicle = _coverage(np.abs(y - clavicle_y) - 0.012, size) * (np.abs(x - 0.5) < 0.3)
        image = image + 30.0 * clavicle / 2.0
    # Mediastinum and spine down the middle.
    image = _blend(image, 140.0, _coverage(np.abs(x - 0.5) - 0.065, size) * (y > 0.1))
    image = _blend(image, 60.0, _coverage(np.abs(x - 0.5) - 0.018, size) * (y > 0.08) * (y < 0.3))

    if "effusion" in findings:
        # Fluid layers at a lung base with a meniscus rising laterally; small
        # effusions only blunt the angle and are nearly invisible.
        side = int(rng.integers(2))
        depth = rng.uniform(0.1, 0.17) if visible["effusion"] else rng.uniform(0.01, 0.02)
        lateral = np.clip((x - sides[side]) * (1 if side else -1) / 0.15, 0, None)
        level = 0.76 - depth - 0.06 * lateral**2
        fluid = np.clip((y - level) * size, 0, 1) * lungs[side]
        image = _blend(image, 130.0, fluid * (0.9 if visible["effusion"] else 0.4))

    # Heart: cardiothoracic ratio 0.40-0.48 normally, 0.56-0.66 when enlarged.
    ratio = rng.uniform(0.56, 0.66) if "cardiomegaly" in findings else rng.uniform(0.4, 0.48)
    heart = _ellipse(y, x, 0.62, 0.53, 0.14, ratio * 0.62 / 2.0, size)
    image = _blend(image, 150.0, heart)

    if "nodule" in findings:
        cy, cx = _lung_point(rng, sides[int(rng.integers(2))])
        radius = rng.uniform(0.03, 0.05) if visible["nodule"] else rng.uniform(0.01, 0.015)
        strength = 75.0 if visible["nodule"] else 15.0
        image = image + strength * _ellipse(y, x, cy, cx, radius, radius, size)
    if "pneumonia" in findings:
        # Patchy consolidation: a diffuse cluster of soft blobs in a lower zone.
        side_x = sides[int(rng.integers(2))]
        cy, cx = rng.uniform(0.45, 0.6), side_x + (0.04 if side_x > 0.5 else -0.04)
        patches = sum(
            rng.uniform(0.5, 1.0)
            * _gaussian(y, x, cy + rng.normal(0, 0.06), cx + rng.normal(0, 0.04), rng.uniform(0.03, 0.05))
            for _ in range(int(rng.integers(4, 8)))
        )
        strength = 45.0 if visible["pneumonia"] else 8.0
        image = image + strength * np.clip(patches, 0, 1.2) * lung_area

    # Exposure and detector noise are nuisance.
    image = image * rng.uniform(0.85, 1.15) + rng.uniform(-10, 10)
    image = image + rng.normal(0.0, 5.0, size=image.shape)
    return _to_uint8(image)


def _medical_findings(rng):
    findings = [f for f, p in _FINDING_PREVALENCE.items() if rng.random() < p]
    visible = {f: f in findings and rng.random() < _FINDING_VISIBLE[f] for f in _FINDING_PREVALENCE}
    return findings, visible


def _medical_observations(visible, said):
    return {"radiograph": "|".join(f for f in _FINDING_PREVALENCE if visible[f]),
            "note": "|".join(f"{f}:{said[f]}" for f in _FINDING_PREVALENCE)}


def medical_cues(rng):
    """Draws one example's findings and what the radiograph and the note show of them.

    The same distribution as the examples (not the same random stream: the
    examples also draw pixels and words).
    """
    findings, visible = _medical_findings(rng)
    said = {f: _note_statement(rng, f, f in findings, visible[f], _SAMPLE_FILL)[0] for f in _FINDING_PREVALENCE}
    return "|".join(findings), _medical_observations(visible, said)


_SAMPLE_FILL = {"side": "left", "mm": 5, "tenth": 2, "days": 2}


def _medical_example(rng, index, out_dir, image_size):
    findings, visible = _medical_findings(rng)
    radiograph = f"images/{index:05d}.png"
    _write_image(out_dir / radiograph, _radiograph(rng, findings, visible, image_size))
    note, said = _clinical_note(rng, findings, visible)
    row = {"radiograph": radiograph, "note": note, "findings": "|".join(findings)}
    return row, _medical_observations(visible, said)


# === Inspection ===

_DEFECTS = ("scratch", "dent", "contamination")
_OK_FRACTION = 0.55
# A defective part shows its signature in all three sources with this
# probability, otherwise in two; an ok part shows a false alarm (random type)
# per source with probability _FALSE_ALARM, never two agreeing.
_ALL_THREE = 0.25
_FALSE_ALARM = 0.4
_MISSING_SENSOR = 0.03


def _inspection_signatures(rng, label):
    """Per-source signature: a defect name or None for camera, sensors, microphone."""
    if label != "ok":
        shown = [True] * 3
        if rng.random() >= _ALL_THREE:
            shown[int(rng.integers(3))] = False
        return [label if s else None for s in shown]
    while True:
        signatures = [
            str(rng.choice(_DEFECTS)) if rng.random() < _FALSE_ALARM else None for _ in range(3)
        ]
        named = [s for s in signatures if s is not None]
        if len(named) == len(set(named)):
            return signatures


def _part_image(rng, defect, size):
    yy, xx = _grid(size)
    image = np.full((size, size, 3), rng.uniform(35, 60)) * np.array([0.95, 1.0, 1.08])

    # A turned flange: disc, centre bore, bolt holes, concentric tool marks.
    cy, cx = 0.5 + rng.uniform(-0.04, 0.04, size=2)
    radius = rng.uniform(0.36, 0.42)
    r = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    part = _coverage(r - radius, size) * _coverage(0.1 - r, size)
    holes = int(rng.integers(4, 7))
    angle0 = rng.uniform(0, 2 * np.pi)
    for k in range(holes):
        angle = angle0 + 2 * np.pi * k / holes
        hy, hx = cy + 0.27 * np.sin(angle), cx + 0.27 * np.cos(angle)
        part = part * (1.0 - _ellipse(yy, xx, hy, hx, 0.035, 0.035, size))
    tint = np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.04, 0.04, size=3)
    light = rng.uniform(0, 2 * np.pi)
    surface = (
        rng.uniform(150, 185)
        + 4.0 * np.sin(2 * np.pi * rng.uniform(20, 35) * r + rng.uniform(0, 2 * np.pi))
        + 25.0 * ((yy - cy) * np.sin(light) + (xx - cx) * np.cos(light)) / radius
        + rng.normal(0.0, 3.0, size=r.shape)
    )
    image = _blend(image, surface[..., None] * tint, part)

    def on_part():
        while True:
            py, px = rng.uniform(0.15, 0.85, size=2)
            if 0.15 < np.hypot(py - cy, px - cx) < radius - 0.08:
                return py, px

    if defect == "scratch":
        py, px = on_part()
        angle, length = rng.uniform(0, np.pi), rng.uniform(0.18, 0.35)
        u = np.linspace(-0.5, 0.5, 48)[:, None] * length
        points = np.concatenate([py + u * np.sin(angle), px + u * np.cos(angle)], axis=1)
        line = _coverage(_polyline_distance(yy, xx, points) - 0.6 / size, size) * part
        image = image + rng.choice([-1.0, 1.0]) * rng.uniform(35, 50) * line[..., None]
    elif defect == "dent":
        py, px = on_part()
        sigma = rng.uniform(0.035, 0.055)
        blob = _gaussian(yy, xx, py, px, sigma)
        # Lit on one side, shadowed on the other, like a shallow crater.
        relief = ((yy - py) * np.sin(light) + (xx - px) * np.cos(light)) / sigma * blob
        image = image + (40.0 * relief - 15.0 * blob)[..., None] * part[..., None]
    elif defect == "contamination":
        residue = np.array([(120, 82, 40), (78, 128, 62), (60, 70, 120)][int(rng.integers(3))])
        for _ in range(int(rng.integers(3, 7))):
            py, px = on_part()
            spot_r = rng.uniform(0.015, 0.035)
            spot = _ellipse(yy, xx, py, px, spot_r, spot_r * rng.uniform(0.7, 1.3), size)
            image = _blend(image, residue, spot * part * rng.uniform(0.45, 0.65))

    image = image + rng.normal(0.0, 5.0, size=image.shape)
    return _to_uint8(image)


def _sensor_readings(rng, load, defect):
    """Temperature (C), vibration RMS (mm/s), current (A); load shifts all three."""
    temperature = 42.0 + 12.0 * load + rng.normal(0.0, 1.5)
    vibration = (1.0 + 0.9 * load) * np.exp(rng.normal(0.0, 0.08))
    current = 8.0 + 5.0 * load + rng.normal(0.0, 0.4)
    if defect == "scratch":  # a worn tool chatters
        vibration += rng.uniform(1.1, 1.8)
    elif defect == "dent":  # a clamping fault or collision draws current
        current += rng.uniform(2.2, 3.4)
    elif defect == "contamination":  # a coolant fault runs hot
        temperature += rng.uniform(6.0, 10.0)
    values = {"temperature": temperature, "vibration_rms": vibration, "current": current}
    return {
        name: "" if rng.random() < _MISSING_SENSOR else f"{value:.3f}"
        for name, value in values.items()
    }


def _machine_sound(rng, load, defect):
    t = _time_axis()
    # Motor hum whose speed follows the load, with harmonics and mains buzz.
    hum_hz = 95.0 + 40.0 * load + rng.normal(0.0, 1.5)
    signal = sum(
        rng.uniform(0.7, 1.3) / k**1.2 * np.sin(2 * np.pi * k * hum_hz * t + rng.uniform(0, 2 * np.pi))
        for k in range(1, 7)
    )
    signal = signal + rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * 50.0 * t + rng.uniform(0, 2 * np.pi))
    signal = signal + rng.uniform(0.05, 0.15) * _band_noise(rng, t.size, 20, 400)
    if defect == "scratch":  # tool chatter: an intermittent high squeal
        squeal = np.sin(2 * np.pi * rng.uniform(2500, 3800) * t)
        signal = signal + 0.3 * squeal * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 4) * t))
    elif defect == "dent":  # a loose clamp rattles: ringing knocks
        period = 1.0 / rng.uniform(6, 11)
        ring_hz = rng.uniform(700, 1400)
        since = (t + rng.uniform(0, period)) % period
        signal = signal + 1.2 * np.exp(-since / 0.012) * np.sin(2 * np.pi * ring_hz * since)
    elif defect == "contamination":  # grit in the coolant: broadband grinding
        grind = _band_noise(rng, t.size, 1200, 3200)
        signal = signal + 0.35 * grind * (0.7 + 0.3 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
    signal = signal + 0.01 * rng.normal(size=t.shape)
    return np.clip(_normalise_rms(signal, rng.uniform(0.08, 0.15)), -1.0, 1.0)


# The reading that shows each defect's sensor signature.
_TELLTALE_SENSOR = {"scratch": "vibration_rms", "dent": "current", "contamination": "temperature"}


def _inspection_label(rng):
    return "ok" if rng.random() < _OK_FRACTION else _DEFECTS[int(rng.integers(3))]


def _inspection_observations(camera, sensors, microphone, missing):
    """What each source shows, given the signatures and the missing readings."""
    return {"part_image": camera or "none", "readings": _sensor_observation(sensors, missing),
            "machine_sound": microphone or "none"}


def _sensor_observation(signature, missing):
    """What the readings show: the signature, unless its telltale reading is
    missing; then only which telltale readings are missing."""
    if signature is not None and _TELLTALE_SENSOR[signature] not in missing:
        return signature
    return "none" + "".join(f"|no {c}" for c in sorted(missing) if c in _TELLTALE_SENSOR.values())


def inspection_cues(rng):
    """Draws one example's label and the signature each source shows."""
    label = _inspection_label(rng)
    camera, sensors, microphone = _inspection_signatures(rng, label)
    missing = {c for c in _TELLTALE_SENSOR.values() if rng.random() < _MISSING_SENSOR}
    return label, _inspection_observations(camera, sensors, microphone, missing)


def _inspection_example(rng, index, out_dir, image_size):
    label = _inspection_label(rng)
    camera, sensors, microphone = _inspection_signatures(rng, label)
    load = rng.uniform(0.0, 1.0)  # machine state, independent of the label
    part_image = f"images/{index:05d}.jpg"
    machine_sound = f"audio/{index:05d}.wav"
    _write_image(out_dir / part_image, _part_image(rng, camera, image_size))
    _write_wav(out_dir / machine_sound, _machine_sound(rng, load, microphone))
    row = {"part_image": part_image, "machine_sound": machine_sound, "label": label}
    row.update(_sensor_readings(rng, load, sensors))
    missing = {column for column in _TELLTALE_SENSOR.values() if row[column] == ""}
    return row, _inspection_observations(camera, sensors, microphone, missing)


# === Public API ===

_EXAMPLE_MAKERS = {
    "sentiment": _sentiment_example,
    "medical": _medical_example,
    "inspection": _inspection_example,
}
# Each app's label-and-cues distribution, without files: what the ceiling samples.
CUE_SAMPLERS = {
    "sentiment": sentiment_cues,
    "medical": medical_cues,
    "inspection": inspection_cues,
}


def _check_integer(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(
            f"Expected {name} to be an integer >= {minimum}. Received: {name}={value!r}"
        )


def generate(app, out_dir, num_examples=600, seed=0, image_size=64):
    """Writes a demo data set for one application template.

    Files go to `out_dir/images/` (PNG; grayscale for "medical", JPEG for
    "inspection") and `out_dir/audio/` (16 kHz mono 16-bit WAV); the manifest
    `out_dir/manifest.csv` (header row, one row per example, paths relative to
    `out_dir`) is written last, so an interrupted run never leaves a manifest
    that lists missing files. Example `i` depends only on `(app, seed, i)`,
    so a larger `num_examples` extends a smaller data set.

    Args:
        app: one of "sentiment", "medical", "inspection".
        out_dir: folder to write into; created if needed.
        num_examples: number of examples (manifest rows).
        seed: non-negative integer; the same seed gives identical files.
        image_size: side of the square images, in pixels.

    Returns:
        `pathlib.Path` of the manifest.

    Example:
    >>> import csv, tempfile
    >>> path = generate("inspection", tempfile.mkdtemp(), num_examples=3)
    >>> rows = list(csv.DictReader(open(path)))
    >>> len(rows), sorted(rows[0])[:2]
    (3, ['current', 'label'])
    """
    if app not in _EXAMPLE_MAKERS:
        raise ValueError(
            f"Expected app to be one of {sorted(_EXAMPLE_MAKERS)}. Received: app={app!r}"
        )
    _check_integer("num_examples", num_examples, minimum=1)
    _check_integer("seed", seed, minimum=0)
    _check_integer("image_size", image_size, minimum=16)

    out_dir = pathlib.Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    # An old manifest would point at files this run is about to overwrite.
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)

    make_example = _EXAMPLE_MAKERS[app]
    rows, cues = [], []
    for index in range(int(num_examples)):
        rng = np.random.default_rng([int(seed), _APP_SALT[app], index])
        row, example_cues = make_example(rng, index, out_dir, int(image_size))
        rows.append(row)
        cues.append({"row": index + 1, **example_cues, "label": row[DEMO_APPS[app].label_column]})
    _write_csv(out_dir / CUES_NAME, ["row", *DEMO_APPS[app].cue_sources, "label"], cues)
    return _write_csv(out_dir / MANIFEST_NAME, list(DEMO_APPS[app].columns), rows)


def generate_sentiment(out_dir, num_examples=600, seed=0, image_size=64):
    """Writes the multimodal sentiment demo set (review, photo, voice -> label).

    Args:
        out_dir: folder to write into.
        num_examples: number of examples.
        seed: non-negative integer seed.
        image_size: side of the square PNG photos, in pixels.

    Returns:
        `pathlib.Path` of `out_dir/manifest.csv`.

    Example:
    >>> import tempfile
    >>> generate_sentiment(tempfile.mkdtemp(), num_examples=2).name
    'manifest.csv'
    """
    return generate("sentiment", out_dir, num_examples, seed, image_size)


def generate_medical(out_dir, num_examples=600, seed=0, image_size=64):
    """Writes the medical demo set (grayscale radiograph, note -> findings).

    Args:
        out_dir: folder to write into.
        num_examples: number of examples.
        seed: non-negative integer seed.
        image_size: side of the square PNG radiographs, in pixels.

    Returns:
        `pathlib.Path` of `out_dir/manifest.csv`.

    Example:
    >>> import tempfile
    >>> generate_medical(tempfile.mkdtemp(), num_examples=2).name
    'manifest.csv'
    """
    return generate("medical", out_dir, num_examples, seed, image_size)


def generate_inspection(out_dir, num_examples=600, seed=0, image_size=64):
    """Writes the inspection demo set (part image, sensors, machine sound -> label).

    Args:
        out_dir: folder to write into.
        num_examples: number of examples.
        seed: non-negative integer seed.
        image_size: side of the square JPEG part images, in pixels.

    Returns:
        `pathlib.Path` of `out_dir/manifest.csv`.

    Example:
    >>> import tempfile
    >>> generate_inspection(tempfile.mkdtemp(), num_examples=2).name
    'manifest.csv'
    """
    return generate("inspection", out_dir, num_examples, seed, image_size)
