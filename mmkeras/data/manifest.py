"""Manifests (CSV / JSONL): reading and row-by-row validation.

One row per example. Image and audio columns hold file paths (relative to
the manifest's folder, or any `tf.io.gfile` path), text columns hold text,
sensor features are numeric columns (empty = missing), and the label column
holds class names (`|`-separated for multi-label). An optional `split` column
(`train`, `val`/`validation` or `test`) puts each row in that split instead of
the random one. Every row is checked before training, and every problem is
reported with manifest, row, column and reason: nothing is silently dropped.
"""

import collections
import csv
import dataclasses
import json
import math
import os
import re

import numpy as np
import tensorflow as tf

from mmkeras.data.decode import check_wav, decode_image

COMPRESSED_AUDIO = (".flac", ".ogg", ".mp3")

# What csv.DictReader puts in the fields a short row lacks.
SHORT_ROW = "\x00short row"

# The optional column that fixes each row's split, and the split each of its values names.
SPLIT_COLUMN = "split"
SPLIT_VALUES = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}

RowError = collections.namedtuple("RowError", ["manifest", "row", "column", "reason"])
RowError.__str__ = lambda e: f"{e.manifest}, row {e.row}, column {e.column!r}: {e.reason}"


class ManifestError(ValueError):
    """Raised with every `RowError` of a manifest (first 50 in the message)."""

    def __init__(self, errors):
        self.errors = list(errors)
        lines = [str(e) for e in self.errors[:50]]
        more = len(self.errors) - len(lines)
        if more > 0:
            lines.append(f"... and {more} more")
        super().__init__(f"{len(self.errors)} problem(s) in the data:\n  " + "\n  ".join(lines))


@dataclasses.dataclass
class Examples:
    """Validated examples, column by column, ready for `make_dataset`.

    `columns[name]`: absolute paths for image/audio ("" = missing), strings
    for text, float32 `[N, F]` for sensors. `labels`: int class ids `[N]`,
    or multi-hot float32 `[N, C]`. `rows`: manifest row number of each.
    `splits`: each row's `"train"`, `"validation"` or `"test"` from the
    manifest's `split` column; None for a manifest without one.
    """

    columns: dict
    labels: np.ndarray
    rows: list
    splits: np.ndarray | None = None

    def __len__(self):
        return len(self.rows)


def read_manifest(path):
    """Rows of a CSV (header row) or JSONL manifest as a list of dicts."""
    path = os.fspath(path)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"Manifest not found: {path}")
    with tf.io.gfile.GFile(path, "r") as f:
        if path.endswith((".jsonl", ".json")):
            rows = []
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise ManifestError([RowError(path, number, "*", f"not valid JSON: {e}")])
                    if not isinstance(row, dict):
                        raise ManifestError([RowError(path, number, "*", f"expected a JSON object "
                                                      f"per line, got {type(row).__name__}")])
                    rows.append(row)
            return rows
        return _read_csv(path, f)


# A text cell may hold a long document; the csv module's default limit is 128 KiB.
MAX_CELL_BYTES = 64 * 1024 * 1024


def _read_csv(path, f):
    if csv.field_size_limit() < MAX_CELL_BYTES:
        csv.field_size_limit(MAX_CELL_BYTES)
    reader = csv.DictReader(f, restval=SHORT_ROW)
    try:
        return list(reader)
    except csv.Error as e:
        # Data rows count from 1 after the header line.
        raise ManifestError([RowError(path, max(reader.line_num - 1, 1), "*", f"not valid CSV: {e}")])


