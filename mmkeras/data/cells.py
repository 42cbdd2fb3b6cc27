"""One manifest row's cells for one input, and how a kind reports a problem with them.

An input kind's `parse_cells(cells)` reads `cells[column]` and reports each
problem with `cells.fail(column, reason)`: the manifest reader adds the
manifest and the row, so every problem names manifest, row, column and reason.
Kinds whose cells name files resolve them with `cells.file_path(column)`,
which keeps a manifest from reading files outside its folder.
"""

import math
import os
import re

import tensorflow as tf


class Cells:
    """The cells of one row that one input reads.

    Args:
        row: the row, `{column: cell}`.
        base: the manifest's folder (relative paths start there).
        allow_outside_paths: accept paths that leave `base`.
        fail: `fail(column, reason)` records a problem with this row.
        columns: the columns the input reads (its `manifest_columns`).

    Example:
    >>> problems = []
    >>> cells = Cells({"photo": " "}, ".", False, lambda column, reason: problems.append(reason))
    >>> cells.file_path("photo"), problems
    ('', [])
    """

    def __init__(self, row, base, allow_outside_paths, fail, columns=()):
        self.row = row
        self.columns = list(columns)
        self.base = base
        self.allow_outside_paths = allow_outside_paths
        self.fail = fail

    @property
    def column(self):
        """The column of an input that reads one (image, text, ...)."""
        return self.columns[0]

    def __getitem__(self, column):
        return self.row.get(column)

    def number(self, column):
        """The cell as a float; NaN for an empty cell (a missing value) and for
        one that is not a finite number (reported)."""
        value = self[column]
        if value is None or (isinstance(value, str) and value.strip() in ("", "nan", "NaN")):
            return float("nan")
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(column, f"not a number: {value!r}")
            return float("nan")
        if math.isinf(number):
            self.fail(column, f"infinite value: {value!r}")
        return number

    def file_path(self, column):
        """The cell's file path, resolved against the manifest's folder; `""`
        for an empty cell and for a path that failed (outside the folder, no
        such file, an empty file), each failure reported."""
        value = self[column]
        if value is None or str(value).strip() == "":
            return ""
        value = str(value).strip()
        path = value if "://" in value or os.path.isabs(value) else os.path.join(self.base, value)
        if not self.allow_outside_paths and not _inside(self.base, path):
            self.fail(column, f"path {value!r} leaves the manifest's folder {os.path.abspath(self.base or '.')}; "
                              f"set data.allow_outside_paths: true (load_examples(allow_outside_paths=True)) "
                              f"to allow it")
            return ""
        if not tf.io.gfile.exists(path):
            self.fail(column, f"file not found: {path}")
            return ""
        if tf.io.gfile.stat(path).length == 0:
            # An empty cell is a missing input; an empty file is a failed copy.
            self.fail(column, f"file is empty: {path} (leave the cell empty for a missing input)")
            return ""
        return path

    def checked_file(self, column, what, check):
        """`file_path(column)`, and `""` (reported) when `check(path)` raises:
        the file cannot be read as `what` (e.g. "image")."""
        path = self.file_path(column)
        if not path:
            return ""
        try:
            check(path)
        except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file
            self.fail(column, f"cannot decode {what} file {path}: {decoder_reason(e)}")
            return ""
        return path


def decoder_reason(error):
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
