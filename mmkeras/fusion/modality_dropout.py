"""Modality dropout and the learned "missing" embeddings."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmkeras")
class ModalityDropout(keras.layers.Layer):
    """Drops whole modalities in training and stands in learned embeddings.

    Every modality has a learned "missing" embedding. It replaces the
    modality's embedding wherever the modality is absent: missing in the
    data (presence 0) or, during training only, dropped at random with
    probability `rate`. A model trained this way has seen missing inputs and
    keeps working when a client leaves one out. An example never loses all
    of its present modalities to dropout.

    Args:
        rate: probability of dropping each present modality while training.
        seed: random seed.

    Call arguments:
        embeddings: `[B, V, D]`, one projected embedding per modality.
        presence: `[B, V]`, 1.0 present, 0.0 missing.
        training: bool.

    Returns:
        `(embeddings, presence)` with dropped/missing modalities replaced by
        their missing embedding and marked 0 in `presence`.

    Example:
    >>> import numpy as np
    >>> layer = ModalityDropout(rate=0.5)
    >>> x = np.ones((2, 3, 4), "float32")
    >>> out, presence = layer(x, np.array([[1, 1, 0], [1, 1, 1]], "float32"))
    >>> presence.numpy().tolist()
    [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    """

    def __init__(self, rate=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"ModalityDropout rate must be in [0, 1). Received: rate={rate}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, embeddings_shape, presence_shape=None):
        self.missing_embeddings = self.add_weight(
            name="missing_embeddings", shape=tuple(embeddings_shape[1:]),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )

    def call(self, embeddings, presence, training=None):
        presence = ops.cast(presence, "float32")
        if training and self.rate > 0:
            keep = keras.random.uniform(ops.shape(presence), seed=self.seed_generator) >= self.rate
            kept = presence * ops.cast(keep, "float32")
            # Never drop every present modality of an example.
            none_left = ops.max(kept, axis=-1, keepdims=True) == 0
            presence = ops.where(none_left, presence, kept)
        missing = ops.cast(self.missing_embeddings, embeddings.dtype)[None]
        mask = ops.cast(presence, embeddings.dtype)[:, :, None]
        return embeddings * mask + missing * (1 - mask), presence

    def compute_output_spec(self, embeddings, presence):
        return (keras.KerasTensor(embeddings.shape, dtype=self.compute_dtype),
                keras.KerasTensor(presence.shape, dtype="float32"))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
