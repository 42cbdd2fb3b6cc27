"""Cross-attention fusion: each modality's tokens attend to the others'."""

import keras
from keras import ops

from mmkeras.fusion.fusion_layer import FusionLayer
from mmkeras.fusion.masking import valid_tokens


@keras.saving.register_keras_serializable(package="mmkeras")
class CrossAttentionFusion(FusionLayer):
    """Each modality's tokens attend to every other modality's tokens.

    For modality `v`, queries are its tokens and keys/values the tokens of
    all other present modalities (padding and missing modalities masked).
    The attended tokens are mean-pooled per modality and concatenated with
    the modality embeddings (which carry the learned missing embeddings),
    then an MLP mixes them.

    Args:
        modality_names: names of the modalities, in order.
        num_heads: attention heads.
        hidden_dim: output width.
        dropout: attention dropout.

    Example:
    >>> import numpy as np
    >>> fusion = CrossAttentionFusion(["image", "text"], num_heads=2, hidden_dim=8)
    >>> tokens = [np.ones((2, 3, 4), "float32"), np.ones((2, 5, 4), "float32")]
    >>> masks = [np.ones((2, 3), bool), np.ones((2, 5), bool)]
    >>> fusion(np.ones((2, 2, 4), "float32"), np.ones((2, 2), "float32"), tokens, masks).shape
    TensorShape([2, 8])
    """

    uses_tokens = True

    def __init__(self, modality_names, num_heads=4, hidden_dim=256, dropout=0.1, **kwargs):
        super().__init__(modality_names, **kwargs)
        self.num_heads = int(num_heads)
        self.hidden_dim = int(hidden_dim)
        self.dropout = float(dropout)

    def build(self, embeddings_shape, presence_shape=None, tokens_shape=None, token_masks_shape=None):
        width = embeddings_shape[2]
        self.attentions = [
            keras.layers.MultiHeadAttention(self.num_heads, max(width // self.num_heads, 1),
                                            dropout=self.dropout, name=f"attention_{name}")
            for name in self.modality_names
        ]
        self.norms = [keras.layers.LayerNormalization(name=f"norm_{name}") for name in self.modality_names]
        self.output_dense = keras.layers.Dense(self.hidden_dim, activation="gelu", name="output")
        for attention, norm in zip(self.attentions, self.norms):
            attention.build((None, None, width), (None, None, width))
            norm.build((None, None, width))
        self.output_dense.build((None, 2 * self.num_modalities * width))

    def call(self, embeddings, presence, tokens=None, token_masks=None, training=None):
        self.check_tokens(tokens, token_masks)
        masks = [valid_tokens(token_masks[v], presence[:, v]) for v in range(self.num_modalities)]
        pooled = []
        for v in range(self.num_modalities):
            others = [u for u in range(self.num_modalities) if u != v]
            keys = ops.concatenate([tokens[u] for u in others], axis=1)
            key_mask = ops.concatenate([masks[u] for u in others], axis=1)
            attention_mask = ops.logical_and(masks[v][:, :, None], key_mask[:, None, :])
            attended = self.attentions[v](tokens[v], keys, attention_mask=attention_mask,
                                          training=training)
            # With every key masked, softmax is uniform over masked keys: drop it.
            has_keys = ops.cast(ops.any(key_mask, axis=1), attended.dtype)[:, None, None]
            attended = self.norms[v](tokens[v] + attended * has_keys)
            pooled.append(_masked_mean(attended, masks[v]))
        flat = ops.reshape(embeddings, (ops.shape(embeddings)[0], -1))
        return self.output_dense(ops.concatenate([flat, *pooled], axis=-1))

    def compute_output_spec(self, embeddings, presence, tokens=None, token_masks=None, training=None):
        return keras.KerasTensor((embeddings.shape[0], self.hidden_dim), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "hidden_dim": self.hidden_dim,
                "dropout": self.dropout}


def _masked_mean(tokens, mask):
    weights = ops.cast(mask, tokens.dtype)[:, :, None]
    count = ops.maximum(ops.sum(weights, axis=1), 1.0)
    return ops.sum(tokens * weights, axis=1) / count
