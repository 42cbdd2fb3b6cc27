"""Concatenation fusion followed by an MLP."""

import keras
from keras import ops

from mmkeras.fusion.fusion_layer import FusionLayer


@keras.saving.register_keras_serializable(package="mmkeras")
class ConcatFusion(FusionLayer):
    """Concatenates modality embeddings and presence flags, then an MLP.

    Args:
        modality_names: names of the modalities, in order.
        hidden_dim: MLP width.
        dropout: dropout rate after the MLP.

    Example:
    >>> import numpy as np
    >>> fusion = ConcatFusion(["image", "text"], hidden_dim=8)
    >>> fusion(np.ones((2, 2, 4), "float32"), np.ones((2, 2), "float32")).shape
    TensorShape([2, 8])
    """

    def __init__(self, modality_names, hidden_dim=256, dropout=0.1, **kwargs):
        super().__init__(modality_names, **kwargs)
        self.hidden_dim = int(hidden_dim)
        self.dropout = float(dropout)
        self.dense = keras.layers.Dense(self.hidden_dim, activation="gelu", name="dense")
        self.dropout_layer = keras.layers.Dropout(self.dropout)

    def build(self, embeddings_shape, presence_shape=None):
        width = embeddings_shape[1] * embeddings_shape[2] + embeddings_shape[1]
        self.dense.build((None, width))

    def call(self, embeddings, presence, tokens=None, token_masks=None, training=None):
        flat = ops.reshape(embeddings, (ops.shape(embeddings)[0], -1))
        x = ops.concatenate([flat, ops.cast(presence, flat.dtype)], axis=-1)
        return self.dropout_layer(self.dense(x), training=training)

    def compute_output_spec(self, embeddings, presence, tokens=None, token_masks=None, training=None):
        return keras.KerasTensor((embeddings.shape[0], self.hidden_dim), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim, "dropout": self.dropout}
