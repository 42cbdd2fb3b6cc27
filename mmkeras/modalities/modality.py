"""What every input kind defines: the whole path of one input, from a manifest
cell or a client's raw value to the encoding the fusion reads.

A kind is one class in one file (`ImageInput` in `image.py`, ...) registered
once in `mmkeras.modalities.MODALITIES`. The manifest reader, the tf.data
pipeline, TFRecords, the serving signature, `data validate` and the export
checks loop over specs and call the methods below; none of them knows the
kinds. `raw_formats.py` holds the shared halves of kinds whose raw value is a
string (`StringRaw`) or a file's bytes (`FileBytesRaw`).
"""

import collections

import numpy as np

# What an encoder hands to fusion. `pooled` is [B, D], `tokens` [B, N, D],
# `token_mask` bool [B, N] (False on padding), `presence` float [B, 1].
Encoded = collections.namedtuple("Encoded", ["pooled", "tokens", "token_mask", "presence"])

# A kind's answer to "would you take this manifest column?" (`Modality.propose`):
# how well it fits (0-1; the best fit wins), the spec's keys chosen from the
# data, what was seen (for app.yaml's comment), and whether the column holds a
# different value on every row (an identifier, which `mmkeras init` skips).
Proposal = collections.namedtuple("Proposal", ["fit", "config", "seen", "identifies_rows"],
                                  defaults=[False])

# The parts of one decoded example an attribution scores (`Modality.occlusions`):
# `copies[k]` is the example with part k hidden; `layout` says how the report
# draws the scores: "image" (`parts` are the (row, column) cells of a grid),
# "words", "time" (windows in order, `parts` their spans) or "features".
Occlusions = collections.namedtuple("Occlusions", ["layout", "parts", "copies"])


def feature_occlusions(value, features):
    """`Occlusions` of a value whose last axis holds `features`: each made missing (NaN) in turn.

    Example:
    >>> feature_occlusions(np.array([1.0, 2.0]), ["a", "b"]).copies.tolist()
    [[nan, 2.0], [1.0, nan]]
    """
    copies = np.repeat(value[None], len(features), axis=0).astype(np.float32)
    for k in range(len(features)):
        copies[k, ..., k] = np.nan
    return Occlusions("features", list(features), copies)


