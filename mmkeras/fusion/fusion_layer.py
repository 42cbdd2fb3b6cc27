"""What every fusion layer shares: one calling convention, one way to read weights."""

import keras


class FusionLayer(keras.layers.Layer):
    """Base class: fuses `V >= 2` modality embeddings into one vector.

    Every fusion layer is called the same way and returns the same thing:

    `fused = fusion(embeddings, presence, tokens=None, token_masks=None)`

    Call arguments:
        embeddings: `[B, V, D]`, one embedding per modality (missing ones
            already replaced by `ModalityDropout`'s learned embedding).
        presence: `[B, V]`, 1.0 present, 0.0 missing.
        tokens: list of `V` tensors `[B, N_v, D]`, or None. Only a layer
            whose `uses_tokens` is True reads them (the builder projects
            tokens to the shared width for such a layer alone, as the
            projections would stay untrained otherwise); the others ignore
            them.
        token_masks: list of `V` bool tensors `[B, N_v]`, True for real
            tokens, or None.
        training: for layers with dropout inside.

    Returns:
        The fused vector `[B, F]`.

    A fusion that weighs the modalities (reports show the weights) says so
    through `modality_weights`, which takes the same arguments; the others
    inherit `None`. Its `call` computes its weights with that method too, so
    the report shows the weights the prediction used.

    Constructor arguments other than `modality_names` are the layer's
    options (`fusion_options` of `build_model`, `model.fusion_options` of an
    app.yaml), checked against the signature by
    `mmkeras.fusion.check_options`: give each a default of the type it takes.

    Args:
        modality_names: names of the V modalities, in order.

    Example:
    >>> import numpy as np
    >>> from mmkeras.fusion import ConcatFusion, GatedFusion
    >>> embeddings, presence = np.ones((2, 3, 4), "float32"), np.ones((2, 3), "float32")
    >>> gated = GatedFusion(["image", "text", "audio"], hidden_dim=8)
    >>> gated(embeddings, presence).shape, gated.modality_weights(embeddings, presence).shape
    (TensorShape([2, 8]), TensorShape([2, 3]))
    >>> concat = ConcatFusion(["image", "text", "audio"], hidden_dim=8)
    >>> concat(embeddings, presence).shape, concat.modality_weights(embeddings, presence)
    (TensorShape([2, 8]), None)
    """

    # Whether `call` reads `tokens` and `token_masks` (they cost a projection
    # per modality, made only for a layer that reads them).
    uses_tokens = False

    def __init__(self, modality_names, **kwargs):
        super().__init__(**kwargs)
        self.modality_names = list(modality_names)
        if len(self.modality_names) < 2:
            raise ValueError(
                f"{type(self).__name__} fuses at least 2 modalities. Received: {self.modality_names}"
            )

    @property
    def num_modalities(self):
        return len(self.modality_names)

    def modality_weights(self, embeddings, presence, tokens=None, token_masks=None):
        """`[B, V]` float32: how much the fused vector draws on each modality.

        Rows sum to 1 over the present modalities; missing ones get 0. None
        for a fusion without such weights (this default). Call it on a built
        layer, with `call`'s arguments.
        """
        return None

    @property
    def has_modality_weights(self):
        """Whether `modality_weights` gives weights: the layer defines it."""
        return type(self).modality_weights is not FusionLayer.modality_weights

    def check_tokens(self, tokens, token_masks):
        """Raises when a layer that reads tokens is called without them."""
        if tokens is None or token_masks is None:
            missing = [name for name, value in (("tokens", tokens), ("token_masks", token_masks))
                       if value is None]
            raise ValueError(f"{type(self).__name__} reads tokens: call it as fusion(embeddings, presence, "
                             f"tokens, token_masks). Received no {' and no '.join(missing)}")

    def get_config(self):
        return {**super().get_config(), "modality_names": self.modality_names}
