"""Multimodal transformer fusion over all modalities' tokens."""

import keras
from keras import ops

from mmkeras.fusion.fusion_layer import FusionLayer
from mmkeras.fusion.masking import valid_tokens


@keras.saving.register_keras_serializable(package="mmkeras")
class MultimodalTransformerFusion(FusionLayer):
    """A transformer encoder over a fusion token and every modality's tokens.

    The sequence is `[FUSION] [z_1] tokens_1 ... [z_V] tokens_V`, each
    token plus a learned modality-type embedding. `z_v` is the modality
    embedding (the learned missing embedding when absent); tokens of missing
    modalities and padding are masked out. The output is the fusion token,
    layer-normalised. The encoder layers are pre-LN (normalise first), which
    train from scratch without warmup (Xiong et al., 2020); post-LN layers
    stalled or diverged on small data at learning rates the other fusions
    take.

    Args:
        modality_names: names of the modalities, in order.
        num_layers: transformer encoder layers.
        num_heads: attention heads.
        intermediate_dim: feed-forward width (default 2x the token width).
        dropout: dropout rate.

    Example:
    >>> import numpy as np
    >>> fusion = MultimodalTransformerFusion(["image", "text"], num_layers=1, num_heads=2)
    >>> tokens = [np.ones((2, 3, 4), "float32"), np.ones((2, 5, 4), "float32")]
    >>> masks = [np.ones((2, 3), bool), np.ones((2, 5), bool)]
    >>> fusion(np.ones((2, 2, 4), "float32"), np.ones((2, 2), "float32"), tokens, masks).shape
    TensorShape([2, 4])
    """

    uses_tokens = True

    def __init__(self, modality_names, num_layers=2, num_heads=4, intermediate_dim=None,
                 dropout=0.1, **kwargs):
        super().__init__(modality_names, **kwargs)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.intermediate_dim = intermediate_dim
        self.dropout = float(dropout)

    def build(self, embeddings_shape, presence_shape=None, tokens_shape=None, token_masks_shape=None):
        import keras_hub

        width = embeddings_shape[2]
        self.fusion_token = self.add_weight(
            name="fusion_token", shape=(1, 1, width),
            initializer=keras.initializers.RandomNormal(stddev=0.02))
        self.type_embeddings = self.add_weight(
            name="type_embeddings", shape=(self.num_modalities + 1, width),
            initializer=keras.initializers.RandomNormal(stddev=0.02))
        self.encoder_layers = [
            keras_hub.layers.TransformerEncoder(
                intermediate_dim=self.intermediate_dim or 2 * width, num_heads=self.num_heads,
                dropout=self.dropout, normalize_first=True, name=f"encoder_{i}")
            for i in range(self.num_layers)
        ]
        for layer in self.encoder_layers:
            layer.build((None, None, width))
        self.output_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="output_norm")
        self.output_norm.build((None, width))

    def call(self, embeddings, presence, tokens=None, token_masks=None, training=None):
        self.check_tokens(tokens, token_masks)
        batch = ops.shape(embeddings)[0]
        types = ops.cast(self.type_embeddings, embeddings.dtype)
        fusion_token = ops.cast(self.fusion_token, embeddings.dtype) + types[0]
        sequence = [ops.tile(fusion_token, (batch, 1, 1))]
        masks = [ops.ones((batch, 1), "bool")]
        for v in range(self.num_modalities):
            sequence += [embeddings[:, v:v + 1] + types[v + 1], tokens[v] + types[v + 1]]
            masks += [ops.ones((batch, 1), "bool"), valid_tokens(token_masks[v], presence[:, v])]
        x = ops.concatenate(sequence, axis=1)
        padding_mask = ops.concatenate(masks, axis=1)
        for layer in self.encoder_layers:
            x = layer(x, padding_mask=padding_mask, training=training)
        return self.output_norm(x[:, 0])

    def compute_output_spec(self, embeddings, presence, tokens=None, token_masks=None, training=None):
        return keras.KerasTensor((embeddings.shape[0], embeddings.shape[2]), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers, "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim, "dropout": self.dropout}
