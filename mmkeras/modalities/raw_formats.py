"""The shared halves of input kinds, by what a client sends for one example.

- `StringRaw`: one string (text, a category); `""` is missing.
- `FileBytesRaw`: a file's bytes (an image, a clip); a manifest cell names
  the file, and `b""` is missing.

A kind mixes one in before `Modality` and defines the rest of its path
(`mmkeras.modalities.modality`).
"""

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

