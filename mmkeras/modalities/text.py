"""Text modality: raw strings -> KerasHub tokenizer and encoder, inside the model.

The tokenizer is a layer of the model, so the SavedModel takes plain strings.
Single segments are packed with `StartEndPacker` (core TF ops); KerasHub's
multi-segment packer emits `TFText>RoundRobinTrim`, which TF Serving lacks.
"""

import os

import keras
import numpy as np
from keras import ops

from mmkeras.modalities.modality import Encoded, Modality, Occlusions, Proposal
from mmkeras.modalities.missing import TextPresence
from mmkeras.modalities.column_cells import numbers, present_cells
from mmkeras.modalities.raw_formats import StringRaw, value_range
from mmkeras.modalities.text_encoders import TEXT_ENCODERS  # noqa: F401  (the registry, read from here too)
from mmkeras.modalities.text_encoders import (TextFamily, build_from_scratch, check_encoder, family_of,
                                              load_pretrained, reset_word_cache, share_sentencepiece_model,
                                              used_outputs)

RESERVED_TOKENS = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]


class TextInput(StringRaw, Modality):
    """A text input: raw UTF-8 strings, tokenised and encoded inside the model.

    Args:
        name: input name (model input and serving field).
        encoder: a name from `TEXT_ENCODERS`: `"cnn"` (word-piece
            embeddings + 1D CNN, the choice for a few thousand texts from
            scratch), a BERT, DistilBERT, RoBERTa, DeBERTaV3 or ELECTRA
            architecture, or the text tower of a CLIP (`"clip_text"`) or
            SigLIP (`"siglip_text"`) preset.
        sequence_length: tokens per example, special tokens included.
            SigLIP needs its tower's own length (64 for
            `siglip_base_patch16_224`; another is an error naming it): it
            pools the last position.
        weights: a local KerasHub preset directory (weights + vocabulary)
            or a preset handle (network). Its backbone class must be the
            one `encoder` names; the architecture comes from the preset.
            `None` trains from scratch with a WordPiece vocabulary learned
            from training texts.
        vocabulary: a WordPiece vocabulary list; learned by `adapt()` if None.
        vocabulary_size: size of the vocabulary `adapt()` learns.
        lowercase: lowercase before WordPiece (learned vocabularies only).
        trainable: `False` freezes the encoder.
        max_characters: each text is cut to this many characters before it
            is tokenized, in the model and so in the serving graph: a bound
            on what one request costs. Default `32 * sequence_length`.

    Example:
    >>> spec = TextInput("review", encoder="bert_tiny", sequence_length=16)
    >>> spec.adapt(["a great phone", "a bad battery", "great screen"])
    >>> encoded = spec.encode(spec.keras_input())
    >>> tuple(encoded.tokens.shape[1:])
    (16, 128)
    """

    kind = "text"

    def __init__(self, name, encoder="cnn", sequence_length=64, weights=None,
                 vocabulary=None, vocabulary_size=2000, lowercase=True, trainable=True,
                 max_characters=None):
        super().__init__(name)
        check_encoder(encoder, weights)
        self.encoder = encoder
        self.sequence_length = int(sequence_length)
        self.weights = os.fspath(weights) if weights is not None else None  # a path stays JSON
        self.vocabulary = list(vocabulary) if vocabulary is not None else None
        self.vocabulary_size = int(vocabulary_size)
        self.lowercase = bool(lowercase)
        self.trainable = bool(trainable)
        self.max_characters = None if max_characters is None else int(max_characters)
        if self.max_characters is not None and self.max_characters < 1:
            raise ValueError(f"TextInput max_characters must be >= 1. Received: {max_characters}")

    def keras_input(self):
        return keras.Input(shape=(), dtype="string", name=self.name)

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
        tokenizer, backbone, family = self._tokenizer_and_backbone()
        token_ids, padding_mask = TextTokenizer(
            tokenizer, self.sequence_length, name=f"{self.name}_tokenizer", max_characters=self.max_characters,
            **packing(tokenizer, family))(x)
        available = {"token_ids": token_ids, "padding_mask": padding_mask}
        if "segment_ids" in backbone.input:
            available["segment_ids"] = ZerosLike(name=f"{self.name}_segment_ids")(token_ids)
        # CLIP and SigLIP towers take token ids only: they attend to padding.
        backbone_inputs = {key: available[key] for key in backbone.input}
        if self.trainable:
            outputs = backbone(backbone_inputs)
        else:
            backbone.trainable = False
            outputs = backbone(backbone_inputs, training=False)
        sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
        if family.pooling == "tower":
            pooled = outputs["pooled_output"]
        elif family.pooling == "max":
            pooled = keras.layers.GlobalMaxPooling1D(name=f"{self.name}_pool")(sequence)
        elif family.pooling == "end_token":
            pooled = EndTokenPooling(name=f"{self.name}_pool")(sequence, padding_mask)
        else:
            pooled = keras.layers.GlobalAveragePooling1D(name=f"{self.name}_pool")(sequence, mask=padding_mask)
        return Encoded(pooled, sequence, padding_mask, presence)

    def _tokenizer_and_backbone(self):
        import keras_hub

        if self.weights is not None:
            tokenizer, backbone = load_pretrained(self.encoder, self.weights, self.sequence_length)
            family = family_of(self.encoder)
        else:
            if self.vocabulary is None:
                raise ValueError(
                    f"TextInput({self.name!r}) has no vocabulary: pass `weights=` (a preset "
                    f"directory), `vocabulary=`, or build with `adapt_data=` so it learns one."
                )
            tokenizer = keras_hub.tokenizers.WordPieceTokenizer(
                vocabulary=self.vocabulary, lowercase=self.lowercase, oov_token="[UNK]",
            )
            backbone = build_from_scratch(self.encoder, len(self.vocabulary), self.sequence_length)
            # A learned WordPiece vocabulary: [CLS] ... [SEP]; mean pooling, max for the CNN.
            family = TextFamily(pooling="max" if self.encoder == "cnn" else "mean")
        backbone = used_outputs(backbone, family, name=f"{self.name}_encoder")
        return tokenizer, backbone, family

    # --- Its path: a manifest cell holds the text; a client sends the string.

    def parse_cells(self, cells):
        column = cells.column
        value = cells[column]
        if value is not None and not isinstance(value, str):
            cells.fail(column, f"expected text, got {type(value).__name__} {value!r}")
            return ""
        # Blank text is missing text, as the model's TextPresence sees it.
        return value if value and value.strip() else ""

    def summarize(self, values):
        present = [v for v in values if v]
        entry = {"missing": len(values) - len(present)}
        if present:
            entry["words"] = value_range([len(v.split()) for v in present])
        return entry

    @classmethod
    def propose(cls, column, cells, folder):
        """Any text that is not numbers: the fallback, so every other kind that
        takes the column fits it better."""
        present = present_cells(cells)
        if not present or numbers(cells) is not None:
            return None
        words = [len(value.split()) for value in present]
        seen = f"text of {min(words)}-{max(words)} words, {len(set(present))} distinct, {len(cells) - len(present)} empty"
        return Proposal(0.3, {}, seen)

    def synthetic_raw(self, rng):
        return "a sample sentence for the export check"

    def edge_refusal(self):
        return (f"text input {self.name!r}: its tokenizer (TF Text / KerasHub string ops: case folding, "
                f"regex splitting, WordPiece or SentencePiece) has no LiteRT built-in ops")

    def occlusions(self, value, max_words=60):
        """Each of the first `max_words` words removed from the text."""
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        words = text.split()[:max_words]
        if not words:
            return None
        copies = [" ".join(words[:k] + words[k + 1:]) for k in range(len(words))]
        return Occlusions("words", words, np.array(copies, dtype=object))

    def get_config(self):
        return {"name": self.name, "encoder": self.encoder, "sequence_length": self.sequence_length,
                "weights": self.weights, "vocabulary": self.vocabulary,
                "vocabulary_size": self.vocabulary_size, "lowercase": self.lowercase,
                "trainable": self.trainable, "max_characters": self.max_characters}


