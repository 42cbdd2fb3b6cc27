"""Training-time augmentation of raw waveforms: random gain and time shift."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="mmkeras")
class WaveformAugment(keras.layers.Layer):
    """Random gain and time shift of `[B, samples]` waveforms, in training only.

    Each clip is scaled by a gain drawn uniformly in `[-max_gain_db,
    +max_gain_db]` dB (a louder or quieter recording of the same sound) and
    rolled in time by up to `max_shift` of its length (the same sound,
    starting earlier or later; the end wraps round, so the clip keeps its
    length and its background). The result is clipped to [-1, 1], as a
    recording would be. At inference the layer is the identity, so no random
    op reaches a serving graph.

    Args:
        max_gain_db: largest gain change, in dB, either way.
        max_shift: largest shift, as a fraction of the clip length.
        seed: seed of the draws (None: from Keras' global seed).

    Example:
    >>> import numpy as np
    >>> x = np.linspace(-0.5, 0.5, 8, dtype="float32")[None]
    >>> bool((WaveformAugment()(x, training=False).numpy() == x).all())
    True
    >>> WaveformAugment()(x, training=True).shape
    TensorShape([1, 8])
    """

    def __init__(self, max_gain_db=6.0, max_shift=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not max_gain_db >= 0:
            raise ValueError(f"WaveformAugment max_gain_db must be >= 0. Received: {max_gain_db!r}")
        if not 0 <= max_shift < 1:
            raise ValueError(f"WaveformAugment max_shift must be in [0, 1). Received: {max_shift!r}")
        self.max_gain_db = float(max_gain_db)
        self.max_shift = float(max_shift)
        self.seed = seed
        # Seeded draws, so training.deterministic reproduces a run.
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, waveform, training=None):
        if not training:
            return waveform
        batch, length = tf.shape(waveform)[0], tf.shape(waveform)[1]
        gain_db = keras.random.uniform((batch, 1), -self.max_gain_db, self.max_gain_db,
                                       seed=self.seed_generator)
        largest = tf.cast(tf.cast(length, "float32") * self.max_shift, "int32")
        shift = keras.random.randint((batch, 1), -largest, largest + 1, seed=self.seed_generator)
        # A vectorised per-clip roll: sample i of the output is sample
        # i - shift of the input, modulo the length.
        source = tf.math.floormod(tf.range(length)[None, :] - shift, length)
        rolled = tf.gather(waveform, source, batch_dims=1)
        return tf.clip_by_value(rolled * tf.pow(10.0, gain_db / 20.0), -1.0, 1.0)

    def compute_output_spec(self, waveform):
        return keras.KerasTensor(waveform.shape, dtype=waveform.dtype)

    def get_config(self):
        return {**super().get_config(), "max_gain_db": self.max_gain_db, "max_shift": self.max_shift,
                "seed": self.seed}
