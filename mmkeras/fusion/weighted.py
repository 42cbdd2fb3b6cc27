"""Learned weighted sum of modality embeddings, then an MLP."""

import keras

from mmkeras.fusion.fusion_layer import FusionLayer
from mmkeras.fusion.masking import masked_softmax, weighted_sum


@keras.saving.register_keras_serializable(package="mmkeras")
class WeightedSumFusion(FusionLayer):
    """`z = MLP(sum_v alpha_v z_v)`, `alpha = softmax(w)` over present modalities.

    One learned scalar per modality; missing modalities get zero weight and
    the others are renormalised. The MLP matters: without it the classifier
    head would be linear in each modality separately (`f(x_1) + g(x_2)`),
    which cannot learn any interaction between modalities (e.g. an XOR of
    two cues). The projections place each modality where the MLP can tell
    them apart, so the sum loses nothing.

    Args:
        modality_names: names of the modalities, in order.
        hidden_dim: width of the MLP and of the output.

    Returns:
        The fused vector `[B, hidden_dim]`; `modality_weights` gives `alpha`
        `[B, V]`.

    Example:
    >>> import numpy as np
    >>> fusion = WeightedSumFusion(["image", "text"], hidden_dim=8)
    >>> embeddings, presence = np.ones((1, 2, 4), "float32"), np.array([[1.0, 0.0]], "float32")
    >>> fusion(embeddings, presence).shape
    TensorShape([1, 8])
    >>> fusion.modality_weights(embeddings, presence).numpy().tolist()
    [[1.0, 0.0]]
    """

    def __init__(self, modality_names, hidden_dim=256, **kwargs):
        super().__init__(modality_names, **kwargs)
        self.hidden_dim = int(hidden_dim)
        self.dense = keras.layers.Dense(self.hidden_dim, activation="gelu", name="dense")

    def build(self, embeddings_shape, presence_shape=None):
        self.modality_logits = self.add_weight(
            name="modality_logits", shape=(self.num_modalities,), initializer="zeros"
        )
        self.dense.build((None, embeddings_shape[2]))

    def modality_weights(self, embeddings, presence, tokens=None, token_masks=None):
        logits = keras.ops.broadcast_to(self.modality_logits[None], keras.ops.shape(presence))
        return masked_softmax(logits, presence)

    def call(self, embeddings, presence, tokens=None, token_masks=None):
        weights = self.modality_weights(embeddings, presence)
        return self.dense(weighted_sum(weights, embeddings))

    def compute_output_spec(self, embeddings, presence, tokens=None, token_masks=None):
        return keras.KerasTensor((embeddings.shape[0], self.hidden_dim), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim}