def packing(tokenizer, family):
    """`TextTokenizer` arguments that pack text as `family`'s preprocessor does.

    Example:
    >>> import keras_hub
    >>> vocab = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]", "good"]
    >>> packing(keras_hub.tokenizers.BertTokenizer(vocabulary=vocab), TextFamily())
    {'special_token_ids': (1, 2, 0), 'lowercase': False, 'strip_punctuation': False}
    """
    start, end, pad = _special_token_ids(tokenizer)
    return {"special_token_ids": (start if family.start_token else None, end,
                                  end if family.pad_with_end_token else pad),
            "lowercase": family.lowercase, "strip_punctuation": family.strip_punctuation}


@keras.saving.register_keras_serializable(package="mmkeras")
class TextTokenizer(keras.layers.Layer):
    """A KerasHub tokenizer plus single-segment packing, as TF ops everywhere.

    Outputs `(token_ids, padding_mask)`, both `[B, sequence_length]`:
    `[start] tokens [end] [pad]...` with the tokenizer's own special tokens
    (`[CLS] ... [SEP] [PAD]` for BERT). KerasHub turns preprocessing outputs
    into Python lists when called eagerly; inside a model they must stay
    tensors, so both layers run in KerasHub's no-convert scope.

    Args:
        tokenizer: a `keras_hub.tokenizers.Tokenizer` (or its config).
        sequence_length: tokens per example, special tokens included.
        special_token_ids: `(start, end, pad)` ids, `start` None for no start
            token; read from the tokenizer if None. Kept in the config
            because a reloaded tokenizer gets its vocabulary (an asset) only
            after the layer is rebuilt.
        lowercase: lowercase (UTF-8) before tokenizing.
        strip_punctuation: remove ASCII punctuation and repeated spaces
            (SigLIP's canonical text).
        max_characters: texts are cut to this many characters before the
            tokenizer, so a huge request cannot stall a server; default
            32 per token, far more than the tokens kept.

    Example:
    >>> import keras_hub
    >>> vocab = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]", "good", "phone"]
    >>> tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocab)
    >>> ids, mask = TextTokenizer(tokenizer, 5)(["good phone", ""])
    >>> ids.numpy().tolist()
    [[1, 5, 6, 2, 0], [1, 2, 0, 0, 0]]
    >>> ids, mask = TextTokenizer(tokenizer, 5, special_token_ids=(None, 2, 2), lowercase=True,
    ...                           strip_punctuation=True)(["Good, phone!"])
    >>> ids.numpy().tolist(), mask.numpy().tolist()
    ([[5, 6, 2, 2, 2]], [[True, True, True, False, False]])
    """

    def __init__(self, tokenizer, sequence_length, special_token_ids=None, lowercase=False,
                 strip_punctuation=False, max_characters=None, **kwargs):
        super().__init__(**kwargs)
        import keras_hub

        if isinstance(tokenizer, dict):
            # No eager Python path (KerasHub >= 0.32 would run `tokenizers` or
            # `sentencepiece` in eager calls): TF ops, as in the SavedModel.
            tokenizer = keras.saving.deserialize_keras_object(
                {**tokenizer, "config": {**tokenizer["config"], "_allow_python_workflow": False}})
        tokenizer._allow_python_workflow = False
        self.tokenizer = tokenizer
        self.sequence_length = int(sequence_length)
        if special_token_ids is None:
            special_token_ids = _special_token_ids(tokenizer)
        self.special_token_ids = [None if i is None else int(i) for i in special_token_ids]
        self.lowercase = bool(lowercase)
        self.strip_punctuation = bool(strip_punctuation)
        self.max_characters = int(max_characters or 32 * self.sequence_length)
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

        texts = tf.reshape(tf.convert_to_tensor(inputs), [-1])
        texts = tf.strings.substr(texts, 0, self.max_characters, unit="UTF8_CHAR")
        if self.lowercase:
            # "utf-8" lowercases beyond ASCII and replaces invalid bytes.
            texts = tf.strings.lower(texts, encoding="utf-8")
        if self.strip_punctuation:
            texts = tf.strings.regex_replace(texts, PUNCTUATION, "")
            texts = tf.strings.strip(tf.strings.regex_replace(texts, r"\s+", " "))
        # KerasHub keeps tokenizer state that a seed deletes or that grows per request.
        share_sentencepiece_model(self.tokenizer)
        reset_word_cache(self.tokenizer)
        with no_convert_scope():
            return self.packer(self.tokenizer(texts))

    def compute_output_spec(self, inputs):
        shape = (inputs.shape[0], self.sequence_length)
        return keras.KerasTensor(shape, dtype="int32"), keras.KerasTensor(shape, dtype="bool")

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length,
                "special_token_ids": self.special_token_ids, "lowercase": self.lowercase,
                "strip_punctuation": self.strip_punctuation, "max_characters": self.max_characters,
                "tokenizer": keras.saving.serialize_keras_object(self.tokenizer)}


