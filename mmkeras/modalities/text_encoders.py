"""Text encoders: named architectures, and how each KerasHub family is read.

`TEXT_ENCODERS` names architectures, one line each. `TEXT_FAMILIES` says, per
KerasHub backbone class, where the text tower is, how its tokens are packed
and how it pools: what KerasHub's own preprocessor and task would do, so a
pretrained tower sees the inputs it was trained on. A preset's backbone class
must be the class of the encoder named; a mismatch is an error at build time,
never a silent switch to another architecture.

The last section keeps KerasHub tokenizers' own state safe in a long-lived
process: a SentencePiece model that `keras.utils.set_random_seed` would
delete, and a byte-pair word cache that would grow with every request.
"""

import dataclasses
import functools
import hashlib
import os

import keras
import tensorflow as tf

from mmkeras.modalities.submodel import SubModel
from mmkeras.registry import lookup


@dataclasses.dataclass(frozen=True)
class TextFamily:
    """How mmkeras reads one KerasHub backbone class as a text encoder.

    Attributes:
        tower: the attribute holding the text tower of a two-tower backbone
            (`None`: the backbone is the text encoder).
        pooling: `"mean"` (masked mean of the sequence), `"max"` (max over
            positions, for the CNN's n-gram detectors), `"end_token"` (the
            end token's embedding, as CLIP pools) or `"tower"` (the tower's
            own pooled output, as SigLIP's head).
        start_token: packing prepends the tokenizer's start token.
        pad_with_end_token: pads with the end token, not the pad token.
        lowercase: lowercases text before the tokenizer (the model's
            preprocessor does; its tokenizer does not).
        strip_punctuation: removes ASCII punctuation and repeated spaces.
        fixed_length: texts are always padded to the tower's
            `max_sequence_length`: SigLIP pools the last position, so it
            only matches pretraining at the length it was trained on.
        vocabulary_argument: the backbone's name for its vocabulary size.
    """

    tower: str = None
    pooling: str = "mean"
    start_token: bool = True
    pad_with_end_token: bool = False
    lowercase: bool = False
    strip_punctuation: bool = False
    fixed_length: bool = False
    vocabulary_argument: str = "vocabulary_size"


# Preprocessing conventions follow KerasHub's `CLIPPreprocessor` and
# `SigLIPPreprocessor`; the encoder-only families pack `[CLS] ... [SEP]`.
TEXT_FAMILIES = {
    "BertBackbone": TextFamily(),
    "DistilBertBackbone": TextFamily(),
    "RobertaBackbone": TextFamily(),
    "DebertaV3Backbone": TextFamily(),
    "ElectraBackbone": TextFamily(vocabulary_argument="vocab_size"),
    "CLIPBackbone": TextFamily(tower="text_encoder", pooling="end_token", pad_with_end_token=True,
                               lowercase=True),
    "SigLIPBackbone": TextFamily(tower="text_encoder", pooling="tower", start_token=False,
                                 pad_with_end_token=True, lowercase=True, strip_punctuation=True,
                                 fixed_length=True),
}

# Architecture configs, one line each. The `*_tiny` entries train from
# scratch in seconds; the others match published presets, whose weights and
# vocabulary come from a preset (`weights=`). A `None` config is a pretrained
# tower only: its tokenizer conventions come with its preset.
TEXT_ENCODERS = {
    # Word-piece embeddings + 1D CNN (mmkeras/modalities/text_cnn.py): the
    # default from scratch, it learns from a few thousand texts.
    "cnn": ("TextCNN", dict(embedding_dim=64, filters=128, kernel_size=3)),
    "bert_tiny": ("BertBackbone", dict(num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512)),
    "bert_small_en_uncased": ("BertBackbone", dict(num_layers=4, num_heads=8, hidden_dim=512, intermediate_dim=2048)),
    "bert_base_en_uncased": ("BertBackbone", dict(num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072)),
    "distil_bert_tiny": ("DistilBertBackbone", dict(num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512)),
    "distil_bert_base_en_uncased": ("DistilBertBackbone", dict(num_layers=6, num_heads=12, hidden_dim=768, intermediate_dim=3072)),
    "roberta_tiny": ("RobertaBackbone", dict(num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512)),
    "roberta_base_en": ("RobertaBackbone", dict(num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072)),
    "deberta_v3_tiny": ("DebertaV3Backbone", dict(num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512, bucket_size=32)),
    "deberta_v3_small_en": ("DebertaV3Backbone", dict(num_layers=6, num_heads=12, hidden_dim=768, intermediate_dim=3072, bucket_size=256)),
    "electra_tiny": ("ElectraBackbone", dict(num_layers=2, num_heads=2, hidden_dim=128, embedding_dim=128, intermediate_dim=512)),
    "electra_small": ("ElectraBackbone", dict(num_layers=12, num_heads=4, hidden_dim=256, embedding_dim=128, intermediate_dim=1024)),
    "clip_text": ("CLIPBackbone", None),
    "siglip_text": ("SigLIPBackbone", None),
}