def load_examples(path, specs, label_column, labels, multi_label=False, on_error="raise",
                  report_path=None, columns=None, allow_outside_paths=False):
    """Reads and validates a manifest against the modality specs and labels.

    Args:
        path: the manifest (`.csv`, or `.jsonl`).
        specs: modality specs; image/audio/text specs read the column named
            like the spec, sensor specs read one column per feature.
        label_column: the column holding class names.
        labels: known class names.
        multi_label: labels are `|`-separated sets (may be empty).
        on_error: `"raise"` stops with the full list of problems; `"skip"`
            drops bad rows and writes them to `report_path`.
        report_path: CSV of skipped rows (default: beside the manifest,
            `<manifest>.skipped.csv`).
        columns: `{input name: manifest column}` for image/audio/text inputs
            whose column is named otherwise (an app's `column:` key).
        allow_outside_paths: accept file paths that leave the manifest's
            folder (absolute paths elsewhere, `..`, symlinks out, URLs). Off
            by default: a manifest from elsewhere cannot make training or
            validation read arbitrary files.

    A `split` column, where the manifest has one and no input reads it, is
    read into `Examples.splits`.

    Returns:
        `(Examples, errors)`.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip'. Received: {on_error!r}")
    path = os.fspath(path)
    windowed = [spec.name for spec in specs if spec.kind == "sensor" and spec.window]
    if windowed:
        raise ValueError(
            f"Sensor input(s) {windowed} take windows of readings [window, features]; a manifest row "
            f"holds one value per feature column. Feed such inputs from a tf.data pipeline of your "
            f"own (a [window, features] tensor per example), or drop `window`.")
    rows = read_manifest(path)
    column_of = _column_lookup(specs, columns)
    _check_columns(path, rows, specs, label_column, column_of)
    # A column some input reads is that input's, even when it is called `split`.
    # Any row's key counts: a JSONL object may leave a key out that others have.
    has_split = SPLIT_COLUMN in _columns_of(rows) and SPLIT_COLUMN not in _needed_columns(
        specs, label_column, column_of)
    base = os.path.dirname(path)
    label_ids = {name: i for i, name in enumerate(labels)}
    good, errors = [], []
    for number, row in enumerate(rows, start=1):
        parsed, row_errors = _parse_row(path, base, number, row, specs, label_column, label_ids,
                                        multi_label, column_of, has_split, allow_outside_paths)
        if row_errors:
            errors.extend(row_errors)
        else:
            good.append((number, parsed))
    if errors and on_error == "raise":
        raise ManifestError(errors)
    if errors:
        _write_report(report_path or f"{path}.skipped.csv", errors)
    if not good:
        raise ManifestError(errors or [RowError(path, 0, "*", "the manifest has no rows")])
    return _to_examples(good, specs, len(labels), multi_label, has_split), errors


def _column_lookup(specs, columns):
    """`spec -> manifest column` for image/audio/text specs, checking `columns`."""
    columns = dict(columns or {})
    by_name = {spec.name: spec for spec in specs}
    for name in columns:
        if name not in by_name:
            raise ValueError(f"A column is mapped for input {name!r}, which is not one of the "
                             f"inputs {sorted(by_name)}.")
        if by_name[name].kind == "sensor":
            raise ValueError(f"Input {name!r} is a sensor input: its `features` name its columns; "
                             f"`column` is for image, audio and text inputs.")
    return lambda spec: columns.get(spec.name, spec.name)


def _check_columns(path, rows, specs, label_column, column_of):
    if not rows:
        raise ManifestError([RowError(path, 0, "*", "the manifest has no rows")])
    present = _columns_of(rows)
    missing = [c for c in _needed_columns(specs, label_column, column_of) if c not in present]
    if missing:
        raise ManifestError([RowError(path, 1, c, f"column not found (columns: {sorted(present)})")
                             for c in missing])


def _columns_of(rows):
    """Every column any row has: CSV rows share the header; JSONL objects may differ."""
    return {key for row in rows for key in row if key is not None}


def _needed_columns(specs, label_column, column_of):
    needed = [label_column]
    for spec in specs:
        needed += spec.features if spec.kind == "sensor" else [column_of(spec)]
    return needed


def _parse_row(path, base, number, row, specs, label_column, label_ids, multi_label, column_of, has_split,
               allow_outside_paths):
    parsed, errors = {}, []

    def fail(column, reason):
        errors.append(RowError(path, number, column, reason))

    if None in row:  # csv.DictReader puts surplus fields under the key None
        fail("*", f"{len(row[None])} more field(s) than the header has")
    needed = _needed_columns(specs, label_column, column_of) + ([SPLIT_COLUMN] if has_split else [])
    for column in needed:
        if column == SPLIT_COLUMN and column not in row:
            fail(column, f"no split, where other rows have one; expected one of {list(SPLIT_VALUES)}")
        elif column not in row:
            fail(column, "missing field (use an empty value for a missing modality)")
        elif row[column] == SHORT_ROW:
            fail(column, "the row has fewer fields than the header")
    if errors:
        return {}, errors

    for spec in specs:
        if spec.kind == "sensor":
            parsed[spec.name] = [_parse_number(row.get(f), lambda r, f=f: fail(f, r)) for f in spec.features]
        elif spec.kind == "text":
            value = row.get(column_of(spec))
            if value is not None and not isinstance(value, str):
                fail(column_of(spec), f"expected text, got {type(value).__name__} {value!r}")
                value = None
            # Blank text is missing text, as the model's TextPresence sees it.
            parsed[spec.name] = value if value and value.strip() else ""
        else:
            parsed[spec.name] = _check_file(base, row.get(column_of(spec)), spec,
                                            lambda r, c=column_of(spec): fail(c, r), allow_outside_paths)
    present = [v for spec in specs for v in [parsed.get(spec.name)]
               if v not in ("", None) and not (isinstance(v, list) and all(math.isnan(x) for x in v))]
    if not present and not errors:
        fail("*", "every modality of this example is missing")
    parsed["__label__"] = _parse_label(row.get(label_column), label_ids, multi_label,
                                       lambda r: fail(label_column, r))
    if has_split:
        parsed["__split__"] = SPLIT_VALUES.get(str(row[SPLIT_COLUMN]).strip().lower())
        if parsed["__split__"] is None:
            fail(SPLIT_COLUMN, f"unknown split {row[SPLIT_COLUMN]!r}; expected one of {list(SPLIT_VALUES)}")
    return parsed, errors


def _parse_number(value, fail):
    if value is None or (isinstance(value, str) and value.strip() in ("", "nan", "NaN")):
        return float("nan")
    try:
        number = float(value)
    except (TypeError, ValueError):
        fail(f"not a number: {value!r}")
        return float("nan")
    if math.isinf(number):
        fail(f"infinite value: {value!r}")
    return number


def _check_file(base, value, spec, fail, allow_outside_paths):
    """Resolves a path and checks that it stays in the data root (unless
    allowed), that the file exists and that it decodes (within the image
    spec's pixel limit)."""
    kind = spec.kind
    if value is None or str(value).strip() == "":
        return ""
    value = str(value).strip()
    path = value if "://" in value or os.path.isabs(value) else os.path.join(base, value)
    if not allow_outside_paths and not _inside(base, path):
        fail(f"path {value!r} leaves the manifest's folder {os.path.abspath(base or '.')}; set "
             f"data.allow_outside_paths: true (load_examples(allow_outside_paths=True)) to allow it")
        return ""
    if not tf.io.gfile.exists(path):
        fail(f"file not found: {path}")
        return ""
    try:
        content = raw_file_bytes(path, kind)
        if not content:
            # An empty cell is a missing input; an empty file is a failed copy.
            fail(f"file is empty: {path} (leave the cell empty for a missing {kind})")
            return ""
        if kind == "image":
            decode_image(content, (1, 1), spec.name, spec.max_pixels)
        else:
            check_wav(tf.constant(content), spec.name)  # the pipeline's and serving's message
            if tf.audio.decode_wav(content).audio.shape[0] == 0:
                fail(f"audio file {path} has no samples")
                return ""
    except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file
        reason = _decoder_reason(e)
        fail(f"cannot decode {kind} file {path}: {reason}")
        return ""
    return path


def _decoder_reason(error):
    """A decoder's message without TensorFlow's wrapping: an in-graph check's own
    words (`Input voice must be ...`), else the last line of the op's message."""
    text = str(getattr(error, "message", None) or error).strip()
    if not text:
        return type(error).__name__
    # Eager checks say "... Summarized data: b'<message>'", graph ones "assertion failed: [<message>]".
    match = re.search(r"Summarized data: b'(.*)'|assertion failed: \[(.*?)\]", text, re.S)
    if match:
        return next(group for group in match.groups() if group)
    # "{{function_node __wrapped__DecodeImage_device_...}} Invalid PNG. ... [Op:DecodeImage]"
    return re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\]", "", text.splitlines()[-1])


