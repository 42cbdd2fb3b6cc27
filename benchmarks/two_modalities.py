"""The label needs two modalities: a digit shown in an image, a digit spoken in
a clip, label = whether their sum is even. Each modality alone can do no
better than chance (ceiling 0.5); both together allow 1.0.

Usage: python benchmarks/two_modalities.py [--seeds 0 1 2] [--examples 1500]
                                           [--images handwritten|glyphs]

The images are, by default, real handwritten digits: scikit-learn's 1,797
scans (8 x 8, 16 grey levels), each used at most once, scaled up and centred
on black as MNIST centres its digits. `--images glyphs` draws a digit glyph
(Pillow's default font) at a random position, size and angle on a noisy
background instead: a harder task, on which a plain two-CNN model stays at
chance too (see `benchmarks/README.md`). The clip is synthetic: a vowel-like
"word" per digit (a pitched harmonic voice whose two formants glide along a
path of their own, at a random pitch, speed, loudness and onset) in one
second of 16 kHz noise. The model is mmkeras's defaults: no fusion, training
or encoder option is set. Target (issue 8): test accuracy >= 0.85 with 1,500
rows. Writes `runs/benchmarks/two_modalities.json` and prints a Markdown
table with the fused model and both unimodal baselines.
"""

import argparse
import csv
import io
import json
import os
import statistics
import sys
import tempfile
import time
import wave

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from sklearn.datasets import load_digits

SAMPLE_RATE = 16000
IMAGE_SIZE = 32
LABELS = ["even", "odd"]
PLACEMENTS = ("anywhere", "centred")
IMAGES = ("handwritten", "glyphs")
# Formant paths (F1 start, F1 end, F2 start, F2 end), Hz: one "word" per digit.
_FORMANTS = [
    (300, 700, 2300, 1200), (700, 300, 1200, 2300), (500, 500, 900, 2100), (800, 450, 1800, 1000),
    (350, 350, 2500, 2500), (650, 650, 1100, 1100), (400, 750, 900, 1500), (750, 500, 2200, 2600),
    (300, 500, 800, 800), (550, 300, 1500, 2400),
]


def digit_image(rng, digit, size=IMAGE_SIZE, placement="anywhere"):
    """uint8 `[size, size, 3]`: the digit in a random grey on a noisy background.

    `placement="anywhere"`: at a random position, size and angle (up to 20
    degrees); `"centred"`: near the centre (within 10% of the free room), as
    digit datasets crop and centre them (MNIST), at up to 10 degrees.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}. Received: {placement!r}")
    scale = 4
    canvas = Image.new("L", (size * scale, size * scale), 0)
    font = ImageFont.load_default(size=int(rng.uniform(0.55, 0.8) * size * scale))
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), str(digit), font=font)
    room_x, room_y = size * scale - (right - left), size * scale - (bottom - top)
    low, high, angle = (0.1, 0.9, 20) if placement == "anywhere" else (0.4, 0.6, 10)
    xy = (rng.uniform(low, high) * room_x - left, rng.uniform(low, high) * room_y - top)
    draw.text(xy, str(digit), fill=255, font=font)
    canvas = canvas.rotate(rng.uniform(-angle, angle), resample=Image.BILINEAR)
    glyph = np.asarray(canvas.resize((size, size), Image.BILINEAR), "float32") / 255.0
    background, ink = rng.uniform(20, 110), rng.uniform(150, 250)
    grey = background + (ink - background) * glyph + rng.normal(0, 12, glyph.shape)
    tint = 1.0 + rng.uniform(-0.15, 0.15, size=3)
    return np.clip(grey[..., None] * tint, 0, 255).astype("uint8")


def handwritten_image(scan, size=IMAGE_SIZE):
    """uint8 `[size, size, 3]`: an 8 x 8 scan scaled to 3/4 of the side and
    centred on black, as MNIST centres its 20 x 20 digits in 28 x 28."""
    side = size * 3 // 4
    digit = Image.fromarray((scan / 16.0 * 255).astype("uint8")).resize((side, side), Image.BILINEAR)
    canvas = np.zeros((size, size), "uint8")
    top = (size - side) // 2
    canvas[top:top + side, top:top + side] = np.asarray(digit)
    return np.repeat(canvas[..., None], 3, axis=-1)


def spoken_digit(rng, digit, seconds=1.0):
    """float `[seconds * 16000]` in [-1, 1]: the digit's word in background noise."""
    f1a, f1b, f2a, f2b = (f * rng.uniform(0.92, 1.08) for f in _FORMANTS[digit])
    duration = rng.uniform(0.3, 0.55)
    onset = rng.uniform(0.05, seconds - duration - 0.05)
    t = np.arange(int(duration * SAMPLE_RATE)) / SAMPLE_RATE
    progress = t / duration
    f0 = rng.uniform(90, 230) * (1.0 + rng.uniform(-0.15, 0.15) * progress)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    formants = [(f1a + (f1b - f1a) * progress, 90.0), (f2a + (f2b - f2a) * progress, 140.0)]
    voice = np.zeros_like(t)
    for k in range(1, int(3500 / f0.min())):
        gain = sum(np.exp(-0.5 * ((k * f0 - centre) / width) ** 2) for centre, width in formants)
        voice += gain * np.sin(k * phase)
    envelope = np.sin(np.pi * progress) ** 0.5
    signal = rng.normal(0, rng.uniform(0.005, 0.03), int(seconds * SAMPLE_RATE))
    start = int(onset * SAMPLE_RATE)
    signal[start:start + t.size] += rng.uniform(0.1, 0.3) * envelope * voice / np.abs(voice).max()
    return np.clip(signal, -1.0, 1.0)