def check_encoder(encoder, weights):
    """Refuses unknown encoder names, and pretrained towers without weights.

    Example:
    >>> check_encoder("clip_text", weights=None)
    Traceback (most recent call last):
    ...
    ValueError: Text encoder 'clip_text' is a pretrained tower: pass `weights=` (a local CLIPBackbone preset directory or a preset handle).
    """
    class_name, config = lookup(TEXT_ENCODERS, encoder, "text encoder")
    if config is None and weights is None:
        raise ValueError(f"Text encoder {encoder!r} is a pretrained tower: pass `weights=` (a local "
                         f"{class_name} preset directory or a preset handle).")


def encoders_for(class_name):
    """The encoder names that read presets of a KerasHub backbone class.

    Example:
    >>> encoders_for("CLIPBackbone")
    ['clip_text']
    """
    return sorted(name for name, (cls, _) in TEXT_ENCODERS.items() if cls == class_name)


def family_of(encoder):
    """The `TextFamily` of an encoder name.

    Example:
    >>> family_of("siglip_text").pooling
    'tower'
    """
    return TEXT_FAMILIES[TEXT_ENCODERS[encoder][0]]


def check_preset(encoder, preset):
    """Checks that `preset` holds the backbone class `encoder` reads.

    Reads only the preset's `config.json` (KerasHub or Transformers layout).

    Raises:
        ValueError: the preset is not a KerasHub preset, or holds another
            backbone class; the message names the directory, the class found
            and the encoders that accept it.
    """
    from keras_hub.src.utils.preset_utils import BUILTIN_PRESETS, get_preset_loader

    expected = TEXT_ENCODERS[encoder][0]
    is_handle = "://" in str(preset) or preset in BUILTIN_PRESETS
    if not is_handle and not os.path.isdir(preset):
        raise ValueError(f"Text encoder weights {preset!r}: no such preset directory, and not a "
                         f"preset handle (a KerasHub preset name, kaggle://, hf://).")
    try:
        found = get_preset_loader(preset).check_backbone_class().__name__
    except ValueError as e:  # no config.json, or an unregistered class
        raise ValueError(f"{preset!r} is not a KerasHub text encoder preset: {e}") from e
    if found == expected:
        return
    if found in TEXT_FAMILIES:
        accepted = f"encoders that read a {found}: {encoders_for(found)}"
    else:
        accepted = f"text encoder presets hold one of {sorted(TEXT_FAMILIES)}"
    raise ValueError(f"Text encoder {encoder!r} reads a {expected} preset, but {preset!r} holds a "
                     f"{found}. Use a {expected} preset, or name the encoder of this one ({accepted}).")


def load_pretrained(encoder, preset, sequence_length):
    """`(tokenizer, text_encoder)` from a preset, after `check_preset`.

    A two-tower preset (CLIP, SigLIP) is loaded whole, the public way that
    also reads sharded and Transformers-format weights, and only its text
    tower is kept: the vision tower is freed when this returns.

    Raises:
        ValueError: `sequence_length` is longer than the encoder's position
            table, or (SigLIP) not the length its tower was trained on.
    """
    import keras_hub

    check_preset(encoder, preset)
    family = family_of(encoder)
    # No eager Python path: the tokenizer must compute as TF ops, the same
    # in fit, predict and the SavedModel (and need no `tokenizers` package).
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(preset, _allow_python_workflow=False)
    backbone = keras_hub.models.Backbone.from_preset(preset)
    tower = getattr(backbone, family.tower) if family.tower else backbone
    _check_length(encoder, preset, tower, sequence_length)
    return tokenizer, tower


