"""Tests for mmkeras.fusion: every fusion layer, ModalityDropout, and fusion inside built models.

Layer-level tests run each fusion on random embeddings and tokens; model-level
tests build one four-modality model per fusion (image, text, audio, sensor)
and check that gradients reach every encoder and that a missing modality
cannot influence the prediction.
"""

import inspect
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras as mmk
from mmkeras import fusion as fusion_lib
from mmkeras.fusion import FUSIONS, FusionLayer, ModalityDropout
from mmkeras.fusion.masking import masked_softmax, valid_tokens

NAMES = ["image", "text", "audio"]
BATCH, WIDTH = 4, 8
TOKEN_COUNTS = [2, 5, 3]
# Small options per fusion, and the width each then outputs.
OPTIONS = {
    "concat": ({"hidden_dim": 6}, 6),
    "weighted": ({"hidden_dim": 6}, 6),
    "gated": ({"hidden_dim": 6}, 6),
    "attention": ({"attention_dim": 5, "hidden_dim": 6}, 6),
    "cross_attention": ({"num_heads": 2, "hidden_dim": 6}, 6),
    "transformer": ({"num_layers": 1, "num_heads": 2}, WIDTH),
    "low_rank": ({"hidden_dim": 6, "rank": 2}, 6),
}
# Example 1 lacks the text, example 2 the image and audio.
PRESENCE = np.array([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 1]], "float32")


def make_fusion(name):
    keras.utils.set_random_seed(0)
    return fusion_lib.get(name, NAMES, **OPTIONS[name][0])


def random_inputs(seed=0):
    """Embeddings `[B, V, D]` and per-modality tokens with some padding."""
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(BATCH, len(NAMES), WIDTH)).astype("float32")
    tokens = [rng.normal(size=(BATCH, n, WIDTH)).astype("float32") for n in TOKEN_COUNTS]
    masks = [np.ones((BATCH, n), bool) for n in TOKEN_COUNTS]
    masks[1][:, 3:] = False  # text padding
    return embeddings, tokens, masks


def run(layer, embeddings, presence, tokens, masks, training=False):
    """`(fused, weights or None)` through the one calling convention every fusion has."""
    fused = layer(embeddings, presence, tokens, masks, training=training)
    return fused, layer.modality_weights(embeddings, presence, tokens, masks)


# === Each fusion layer ===


@pytest.mark.parametrize("name", FUSIONS)
def test_output_shapes_and_modality_weights(name):
    layer = make_fusion(name)
    embeddings, tokens, masks = random_inputs()
    fused, weights = run(layer, embeddings, PRESENCE, tokens, masks)
    assert fused.shape == (BATCH, OPTIONS[name][1])
    assert np.isfinite(fused.numpy()).all()
    assert layer.modality_names == NAMES
    assert (weights is not None) == layer.has_modality_weights
    if layer.has_modality_weights:
        weights = weights.numpy()
        assert weights.shape == (BATCH, len(NAMES))
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
        # Missing modalities get no weight; the others share it.
        np.testing.assert_array_equal(weights[PRESENCE == 0], 0.0)
        assert (weights[PRESENCE == 1] > 0).all()


@pytest.mark.parametrize("name", FUSIONS)
def test_every_fusion_follows_the_one_calling_convention(name):
    """`fusion(embeddings, presence, tokens=None, token_masks=None)` -> the fused vector, nothing
    else, in a model too; weights only through `modality_weights`; tokens only where read."""
    layer = make_fusion(name)
    embeddings, tokens, masks = random_inputs()
    fused = layer(embeddings, PRESENCE, tokens=tokens, token_masks=masks)
    assert keras.ops.is_tensor(fused) and fused.shape == (BATCH, OPTIONS[name][1])
    if layer.uses_tokens:
        with pytest.raises(ValueError, match="reads tokens: call it as fusion.*Received no tokens"):
            layer(embeddings, PRESENCE)
    else:  # tokens are ignored, not required
        np.testing.assert_array_equal(layer(embeddings, PRESENCE).numpy(), fused.numpy())

    symbolic = [keras.Input((len(NAMES), WIDTH)), keras.Input((len(NAMES),))]
    symbolic_tokens = [keras.Input((n, WIDTH)) for n in TOKEN_COUNTS]
    symbolic_masks = [keras.Input((n,), dtype="bool") for n in TOKEN_COUNTS]
    output = make_fusion(name)(*symbolic, symbolic_tokens, symbolic_masks)
    assert isinstance(output, keras.KerasTensor) and output.shape == (None, OPTIONS[name][1])

    # The weighting fusions give weights through `modality_weights`; the others inherit None.
    weights = layer.modality_weights(embeddings, PRESENCE, tokens, masks)
    assert (weights is None) == (name not in ("weighted", "gated", "attention"))
    assert layer.has_modality_weights == (weights is not None)


