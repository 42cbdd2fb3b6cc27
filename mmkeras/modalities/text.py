"""Text modality: raw strings -> KerasHub tokenizer and encoder, inside the model.

The tokenizer is a layer of the model, so the SavedModel takes plain strings.
Single segments are packed with `StartEndPacker` (core TF ops); KerasHub's
multi-segment packer emits `TFText>RoundRobinTrim`, which TF Serving lacks.
"""

import keras
import numpy as np
from keras import ops

from mmkeras.modalities.base import Encoded, Modality
from mmkeras.modalities.missing import TextPresence

RESERVED_TOKENS = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]

# Architecture configs of KerasHub encoders, one line each. The `*_tiny`
# entries train from scratch in seconds; the others match the published
# presets, whose weights and vocabulary come from a local preset directory.
TEXT_ENCODERS = {
    "bert_tiny": ("BertBackbone", dict(num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512)),
    "bert_small_en_uncased": ("BertBackbone", dict(num_layers=4, num_heads=8, hidden_dim=512, intermediate_dim=2048)),
    "bert_base_en_uncased": ("BertBackbone", dict(num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072)),
    "distil_bert_tiny": ("DistilBertBackbone", dict(num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512)),
    "distil_bert_base_en_uncased": ("DistilBertBackbone", dict(num_layers=6, num_heads=12, hidden_dim=768, intermediate_dim=3072)),
    "roberta_tiny": ("RobertaBackbone", dict(num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512)),
    "roberta_base_en": ("RobertaBackbone", dict(num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072)),
    "deberta_v3_tiny": ("DebertaV3Backbone", dict(num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512, bucket_size=32)),
    "deberta_v3_small_en": ("DebertaV3Backbone", dict(num_layers=6, num_heads=12, hidden_dim=768, intermediate_dim=3072, bucket_size=256)),
}


class TextInput(Modality):
    """A text input: raw UTF-8 strings, tokenised and encoded inside the model.

    Args:
        name: input name (model input and serving field).
        encoder: a name from `TEXT_ENCODERS` (BERT, DistilBERT, RoBERTa,
            DeBERTaV3 architectures).
        sequence_length: tokens per example, `[CLS]`/`[SEP]` included.
        weights: a local KerasHub preset directory (weights + vocabulary)
            or a preset handle (network). `None` trains from scratch with a
            WordPiece vocabulary learned from training texts.
        vocabulary: a WordPiece vocabulary list; learned by `adapt()` if None.
        vocabulary_size: size of the vocabulary `adapt()` learns.
        lowercase: lowercase before WordPiece (learned vocabularies only).
        trainable: `False` freezes the encoder.

    Example:
    >>> spec = TextInput("review", encoder="bert_tiny", sequence_length=16)
    >>> spec.adapt(["a great phone", "a bad battery", "great screen"])
    >>> encoded = spec.encode(spec.keras_input())
    >>> tuple(encoded.tokens.shape[1:])
    (16, 128)
    """

    kind = "text"

    def __init__(self, name, encoder="bert_tiny", sequence_length=64, weights=None,
                 vocabulary=None, vocabulary_size=2000, lowercase=True, trainable=True):
        super().__init__(name)
        if encoder not in TEXT_ENCODERS:
            raise ValueError(f"Unknown text encoder {encoder!r}. Known: {sorted(TEXT_ENCODERS)}")
        self.encoder = encoder
        self.sequence_length = int(sequence_length)
        self.weights = weights
        self.vocabulary = list(vocabulary) if vocabulary is not None else None
        self.vocabulary_size = int(vocabulary_size)
        self.lowercase = bool(lowercase)
        self.trainable = bool(trainable)

    def keras_input(self):
        return keras.Input(shape=(), dtype="string", name=self.name)

    def missing_value(self):
        return ""

    def needs_adapt(self):
        return self.weights is None and self.vocabulary is None

    def adapt(self, values):
        """Learns a WordPiece vocabulary from an iterable of training texts."""
        import keras_hub
        import tensorflow as tf

        # Flat, whatever the batching of the dataset the values came from.
        values = np.asarray(values, dtype=object).reshape(-1)
        texts = [t.decode() if isinstance(t, bytes) else str(t) for t in values]
        dataset = tf.data.Dataset.from_tensor_slices(texts).batch(256)
        self.vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
            dataset, self.vocabulary_size, lowercase=self.lowercase,
            reserved_tokens=RESERVED_TOKENS,
        )

    def encode(self, x):
        presence = TextPresence(name=f"{self.name}_presence")(x)
        tokenizer, backbone = self._tokenizer_and_backbone()
        token_ids, padding_mask = TextTokenizer(
            tokenizer, self.sequence_length, name=f"{self.name}_tokenizer")(x)
        backbone_inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        if "segment_ids" in backbone.input:
            backbone_inputs["segment_ids"] = ZerosLike(name=f"{self.name}_segment_ids")(token_ids)
        if self.trainable:
            sequence = backbone(backbone_inputs)
        else:
            backbone.trainable = False
            sequence = backbone(backbone_inputs, training=False)
        if isinstance(sequence, dict):
            sequence = sequence["sequence_output"]
        pooled = keras.layers.GlobalAveragePooling1D(name=f"{self.name}_pool")(sequence, mask=padding_mask)
        return Encoded(pooled, sequence, padding_mask, presence)

    def _tokenizer_and_backbone(self):
        import keras_hub

        if self.weights is not None:
            tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(self.weights)
            backbone = keras_hub.models.Backbone.from_preset(self.weights)
        else:
            if self.vocabulary is None:
                raise ValueError(
                    f"TextInput({self.name!r}) has no vocabulary: pass `weights=` (a preset "
                    f"directory), `vocabulary=`, or build with `adapt_data=` so it learns one."
                )
            tokenizer = keras_hub.tokenizers.WordPieceTokenizer(
                vocabulary=self.vocabulary, lowercase=self.lowercase, oov_token="[UNK]",
            )
            class_name, config = TEXT_ENCODERS[self.encoder]
            backbone = getattr(keras_hub.models, class_name)(
                vocabulary_size=len(self.vocabulary),
                max_sequence_length=max(self.sequence_length, 64),
                **config,
            )
        if "pooled_dense" in [layer.name for layer in backbone.layers]:
            # BERT's [CLS] pooler is unused (we mean-pool): freeze it so fit()
            # does not warn about variables without gradients.
            backbone.get_layer("pooled_dense").trainable = False
        backbone.name = f"{self.name}_encoder"
        return tokenizer, backbone

    def get_config(self):
        return {"name": self.name, "encoder": self.encoder, "sequence_length": self.sequence_length,
                "weights": self.weights, "vocabulary": self.vocabulary,
                "vocabulary_size": self.vocabulary_size, "lowercase": self.lowercase,
                "trainable": self.trainable}