def used_outputs(tower, family, name):
    """`tower` as a model named `name` computing only what the text input uses.

    BERT and ELECTRA also compute a `[CLS]` pooler that the text input does
    not use: left in, its weights would get no gradient, and freezing them
    would not survive a `.keras` reload (a backbone's config does not record
    its layers' `trainable`). SigLIP's tower outputs only its pooled vector:
    its token sequence is exposed beside it for token-level fusion.

    Returns:
        a model whose output is the token sequence `[B, N, D]`, or for
        `pooling="tower"` a dict of `sequence_output` and `pooled_output`.
    """
    if family.pooling == "tower":
        return SubModel(tower.input, {"sequence_output": tower.post_layer_norm.output,
                                       "pooled_output": tower.output}, name=name)
    if isinstance(tower.output, dict):
        return SubModel(tower.input, tower.output["sequence_output"], name=name)
    tower.name = name
    return tower


def _check_length(encoder, preset, tower, sequence_length):
    longest = getattr(tower, "max_sequence_length", None)
    if longest is None:
        return
    family = family_of(encoder)
    if family.fixed_length and sequence_length != longest:
        raise ValueError(f"Text encoder {encoder!r} pools the last position, so texts must be padded "
                         f"to the length its tower was trained on: pass sequence_length={longest} "
                         f"for {preset!r}. Received: sequence_length={sequence_length}")
    if sequence_length > longest:
        raise ValueError(f"The {type(tower).__name__} of {preset!r} reads at most {longest} tokens; "
                         f"received sequence_length={sequence_length}.")


def build_from_scratch(encoder, vocabulary_size, sequence_length):
    """A randomly initialised backbone of a named architecture.

    Example:
    >>> backbone = build_from_scratch("electra_tiny", vocabulary_size=50, sequence_length=16)
    >>> type(backbone).__name__, backbone.num_layers
    ('ElectraBackbone', 2)
    """
    import keras_hub

    class_name, config = TEXT_ENCODERS[encoder]
    if class_name == "TextCNN":
        from mmkeras.modalities.text_cnn import build_text_cnn

        return build_text_cnn(vocabulary_size, sequence_length, **config)
    family = TEXT_FAMILIES[class_name]
    return getattr(keras_hub.models, class_name)(
        **{family.vocabulary_argument: vocabulary_size},
        max_sequence_length=max(sequence_length, 64),
        **config,
    )


# === Tokenizer state: safe from seeding, bounded per request ===


def share_sentencepiece_model(tokenizer):
    """Gives a SentencePiece model a resource that seeding cannot delete.

    TF Text creates a SentencePiece model as a resource private to the
    kernel that made it, and `keras.utils.set_random_seed` (through
    `tf.random.set_seed`) clears TensorFlow's eager kernel cache: the model
    goes with it, and the next call fails with "Resource
    .../SentencepieceOp/... does not exist". A resource with a shared name
    lives in the resource manager instead. The name comes from the model's
    bytes, for the node too: TF Text names every such node
    `SentenceTokenizerInitializer/SentencepieceOp`, and a loaded SavedModel
    holding two gives both the first one's model (TF 2.20, TF Text 2.20), so
    a DeBERTaV3 and a SigLIP input would share a vocabulary. Equal models
    may share. Checked on each call: KerasHub makes a new model when a
    `.keras` file loads its assets.
    """
    sentence_piece = getattr(tokenizer, "_sentence_piece", None)
    resource = getattr(sentence_piece, "_model_resource", None)
    if resource is None or isinstance(resource, _shared_sentencepiece_model_class()):
        return
    if not isinstance(getattr(resource, "_model", None), bytes):
        return
    name = "sentencepiece_" + hashlib.sha256(resource._model).hexdigest()[:16]
    with tf.init_scope():  # made once, as TF Text does, even from a traced call
        sentence_piece._model_resource = _shared_sentencepiece_model_class()(resource._model, name)


@functools.cache
def _shared_sentencepiece_model_class():
    """TF Text's SentencePiece model resource, created under a shared name.

    Defined on first use: TF Text is imported only where a SentencePiece
    tokenizer already imported it.
    """
    from tensorflow_text.python.ops import sentencepiece_tokenizer

    class SharedSentencepieceModel(sentencepiece_tokenizer._SentencepieceModelResource):
        def _create_resource(self):
            with tf.name_scope(self._name):
                return sentencepiece_tokenizer.gen_sentencepiece_tokenizer.sentencepiece_op(
                    model=self._model, shared_name=self._name)

    return SharedSentencepieceModel


