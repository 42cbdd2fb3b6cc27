"""Presence detection: how a model sees that a modality is missing.

Float modalities (image, audio, sensor) mark a missing example by filling it
with NaN; text marks it with the empty string. These layers turn that into a
presence flag and an input the encoder can safely read (NaN replaced by 0).
"""

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="mmkeras")
class SplitMissing(keras.layers.Layer):
    """Splits a float input into (filled input, presence flag).

    An example is missing when every value in it is NaN. Missing values are
    replaced by `fill_value` so no NaN reaches the encoder (NaN times a zero
    mask is still NaN).

    Args:
        fill_value: float that replaces NaN.

    Call arguments:
        inputs: float tensor `[B, ...]`.

    Returns:
        `(filled, presence)`: `filled` has the input's shape, `presence` is
        float32 `[B, 1]`, 1.0 where the example has any non-NaN value.

    Example:
    >>> import numpy as np
    >>> filled, presence = SplitMissing()(np.array([[1.0, np.nan], [np.nan, np.nan]]))
    >>> presence.numpy().ravel().tolist()
    [1.0, 0.0]
    """

    def __init__(self, fill_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.fill_value = fill_value

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        is_nan = ops.isnan(inputs)
        # TF's v1 `Select` of two same-shape tensors: on CPU it takes a third of
        # the time `ops.where` (a broadcasting `SelectV2`) takes on an image
        # batch, which was most of what build_model costs over a hand-written
        # model (benchmarks/overhead.py). Both are core ops TF Serving runs.
        filled = tf.compat.v1.where(is_nan, tf.fill(tf.shape(inputs), ops.cast(self.fill_value, inputs.dtype)),
                                    inputs)
        flat_nan = ops.reshape(is_nan, (ops.shape(inputs)[0], -1))
        present = ops.logical_not(ops.all(flat_nan, axis=-1, keepdims=True))
        return filled, ops.cast(present, "float32")

    def compute_output_spec(self, inputs):
        return (
            keras.KerasTensor(inputs.shape, dtype=self.compute_dtype),
            keras.KerasTensor((inputs.shape[0], 1), dtype="float32"),
        )

    def get_config(self):
        return {**super().get_config(), "fill_value": self.fill_value}


@keras.saving.register_keras_serializable(package="mmkeras")
class TextPresence(keras.layers.Layer):
    """Presence flag `[B, 1]` of a string input: 0.0 for the empty string
    (and, with `strip`, for a blank one).

    Example:
    >>> import numpy as np
    >>> TextPresence()(np.array(["great", ""])).numpy().ravel().tolist()
    [1.0, 0.0]
    """

    def __init__(self, strip=True, **kwargs):
        super().__init__(**kwargs)
        self.strip = bool(strip)

    def call(self, inputs):
        import tensorflow as tf

        inputs = tf.reshape(tf.convert_to_tensor(inputs), [-1])
        # Without strip only "" is missing: string stripping is not a LiteRT built-in op.
        present = tf.strings.length(tf.strings.strip(inputs)) > 0 if self.strip else tf.not_equal(inputs, "")
        return tf.cast(present, "float32")[:, None]

    def get_config(self):
        return {**super().get_config(), "strip": self.strip}

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((inputs.shape[0], 1), dtype="float32")


@keras.saving.register_keras_serializable(package="mmkeras")
class TokenMask(keras.layers.Layer):
    """An all-true token mask `[B, N]` for encoders without padding.

    Example:
    >>> import numpy as np
    >>> TokenMask()(np.zeros((2, 3, 4))).shape
    TensorShape([2, 3])
    """

    def call(self, tokens):
        return ops.ones(ops.shape(tokens)[:2], dtype="bool")

    def compute_output_spec(self, tokens):
        return keras.KerasTensor(tokens.shape[:2], dtype="bool")


@keras.saving.register_keras_serializable(package="mmkeras")
class SplitMissingFeatures(keras.layers.Layer):
    """Per-feature missing values: NaN -> 0 plus a presence flag per feature.

    Call arguments:
        inputs: float `[B, F]` or `[B, T, F]`, already normalised.

    Returns:
        `(features, presence)`: `features` is `[..., 2F]`, the filled values
        followed by the 0/1 flags; `presence` `[B, 1]` is 1.0 when any value
        of the example is present.

    Example:
    >>> import numpy as np
    >>> features, presence = SplitMissingFeatures()(np.array([[0.5, np.nan]], "float32"))
    >>> features.numpy().tolist()
    [[0.5, 0.0, 1.0, 0.0]]
    """

    def call(self, inputs):
        present = ops.logical_not(ops.isnan(inputs))
        filled = ops.where(present, inputs, ops.zeros_like(inputs))
        flags = ops.cast(present, inputs.dtype)
        flat = ops.reshape(present, (ops.shape(inputs)[0], -1))
        any_present = ops.cast(ops.any(flat, axis=-1, keepdims=True), "float32")
        return ops.concatenate([filled, flags], axis=-1), any_present

    def compute_output_spec(self, inputs):
        shape = (*inputs.shape[:-1], 2 * inputs.shape[-1])
        return (keras.KerasTensor(shape, dtype=inputs.dtype),
                keras.KerasTensor((inputs.shape[0], 1), dtype="float32"))


@keras.saving.register_keras_serializable(package="mmkeras")
class PresentBatchNormalization(keras.layers.BatchNormalization):
    """`BatchNormalization` whose batch statistics count only examples where the modality is present.

    A missing input reaches its encoder filled with zeros (`SplitMissing`): a
    silent clip's log-mel sits at the decibel floor, far below any real
    sound, so counting it would shift the mean and widen the variance that
    the present examples are normalised with, by how many examples happen to
    miss the modality in the batch. Keras' own `mask=` excludes them; this
    layer builds that mask from the modality's presence flag. At inference it
    is plain `BatchNormalization` (moving statistics).

    Call arguments:
        inputs: float `[B, ..., C]`, normalised over its last axis.
        presence: float `[B, 1]`, 1.0 where the example has the modality.
        training: whether to use (and update) batch statistics.

    Example:
    >>> import numpy as np
    >>> layer = PresentBatchNormalization(center=False, scale=False, epsilon=0.0)
    >>> x = np.array([[1.0], [3.0], [-100.0]], "float32")
    >>> layer(x, np.array([[1.0], [1.0], [0.0]], "float32"), training=True).numpy().ravel()[:2].tolist()
    [-1.0, 1.0]
    """

    def build(self, inputs_shape, presence_shape=None):
        super().build(inputs_shape)

    def call(self, inputs, presence, training=None):
        rank = len(inputs.shape)
        present = ops.reshape(ops.cast(presence, "bool"), (-1,) + (1,) * (rank - 2))
        mask = ops.broadcast_to(present, ops.shape(inputs)[:-1])
        return super().call(inputs, training=training, mask=mask)

    def compute_output_spec(self, inputs, presence, training=None):
        return keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)


