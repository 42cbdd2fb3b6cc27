"""Procedural demo data for the three application templates.

Each generator writes real files (PNG/JPEG images, 16-bit mono WAV clips) and a
CSV manifest, deterministically from a seed, with numpy and Pillow only.

The label-generating processes are built so that fusion matters: every example
has a hidden cue per modality, and the label needs cues from several
modalities. Label-independent nuisance (lighting, speaker pitch, patient
position, machine load, ...) varies on top. A model that reads every
modality's cue can reach over 90% accuracy (exact match for "medical"); the
best use of one modality alone reaches about 40-75% of that (sentiment 59%,
medical about 70% radiograph / 60% note / 40% ward, inspection about 71% for
each signature source and 56% for the machine id, on average).

- "sentiment": text, photo and voice each carry a cue in {-1, 0, +1}; the label
  is the sign of their sum (negative / neutral / positive).
- "medical": nodule and cardiomegaly are mostly seen on the radiograph,
  pneumonia mostly in the note; effusions and nodules are seen on the image
  when large, and the note mentions mainly the small ones the image misses;
  the ward (a category) sets how common each finding is.
- "inspection": the camera, the sensors, the microphone and the spindle
  current trace each may show a defect signature (or a harmless false alarm);
  a part is defective when at least two of them agree on the defect type; the
  machine that made it (a category) sets how likely each defect is.

This module writes a data set (`generate`); the rest of the package draws it:
`apps` describes each app's manifest, `sentiment`, `medical` and `inspection`
draw one app's examples each, with the shared helpers in `drawing`, `sound`
and `text`; `files` holds the atomic file writers.

Example:
>>> import tempfile
>>> manifest = generate("sentiment", tempfile.mkdtemp(), num_examples=4)
>>> manifest.name
'manifest.csv'
"""

import pathlib

import numpy as np

from mmkeras.data.demo.apps import APP_COLUMNS, DEMO_APPS, DemoApp  # noqa: F401  (re-exported)
from mmkeras.data.demo.inspection import inspection_cues, inspection_example
from mmkeras.data.demo.medical import medical_cues, medical_example
from mmkeras.data.demo.sentiment import sentiment_cues, sentiment_example
# tests/test_ceiling.py reads the cue probabilities from here.
from mmkeras.data.demo.sentiment import _SENTIMENT_CUE_PROBS  # noqa: F401
from mmkeras.data.demo.sound import AUDIO_SECONDS, SAMPLE_RATE  # noqa: F401  (re-exported)

# Module globals, looked up when `generate` runs, so that a test can replace
# one (a writer that crashes midway) with `monkeypatch.setattr(demo, ...)`.
from mmkeras.data.demo.files import write_csv as _write_csv
from mmkeras.data.demo.files import write_image as _write_image
from mmkeras.data.demo.files import write_series as _write_series
from mmkeras.data.demo.files import write_wav as _write_wav
from mmkeras.registry import lookup

MANIFEST_NAME = "manifest.csv"
# The hidden cues each example was drawn with, keyed by manifest row; the
# manifest itself (what a model sees) never holds them. See `mmkeras.data.ceiling`.
CUES_NAME = "cues.csv"

# Mixed into every example's seed so that the apps do not share random draws.
_APP_SALT = {"sentiment": 101, "medical": 202, "inspection": 303}

# Each app's example maker: (rng, index, image_size) -> (manifest row, cues,
# {relative path: image or sound}). Makers only draw; `generate` writes, so
# every file goes through the atomic writers in `files`.
_EXAMPLE_MAKERS = {
    "sentiment": sentiment_example,
    "medical": medical_example,
    "inspection": inspection_example,
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
    "inspection"), `out_dir/audio/` (16 kHz mono 16-bit WAV) and
    `out_dir/traces/` (inspection's current traces, `.npy` and `.csv`); the manifest
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
    (3, ['current', 'current_trace'])
    """
    make_example = lookup(_EXAMPLE_MAKERS, app, "demo app")
    _check_integer("num_examples", num_examples, minimum=1)
    _check_integer("seed", seed, minimum=0)
    _check_integer("image_size", image_size, minimum=16)

    out_dir = pathlib.Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    (out_dir / "traces").mkdir(parents=True, exist_ok=True)
    # An old manifest would point at files this run is about to overwrite.
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)

    rows, cues = [], []
    for index in range(int(num_examples)):
        rng = np.random.default_rng([int(seed), _APP_SALT[app], index])
        row, example_cues, contents = make_example(rng, index, int(image_size))
        for path, content in contents.items():
            suffix = pathlib.Path(path).suffix
            write = _write_wav if suffix == ".wav" else _write_series if suffix in (".npy", ".csv") else _write_image
            write(out_dir / path, content)
        rows.append(row)
        cues.append({"row": index + 1, **example_cues, "label": row[DEMO_APPS[app].label_column]})
    demo_app = DEMO_APPS[app]
    _write_csv(out_dir / CUES_NAME, ["row", *demo_app.cue_sources, *demo_app.cue_locations, "label"], cues)
    return _write_csv(out_dir / MANIFEST_NAME, list(DEMO_APPS[app].columns), rows)
