"""Gated Multimodal Unit (Arevalo et al., 2017)."""

import keras
from keras import ops

from mmkeras.fusion.fusion_layer import FusionLayer
from mmkeras.fusion.masking import masked_softmax


@keras.saving.register_keras_serializable(package="mmkeras")
class GatedFusion(FusionLayer):
    """Gated Multimodal Unit generalised to V modalities.

    `h_v = tanh(W_v z_v)`; gates `g = softmax_v(W_g [z_1, ..., z_V])`, one
    gate per modality and per hidden unit, over the present modalities;
    `z = sum_v g_v * h_v` (elementwise). For two modalities this is the
    paper's vector sigmoid gate `g` and `1 - g`. The gates being per unit
    matters: one scalar gate per modality makes `z` a convex combination of
    per-modality vectors, which a linear head cannot turn into an
    interaction between modalities (e.g. an XOR of two cues).

    Args:
        modality_names: names of the modalities, in order.
        hidden_dim: width of `h_v` and of the output.

    Returns:
        The fused vector `[B, hidden_dim]`; `modality_weights` gives each
        modality's gate averaged over the hidden units `[B, V]` (rows sum
        to 1).

    Example:
    >>> import numpy as np
    >>> fusion = GatedFusion(["image", "text"], hidden_dim=8)
    >>> embeddings, presence = np.ones((2, 2, 4), "float32"), np.array([[1.0, 1.0], [1.0, 0.0]], "float32")
    >>> fusion(embeddings, presence).shape
    TensorShape([2, 8])
    >>> fusion.modality_weights(embeddings, presence).numpy()[1].tolist()
    [1.0, 0.0]
    """

    def __init__(self, modality_names, hidden_dim=256, **kwargs):
        super().__init__(modality_names, **kwargs)
        self.hidden_dim = int(hidden_dim)
        self.transforms = [
            keras.layers.Dense(self.hidden_dim, activation="tanh", name=f"transform_{name}")
            for name in self.modality_names
        ]
        self.gate = keras.layers.Dense(self.num_modalities * self.hidden_dim, name="gate")

    def build(self, embeddings_shape, presence_shape=None):
        width = embeddings_shape[2]
        for transform in self.transforms:
            transform.build((None, width))
        self.gate.build((None, self.num_modalities * width))

    def modality_weights(self, embeddings, presence, tokens=None, token_masks=None):
        return ops.mean(self._gates(embeddings, presence), axis=1)

    def call(self, embeddings, presence, tokens=None, token_masks=None):
        hidden = ops.stack([t(embeddings[:, i]) for i, t in enumerate(self.transforms)], axis=1)
        gates = self._gates(embeddings, presence)
        return ops.sum(hidden * ops.cast(ops.transpose(gates, (0, 2, 1)), hidden.dtype), axis=1)

    def _gates(self, embeddings, presence):
        """`[B, hidden_dim, V]`: a softmax over modalities, separately for every hidden unit."""
        flat = ops.reshape(embeddings, (ops.shape(embeddings)[0], -1))
        logits = ops.reshape(self.gate(flat), (-1, self.num_modalities, self.hidden_dim))
        logits = ops.transpose(logits, (0, 2, 1))
        return masked_softmax(logits, ops.cast(presence, "float32")[:, None, :])

    def compute_output_spec(self, embeddings, presence, tokens=None, token_masks=None):
        return keras.KerasTensor((embeddings.shape[0], self.hidden_dim), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim}