@keras.saving.register_keras_serializable(package="mmkeras")
class StepMask(keras.layers.Layer):
    """Bool `[B, T]`: the steps of a series `[B, T, F]` that hold any value.

    A step whose every feature is NaN is missing (padding, a gap). A series
    with no step at all is a missing input, which its presence flag says:
    its mask is all True, so a masked mean over its (filled-in) steps is
    defined instead of 0 / 0.

    Example:
    >>> import numpy as np
    >>> nan = np.nan
    >>> StepMask()(np.array([[[1.0], [nan]], [[nan], [nan]]])).numpy().tolist()
    [[True, False], [True, True]]
    """

    def call(self, inputs):
        present = ops.any(ops.logical_not(ops.isnan(inputs)), axis=-1)
        empty = ops.logical_not(ops.any(present, axis=-1, keepdims=True))
        return ops.logical_or(present, empty)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape[:2], dtype="bool")


@keras.saving.register_keras_serializable(package="mmkeras")
class MaskedMaxPooling1D(keras.layers.Layer):
    """The largest value over the steps a mask keeps: `[B, T, D]`, `[B, T]` -> `[B, D]`.

    `keras.layers.GlobalMaxPooling1D` takes no mask, so padding would count.

    Example:
    >>> import numpy as np
    >>> x = np.array([[[1.0], [5.0], [3.0]]], "float32")
    >>> MaskedMaxPooling1D()(x, np.array([[True, False, True]])).numpy().tolist()
    [[3.0]]
    """

    def call(self, inputs, mask):
        masked = ops.where(ops.expand_dims(mask, -1), inputs, ops.full_like(inputs, -1e9))
        return ops.max(masked, axis=1)

    def compute_output_spec(self, inputs, mask):
        return keras.KerasTensor((inputs.shape[0], inputs.shape[2]), dtype=self.compute_dtype)


@keras.saving.register_keras_serializable(package="mmkeras")
class MaskedAveragePooling1D(keras.layers.Layer):
    """The mean over the steps a mask keeps: `[B, T, D]`, `[B, T]` -> `[B, D]`.

    `keras.layers.GlobalAveragePooling1D(mask=...)` divides by the count of
    kept steps; LiteRT has no int8 division, so this weighs the steps with a
    softmax that gives the dropped ones none (the same mean, no division).

    Example:
    >>> import numpy as np
    >>> x = np.array([[[1.0], [5.0], [3.0]]], "float32")
    >>> MaskedAveragePooling1D()(x, np.array([[True, False, True]])).numpy().tolist()
    [[2.0]]
    """

    def call(self, inputs, mask):
        weights = ops.softmax(ops.where(mask, 0.0, -1e9), axis=1)
        return ops.sum(inputs * ops.cast(ops.expand_dims(weights, -1), inputs.dtype), axis=1)

    def compute_output_spec(self, inputs, mask):
        return keras.KerasTensor((inputs.shape[0], inputs.shape[2]), dtype=self.compute_dtype)