def _inside(root, path):
    """Whether `path` (symlinks resolved) lies in the folder `root`."""
    if "://" in path:
        return False
    root = os.path.realpath(root or ".")
    return os.path.commonpath([root, os.path.realpath(path)]) == root


def raw_file_bytes(path, kind):
    """A file's bytes as a client would send them: FLAC/OGG/MP3 become WAV.

    The serving signature takes WAV; compressed audio is decoded with
    soundfile here (`mmkeras.log_mel`), in the data pipeline only.
    """
    if kind == "audio" and path.lower().endswith(COMPRESSED_AUDIO):
        from mmkeras.log_mel import decode_compressed_audio

        samples, rate = decode_compressed_audio(path)
        return tf.audio.encode_wav(samples[:, None], rate).numpy()
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def _parse_label(value, label_ids, multi_label, fail):
    value = "" if value is None else str(value).strip()
    names = [v.strip() for v in value.split("|") if v.strip()] if multi_label else [value]
    unknown = [n for n in names if n not in label_ids]
    if not multi_label and not value:
        fail("empty label")
    elif unknown:
        fail(f"unknown label(s) {unknown}; known: {sorted(label_ids)}")
    else:
        return [label_ids[n] for n in names]
    return []


def _to_examples(good, specs, num_classes, multi_label, has_split):
    rows = [number for number, _ in good]
    columns = {}
    for spec in specs:
        values = [parsed[spec.name] for _, parsed in good]
        columns[spec.name] = np.asarray(values, dtype="float32" if spec.kind == "sensor" else object)
    if multi_label:
        labels = np.zeros((len(good), num_classes), "float32")
        for i, (_, parsed) in enumerate(good):
            labels[i, parsed["__label__"]] = 1.0
    else:
        labels = np.asarray([parsed["__label__"][0] for _, parsed in good], "int32")
    splits = np.asarray([parsed["__split__"] for _, parsed in good], object) if has_split else None
    return Examples(columns, labels, rows, splits)


def _write_report(report_path, errors):
    """Writes the skipped rows atomically (temp file, then rename)."""
    tmp = f"{report_path}.tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        writer = csv.writer(f)
        writer.writerow(["manifest", "row", "column", "reason"])
        writer.writerows(errors)
    tf.io.gfile.rename(tmp, report_path, overwrite=True)
