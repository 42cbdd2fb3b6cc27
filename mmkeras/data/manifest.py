"""Manifests (CSV / JSONL): reading and row-by-row validation.

One row per example. Each input kind reads its own columns and checks its
own cells (`Modality.parse_cells`): image, audio and time-series cells name
files (relative to the manifest's folder, or any `tf.io.gfile` path), text
and category cells hold values, sensor features are numeric columns (empty =
missing). The label column holds class names (`|`-separated for
multi-label). An optional `split` column (`train`, `val`/`validation` or
`test`) puts each row in that split instead of the random one. Every row is checked before training, and every problem is
reported with manifest, row, column and reason: nothing is silently dropped.
"""

import collections
import csv
import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from mmkeras.data.cells import Cells

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

    `columns[name]`: each input's column values, as its kind's `parse_cells`
    gives them: absolute paths for image/audio/time series ("" = missing),
    strings for text and categories, float32 `[N, F]` for sensors.
    `labels`: int class ids `[N]`, or multi-hot float32 `[N, C]`. `rows`: manifest row number of each.
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
        specs: modality specs; each reads the columns its kind names
            (`manifest_columns`): the column named like the spec, or one
            column per feature for sensors.
        label_column: the column holding class names.
        labels: known class names.
        multi_label: labels are `|`-separated sets (may be empty).
        on_error: `"raise"` stops with the full list of problems; `"skip"`
            drops bad rows and writes them to `report_path`.
        report_path: CSV of skipped rows (default: beside the manifest,
            `<manifest>.skipped.csv`).
        columns: `{input name: manifest column}` for inputs whose column is
            named otherwise (an app's `column:` key).
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
    """`spec -> its app.yaml column mapping (or None)`, checking `columns`."""
    columns = dict(columns or {})
    by_name = {spec.name: spec for spec in specs}
    for name, column in columns.items():
        if name not in by_name:
            raise ValueError(f"A column is mapped for input {name!r}, which is not one of the "
                             f"inputs {sorted(by_name)}.")
        by_name[name].manifest_columns(column)  # a kind that reads no single column refuses it
    return lambda spec: columns.get(spec.name)


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
        needed += spec.manifest_columns(column_of(spec))
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
        cells = Cells(row, base, allow_outside_paths, fail, spec.manifest_columns(column_of(spec)))
        parsed[spec.name] = spec.parse_cells(cells)
    if not errors and all(spec.is_missing_value(parsed[spec.name]) for spec in specs):
        fail("*", "every modality of this example is missing")
    parsed["__label__"] = _parse_label(row.get(label_column), label_ids, multi_label,
                                       lambda r: fail(label_column, r))
    if has_split:
        parsed["__split__"] = SPLIT_VALUES.get(str(row[SPLIT_COLUMN]).strip().lower())
        if parsed["__split__"] is None:
            fail(SPLIT_COLUMN, f"unknown split {row[SPLIT_COLUMN]!r}; expected one of {list(SPLIT_VALUES)}")
    return parsed, errors


def _parse_label(value, label_ids, multi_label, fail):
    value = "" if value is None else str(value).strip()
    names = [v.strip() for v in value.split("|") if v.strip()] if multi_label else [value]
    unknown = [n for n in names if n not in label_ids]
    if not multi_label and not value:
        fail("empty label")
    elif unknown:
        fail(f"unknown label(s) {unknown}; known: {list(label_ids)}")
    else:
        return [label_ids[n] for n in names]
    return []


def _to_examples(good, specs, num_classes, multi_label, has_split):
    rows = [number for number, _ in good]
    columns = {}
    for spec in specs:
        values = [parsed[spec.name] for _, parsed in good]
        columns[spec.name] = spec.column_array(values)
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