@pytest.mark.parametrize("name", FUSIONS)
def test_config_round_trip_gives_same_outputs(name):
    layer = make_fusion(name)
    embeddings, tokens, masks = random_inputs()
    expected, _ = run(layer, embeddings, PRESENCE, tokens, masks)

    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"] == f"mmkeras>{type(layer).__name__}"
    restored = keras.saving.deserialize_keras_object(config)
    assert restored.get_config() == layer.get_config()
    run(restored, embeddings, PRESENCE, tokens, masks)  # builds it
    restored.set_weights(layer.get_weights())
    actual, _ = run(restored, embeddings, PRESENCE, tokens, masks)
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", FUSIONS)
def test_missing_modality_and_padding_do_not_change_the_output(name):
    """ModalityDropout then fusion, as in a model: what is missing cannot leak."""
    dropout = ModalityDropout(rate=0.3)
    layer = make_fusion(name)

    def fuse(embeddings, tokens, masks):
        replaced, presence = dropout(embeddings, PRESENCE, training=False)
        return run(layer, replaced, presence, tokens, masks)[0].numpy()

    embeddings, tokens, masks = random_inputs(seed=0)
    expected = fuse(embeddings, tokens, masks)

    noise_embeddings, noise_tokens, _ = random_inputs(seed=1)
    changed_embeddings = np.where(PRESENCE[:, :, None] == 0, 100 * noise_embeddings, embeddings)
    changed_tokens = [
        np.where((PRESENCE[:, v, None, None] == 0) | ~masks[v][:, :, None], 100 * noise_tokens[v], tokens[v])
        for v in range(len(NAMES))
    ]
    assert not np.array_equal(changed_embeddings, embeddings)
    assert not np.array_equal(changed_tokens[1], tokens[1])
    np.testing.assert_allclose(fuse(changed_embeddings, changed_tokens, masks), expected,
                               rtol=1e-5, atol=1e-5)

    # Control: the same change to a present modality does change the output.
    present_changed = embeddings.copy()
    present_changed[0] = noise_embeddings[0]
    tokens_changed = [np.concatenate([n[:1], t[1:]]) for n, t in zip(noise_tokens, tokens)]
    assert not np.allclose(fuse(present_changed, tokens_changed, masks)[0], expected[0], atol=1e-4)


@pytest.mark.parametrize("name", FUSIONS)
def test_gradients_reach_every_present_modality(name):
    layer = make_fusion(name)
    embeddings, tokens, masks = random_inputs()
    embeddings, tokens = tf.constant(embeddings), [tf.constant(t) for t in tokens]
    presence = np.ones((BATCH, len(NAMES)), "float32")
    with tf.GradientTape() as tape:
        tape.watch([embeddings, *tokens])
        fused, _ = run(layer, embeddings, presence, tokens, masks, training=True)
        loss = tf.reduce_sum(fused ** 2)
    gradient, *token_gradients = tape.gradient(loss, [embeddings, *tokens])
    for v in range(len(NAMES)):
        assert np.abs(gradient[:, v].numpy()).max() > 0, NAMES[v]
        if layer.uses_tokens:
            assert np.abs(token_gradients[v].numpy()).max() > 0, NAMES[v]


def test_weighting_fusions_fall_back_when_everything_is_missing():
    weights = masked_softmax(np.array([[1.0, 2.0], [1.0, 2.0]]), np.array([[0.0, 0.0], [1.0, 0.0]]))
    np.testing.assert_allclose(weights.numpy(), [[0.26894142, 0.73105858], [1.0, 0.0]], rtol=1e-6)


def test_valid_tokens_drop_padding_and_missing_modalities():
    mask = np.array([[True, True, False], [True, True, True]])
    valid = valid_tokens(mask, np.array([1.0, 0.0], "float32")).numpy()
    np.testing.assert_array_equal(valid, [[True, True, False], [False, False, False]])


def test_unknown_fusion_and_single_modality_are_refused():
    with pytest.raises(ValueError, match="Unknown fusion 'sum'.*concat"):
        fusion_lib.get("sum", NAMES)
    with pytest.raises(ValueError, match="at least 2 modalities.*'image'"):
        fusion_lib.get("concat", ["image"])