@keras.saving.register_keras_serializable(package="mmkeras")
class TextTokenizer(keras.layers.Layer):
    """A KerasHub tokenizer plus single-segment packing, as TF ops everywhere.

    Outputs `(token_ids, padding_mask)`, both `[B, sequence_length]`:
    `[CLS] tokens [SEP] [PAD]...` with the tokenizer's own special tokens.
    KerasHub turns preprocessing outputs into Python lists when called
    eagerly; inside a model they must stay tensors, so both layers run in
    KerasHub's no-convert scope.

    Args:
        tokenizer: a `keras_hub.tokenizers.Tokenizer`.
        sequence_length: tokens per example, special tokens included.
        special_token_ids: `(start, end, pad)` ids; read from the tokenizer
            if None. Kept in the config because a reloaded tokenizer gets
            its vocabulary (an asset) only after the layer is rebuilt.

    Example:
    >>> import keras_hub
    >>> vocab = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]", "good", "phone"]
    >>> tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocab)
    >>> ids, mask = TextTokenizer(tokenizer, 5)(["good phone", ""])
    >>> ids.numpy().tolist()
    [[1, 5, 6, 2, 0], [1, 2, 0, 0, 0]]
    """

    def __init__(self, tokenizer, sequence_length, special_token_ids=None, **kwargs):
        super().__init__(**kwargs)
        import keras_hub

        if isinstance(tokenizer, dict):
            tokenizer = keras.saving.deserialize_keras_object(tokenizer)
        # Preset BPE/SentencePiece tokenizers would otherwise run as Python.
        tokenizer._allow_python_workflow = False
        self.tokenizer = tokenizer
        self.sequence_length = int(sequence_length)
        if special_token_ids is None:
            special_token_ids = _special_token_ids(tokenizer)
        self.special_token_ids = [int(i) for i in special_token_ids]
        start, end, pad = self.special_token_ids
        self.packer = keras_hub.layers.StartEndPacker(
            sequence_length=self.sequence_length, start_value=start, end_value=end,
            pad_value=pad, return_padding_mask=True, _allow_python_workflow=False,
        )
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True

    def call(self, inputs):
        import tensorflow as tf
        from keras_hub.src.utils.tensor_utils import no_convert_scope

        with no_convert_scope():
            token_ids = self.tokenizer(tf.reshape(tf.convert_to_tensor(inputs), [-1]))
            return self.packer(token_ids)

    def compute_output_spec(self, inputs):
        shape = (inputs.shape[0], self.sequence_length)
        return keras.KerasTensor(shape, dtype="int32"), keras.KerasTensor(shape, dtype="bool")

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length,
                "special_token_ids": self.special_token_ids,
                "tokenizer": keras.saving.serialize_keras_object(self.tokenizer)}


def _special_token_ids(tokenizer):
    """(start, end, pad) ids: BERT-style names or the tokenizer's own."""
    if getattr(tokenizer, "start_token_id", None) is not None:
        pad = getattr(tokenizer, "pad_token_id", None)
        return tokenizer.start_token_id, tokenizer.end_token_id, pad if pad is not None else 0
    return tuple(tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]"))


@keras.saving.register_keras_serializable(package="mmkeras")
class ZerosLike(keras.layers.Layer):
    """Zeros with the input's shape and dtype (single-segment `segment_ids`).

    Example:
    >>> import numpy as np
    >>> ZerosLike()(np.ones((1, 3), "int32")).numpy().tolist()
    [[0, 0, 0]]
    """

    def call(self, inputs):
        return ops.zeros_like(inputs)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype=inputs.dtype)
