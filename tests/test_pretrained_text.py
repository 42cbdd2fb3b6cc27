"""Pretrained text encoders from KerasHub preset directories, offline.

Each family gets a tiny backbone and tokenizer built here (WordPiece for
BERT, DistilBERT and ELECTRA; byte-pair for RoBERTa and CLIP; SentencePiece
for DeBERTaV3 and SigLIP), written with `save_to_preset` as published presets
are laid out, then loaded through `mmk.TextInput(weights=dir)`. The loaded
encoder must pack tokens as KerasHub's own preprocessor does and pool as the
model itself does, train, export for TF Serving, and reload from `.keras`.
"""

import io
import json
import pathlib

import keras
import keras_hub
import numpy as np
import pytest
import sentencepiece
import tensorflow as tf
import tokenizers
from tokenizers import models, pre_tokenizers, trainers

import mmkeras as mmk
from mmkeras.modalities import text_encoders
from mmkeras.modalities.text import EndTokenPooling, TextTokenizer
from mmkeras.modalities.text_encoders import share_sentencepiece_model
from serving_roundtrip import assert_serves_like_predict

TEXTS = np.array(["A great phone with a great screen!", "bad battery, and a slow phone", "the screen is great",
                  "The battery is bad.", "great battery", "slow screen", ""])
LABELS = np.array([1, 0, 1, 0, 1, 0, 0])
TASK = mmk.Classification(labels=["negative", "positive"])
CORPUS = [*TEXTS, *(t.lower() for t in TEXTS)]
WORDS = sorted({w.strip("!,.").lower() for t in TEXTS for w in t.split()})
LENGTH = 16
SMALL = dict(num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64, max_sequence_length=32)


# === Tiny tokenizers, trained offline ===


def wordpiece(cls):
    return cls(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "!", ",", "."] + WORDS, lowercase=True)


def bpe(special, suffix=None, end_token=None):
    """Vocabulary and merges of a byte-pair model trained on `CORPUS`.

    RoBERTa marks a leading space (`Ġ`); CLIP ends words with `</w>` and
    gives its end token the largest id, as CLIP's own vocabulary does.
    """
    suffix_args = {"end_of_word_suffix": suffix} if suffix else {}
    model = tokenizers.Tokenizer(models.BPE(**suffix_args))
    model.pre_tokenizer = (pre_tokenizers.Whitespace() if suffix
                           else pre_tokenizers.ByteLevel(add_prefix_space=False))
    model.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=120, special_tokens=special, initial_alphabet=[], show_progress=False, **suffix_args))
    state = json.loads(model.to_str())["model"]
    vocabulary = state["vocab"]
    if end_token:
        vocabulary[end_token] = len(vocabulary)
    return {"vocabulary": vocabulary, "merges": [" ".join(m) if isinstance(m, list) else m for m in state["merges"]]}


def sentencepiece_proto(**special_pieces):
    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS), model_writer=proto, vocab_size=40, model_type="word",
        hard_vocab_limit=False, minloglevel=2, **special_pieces)
    return proto.getvalue()


# === Tiny presets: (backbone, tokenizer) per encoder name ===


def bert():
    return keras_hub.models.BertBackbone(len(WORDS) + 8, **SMALL), wordpiece(keras_hub.tokenizers.BertTokenizer)


def distil_bert():
    return (keras_hub.models.DistilBertBackbone(len(WORDS) + 8, **SMALL),
            wordpiece(keras_hub.tokenizers.DistilBertTokenizer))


def electra():
    return (keras_hub.models.ElectraBackbone(vocab_size=len(WORDS) + 8, embedding_dim=16, **SMALL),
            wordpiece(keras_hub.tokenizers.ElectraTokenizer))


