"""Attention over modality vectors, then an MLP."""

import keras
from keras import ops

from mmkeras.fusion.fusion_layer import FusionLayer
from mmkeras.fusion.masking import masked_softmax, weighted_sum


@keras.saving.register_keras_serializable(package="mmkeras")
class ModalityAttentionFusion(FusionLayer):
    """Input-dependent attention weights over the modality embeddings.

    `s_v = u^T tanh(W z_v + b)`, `alpha = softmax(s)` over the present
    modalities, `z = MLP(sum_v alpha_v z_v)`. The weights say, per example,
    which modality the model relied on. A convex combination alone, read by
    a linear head, cannot learn interactions between modalities (e.g. an
    XOR of two cues); the MLP after the sum can.

    Args:
        modality_names: names of the modalities, in order.
        attention_dim: width of the scoring MLP.
        hidden_dim: width of the output MLP and of the output.

    Returns:
        The fused vector `[B, hidden_dim]`; `modality_weights` gives `alpha`
        `[B, V]`.

    Example:
    >>> import numpy as np
    >>> fusion = ModalityAttentionFusion(["image", "text", "audio"], attention_dim=8, hidden_dim=8)
    >>> embeddings, presence = np.ones((2, 3, 4), "float32"), np.ones((2, 3), "float32")
    >>> fusion(embeddings, presence).shape
    TensorShape([2, 8])
    >>> fusion.modality_weights(embeddings, presence).shape
    TensorShape([2, 3])
    """

    def __init__(self, modality_names, attention_dim=128, hidden_dim=256, **kwargs):
        super().__init__(modality_names, **kwargs)
        self.attention_dim = int(attention_dim)
        self.hidden_dim = int(hidden_dim)
        self.projection = keras.layers.Dense(self.attention_dim, activation="tanh", name="projection")
        # Zero scores: training starts from a plain average of the modalities,
        # so no modality is ignored before the others had a chance to learn.
        self.score = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros", name="score")
        self.dense = keras.layers.Dense(self.hidden_dim, activation="gelu", name="dense")

    def build(self, embeddings_shape, presence_shape=None):
        self.projection.build((None, embeddings_shape[2]))
        self.score.build((None, self.attention_dim))
        self.dense.build((None, embeddings_shape[2]))

    def modality_weights(self, embeddings, presence, tokens=None, token_masks=None):
        scores = ops.squeeze(self.score(self.projection(embeddings)), axis=-1)
        return masked_softmax(scores, presence)

    def call(self, embeddings, presence, tokens=None, token_masks=None):
        weights = self.modality_weights(embeddings, presence)
        return self.dense(weighted_sum(weights, embeddings))

    def compute_output_spec(self, embeddings, presence, tokens=None, token_masks=None):
        return keras.KerasTensor((embeddings.shape[0], self.hidden_dim), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "attention_dim": self.attention_dim,
                "hidden_dim": self.hidden_dim}