@pytest.mark.parametrize("name, options, message", [
    ("gated", {"hiden_dim": 8},
     "fusion_options.hiden_dim: unknown key (did you mean 'hidden_dim'?); GatedFusion takes: hidden_dim"),
    ("transformer", {"hidden_dim": 8}, "fusion_options.hidden_dim: unknown key; MultimodalTransformerFusion "
     "takes: num_layers, num_heads, intermediate_dim, dropout"),
    ("concat", {"hidden_dim": "wide"}, "fusion_options.hidden_dim: expected an integer. Received: 'wide'"),
    ("concat", {"hidden_dim": 8.5}, "fusion_options.hidden_dim: expected an integer. Received: 8.5"),
    ("low_rank", {"dropout": "a lot"}, "fusion_options.dropout: expected a finite number. Received: 'a lot'"),
    ("low_rank", {"rank": True}, "fusion_options.rank: expected an integer. Received: True"),
])
def test_fusion_options_are_checked_against_the_constructor(name, options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        fusion_lib.get(name, NAMES, **options)


def test_fusion_options_are_read_from_the_constructor():
    assert fusion_lib.fusion_options(FUSIONS["attention"]) == {"attention_dim": 128, "hidden_dim": 256}
    assert fusion_lib.fusion_options(FUSIONS["transformer"])["intermediate_dim"] is None
    # A None default takes anything; a float takes an int, numpy numbers and a number YAML left a string.
    layer = fusion_lib.get("transformer", NAMES, intermediate_dim=16, dropout=0)
    assert (layer.intermediate_dim, layer.dropout) == (16, 0.0)
    layer = fusion_lib.get("low_rank", NAMES, hidden_dim=np.int64(4), dropout="1e-1")
    assert (layer.hidden_dim, layer.dropout) == (4, 0.1)


def test_a_required_option_is_named():
    class Needy(FusionLayer):
        def __init__(self, modality_names, width, scale=1.0, **kwargs):
            super().__init__(modality_names, **kwargs)

    assert fusion_lib.fusion_options(Needy) == {"width": inspect.Parameter.empty, "scale": 1.0}
    with pytest.raises(ValueError, match=re.escape("fusion_options.width: a required key")):
        fusion_lib.check_options(Needy, {"scale": 2.0})


# === ModalityDropout ===


def test_modality_dropout_at_inference_only_substitutes_missing_modalities():
    layer = ModalityDropout(rate=0.9)
    embeddings, _, _ = random_inputs()
    for training in (False, None):
        replaced, presence = layer(embeddings, PRESENCE, training=training)
        np.testing.assert_array_equal(presence.numpy(), PRESENCE)
        missing = np.broadcast_to(layer.missing_embeddings.numpy(), embeddings.shape)
        expected = np.where(PRESENCE[:, :, None] == 1, embeddings, missing)
        np.testing.assert_array_equal(replaced.numpy(), expected)


def test_modality_dropout_in_training_drops_but_never_everything():
    rng = np.random.default_rng(0)
    presence = (rng.uniform(size=(2000, 3)) > 0.2).astype("float32")
    presence[:50] = 0.0  # examples with nothing at all stay that way
    embeddings = rng.normal(size=(2000, 3, 4)).astype("float32")
    layer = ModalityDropout(rate=0.5, seed=1)
    replaced, dropped_presence = layer(embeddings, presence, training=True)
    replaced, dropped_presence = replaced.numpy(), dropped_presence.numpy()

    assert (dropped_presence <= presence).all()  # drops only, never revives
    has_any = presence.max(axis=1) > 0
    assert (dropped_presence[has_any].max(axis=1) == 1).all()
    assert (dropped_presence[~has_any] == 0).all()
    dropped = (presence == 1) & (dropped_presence == 0)
    assert 0.3 < dropped.sum() / presence.sum() < 0.5  # rate 0.5, less the kept last ones
    missing = np.broadcast_to(layer.missing_embeddings.numpy(), replaced.shape)
    np.testing.assert_array_equal(replaced[dropped_presence == 0], missing[dropped_presence == 0])
    np.testing.assert_array_equal(replaced[dropped_presence == 1], embeddings[dropped_presence == 1])


def test_modality_dropout_rate_is_validated_and_config_round_trips():
    with pytest.raises(ValueError, match=r"\[0, 1\).*rate=1.0"):
        ModalityDropout(rate=1.0)
    layer = ModalityDropout(rate=0.25, seed=3, name="modality_dropout")
    restored = ModalityDropout.from_config(layer.get_config())
    assert (restored.rate, restored.seed, restored.name) == (0.25, 3, "modality_dropout")


# === Fusion inside a built four-modality model ===

MODALITIES = ["photo", "review", "voice", "readings"]
TEXTS = np.array(["the alpha cat", "beta dog runs", "an alpha fox", "slow beta turtle", "alpha", "beta"])


def four_specs():
    return [
        mmk.ImageInput("photo", size=(16, 16)),
        mmk.TextInput("review", sequence_length=8, vocabulary_size=100),
        mmk.AudioInput("voice", sample_rate=4000, seconds=0.25, num_mels=16),
        mmk.SensorInput("readings", features=["t", "v", "i"]),
    ]


def four_inputs(missing=()):
    """Six examples; `missing` is a list of (example, modality) to blank out."""
    rng = np.random.default_rng(0)
    x = {
        "photo": rng.uniform(0, 255, (6, 16, 16, 3)).astype("float32"),
        "review": TEXTS.copy(),
        "voice": rng.uniform(-1, 1, (6, 1000)).astype("float32"),
        "readings": rng.normal(size=(6, 3)).astype("float32"),
    }
    for example, name in missing:
        if name == "review":
            x[name][example] = ""
        else:
            x[name][example] = np.nan
    return x


# Example 0 has everything; example 1 + i lacks modality i; example 5 has only audio.
MISSING = [(1 + i, name) for i, name in enumerate(MODALITIES)]
MISSING += [(5, "photo"), (5, "review"), (5, "readings")]


@pytest.fixture(scope="module")
def models():
    built = {}
    for name in FUSIONS:
        keras.utils.set_random_seed(0)
        built[name] = mmk.build_model(
            four_specs(), fusion=name, task=mmk.Classification(labels=["a", "b", "c"]),
            projection_dim=16,
            adapt_data={"review": np.repeat(TEXTS, 10), "readings": four_inputs()["readings"]},
        )
    return built


def encoder_layers(model, modality):
    """Everything the model computes from one modality before fusion."""
    return [layer for layer in model.layers if layer.name.startswith(f"{modality}_") and layer.weights]


@pytest.mark.parametrize("name", FUSIONS)
def test_every_encoder_gets_gradients_through_fusion(name, models):
    model = models[name]
    keras.utils.set_random_seed(1)
    x = four_inputs(missing=[(1, "photo")])  # the missing embedding is learned too
    with tf.GradientTape() as tape:
        probabilities = model(x, training=True)
        loss = keras.losses.sparse_categorical_crossentropy(np.arange(6) % 3, probabilities)
    gradients = dict(zip([v.path for v in model.trainable_variables],
                         tape.gradient(loss, model.trainable_variables)))
    for modality in MODALITIES:
        weights = [v for layer in encoder_layers(model, modality) for v in layer.trainable_weights]
        assert len(weights) >= 2, modality
        zero = [v.path for v in weights if gradients[v.path] is None or not np.any(gradients[v.path])]
        assert zero == [], f"{modality}: no gradient for {zero}"
    # The learned missing embedding is trained wherever fusion reads it; the
    # weighted sums give a missing modality zero weight instead.
    reads_missing_embedding = name not in ("weighted", "attention")
    assert np.any(gradients["modality_dropout/missing_embeddings"]) == reads_missing_embedding


@pytest.mark.parametrize("name", FUSIONS)
def test_missing_modality_cannot_influence_the_prediction(name, models):
    """Scrambling a modality's whole encoder changes only the examples that have it."""
    model = models[name]
    x = four_inputs(missing=MISSING)
    before = model(x, training=False).numpy()
    assert np.isfinite(before).all()
    for modality in MODALITIES:
        layers = encoder_layers(model, modality)
        saved = [layer.get_weights() for layer in layers]
        for layer in layers:
            layer.set_weights([w * 1.5 + 0.1 for w in layer.get_weights()])
        after = model(x, training=False).numpy()
        for layer, weights in zip(layers, saved):
            layer.set_weights(weights)
        lacking = sorted({example for example, m in MISSING if m == modality})
        having = [e for e in range(6) if e not in lacking]
        np.testing.assert_allclose(after[lacking], before[lacking], rtol=1e-5, atol=1e-6,
                                   err_msg=f"missing {modality} leaked into the prediction")
        assert not np.allclose(after[having], before[having], atol=1e-5), modality


@pytest.mark.parametrize("name", FUSIONS)
def test_raw_values_of_a_missing_modality_do_not_matter(name, models):
    """However a client spells "missing" (any image size, blank text), the answer is the same."""
    model = models[name]
    x = four_inputs()
    x["photo"] = np.full((6, 16, 16, 3), np.nan, "float32")
    x["review"] = np.array([""] * 6)
    other = dict(x, photo=np.full((6, 9, 23, 3), np.nan, "float32"),
                 review=np.array(["  ", "\t", " \n ", "", "   ", " "]))
    np.testing.assert_allclose(model(other).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", FUSIONS)
def test_model_fusion_layer_follows_the_input_order(name, models):
    layer = models[name].get_layer("fusion")
    assert isinstance(layer, FUSIONS[name])
    assert layer.modality_names == MODALITIES
