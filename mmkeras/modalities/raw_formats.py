"""The shared halves of input kinds, by what a client sends for one example.

- `StringRaw`: one string (text, a category); `""` is missing.
- `FileBytesRaw`: a file's bytes (an image, a clip); a manifest cell names
  the file, and `b""` is missing.

A kind mixes one in before `Modality` and defines the rest of its path
(`mmkeras.modalities.modality`).
"""

import os

import numpy as np
import tensorflow as tf


class StringRaw:
    """One UTF-8 string per example, sent as it is; `""` is a missing input."""

    def raw_spec(self):
        return tf.TensorSpec([], tf.string)

    def missing_raw(self):
        return ""

    def decode(self, raw):
        return tf.convert_to_tensor(raw, tf.string)

    def decoded_spec(self):
        return tf.TensorSpec([], tf.string)

    def decoded_bytes(self):
        return 0  # strings are small beside pixels and samples: not counted

    def tfrecord_feature(self):
        return tf.io.FixedLenFeature([], tf.string, default_value="")

    def tfrecord_value(self, raw):
        return _bytes_feature(str(raw).encode("utf-8"))


class FileBytesRaw:
    """The bytes of a file per example; a manifest cell names the file
    (`Cells.file_path`), `""` in the column and `b""` raw are missing."""

    def raw_spec(self):
        return tf.TensorSpec([], tf.string)

    def missing_raw(self):
        return b""

    def client_raw(self, value):
        if not value:
            return b""
        with tf.io.gfile.GFile(value, "rb") as f:
            return f.read()

    def read_raw(self, value):
        return tf.cond(tf.strings.length(value) > 0, lambda: tf.io.read_file(value), lambda: tf.constant(b""))

    def raw_batch(self, values):
        return np.asarray(values, object)

    def tfrecord_feature(self):
        return tf.io.FixedLenFeature([], tf.string, default_value="")

    def tfrecord_value(self, raw):
        return _bytes_feature(raw)


def _bytes_feature(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def floats_feature(values):
    """A `tf.train.Feature` of floats, flattened."""
    return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values, "float32").ravel().tolist()))


def value_range(values):
    """`[min, median, max]` rounded to 3 decimals: how `data validate` reports a range."""
    return [round(float(f(values)), 3) for f in (np.min, np.median, np.max)]


def finite_check(name, values):
    """An in-graph check that a float input holds no infinity, naming it."""
    finite = tf.logical_not(tf.reduce_any(tf.math.is_inf(tf.cast(values, tf.float32))))
    return tf.debugging.Assert(finite, [f"Input {name} holds an infinite value; send finite numbers, "
                                        f"and NaN for a missing one"])


def present_cells(cells):
    """The cells that hold a value (not None, not blank), as stripped strings
    (JSON numbers as their text)."""
    return [str(cell).strip() for cell in cells if cell is not None and str(cell).strip() != ""]


def sampled_files(cells, folder, count=50):
    """`(present cells, paths of the first `count` that name existing files)`;
    None when fewer than 4 in 5 of those name a file (not a file column)."""
    present = present_cells(cells)
    checked = present[:count]
    paths = [cell if "://" in cell or os.path.isabs(cell) else os.path.join(folder, cell) for cell in checked]
    paths = [path for path in paths if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)]
    if not checked or len(paths) < 0.8 * len(checked):
        return None
    return present, paths


def starts_with(path, signatures):
    """Whether a file's first bytes are one of `signatures` (each a bytes
    prefix, or `(offset, bytes)`)."""
    with tf.io.gfile.GFile(path, "rb") as f:
        head = f.read(16)
    return any(head[offset:offset + len(magic)] == magic
               for offset, magic in ((0, s) if isinstance(s, bytes) else s for s in signatures))


def numbers(cells):
    """The present cells as floats, or None when one is not a finite number."""
    try:
        values = np.asarray([float(cell) for cell in present_cells(cells)], "float64")
    except ValueError:
        return None
    return values if values.size and np.isfinite(values).all() else None
