"""Learned weighted sum of modality embeddings."""

import keras

from mmkeras.fusion.base import FusionLayer
from mmkeras.fusion.masking import masked_softmax, weighted_sum


@keras.saving.register_keras_serializable(package="mmkeras")
class WeightedSumFusion(FusionLayer):
    """`z = sum_v alpha_v z_v` with `alpha = softmax(w)` over present modalities.

    One learned scalar per modality; missing modalities get zero weight and
    the others are renormalised.

    Returns:
        `(fused [B, D], weights [B, V])`.

    Example:
    >>> import numpy as np
    >>> fusion = WeightedSumFusion(["image", "text"])
    >>> fused, weights = fusion(np.ones((1, 2, 4), "float32"), np.array([[1.0, 0.0]], "float32"))
    >>> weights.numpy().tolist()
    [[1.0, 0.0]]
    """

    has_modality_weights = True

    def build(self, embeddings_shape, presence_shape=None):
        self.modality_logits = self.add_weight(
            name="modality_logits", shape=(self.num_modalities,), initializer="zeros"
        )

    def call(self, embeddings, presence):
        logits = keras.ops.broadcast_to(self.modality_logits[None], keras.ops.shape(presence))
        weights = masked_softmax(logits, presence)
        return weighted_sum(weights, embeddings), weights

    def compute_output_spec(self, embeddings, presence):
        return (keras.KerasTensor((embeddings.shape[0], embeddings.shape[2]), dtype=self.compute_dtype),
                keras.KerasTensor(presence.shape, dtype="float32"))
