"""Sensor / tabular modality: named float features, NaN = missing."""

import warnings

import keras
import numpy as np

from mmkeras.modalities.modality import Encoded, Modality
from mmkeras.modalities.missing import SplitMissingFeatures, TokenMask


class SensorInput(Modality):
    """Named float features `[F]`, or fixed-length windows `[T, F]`.

    Normalisation statistics are learned from training data (`adapt`) and
    live in the model. A NaN feature is missing: it becomes 0 after
    normalisation (the training mean) and a presence flag tells the encoder.

    Args:
        name: input name (model input and serving field).
        features: feature names, in the order of the input's last axis.
        window: `None` for one reading per example, or `T` for windows
            `[T, F]` encoded with a 1D CNN.
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

    def __init__(self, name, features, window=None, mean=None, variance=None, hidden_dim=64):
        super().__init__(name)
        self.features = [str(f) for f in features]
        if not self.features:
            raise ValueError(f"SensorInput({name!r}) needs at least one feature name.")
        self.window = int(window) if window else None
        self.mean = None if mean is None else [float(v) for v in mean]
        self.variance = None if variance is None else [float(v) for v in variance]
        self.hidden_dim = int(hidden_dim)

    @property
    def shape(self):
        """One example's shape: `(F,)`, or `(T, F)` for windows."""
        return (len(self.features),) if self.window is None else (self.window, len(self.features))

    def keras_input(self):
        return keras.Input(shape=self.shape, dtype="float32", name=self.name)

    def needs_adapt(self):
        return self.mean is None or self.variance is None

    def adapt(self, values):
        """Learns per-feature mean and variance, ignoring NaN."""
        values = np.asarray(values, dtype="float64")
        expected = self.keras_input().shape[1:]
        if values.shape[1:] != expected:
            raise ValueError(
                f"SensorInput({self.name!r}) expects training values of shape [N, "
                f"{', '.join(map(str, expected))}] (features {self.features}). "
                f"Received shape {list(values.shape)}."
            )
        values = values.reshape(-1, len(self.features))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            mean = np.nanmean(values, axis=0)
            variance = np.nanvar(values, axis=0)
        # A feature never observed keeps the identity transform.
        mean = np.where(np.isfinite(mean), mean, 0.0)
        variance = np.where(np.isfinite(variance) & (variance > 0), variance, 1.0)
        self.mean, self.variance = mean.tolist(), variance.tolist()

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
        if self.window is None:
            hidden = keras.layers.Dense(self.hidden_dim, activation="gelu", name=f"{self.name}_dense0")(features)
            pooled = keras.layers.Dense(self.hidden_dim, activation="gelu", name=f"{self.name}_dense1")(hidden)
            tokens = keras.layers.Reshape((1, self.hidden_dim), name=f"{self.name}_tokens")(pooled)
        else:
            tokens = features
            for i in range(2):
                tokens = keras.layers.Conv1D(self.hidden_dim, 5, padding="same", activation="gelu",
                                             name=f"{self.name}_conv{i}")(tokens)
            pooled = keras.layers.GlobalAveragePooling1D(name=f"{self.name}_pool")(tokens)
        token_mask = TokenMask(name=f"{self.name}_token_mask")(tokens)
        return Encoded(pooled, tokens, token_mask, presence)

    def get_config(self):
        return {"name": self.name, "features": self.features, "window": self.window,
                "mean": self.mean, "variance": self.variance, "hidden_dim": self.hidden_dim}

