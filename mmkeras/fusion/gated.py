"""Gated Multimodal Unit (Arevalo et al., 2017)."""

import keras
from keras import ops

from mmkeras.fusion.base import FusionLayer
from mmkeras.fusion.masking import masked_softmax, weighted_sum


@keras.saving.register_keras_serializable(package="mmkeras")
class GatedFusion(FusionLayer):
    """Gated Multimodal Unit generalised to V modalities.

    `h_v = tanh(W_v z_v)`; gates `g = softmax(W_g [z_1, ..., z_V])` over the
    present modalities; `z = sum_v g_v h_v`. For two modalities the softmax
    gate is the paper's sigmoid gate `g` and `1 - g`.

    Args:
        modality_names: names of the modalities, in order.
        hidden_dim: width of `h_v` and of the output.

    Returns:
        `(fused [B, hidden_dim], gates [B, V])`.

    Example:
    >>> import numpy as np
    >>> fusion = GatedFusion(["image", "text"], hidden_dim=8)
    >>> fused, gates = fusion(np.ones((2, 2, 4), "float32"), np.ones((2, 2), "float32"))
    >>> fused.shape
    TensorShape([2, 8])
    """

    has_modality_weights = True

    def __init__(self, modality_names, hidden_dim=256, **kwargs):
        super().__init__(modality_names, **kwargs)
        self.hidden_dim = int(hidden_dim)
        self.transforms = [
            keras.layers.Dense(self.hidden_dim, activation="tanh", name=f"transform_{name}")
            for name in self.modality_names
        ]
        self.gate = keras.layers.Dense(self.num_modalities, name="gate")

    def build(self, embeddings_shape, presence_shape=None):
        width = embeddings_shape[2]
        for transform in self.transforms:
            transform.build((None, width))
        self.gate.build((None, self.num_modalities * width))

    def call(self, embeddings, presence):
        hidden = ops.stack([t(embeddings[:, i]) for i, t in enumerate(self.transforms)], axis=1)
        flat = ops.reshape(embeddings, (ops.shape(embeddings)[0], -1))
        gates = masked_softmax(self.gate(flat), presence)
        return weighted_sum(gates, hidden), gates

    def compute_output_spec(self, embeddings, presence):
        return (keras.KerasTensor((embeddings.shape[0], self.hidden_dim), dtype=self.compute_dtype),
                keras.KerasTensor(presence.shape, dtype="float32"))

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim}