def roberta():
    tokenizer = keras_hub.tokenizers.RobertaTokenizer(**bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"]))
    return keras_hub.models.RobertaBackbone(tokenizer.vocabulary_size(), **SMALL), tokenizer


def deberta_v3():
    tokenizer = keras_hub.tokenizers.DebertaV3Tokenizer(sentencepiece_proto(
        pad_id=0, pad_piece="[PAD]", bos_id=1, bos_piece="[CLS]", eos_id=2, eos_piece="[SEP]",
        unk_id=3, unk_piece="[UNK]", user_defined_symbols=["[MASK]"]))
    return keras_hub.models.DebertaV3Backbone(tokenizer.vocabulary_size(), bucket_size=8, **SMALL), tokenizer


def clip():
    tokenizer = keras_hub.tokenizers.CLIPTokenizer(pad_with_end_token=True, **bpe(
        ["<|startoftext|>"], suffix="</w>", end_token="<|endoftext|>"))
    text = keras_hub.models.CLIPTextEncoder(tokenizer.vocabulary_size(), embedding_dim=32, **SMALL)
    vision = keras_hub.models.CLIPVisionEncoder(patch_size=4, hidden_dim=16, num_layers=1, num_heads=2,
                                                intermediate_dim=16, image_shape=(8, 8, 3))
    return keras_hub.models.CLIPBackbone(vision, text, projection_dim=16), tokenizer


def siglip():
    tokenizer = keras_hub.tokenizers.SigLIPTokenizer(sentencepiece_proto(
        unk_id=0, unk_piece="<unk>", eos_id=1, eos_piece="</s>", bos_id=-1, pad_id=-1))
    text = keras_hub.models.SigLIPTextEncoder(tokenizer.vocabulary_size(), embedding_dim=32,
                                              **{**SMALL, "max_sequence_length": LENGTH})
    vision = keras_hub.models.SigLIPVisionEncoder(patch_size=4, hidden_dim=16, num_layers=1, num_heads=2,
                                                  intermediate_dim=16, image_shape=(8, 8, 3))
    return keras_hub.models.SigLIPBackbone(vision, text), tokenizer


FAMILIES = {"bert_base_en_uncased": bert, "distil_bert_base_en_uncased": distil_bert, "electra_small": electra,
            "roberta_base_en": roberta, "deberta_v3_small_en": deberta_v3, "clip_text": clip,
            "siglip_text": siglip}


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    """`{encoder: (preset_dir, backbone, tokenizer)}`, written once.

    `keras.utils.set_random_seed` clears TensorFlow's eager kernel cache,
    which deletes every SentencePiece model TF Text has created (a
    kernel-owned resource). `TextTokenizer` moves its model to a shared
    resource; these reference tokenizers get the same treatment, so a test
    that seeds leaves them working.
    """
    root = tmp_path_factory.mktemp("text_presets")
    written = {}
    for encoder, make in FAMILIES.items():
        backbone, tokenizer = make()
        backbone.save_to_preset(str(root / encoder))
        tokenizer.save_to_preset(str(root / encoder))
        share_sentencepiece_model(tokenizer)
        written[encoder] = (str(root / encoder), backbone, tokenizer)
    return written


# === What KerasHub itself does with the same backbone and tokenizer ===


def reference(encoder, backbone, tokenizer, texts):
    """`(token_ids, padding_mask, pooled)` from KerasHub's own preprocessor and pooling."""
    tokenizer._allow_python_workflow = False  # KerasHub's TF path, as in a tf.data pipeline
    if encoder == "clip_text":
        packed = keras_hub.models.CLIPPreprocessor(tokenizer, sequence_length=LENGTH, _allow_python_workflow=False)(
            {"prompts": tf.constant(texts), "images": None})
        ids = np.asarray(packed["token_ids"])
        pooled = backbone.text_pooler(backbone.text_encoder({"token_ids": ids}), ids)
    elif encoder == "siglip_text":
        packed = keras_hub.models.SigLIPPreprocessor(tokenizer, sequence_length=LENGTH, _allow_python_workflow=False)(
            {"prompts": tf.constant(texts), "images": None})
        pooled = backbone.get_text_embeddings(np.asarray(packed["token_ids"]))
    else:
        packed = keras_hub.models.TextClassifierPreprocessor(
            tokenizer, sequence_length=LENGTH, _allow_python_workflow=False)(tf.constant(texts))
        outputs = backbone({key: np.asarray(packed[key]) for key in backbone.input})
        sequence = np.asarray(outputs["sequence_output"] if isinstance(outputs, dict) else outputs)
        mask = np.asarray(packed["padding_mask"], "float32")[..., None]
        pooled = (sequence * mask).sum(axis=1) / mask.sum(axis=1)
    return np.asarray(packed["token_ids"]), np.asarray(packed["padding_mask"]), np.asarray(pooled)


def pooled_model(model, name):
    """The part of `model` from raw text to the encoder's pooled vector (the feature norm's first input)."""
    inputs = model.get_layer(f"{name}_feature_norm").input
    return keras.Model(model.input, inputs[0] if isinstance(inputs, (list, tuple)) else inputs)


# === Loading: weights, packing and pooling of each family ===


@pytest.mark.parametrize("encoder", FAMILIES)
def test_preset_loads_its_text_weights_and_packs_and_pools_like_keras_hub(encoder, presets):
    preset, backbone, tokenizer = presets[encoder]
    spec = mmk.TextInput("review", encoder=encoder, sequence_length=LENGTH, weights=preset)
    assert not spec.needs_adapt()
    model = mmk.build_unimodal(spec, TASK, projection_dim=8)

    # The text tower's weights and nothing else: no vision tower (CLIP,
    # SigLIP), no unused [CLS] pooler (BERT, ELECTRA).
    tower = getattr(backbone, "text_encoder", backbone)
    expected = [w for w in tower.weights if not w.path.startswith("pooled_dense/")]
    loaded = model.get_layer("review_encoder").weights
    assert [w.shape for w in loaded] == [w.shape for w in expected]
    for loaded_weight, saved_weight in zip(loaded, expected):
        np.testing.assert_array_equal(loaded_weight.numpy(), saved_weight.numpy())

    ids, mask, pooled = reference(encoder, backbone, tokenizer, TEXTS)
    loaded_ids, loaded_mask = model.get_layer("review_tokenizer")(tf.constant(TEXTS))
    np.testing.assert_array_equal(loaded_ids.numpy(), ids)
    np.testing.assert_array_equal(loaded_mask.numpy(), mask)
    # The same text gives the same vector: the model's own pooling.
    np.testing.assert_allclose(pooled_model(model, "review")({"review": TEXTS}).numpy(), pooled, atol=1e-5)


# === One model of every family: train, serve, reload ===


# WordPiece and SentencePiece by default; the byte-pair families and the rest in a
# long run (all seven towers in one model take three minutes on two cores).
FAMILY_GROUPS = [pytest.param(["bert_base_en_uncased", "siglip_text"], id="wordpiece_and_sentencepiece"),
                 pytest.param(["distil_bert_base_en_uncased", "electra_small", "roberta_base_en",
                               "deberta_v3_small_en", "clip_text"], id="the_others", marks=pytest.mark.slow)]


@pytest.mark.parametrize("encoders", FAMILY_GROUPS)
def test_every_family_trains_serves_and_reloads_in_safe_mode(encoders, presets, tmp_path):
    specs = [mmk.TextInput(encoder.split("_")[0], encoder=encoder, sequence_length=LENGTH,
                           weights=presets[encoder][0]) for encoder in encoders]
    # No modality dropout: every tower must see the one training step.
    model = mmk.build_model(specs, fusion="concat", task=TASK, projection_dim=8, modality_dropout=0.0)
    inputs = {spec.name: TEXTS for spec in specs}
    before = {spec.name: [w.numpy() for w in model.get_layer(f"{spec.name}_encoder").trainable_weights]
              for spec in specs}
    # One eager step: tracing the train step of several towers costs a minute
    # on two cores; export below runs the same graphs through tf.function.
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", run_eagerly=True)
    history = model.fit(tf.data.Dataset.from_tensor_slices((inputs, LABELS)).batch(7), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for spec in specs:  # a gradient reached every tower
        after = model.get_layer(f"{spec.name}_encoder").trainable_weights
        assert any(not np.array_equal(b, a.numpy()) for b, a in zip(before[spec.name], after)), spec.name

    # Tokenizers run inside the SavedModel: the op check (TF Serving 2.20 /
    # TF Text 2.20) passes and a TF-only process answers like predict.
    examples = [{spec.name: str(text) for spec in specs} for text in TEXTS[[0, 1, 6]]]
    assert_serves_like_predict(model, specs, tmp_path, name="text", examples=examples)

    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    inputs = {name: tf.constant(texts) for name, texts in inputs.items()}
    np.testing.assert_allclose(restored(inputs).numpy(), model(inputs).numpy(), atol=1e-6)
    assert len(restored.trainable_weights) == len(model.trainable_weights)
    for spec in specs:  # byte-pair and SentencePiece vocabularies came back with the file
        np.testing.assert_array_equal(restored.get_layer(f"{spec.name}_tokenizer")(tf.constant(TEXTS))[0],
                                      model.get_layer(f"{spec.name}_tokenizer")(tf.constant(TEXTS))[0])


def test_frozen_towers_stay_frozen_after_a_keras_reload(presets, tmp_path):
    # weights may be a path object (kept as a string in the spec's config)
    specs = [mmk.TextInput(name, encoder=encoder, sequence_length=LENGTH, weights=pathlib.Path(presets[encoder][0]),
                           trainable=False)
             for name, encoder in [("bert", "bert_base_en_uncased"), ("siglip", "siglip_text")]]
    model = mmk.build_model(specs, fusion="concat", task=TASK, projection_dim=8)
    model.save(tmp_path / "frozen.keras")
    restored = keras.saving.load_model(tmp_path / "frozen.keras", safe_mode=True)
    assert len(restored.trainable_weights) == len(model.trainable_weights)
    for spec in specs:
        assert not any(v.trainable for v in restored.get_layer(f"{spec.name}_encoder").weights)


# === Tokenizer state in a long-lived process ===


@pytest.mark.parametrize("encoder", ["deberta_v3_small_en", "siglip_text"])
def test_seeding_after_the_build_leaves_sentencepiece_tokenization_alone(encoder, presets):
    # set_random_seed clears TensorFlow's kernel cache, which used to delete
    # the SentencePiece model: "Resource .../SentencepieceOp/... does not exist".
    preset, backbone, tokenizer = presets[encoder]
    model = mmk.build_unimodal(mmk.TextInput("review", encoder=encoder, sequence_length=LENGTH, weights=preset),
                               TASK, projection_dim=8)
    keras.utils.set_random_seed(7)

    ids, _, pooled = reference(encoder, backbone, tokenizer, TEXTS)
    np.testing.assert_array_equal(model.get_layer("review_tokenizer")(tf.constant(TEXTS))[0].numpy(), ids)
    np.testing.assert_allclose(pooled_model(model, "review").predict({"review": tf.constant(TEXTS)}, verbose=0), pooled,
                               atol=1e-5)
    keras.utils.set_random_seed(8)  # again, after the traced predict: still the same
    np.testing.assert_allclose(pooled_model(model, "review").predict({"review": tf.constant(TEXTS)}, verbose=0), pooled,
                               atol=1e-5)


def remembered_words(tokenizer):
    """Entries of a byte-pair tokenizer's lasting word cache (KerasHub's, or mmkeras's bounded one)."""
    cache = tokenizer.cache
    return int((cache.words if hasattr(cache, "words") else cache.id2value).size())


@pytest.mark.parametrize("encoder", ["roberta_base_en", "clip_text"])
def test_byte_pair_word_cache_stays_bounded_while_serving(encoder, presets, monkeypatch):
    monkeypatch.setattr(text_encoders, "WORD_CACHE_SIZE", 12, raising=False)
    preset, backbone, tokenizer = presets[encoder]
    model = mmk.build_unimodal(mmk.TextInput("review", encoder=encoder, sequence_length=LENGTH, weights=preset),
                               TASK, projection_dim=8)
    layer = model.get_layer("review_tokenizer")
    serve = tf.function(layer, input_signature=[tf.TensorSpec([None], tf.string)])  # as a SavedModel runs it
    rng = np.random.default_rng(0)
    unseen = ["".join(rng.choice(list("abcdefgh"), 6)) for _ in range(40)]

    for i in range(0, len(unseen), 4):  # 10 requests of 4 new words
        serve(tf.constant([" ".join(unseen[i:i + 4])]))

    assert remembered_words(layer.tokenizer) <= 12
    # Words kept and words split again per call tokenize as KerasHub does,
    # known words and special tokens included.
    texts = [" ".join(unseen[:3] + unseen[-3:]), *TEXTS[:2], "<s> great </s>"]
    np.testing.assert_array_equal(serve(tf.constant(texts))[0].numpy(), reference(encoder, backbone, tokenizer, texts)[0])
    assert remembered_words(layer.tokenizer) <= 12


# === Presets that do not match the spec ===


def test_preset_of_another_class_names_the_directory_the_class_and_the_encoders(presets):
    bert_preset = presets["bert_base_en_uncased"][0]
    spec = mmk.TextInput("review", encoder="roberta_base_en", weights=bert_preset)
    with pytest.raises(ValueError) as error:
        spec.encode(spec.keras_input())
    message = str(error.value)
    assert bert_preset in message and "BertBackbone" in message and "RobertaBackbone" in message
    assert "['bert_base_en_uncased', 'bert_small_en_uncased', 'bert_tiny']" in message

    spec = mmk.TextInput("caption", encoder="siglip_text", weights=presets["clip_text"][0])
    with pytest.raises(ValueError, match="reads a SigLIPBackbone preset.*holds a CLIPBackbone.*'clip_text'"):
        spec.encode(spec.keras_input())


def test_preset_of_no_text_family_is_refused(tmp_path):
    # A CLIP text tower saved on its own is not a CLIP preset (no tokenizer
    # conventions, no pooling): refused, not guessed.
    keras_hub.models.CLIPTextEncoder(50, embedding_dim=8, **{**SMALL, "hidden_dim": 8}).save_to_preset(
        str(tmp_path / "tower"))
    spec = mmk.TextInput("caption", encoder="clip_text", weights=str(tmp_path / "tower"))
    with pytest.raises(ValueError, match=r"holds a CLIPTextEncoder.*one of \['BertBackbone', 'CLIPBackbone'"):
        spec.encode(spec.keras_input())


@pytest.mark.parametrize("weights, message", [
    ("no/such/dir", "no such preset directory"),
    (".", "is not a KerasHub text encoder preset.*config.json"),
])
def test_weights_that_are_not_a_preset_are_refused(weights, message):
    spec = mmk.TextInput("review", encoder="bert_base_en_uncased", weights=weights)
    with pytest.raises(ValueError, match=message):
        spec.encode(spec.keras_input())


def test_pretrained_towers_need_weights():
    with pytest.raises(ValueError, match="'siglip_text' is a pretrained tower: pass `weights=`"):
        mmk.TextInput("caption", encoder="siglip_text")


def test_sequence_length_must_fit_the_preset(presets):
    spec = mmk.TextInput("caption", encoder="siglip_text", sequence_length=8, weights=presets["siglip_text"][0])
    with pytest.raises(ValueError, match=f"pass sequence_length={LENGTH}.*Received: sequence_length=8"):
        spec.encode(spec.keras_input())
    spec = mmk.TextInput("review", encoder="bert_base_en_uncased", sequence_length=64,
                         weights=presets["bert_base_en_uncased"][0])
    with pytest.raises(ValueError, match="reads at most 32 tokens; received sequence_length=64"):
        spec.encode(spec.keras_input())


# === ELECTRA from scratch, and the text layers ===


def test_electra_tiny_learns_a_vocabulary_and_every_weight_trains():
    spec = mmk.TextInput("review", encoder="electra_tiny", sequence_length=8, vocabulary_size=60)
    model = mmk.build_unimodal(spec, TASK, projection_dim=8, adapt_data={"review": np.repeat(TEXTS, 10)})
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(LABELS, model({"review": TEXTS}, training=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    assert [v.path for v, g in zip(model.trainable_variables, gradients) if g is None or not np.any(g)] == []


def test_text_tokenizer_normalises_bounds_and_rebuilds_from_config(presets):
    layer = TextTokenizer(presets["siglip_text"][2], 6, special_token_ids=(None, 1, 1), lowercase=True,
                          strip_punctuation=True, max_characters=20)
    ids, mask = layer(tf.constant(["Great  PHONE!!", "great phone", "slow screen " * 100]))
    np.testing.assert_array_equal(ids[0], ids[1])  # case, punctuation and spaces are canonical
    np.testing.assert_array_equal(mask.numpy().sum(axis=1), [3, 3, 5])  # 20 characters: 4 words + end
    restored = TextTokenizer.from_config(json.loads(json.dumps(layer.get_config())))
    restored.tokenizer.set_proto(presets["siglip_text"][2].proto)  # an asset: loaded by load_model
    np.testing.assert_array_equal(restored(tf.constant(["Great  PHONE!!"]))[0], ids[:1])


def test_end_token_pooling_takes_the_last_unpadded_position():
    sequence = np.random.default_rng(0).normal(size=(2, 4, 3)).astype("float32")
    mask = np.array([[True, True, True, False], [True, True, True, True]])
    np.testing.assert_array_equal(EndTokenPooling()(sequence, mask).numpy(), sequence[[0, 1], [2, 3]])
