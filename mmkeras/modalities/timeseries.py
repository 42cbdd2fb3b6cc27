"""Time-series modality: a series of readings per example `[T, F]`, any T -> `steps` -> 1D CNN, GRU or transformer."""

import csv
import io

import keras
import numpy as np
import tensorflow as tf

from mmkeras.modalities.missing import MaskedAveragePooling1D, MaskedMaxPooling1D, SplitMissingFeatures, StepMask
from mmkeras.modalities.modality import Encoded, Modality, Proposal, feature_occlusions
from mmkeras.modalities.column_cells import sampled_files
from mmkeras.modalities.raw_formats import finite_check, floats_feature, value_range
from mmkeras.modalities.sensor import nan_statistics

TIMESERIES_ENCODERS = ("cnn", "gru", "transformer")
POOLINGS = ("avg", "max", "avg_max")
SERIES_FILES = (".npy", ".csv")


class TimeSeriesInput(Modality):
    """A series of float readings per example: `[T, F]`, T any length.

    In a manifest a cell names a `.npy` file (`[T, F]`, columns in `features`
    order; `[T]` for one feature) or a `.csv` file whose header names the
    features (other columns are ignored); an empty cell is a missing input.
    A client sends floats `[B, T, F]`, any T; series of different lengths in
    one request are padded at the end with NaN.

    In the graph (training and serving alike) each series keeps its last
    `steps` steps, after trailing all-NaN steps (padding) are dropped; a
    shorter one is padded at the front with NaN, so the newest step is
    always the last. A NaN value is missing (0 after normalisation, flagged
    to the encoder), a step with no value is masked out of the pooling, and
    a series with no value at all is a missing input.

    Args:
        name: input name (model input and serving field).
        features: the feature names, in the order of the last axis.
        steps: the steps the model sees.
        encoder: `"cnn"` (two 1D convolutions, kernel 5), `"gru"` or
            `"transformer"` (two layers, learned positions).
        hidden_dim: width of the encoder.
        pooling: how the steps' features become one vector, over the steps
            that hold a value: `"avg"` (the mean), `"max"` (the strongest
            response: a spike of 3 steps in 90 is not diluted by the other
            87) or `"avg_max"` (both, concatenated; the default). The
            inspection demo's trace alone, 3 seeds, test macro-F1 (its
            ceiling about 0.69): avg 0.289 / 0.445 / 0.338, max 0.681 /
            0.695 / 0.665, avg_max 0.689 / 0.668 / 0.657.
        mean, variance: per-feature statistics; learned by `adapt()` (NaN
            ignored) if None.

    Example:
    >>> import numpy as np
    >>> spec = TimeSeriesInput("vibration", features=["x", "y"], steps=4)
    >>> spec.decode(np.array([[1.0, 2.0], [3.0, 4.0]], "float32")).numpy()[:, 0].tolist()
    [nan, nan, 1.0, 3.0]
    >>> spec.adapt(np.array([[[1.0, 2.0], [3.0, np.nan]]]))
    >>> spec.encode(spec.keras_input()).tokens.shape[1:]
    (4, 64)
    """

    kind = "timeseries"

    def __init__(self, name, features, steps=64, encoder="cnn", hidden_dim=64, pooling="avg_max", mean=None,
                 variance=None):
        super().__init__(name)
        self.features = [str(f) for f in features]
        if not self.features:
            raise ValueError(f"TimeSeriesInput({name!r}) needs at least one feature name.")
        self.steps = int(steps)
        if self.steps < 1:
            raise ValueError(f"TimeSeriesInput steps must be >= 1. Received: {steps}")
        if encoder not in TIMESERIES_ENCODERS:
            raise ValueError(f"TimeSeriesInput encoder must be one of {TIMESERIES_ENCODERS}. Received: {encoder!r}")
        self.encoder = encoder
        self.hidden_dim = int(hidden_dim)
        if pooling not in POOLINGS:
            raise ValueError(f"TimeSeriesInput pooling must be one of {POOLINGS}. Received: {pooling!r}")
        self.pooling = pooling
        self.mean = None if mean is None else [float(v) for v in mean]
        self.variance = None if variance is None else [float(v) for v in variance]

    @property
    def shape(self):
        """One decoded example's shape: `(steps, F)`."""
        return (self.steps, len(self.features))

    def keras_input(self):
        return keras.Input(shape=self.shape, dtype="float32", name=self.name)

    def needs_adapt(self):
        return self.mean is None or self.variance is None

    def adapt(self, values):
        """Learns per-feature mean and variance over every step, ignoring NaN.

        `values`: the manifest column (file paths, "" missing) or decoded
        series `[N, steps, F]`.
        """
        values = np.asarray(values)
        if values.dtype.kind in "OSU":
            series = [self.client_raw(path) for path in values.reshape(-1)]
            rows = np.concatenate(series + [self.missing_raw()])
        else:
            rows = values.reshape(-1, values.shape[-1])
        if rows.shape[-1] != len(self.features):
            raise ValueError(f"TimeSeriesInput({self.name!r}) expects series with {len(self.features)} "
                             f"features {self.features}. Received {rows.shape[-1]} per step.")
        self.mean, self.variance = nan_statistics(rows)

    def encode(self, x):
        if self.needs_adapt():
            raise ValueError(f"TimeSeriesInput({self.name!r}) has no feature statistics: pass `mean=` and "
                             f"`variance=`, or build with `adapt_data=` so it learns them.")
        step_mask = StepMask(name=f"{self.name}_step_mask")(x)
        # float32 under mixed precision too, as SensorInput: raw readings may overflow float16.
        x = keras.layers.Normalization(mean=self.mean, variance=self.variance, dtype="float32",
                                       name=f"{self.name}_normalize")(x)
        features, presence = SplitMissingFeatures(dtype="float32", name=f"{self.name}_missing")(x)
        tokens = _ENCODERS[self.encoder](features, step_mask, self.hidden_dim, self.name)
        return Encoded(_pool(tokens, step_mask, self.pooling, self.name), tokens, step_mask, presence)

    # --- Its path: a manifest cell names a .npy or .csv file; a client sends
    # floats [T, F] per example; the graph crops or pads them to `steps`.

    def parse_cells(self, cells):
        return cells.checked_file(cells.column, "time series", self._check_file)

    def _check_file(self, path):
        series = self.client_raw(path)
        if len(series) == 0:
            raise ValueError("it has no steps")
        if np.isinf(series).any():
            raise ValueError("it holds an infinite value (NaN is a missing one)")

    @classmethod
    def propose(cls, column, cells, folder):
        """`.npy` / `.csv` files of series: the features are a `.csv` header's
        (`f0`, `f1`, ... for `.npy` files alone), `steps` the longest series
        (rounded up to a multiple of 8, at most 512), so nothing is cropped."""
        files = sampled_files(cells, folder)
        if files is None or not all(path.lower().endswith(SERIES_FILES) for path in files[1]):
            return None
        present, paths = files
        features = _series_features(paths)
        try:
            lengths = [len(load_series(path, features)) for path in paths]
        except ValueError:
            return None
        steps = int(min(512, max(8, -(-max(lengths) // 8) * 8)))
        seen = (f"{len(present)} series files, {len(cells) - len(present)} empty; {min(lengths)}-{max(lengths)} "
                f"steps of {features} (first {len(paths)}); steps {steps} from them")
        return Proposal(1.0, {"features": features, "steps": steps}, seen)

    def summarize(self, values):
        present = [v for v in values if v]
        entry = {"missing": len(values) - len(present)}
        if present:
            series = [self.client_raw(path) for path in present]
            entry["steps"] = value_range([len(s) for s in series])
            entry["missing_values"] = {f: int(n) for f, n in zip(self.features, sum(
                np.isnan(s).sum(axis=0) for s in series))}
        return entry

    def client_raw(self, value):
        """A series file -> float32 `[T, F]` (`""` -> no steps)."""
        if value is None or (isinstance(value, str) and not value):
            return np.empty((0, len(self.features)), "float32")
        return load_series(value, self.features)

    def read_raw(self, value):
        def load(path):
            return self.client_raw(path.numpy().decode("utf-8"))

        series = tf.py_function(load, [value], tf.float32)
        return tf.ensure_shape(series, [None, len(self.features)])

    def raw_batch(self, values):
        """Series of any lengths -> `[B, longest, F]`, the shorter padded at the end with NaN."""
        series = [np.asarray(v, "float32").reshape(-1, len(self.features)) for v in values]
        longest = max((len(s) for s in series), default=0)
        return np.stack([np.pad(s, [(0, longest - len(s)), (0, 0)], constant_values=np.nan) for s in series])

    def raw_spec(self):
        return tf.TensorSpec([None, len(self.features)], tf.float32)

    def missing_raw(self):
        return np.empty((0, len(self.features)), "float32")

    def synthetic_raw(self, rng):
        # Longer and shorter than `steps`, so the checks cover both crop and pad.
        return rng.normal(size=(int(rng.integers(1, 2 * self.steps + 1)), len(self.features))).astype("float32")

    def raw_checks(self, values):
        shape = tf.shape(values)
        right_shape = tf.cond(tf.equal(tf.size(shape), 3), lambda: tf.equal(shape[2], len(self.features)),
                              lambda: tf.constant(False))
        message = tf.strings.format(
            f"Input {self.name} takes a series of {len(self.features)} values per step ({', '.join(self.features)}) "
            f"per example, [examples, steps, {len(self.features)}]; received a tensor of shape {{}}", [shape])
        return [tf.debugging.Assert(right_shape, [message]), finite_check(self.name, values)]

    def decode(self, raw):
        return fit_steps(tf.cast(raw, tf.float32), self.steps)

    def decoded_spec(self):
        return tf.TensorSpec(self.shape, tf.float32)

    def decoded_bytes(self):
        return 4 * self.steps * len(self.features)

    def tfrecord_feature(self):
        return tf.io.FixedLenSequenceFeature([len(self.features)], tf.float32, allow_missing=True)

    def tfrecord_value(self, raw):
        return floats_feature(raw)

    def occlusions(self, value):
        """Each feature made missing (NaN) at every step."""
        return feature_occlusions(value, self.features)

    def edge_float_layers(self):
        # Raw features normalised in float; the masked pools weigh steps by a mask
        # (a mean's 1/steps, a max's -1e9 fill) that int8 would round away.
        return [f"{self.name}_{layer}" for layer in ("normalize", "missing", "step_mask", "avg_pool", "max_pool",
                                                     "pool")]

    def get_config(self):
        return {"name": self.name, "features": self.features, "steps": self.steps, "encoder": self.encoder,
                "hidden_dim": self.hidden_dim, "pooling": self.pooling, "mean": self.mean, "variance": self.variance}


def fit_steps(series, steps):
    """`[T, F]` -> `[steps, F]`: trailing all-NaN steps dropped, the last
    `steps` kept, a shorter series padded at the front with NaN.

    Example:
    >>> import numpy as np
    >>> fit_steps(tf.constant([[1.0], [2.0], [np.nan]]), 3).numpy().ravel().tolist()
    [nan, 1.0, 2.0]
    """
    present = tf.reduce_any(tf.logical_not(tf.math.is_nan(series)), axis=-1)
    positions = tf.range(1, tf.shape(series)[0] + 1)
    length = tf.reduce_max(tf.concat([tf.where(present, positions, 0), [0]], 0))
    kept = series[tf.maximum(length - steps, 0):length]
    padding = tf.fill([steps - tf.shape(kept)[0], tf.shape(series)[1]], float("nan"))
    return tf.ensure_shape(tf.concat([padding, kept], 0), [steps, series.shape[1]])


def load_series(path, features):
    """A `.npy` (`[T, F]` in `features` order, or `[T]` for one feature) or
    `.csv` (a header naming the features) file -> float32 `[T, F]`.

    Raises:
        ValueError: another file type, another number of features, a feature
            missing from the header, or a cell that is not a number; the
            message says which.
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        content = f.read()
    if path.lower().endswith(".npy"):
        series = np.load(io.BytesIO(content), allow_pickle=False)
        series = series[:, None] if series.ndim == 1 else series
        if series.ndim != 2 or series.shape[1] != len(features):
            raise ValueError(f"a .npy series must be [steps, {len(features)}] (features {features}); "
                             f"it is {list(series.shape)}")
        return series.astype("float32")
    if path.lower().endswith(".csv"):
        return _csv_series(content.decode("utf-8"), features)
    raise ValueError(f"a series file must be one of {SERIES_FILES}")


def _series_features(paths):
    """The feature names of series files: the first `.csv` file's numeric
    columns but a time axis (one that rises by the same step every row), else
    `f0`, `f1`, ... for a `.npy` file's columns."""
    for path in paths:
        if path.lower().endswith(".csv"):
            with tf.io.gfile.GFile(path) as f:
                first = next(csv.DictReader(f), {})
            numeric = [name for name, value in first.items() if _is_number(value)]
            steps = np.diff(load_series(path, numeric), axis=0)
            axis = [len(steps) > 1 and np.all(steps[:, i] > 0) and np.allclose(steps[:, i], steps[0, i])
                    for i in range(len(numeric))]
            return [name for name, is_axis in zip(numeric, axis) if not is_axis]
    with tf.io.gfile.GFile(paths[0], "rb") as f:
        shape = np.load(io.BytesIO(f.read()), allow_pickle=False).shape
    return [f"f{i}" for i in range(shape[1] if len(shape) > 1 else 1)]


def _is_number(text):
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False


def _csv_series(text, features):
    reader = csv.DictReader(io.StringIO(text))
    absent = [f for f in features if f not in (reader.fieldnames or [])]
    if absent:
        raise ValueError(f"its header has no column {absent} (header: {reader.fieldnames})")
    rows = []
    for line, row in enumerate(reader, start=2):
        try:
            rows.append([float(row[f]) if (row[f] or "").strip() else np.nan for f in features])
        except (TypeError, ValueError):
            raise ValueError(f"line {line} has a value that is not a number: "
                             f"{ {f: row[f] for f in features} }") from None
    return np.asarray(rows, "float32").reshape(-1, len(features))


def _pool(tokens, step_mask, pooling, name):
    """`[B, T, D]` -> `[B, D]` (`[B, 2D]` for avg_max) over the steps `step_mask` keeps, named `<name>_pool`."""
    if pooling == "avg":
        return MaskedAveragePooling1D(name=f"{name}_pool")(tokens, step_mask)
    if pooling == "max":
        return MaskedMaxPooling1D(name=f"{name}_pool")(tokens, step_mask)
    return keras.layers.Concatenate(name=f"{name}_pool")([
        MaskedAveragePooling1D(name=f"{name}_avg_pool")(tokens, step_mask),
        MaskedMaxPooling1D(name=f"{name}_max_pool")(tokens, step_mask)])


def _cnn(features, step_mask, width, name):
    tokens = features
    for i in range(2):
        tokens = keras.layers.Conv1D(width, 5, padding="same", activation="gelu", name=f"{name}_conv{i}")(tokens)
    return tokens


def _gru(features, step_mask, width, name):
    return keras.layers.GRU(width, return_sequences=True, name=f"{name}_gru")(features, mask=step_mask)


def _transformer(features, step_mask, width, name, num_layers=2, num_heads=4):
    import keras_hub

    x = keras.layers.Dense(width, name=f"{name}_embed")(features)
    positions = keras_hub.layers.PositionEmbedding(x.shape[1], name=f"{name}_positions")(x)
    x = keras.layers.Add(name=f"{name}_add_positions")([x, positions])
    for i in range(num_layers):
        x = keras_hub.layers.TransformerEncoder(intermediate_dim=2 * width, num_heads=num_heads,
                                                name=f"{name}_transformer{i}")(x, padding_mask=step_mask)
    return x


_ENCODERS = {"cnn": _cnn, "gru": _gru, "transformer": _transformer}
