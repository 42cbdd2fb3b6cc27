"""Sensor / tabular modality: named float features, NaN = missing."""

import warnings

import keras
import numpy as np
import tensorflow as tf

from mmkeras.modalities.missing import SplitMissingFeatures, TokenMask
from mmkeras.modalities.modality import Encoded, Modality, Proposal, feature_occlusions
from mmkeras.modalities.column_cells import numbers
from mmkeras.modalities.raw_formats import finite_check, floats_feature


class SensorInput(Modality):
    """Named float features `[F]`: one reading per example.

    Normalisation statistics are learned from training data (`adapt`) and
    live in the model. A NaN feature is missing: it becomes 0 after
    normalisation (the training mean) and a presence flag tells the encoder.
    A series of readings per example is a `TimeSeriesInput`.

    Args:
        name: input name (model input and serving field).
        features: feature names: the manifest columns, in the order of the
            input's last axis.
        mean, variance: per-feature statistics; learned by `adapt()` if None.
        hidden_dim: width of the encoder.

    Example:
    >>> import numpy as np
    >>> spec = SensorInput("readings", features=["temperature", "current"])
    >>> spec.adapt(np.array([[20.0, 1.0], [30.0, np.nan]]))
    >>> spec.mean
    [25.0, 1.0]
    """

    kind = "sensor"

    def __init__(self, name, features, mean=None, variance=None, hidden_dim=64):
        super().__init__(name)
        self.features = [str(f) for f in features]
        if not self.features:
            raise ValueError(f"SensorInput({name!r}) needs at least one feature name.")
        self.mean = None if mean is None else [float(v) for v in mean]
        self.variance = None if variance is None else [float(v) for v in variance]
        self.hidden_dim = int(hidden_dim)

    @property
    def shape(self):
        """One example's shape: `(F,)`."""
        return (len(self.features),)

    def keras_input(self):
        return keras.Input(shape=self.shape, dtype="float32", name=self.name)

    def needs_adapt(self):
        return self.mean is None or self.variance is None

    def adapt(self, values):
        """Learns per-feature mean and variance, ignoring NaN."""
        values = np.asarray(values, dtype="float64")
        if values.shape[1:] != self.shape:
            raise ValueError(
                f"SensorInput({self.name!r}) expects training values of shape [N, {len(self.features)}] "
                f"(features {self.features}). Received shape {list(values.shape)}."
            )
        self.mean, self.variance = nan_statistics(values)

    def encode(self, x):
        if self.needs_adapt():
            raise ValueError(
                f"SensorInput({self.name!r}) has no feature statistics: pass `mean=` and "
                f"`variance=`, or build with `adapt_data=` so it learns them."
            )
        # float32 even under mixed precision: raw readings such as 101325 Pa
        # overflow float16 to inf, and inf - inf would pass for missing.
        x = keras.layers.Normalization(mean=self.mean, variance=self.variance, dtype="float32",
                                       name=f"{self.name}_normalize")(x)
        features, presence = SplitMissingFeatures(dtype="float32", name=f"{self.name}_missing")(x)
        hidden = keras.layers.Dense(self.hidden_dim, activation="gelu", name=f"{self.name}_dense0")(features)
        pooled = keras.layers.Dense(self.hidden_dim, activation="gelu", name=f"{self.name}_dense1")(hidden)
        tokens = keras.layers.Reshape((1, self.hidden_dim), name=f"{self.name}_tokens")(pooled)
        token_mask = TokenMask(name=f"{self.name}_token_mask")(tokens)
        return Encoded(pooled, tokens, token_mask, presence)

    # --- Its path: one manifest column per feature (empty = missing); a client
    # sends the floats, NaN for a missing one.

    def manifest_columns(self, column=None):
        if column is not None:
            raise ValueError(f"Input {self.name!r} is a sensor input: its `features` name its columns; "
                             f"`column` is for inputs read from one column.")
        return list(self.features)

    def parse_cells(self, cells):
        return [cells.number(feature) for feature in self.features]

    @classmethod
    def propose(cls, column, cells, folder):
        """Numbers. Whole numbers with a few values are more likely codes (a
        category fits them better); one whole number per row, each different,
        counts up rows."""
        values = numbers(cells)
        if values is None:
            return None
        whole = bool(np.all(values == np.round(values)))
        distinct = len(np.unique(values))
        seen = f"numbers {values.min():g} to {values.max():g}, {len(cells) - len(values)} empty"
        counts_rows = whole and distinct == len(values) == len(cells)
        return Proposal(0.5 if whole and distinct <= 10 else 0.6, {}, seen, identifies_rows=counts_rows)

    def column_array(self, values):
        return np.asarray(values, "float32").reshape(-1, len(self.features))

    def is_missing_value(self, value):
        return bool(np.all(np.isnan(value)))

    def summarize(self, values):
        nan = np.isnan(np.asarray(values, "float32"))
        return {"missing": int(nan.all(axis=1).sum()),
                "missing_values": {f: int(n) for f, n in zip(self.features, nan.sum(axis=0))}}

    def raw_spec(self):
        return tf.TensorSpec(self.shape, tf.float32)

    def client_raw(self, value):
        return np.asarray(value, "float32").tolist()

    def raw_batch(self, values):
        return np.asarray(values, "float32")

    def missing_raw(self):
        return [float("nan")] * len(self.features)

    def synthetic_raw(self, rng):
        return rng.normal(size=self.shape).astype("float32").tolist()

    def raw_checks(self, values):
        """Each example holds its features, and no infinity (NaN is a missing
        value; infinity would make every probability NaN)."""
        shape = tf.shape(values)
        right_shape = tf.cond(tf.equal(tf.size(shape), 2), lambda: tf.equal(shape[1], len(self.features)),
                              lambda: tf.constant(False))
        message = tf.strings.format(f"Input {self.name} takes {len(self.features)} values per example "
                                    f"({', '.join(self.features)}); received a tensor of shape {{}}", [shape])
        return [tf.debugging.Assert(right_shape, [message]), finite_check(self.name, values)]

    def decode(self, raw):
        return tf.cast(raw, tf.float32)

    def decoded_spec(self):
        return tf.TensorSpec(self.shape, tf.float32)

    def decoded_bytes(self):
        return 4 * len(self.features)

    def tfrecord_feature(self):
        return tf.io.FixedLenFeature(self.shape, tf.float32)

    def tfrecord_value(self, raw):
        return floats_feature(raw)

    @classmethod
    def from_config(cls, config):
        # Configs saved before TimeSeriesInput replaced windows hold `window: null`.
        config = dict(config)
        if config.pop("window", None) is not None:
            raise ValueError(f"SensorInput({config['name']!r}) was saved with a window of readings; "
                             f"windows are TimeSeriesInput now (steps=<window>): rebuild the model with it.")
        return cls(**config)

    def occlusions(self, value):
        """Each feature made missing (NaN)."""
        return feature_occlusions(value, self.features)

    def edge_float_layers(self):
        # Raw features of different scales share one tensor: normalised first, in float.
        return [f"{self.name}_{layer}" for layer in ("normalize", "missing")]

    def get_config(self):
        return {"name": self.name, "features": self.features, "mean": self.mean,
                "variance": self.variance, "hidden_dim": self.hidden_dim}


def nan_statistics(values):
    """Per-feature `(mean, variance)` lists of `values [..., F]`, ignoring NaN.

    A feature never observed keeps the identity transform (mean 0, variance 1),
    as does one that never varies (variance 1).

    Example:
    >>> nan_statistics(np.array([[1.0, np.nan], [3.0, np.nan]]))
    ([2.0, 0.0], [1.0, 1.0])
    """
    values = np.asarray(values, "float64").reshape(-1, np.shape(values)[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        mean = np.nanmean(values, axis=0)
        variance = np.nanvar(values, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    variance = np.where(np.isfinite(variance) & (variance > 0), variance, 1.0)
    return mean.tolist(), variance.tolist()