class Modality:
    """Base class of the input kinds (`ImageInput`, `TextInput`, ...).

    A spec is plain data (its constructor arguments, `get_config`) plus the
    code of its path. Values pass through three forms:

    - a **cell**: what one manifest row holds for the input (a path, a text,
      numbers); `parse_cells` checks it and gives the **column value** kept in
      `Examples.columns` (what `adapt` reads);
    - a **raw** value: what a client sends for one example (file bytes, a
      string, floats); `client_raw` makes it from a column value in Python,
      `read_raw` in the tf.data graph;
    - a **decoded** value: what the Keras model takes (`keras_input`),
      made by `decode` in the graph that both training and serving run.

    A missing input is a raw value (`missing_raw`) that decodes to NaN
    everywhere, or to the empty string for string inputs; the encoder turns
    it into a presence flag. Subclasses set `kind` and define every method
    that raises `NotImplementedError` here.
    """

    kind = None

    def __init__(self, name):
        if not name or not str(name).isidentifier():
            raise ValueError(
                f"A modality name must be a Python identifier (it names the model "
                f"input and the serving field). Received: name={name!r}"
            )
        self.name = name

    def _undefined(self, method):
        return NotImplementedError(f"{type(self).__name__} (kind {self.kind!r}) does not define "
                                   f"`{method}`, which every input kind must (mmkeras.modalities.Modality)")

    # --- The model --------------------------------------------------------

    def keras_input(self):
        """The model's `keras.Input` for the decoded value, named `self.name`."""
        raise self._undefined("keras_input")

    def encode(self, x):
        """Decoded input -> `Encoded(pooled, tokens, token_mask, presence)`."""
        raise self._undefined("encode")

    def needs_adapt(self):
        """True when the spec must see training data before it can build."""
        return False

    def adapt(self, values):
        """Learns state (vocabulary, statistics) from a training column, which
        is column values (`Examples.columns`) or decoded values."""

    # --- The manifest -------------------------------------------------------

    def manifest_columns(self, column=None):
        """The manifest columns this input reads; `column` is an app's
        `column:` key (None: the input's name)."""
        return [column or self.name]

    def parse_cells(self, cells):
        """One row's cells (`mmkeras.data.cells.Cells`) -> the column value,
        reporting each problem with `cells.fail(column, reason)`."""
        raise self._undefined("parse_cells")

    def column_array(self, values):
        """A list of column values -> the numpy column of `Examples`."""
        return np.asarray(values, object)

    def is_missing_value(self, value):
        """Whether a column value is a missing input."""
        return value == ""

    def summarize(self, values):
        """`data validate`'s entry for a column: `{"missing": N, ...}` plus what
        describes the values that are there (ranges as `[min, median, max]`)."""
        raise self._undefined("summarize")

    @classmethod
    def propose(cls, column, cells, folder):
        """Whether this kind takes a manifest column (`mmkeras init`): None, or a
        `Proposal`. `cells` are the column's raw cells, `folder` the manifest's
        (relative paths start there). A kind that cannot be told from its cells
        returns None (the default): write its input in app.yaml by hand."""
        return None

    # --- Raw values and the graph -----------------------------------------

    def raw_spec(self):
        """`tf.TensorSpec` of one example's raw value (the serving signature
        adds the batch axis)."""
        raise self._undefined("raw_spec")

    def client_raw(self, value):
        """A column value -> the raw value a client sends for it (Python)."""
        return value

    def read_raw(self, value):
        """A column value -> its raw value, in the tf.data graph."""
        return value

    def raw_batch(self, values):
        """Raw values of several examples -> one request's numpy array."""
        return np.asarray(values, object)

    def missing_raw(self):
        """How a client leaves this input out of one example."""
        raise self._undefined("missing_raw")

    def synthetic_raw(self, rng):
        """A random valid raw value (export warm-up and parity checks)."""
        raise self._undefined("synthetic_raw")

    def raw_checks(self, values):
        """In-graph checks of a batch of raw values, each failing with a
        message naming the input; run before decoding."""
        return []

    def decode(self, raw):
        """One example's raw value -> the decoded value, in the graph."""
        raise self._undefined("decode")

    def decoded_spec(self):
        """`tf.TensorSpec` of one decoded example (fixed shape: it batches)."""
        raise self._undefined("decoded_spec")

    def decoded_bytes(self):
        """Bytes one decoded example holds (whether a dataset is cached in memory)."""
        raise self._undefined("decoded_bytes")

    def batch_augmenter(self, seed):
        """None, or `inputs -> inputs` applied to training batches in the pipeline."""
        return None

    # --- Explanations --------------------------------------------------------

    def occlusions(self, value):
        """`Occlusions` of one decoded example (a NumPy value), or None for an
        input that is one indivisible value (a category): the report scores
        each part by how much hiding it lowers the predicted class's probability."""
        return None

    # --- The edge (LiteRT) -----------------------------------------------------

    def edge_spec(self):
        """`tf.TensorSpec` of one example's input to a LiteRT model
        (`mmkeras.litert`; batch 1 is added): the decoded value by default."""
        return self.decoded_spec()

    def edge_float_layers(self):
        """Names of the layers an int8 LiteRT model keeps in float: the input's
        front end up to where its values are normalised (per-tensor int8 ranges
        would flatten raw features of different scales, or quiet spectrogram bins)."""
        return [f"{self.name}_missing"]

    def edge_refusal(self):
        """None, or why this input cannot run in a LiteRT model, which may hold
        built-in ops only (the pip runtime has no TensorFlow-ops delegate)."""
        return None

    # --- TFRecords ---------------------------------------------------------

    def tfrecord_feature(self):
        """How `tf.io.parse_single_example` reads this input's raw value."""
        raise self._undefined("tfrecord_feature")

    def tfrecord_value(self, raw):
        """A raw value -> its `tf.train.Feature`."""
        raise self._undefined("tfrecord_value")

    # --- Configuration ------------------------------------------------------

    def get_config(self):
        raise self._undefined("get_config")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k not in ("vocabulary", "mean",
                                                                                           "variance"))
        return f"{type(self).__name__}({args})"