def generate(out_dir, num_examples, seed, images="handwritten", placement="anywhere"):
    """Writes images, WAV files and `manifest.csv`; returns the manifest path.

    `images="handwritten"` shows each of scikit-learn's scans at most once,
    so no test image is seen in training and `num_examples` <= 1,797;
    `"glyphs"` draws a glyph per row (`digit_image`, at `placement`).
    """
    if images not in IMAGES:
        raise ValueError(f"images must be one of {IMAGES}. Received: {images!r}")
    rng = np.random.default_rng(seed)
    if images == "handwritten":
        scans = load_digits()  # 1,797 scans, 8 x 8 in [0, 16], and their digits
        if num_examples > len(scans.target):
            raise ValueError(f"images='handwritten' has {len(scans.target)} scans, each shown once. "
                             f"Received: num_examples={num_examples}")
        unused = {d: list(rng.permutation(np.flatnonzero(scans.target == d))) for d in range(10)}
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "audio"), exist_ok=True)
    rows = []
    for i in range(num_examples):
        if images == "handwritten":
            shown = int(rng.choice([d for d in range(10) if unused[d]]))
            said = int(rng.integers(10))
            picture = handwritten_image(scans.images[unused[shown].pop()])
        else:
            shown, said = (int(d) for d in rng.integers(0, 10, size=2))
            picture = digit_image(rng, shown, placement=placement)
        image, clip = f"images/{i:05d}.png", f"audio/{i:05d}.wav"
        Image.fromarray(picture).save(os.path.join(out_dir, image))
        _write_wav(os.path.join(out_dir, clip), spoken_digit(rng, said))
        rows.append({"digit_image": image, "spoken_digit": clip, "label": LABELS[(shown + said) % 2]})
    manifest = os.path.join(out_dir, "manifest.csv")
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def _write_wav(path, samples):
    with wave.open(path, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes((samples * 32767).astype("<i2").tobytes())


def app_config(manifest, epochs=None):
    """The app a user would write for this data: inputs and labels, nothing tuned."""
    from mmkeras.app import App

    return App.from_config(
        {"name": "two_modalities",
         "data": {"manifest": manifest, "label_column": "label", "labels": LABELS,
                  "validation_fraction": 0.15, "test_fraction": 0.15},
         "inputs": [{"kind": "image", "name": "digit_image", "size": [IMAGE_SIZE, IMAGE_SIZE]},
                    {"kind": "audio", "name": "spoken_digit", "sample_rate": SAMPLE_RATE, "seconds": 1.0}],
         "training": {} if epochs is None else {"epochs": epochs},
         "evaluation": {"headline": "accuracy"}},
        file=os.path.join(os.path.dirname(manifest), "app.yaml"))


def run_once(seed, examples, epochs=None, images="handwritten", placement="anywhere"):
    from mmkeras.app import run_app

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = generate(os.path.join(tmp, "data"), examples, seed, images, placement)
        report = run_app(app_config(manifest, epochs), work_dir=tmp, export=False, verbose=0,
                         seed=seed)["report"]
    scores = {"model": report["headline"]["value"],
              **{name: b["value"] for name, b in report["baselines"]["baselines"].items()}}
    return {"seed": seed, "seconds": time.perf_counter() - start, "scores": scores}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--examples", type=int, default=1500)
    parser.add_argument("--epochs", type=int, help="epochs (default: mmkeras's)")
    parser.add_argument("--images", choices=IMAGES, default="handwritten",
                        help="scikit-learn's handwritten scans, or drawn glyphs (see generate)")
    parser.add_argument("--placement", choices=PLACEMENTS, default="anywhere",
                        help="where a glyph stands in its image (see digit_image)")
    parser.add_argument("--out", default="runs/benchmarks/two_modalities.json")
    args = parser.parse_args(argv)
    runs = [run_once(seed, args.examples, args.epochs, args.images, args.placement) for seed in args.seeds]
    lines = [f"| model | accuracy, mean (spread) over seeds {args.seeds} | ceiling |", "|---|---|---|"]
    for name in runs[0]["scores"]:
        values = [r["scores"][name] for r in runs]
        ceiling = 1.0 if name == "model" else 0.5
        lines.append(f"| {name} | {statistics.mean(values):.3f} ({max(values) - min(values):.3f}) | {ceiling} |")
    seconds = [r["seconds"] for r in runs]
    lines.append(f"| wall time | {statistics.mean(seconds):.0f} s | |")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"images": args.images, "runs": runs, "cpus": os.cpu_count()}, f, indent=2)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