# The characters SigLIP's preprocessor removes (KerasHub's, from big_vision).
PUNCTUATION = r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]"


def _special_token_ids(tokenizer):
    """(start, end, pad) ids: the tokenizer's own, or BERT's names in a plain vocabulary."""
    if getattr(tokenizer, "end_token_id", None) is not None:
        pad = getattr(tokenizer, "pad_token_id", None)
        return (getattr(tokenizer, "start_token_id", None), tokenizer.end_token_id,
                pad if pad is not None else 0)
    return tuple(tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]"))


@keras.saving.register_keras_serializable(package="mmkeras")
class EndTokenPooling(keras.layers.Layer):
    """Each row's embedding at its last unpadded position: CLIP's end token.

    KerasHub's `CLIPTextPooler` finds the end token as the largest token id
    (true of CLIP's vocabulary); the padding mask finds it for any
    vocabulary and padding value.

    Call arguments:
        sequence: `[B, N, D]` token embeddings.
        mask: bool `[B, N]`, False on padding.

    Example:
    >>> import numpy as np
    >>> sequence = np.arange(12, dtype="float32").reshape(2, 3, 2)
    >>> mask = np.array([[True, True, False], [True, True, True]])
    >>> EndTokenPooling()(sequence, mask).numpy().tolist()
    [[2.0, 3.0], [10.0, 11.0]]
    """

    def call(self, sequence, mask):
        last = ops.maximum(ops.sum(ops.cast(mask, "int32"), axis=1) - 1, 0)
        return ops.take_along_axis(sequence, last[:, None, None], axis=1)[:, 0]

    def compute_output_spec(self, sequence, mask):
        return keras.KerasTensor((sequence.shape[0], sequence.shape[-1]), dtype=sequence.dtype)


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
