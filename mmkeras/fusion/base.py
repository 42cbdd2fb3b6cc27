"""What every fusion layer shares."""

import keras


class FusionLayer(keras.layers.Layer):
    """Base class: fuses `V >= 2` modality embeddings into one vector.

    Call arguments of every fusion layer:
        embeddings: `[B, V, D]`, one embedding per modality (missing ones
            already replaced by `ModalityDropout`'s learned embedding).
        presence: `[B, V]`, 1.0 present, 0.0 missing.
        tokens: list of `V` tensors `[B, N_v, D]` (token-level fusions only).
        token_masks: list of `V` bool tensors `[B, N_v]`.

    Layers whose `has_modality_weights` is True return `(fused, weights)`
    with `weights` `[B, V]`, which reports show per modality.

    Args:
        modality_names: names of the V modalities, in order.
    """

    has_modality_weights = False
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

    def get_config(self):
        return {**super().get_config(), "modality_names": self.modality_names}
