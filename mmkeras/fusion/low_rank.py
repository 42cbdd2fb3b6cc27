"""Low-rank multimodal fusion: the product of per-modality projections."""

import keras
from keras import ops

from mmkeras.fusion.fusion_layer import FusionLayer


@keras.saving.register_keras_serializable(package="mmkeras")
class LowRankFusion(FusionLayer):
    """Low-rank multimodal fusion (LMF, Liu et al., ACL 2018).

    Each modality's embedding gets `rank` linear projections to
    `hidden_dim`; the fused vector is the element-wise product of the
    modalities' projections, summed over the rank. The projections' biases
    start at 1, so at initialisation the product is 1 + the sum of the
    modalities' terms + their products: an additive fusion that can also
    express interactions between modalities ("the part is defective when two
    sources agree", "the label is the parity of two digits") which a sum or
    a concatenation leaves to the layers after it.

    Args:
        modality_names: names of the modalities, in order.
        hidden_dim: width of the fused vector.
        rank: number of product terms summed.
        dropout: dropout rate on the fused vector.

    Example:
    >>> import numpy as np
    >>> fusion = LowRankFusion(["image", "audio"], hidden_dim=8)
    >>> fusion(np.ones((2, 2, 4), "float32"), np.ones((2, 2), "float32")).shape
    TensorShape([2, 8])
    """

    def __init__(self, modality_names, hidden_dim=256, rank=4, dropout=0.1, **kwargs):
        super().__init__(modality_names, **kwargs)
        self.hidden_dim = int(hidden_dim)
        self.rank = int(rank)
        self.dropout = float(dropout)
        self.factors = [keras.layers.Dense(self.rank * self.hidden_dim, bias_initializer="ones",
                                           name=f"factor_{i}") for i in range(self.num_modalities)]
        # Products of several factors vary widely in scale: normalise them.
        self.norm = keras.layers.LayerNormalization(name="norm")
        self.dropout_layer = keras.layers.Dropout(self.dropout)

    def build(self, embeddings_shape, presence_shape=None):
        for factor in self.factors:
            factor.build((None, embeddings_shape[2]))
        self.norm.build((None, self.hidden_dim))

    def call(self, embeddings, presence, tokens=None, token_masks=None, training=None):
        product = None
        for i, factor in enumerate(self.factors):
            projected = ops.reshape(factor(embeddings[:, i]), (-1, self.rank, self.hidden_dim))
            product = projected if product is None else product * projected
        fused = self.norm(ops.sum(product, axis=1))
        return self.dropout_layer(fused, training=training)

    def compute_output_spec(self, embeddings, presence, tokens=None, token_masks=None, training=None):
        return keras.KerasTensor((embeddings.shape[0], self.hidden_dim), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim, "rank": self.rank,
                "dropout": self.dropout}