def reset_word_cache(tokenizer):
    """Bounds a byte-pair tokenizer's (RoBERTa, CLIP) word cache; empties its per-call part.

    KerasHub's `BytePairTokenizer` remembers how it split every word in a
    `MutableHashTable` that lives as long as the model, so a server adds an
    entry for each unseen word it is sent, without bound (on a tiny RoBERTa:
    200,000 entries and +15 MB RSS after 10,000 requests of 20 new words).
    `_WordCache` keeps the first `WORD_CACHE_SIZE` words and splits the
    others again on each call. Checked on each call: KerasHub makes a new
    cache when a `.keras` file loads its assets.
    """
    import keras_hub

    if not isinstance(tokenizer, keras_hub.tokenizers.BytePairTokenizer):
        return
    if getattr(tokenizer, "cache", None) is None:
        return  # no vocabulary yet: KerasHub's own error comes next
    if not isinstance(tokenizer.cache, _WordCache):
        tokenizer.cache = _WordCache(tokenizer.unsplittable_tokens, WORD_CACHE_SIZE)
    tokenizer.cache.reset()


# Words a byte-pair tokenizer remembers (~80 bytes each): the common words
# of a language, and 4 MB at most.
WORD_CACHE_SIZE = 50_000


class _WordCache(tf.Module):
    """`BytePairTokenizerCache`'s interface, holding at most `capacity` words for good.

    Two tables. `words` lives as long as the model (a SavedModel keeps it,
    as it kept KerasHub's cache): the special tokens, which must stay whole,
    then the first words split, until it holds `capacity` (concurrent calls
    may each add what fitted when they began); it never shrinks, so
    concurrent requests only ever read correct entries. The call's own
    table holds the other words of one call (each run of a traced function
    makes an anonymous one, which TensorFlow frees when the run ends):
    KerasHub inserts a call's unseen words, then looks every word up again.

    Example:
    >>> cache = _WordCache(["<s>"], capacity=2)
    >>> cache.reset()
    >>> cache.insert(tf.constant(["dragonfly", "moth"]), tf.constant(["dragon fly", "moth"]))
    >>> cache.lookup(tf.constant(["dragonfly", "<s>", "moth", "wasp"])).numpy().tolist()
    [b'dragon fly', b'<s>', b'moth', b'']
    >>> cache.reset()  # "moth" did not fit: it was kept for one call only
    >>> cache.lookup(tf.constant(["dragonfly", "moth"])).numpy().tolist()
    [b'dragon fly', b'']
    """

    def __init__(self, unsplittable_tokens, capacity):
        super().__init__(name="word_cache")
        self.capacity = int(capacity)
        with tf.init_scope(), tf.device("cpu"):  # made once, even from a traced call
            self.words = tf.lookup.experimental.MutableHashTable(tf.int64, tf.string, "")
            if unsplittable_tokens:
                tokens = tf.constant(list(unsplittable_tokens))
                self.words.insert(_word_keys(tokens), tokens)
        self.reset()

    def reset(self):
        """A new, empty table for the words of one call."""
        with tf.device("cpu"):
            table = tf.lookup.experimental.MutableHashTable(tf.int64, tf.string, "",
                                                            experimental_is_anonymous=True)
        # Not tracked: a SavedModel must not keep a table made inside a call.
        object.__setattr__(self, "_call_words", table)

    def lookup(self, words):
        keys = _word_keys(words)
        kept = self.words.lookup(keys)
        values = tf.where(kept == "", self._call_words.lookup(keys), kept)
        values.set_shape([None])
        return values

    def insert(self, words, values):
        keys = _word_keys(words)
        self._call_words.insert(keys, values)
        room = tf.maximum(self.capacity - self.words.size(), 0)
        self.words.insert(keys[:room], values[:room])


def _word_keys(words):
    """int64 keys (a string-to-string `MutableHashTable` does not exist): 8-byte fingerprints."""
    return tf.bitcast(tf.fingerprint(words), tf.int64)
