"""Tests for mmkeras.modalities and mmkeras.log_mel: encoders, missing inputs, sensors, freezing.

Every encoder is checked for the shapes it hands to fusion, for finite
outputs on missing inputs, and (through `build_unimodal`) for gradients on
every trainable weight.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras as mmk
from mmkeras import modalities
from mmkeras.log_mel import LogMelSpectrogram, SpecAugment
from mmkeras.modalities.missing import SplitMissing, SplitMissingFeatures, StepMask, TextPresence, TokenMask
from mmkeras.modalities.timeseries import TIMESERIES_ENCODERS
from mmkeras.modalities.text import RESERVED_TOKENS, TextTokenizer, ZerosLike
from mmkeras.modalities.waveform_augment import WaveformAugment

TEXTS = np.array([
    "the alpha cat sat on a mat", "beta dog runs far", "a quick alpha fox jumps",
    "slow beta turtle", "alpha", "beta beta beta and more words than fit in eight tokens",
])
TASK = mmk.Classification(labels=["no", "yes"])
LABELS = np.array([0, 1, 0, 1, 1, 0])
TEXT_ENCODERS = ["bert_tiny", "distil_bert_tiny", "roberta_tiny", "deberta_v3_tiny"]
AUDIO_SAMPLES = 1000  # 0.25 s at 4 kHz


def encode(spec, values):
    """Runs `spec.encode` in a small model; returns the `Encoded` fields as numpy."""
    x = spec.keras_input()
    encoded = spec.encode(x)
    outputs = keras.Model(x, encoded._asdict())(values)
    return {k: np.asarray(v) for k, v in outputs.items()}


def zero_gradient_weights(model, inputs, labels):
    """Paths of trainable weights whose loss gradient is missing or all zero."""
    with tf.GradientTape() as tape:
        probabilities = model(inputs, training=True)
        loss = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
    gradients = tape.gradient(loss, model.trainable_variables)
    return [v.path for v, g in zip(model.trainable_variables, gradients)
            if g is None or not np.any(np.asarray(g))]


def audio(batch=6, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, AUDIO_SAMPLES)).astype("float32")


# === Presence layers ===


def test_split_missing_fills_nan_and_flags_fully_missing_examples():
    x = np.array([[[1.0, np.nan], [3.0, 4.0]], [[np.nan, np.nan], [np.nan, np.nan]]], "float32")
    filled, presence = SplitMissing()(x)
    np.testing.assert_array_equal(presence.numpy(), [[1.0], [0.0]])
    np.testing.assert_array_equal(filled.numpy(), np.nan_to_num(x, nan=0.0))


def test_split_missing_features_flags_each_feature():
    features, presence = SplitMissingFeatures()(np.array([[0.5, np.nan], [np.nan, np.nan]], "float32"))
    np.testing.assert_array_equal(features.numpy(), [[0.5, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(presence.numpy(), [[1.0], [0.0]])


def test_text_presence_treats_empty_and_blank_strings_as_missing():
    presence = TextPresence()(tf.constant(["great", "", "   ", " ok "]))
    np.testing.assert_array_equal(presence.numpy().ravel(), [1.0, 0.0, 0.0, 1.0])


ROUND_TRIP_LAYERS = [
    (SplitMissing(fill_value=-1.0), np.array([[np.nan, 2.0], [np.nan, np.nan]], "float32")),
    (SplitMissingFeatures(), np.array([[np.nan, 2.0]], "float32")),
    (TextPresence(), tf.constant(["a", ""])),
    (TokenMask(), np.zeros((2, 3, 4), "float32")),
    (ZerosLike(), np.ones((2, 3), "int32")),
    (LogMelSpectrogram(sample_rate=4000, fft_size=128, window_size=100, hop_size=40, num_mels=16),
     np.random.default_rng(0).uniform(-1, 1, (2, AUDIO_SAMPLES)).astype("float32")),
    (SpecAugment(freq_mask_param=3, time_mask_param=4), np.ones((2, 10, 8), "float32")),
]


@pytest.mark.parametrize("layer, inputs", ROUND_TRIP_LAYERS,
                         ids=[type(layer).__name__ for layer, _ in ROUND_TRIP_LAYERS])
def test_layer_config_round_trip(layer, inputs):
    restored = type(layer).from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()
    for a, b in zip(keras.tree.flatten(layer(inputs)), keras.tree.flatten(restored(inputs))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# === Audio front end ===


def test_log_mel_is_per_example_and_finite_on_silence():
    layer = LogMelSpectrogram(sample_rate=4000, fft_size=128, window_size=100, hop_size=40, num_mels=16)
    clips = audio(batch=2)
    clips[1] = 0.0  # digital silence: log(0) must not reach the model
    batch = layer(clips).numpy()
    alone = layer(clips[:1]).numpy()
    assert batch.shape == (2, layer.num_frames(AUDIO_SAMPLES), 16)
    assert np.isfinite(batch).all()
    # dbscale clips relative to a peak: the peak must be the example's own.
    np.testing.assert_allclose(batch[:1], alone, rtol=1e-5, atol=1e-4)


def test_spec_augment_masks_only_in_training():
    x = np.random.default_rng(0).normal(size=(4, 30, 16)).astype("float32") + 5.0
    layer = SpecAugment(freq_mask_param=6, time_mask_param=8)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    np.testing.assert_array_equal(layer(x).numpy(), x)
    masked = layer(x, training=True).numpy()
    assert masked.shape == x.shape
    assert (masked == 0).any() and not (x == 0).any()


def test_spec_augment_handles_masks_wider_than_the_spectrogram():
    layer = SpecAugment(freq_mask_param=8, time_mask_param=10)
    x = np.ones((4, 5, 4), "float32")  # 5 frames, 4 mels
    for _ in range(10):  # random widths: exercise several
        assert layer(x, training=True).shape == x.shape


def test_waveform_augment_shifts_and_scales_each_clip_only_in_training():
    impulses = np.zeros((64, 100), "float32")
    impulses[:, 50] = 0.5
    layer = WaveformAugment(max_gain_db=6.0, max_shift=0.1)
    np.testing.assert_array_equal(layer(impulses, training=False).numpy(), impulses)
    np.testing.assert_array_equal(layer(impulses).numpy(), impulses)
    out = layer(impulses, training=True).numpy()
    assert out.shape == impulses.shape
    assert ((out != 0).sum(axis=1) == 1).all()  # moved, not smeared
    positions, peaks = np.argmax(out != 0, axis=1), out.max(axis=1)
    assert (np.abs(positions - 50) <= 10).all() and len(set(positions)) > 5
    assert (peaks >= 0.5 * 10 ** (-6 / 20) - 1e-6).all() and (peaks <= 0.5 * 10 ** (6 / 20) + 1e-6).all()
    loud = np.full((4, 10), 0.9, "float32")
    assert np.abs(layer(loud, training=True).numpy()).max() <= 1.0


@pytest.mark.parametrize("arguments, message", [
    ({"max_gain_db": -1.0}, "max_gain_db must be >= 0"), ({"max_shift": 1.0}, r"max_shift must be in \[0, 1\)")])
def test_waveform_augment_refuses_bad_arguments_by_name(arguments, message):
    with pytest.raises(ValueError, match=message):
        WaveformAugment(**arguments)


def test_an_audio_model_predicts_the_same_with_or_without_waveform_augment():
    waveform = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 8000)).astype("float32")
    models = {}
    for augment in (True, False):
        spec = mmk.AudioInput("voice", sample_rate=8000, seconds=1.0, waveform_augment=augment)
        x = spec.keras_input()
        models[augment] = keras.Model(x, spec.encode(x).pooled)
    for layer in models[False].layers:  # the same weights; the augmented model has one layer more
        models[True].get_layer(layer.name).set_weights(layer.get_weights())
    np.testing.assert_allclose(models[True](waveform), models[False](waveform), rtol=1e-5, atol=1e-6)


# === Encoders ===


@pytest.mark.parametrize("pooling, width", [("avg", 64), ("max", 64), ("avg_max", 128)])
def test_image_pooling_choices(pooling, width):
    keras.utils.set_random_seed(0)
    spec = mmk.ImageInput("photo", size=(16, 16), backbone="tiny_cnn", pooling=pooling)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    out = encode(spec, pixels)
    assert out["pooled"].shape == (2, width) and out["tokens"].shape == (2, 4, 64)
    cells = out["tokens"]
    expected = {"avg": cells.mean(axis=1), "max": cells.max(axis=1),
                "avg_max": np.concatenate([cells.mean(axis=1), cells.max(axis=1)], axis=-1)}[pooling]
    np.testing.assert_allclose(out["pooled"], expected, rtol=1e-5, atol=1e-6)


def test_unknown_image_pooling_is_refused():
    with pytest.raises(ValueError, match="pooling must be one of .*'sum'"):
        mmk.ImageInput("photo", pooling="sum")


def test_image_encoder_shapes_for_any_input_size():
    spec = mmk.ImageInput("photo", size=(16, 16), backbone="tiny_cnn")
    for height, width in [(16, 16), (20, 28)]:
        pixels = np.random.default_rng(0).uniform(0, 255, (3, height, width, 3)).astype("float32")
        pixels[2] = np.nan
        out = encode(spec, pixels)
        assert out["pooled"].shape == (3, 64)
        assert out["tokens"].shape == (3, 4, 64)  # three stride-2 blocks: 16 -> 2, 2x2 tokens
        assert out["token_mask"].shape == (3, 4) and out["token_mask"].all()
        np.testing.assert_array_equal(out["presence"].ravel(), [1.0, 1.0, 0.0])
        assert np.isfinite(out["pooled"]).all()


@pytest.mark.parametrize("encoder", TEXT_ENCODERS)
def test_text_encoder_learns_wordpiece_vocabulary_and_encodes(encoder):
    spec = mmk.TextInput("review", encoder=encoder, sequence_length=8, vocabulary_size=200)
    assert spec.needs_adapt()
    # The WordPiece learner keeps whole words seen at least 10 times.
    spec.adapt(np.repeat(TEXTS, 10))
    assert spec.vocabulary[:len(RESERVED_TOKENS)] == RESERVED_TOKENS
    assert {w for t in TEXTS for w in t.split()} <= set(spec.vocabulary)

    out = encode(spec, np.append(TEXTS[:3], ""))
    assert out["tokens"].shape == (4, 8, 128)
    assert out["pooled"].shape == (4, 128)
    # [CLS] + 7 word pieces + [SEP] fill 8 positions; "" keeps [CLS] [SEP] only.
    np.testing.assert_array_equal(out["token_mask"].sum(axis=1), [8, 6, 7, 2])
    np.testing.assert_array_equal(out["presence"].ravel(), [1.0, 1.0, 1.0, 0.0])
    assert np.isfinite(out["pooled"]).all()


def test_text_adapt_accepts_batched_values():
    flat = mmk.TextInput("review", vocabulary_size=60)
    flat.adapt(TEXTS)
    batched = mmk.TextInput("review", vocabulary_size=60)
    batched.adapt(TEXTS.reshape(2, 3))  # e.g. from a dataset batched with drop_remainder
    assert batched.vocabulary == flat.vocabulary


def test_text_tokenizer_packs_with_special_tokens():
    import keras_hub

    vocabulary = RESERVED_TOKENS + ["good", "phone"]
    tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocabulary)
    layer = TextTokenizer(tokenizer, 5)
    ids, mask = layer(tf.constant(["good phone", "", "phone good good good"]))
    np.testing.assert_array_equal(ids.numpy(), [[1, 5, 6, 2, 0], [1, 2, 0, 0, 0], [1, 6, 5, 5, 2]])
    np.testing.assert_array_equal(mask.numpy(), ids.numpy() > 0)
    # The special ids live in the config: a reloaded tokenizer has no
    # vocabulary until its assets load, after the layer is rebuilt.
    assert layer.get_config()["special_token_ids"] == [1, 2, 0]


@pytest.mark.parametrize("encoder, tokens_shape", [("cnn", (4, 256)), ("transformer", (7, 128))])
def test_audio_encoder_shapes(encoder, tokens_shape):
    spec = mmk.AudioInput("voice", sample_rate=4000, seconds=0.25, num_mels=16, encoder=encoder)
    assert spec.num_samples == AUDIO_SAMPLES
    clips = audio(batch=3)
    clips[1] = np.nan
    out = encode(spec, clips)
    assert out["tokens"].shape == (3, *tokens_shape)
    assert out["pooled"].shape == (3, tokens_shape[1])
    np.testing.assert_array_equal(out["presence"].ravel(), [1.0, 0.0, 1.0])
    assert np.isfinite(out["pooled"]).all()


@pytest.mark.parametrize("spec", [
    mmk.SensorInput("readings", features=["t", "v", "i"], hidden_dim=16),
    *[mmk.TimeSeriesInput("trace", features=["t", "v", "i"], steps=10, encoder=e, hidden_dim=16)
      for e in TIMESERIES_ENCODERS],
], ids=lambda spec: getattr(spec, "encoder", spec.kind))
def test_float_encoders_shapes_with_nan(spec):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(4, *spec.shape)).astype("float32")
    values[0, ..., 1] = np.nan  # one feature missing: still present
    values[1] = np.nan  # whole input missing
    if len(spec.shape) == 2:
        values[2, :4] = np.nan  # steps missing (a short series, padded)
    spec.adapt(values)
    out = encode(spec, values)
    assert out["pooled"].shape == (4, 32 if len(spec.shape) == 2 else 16)  # a series: mean and max
    assert out["tokens"].shape == (4, spec.shape[0] if len(spec.shape) == 2 else 1, 16)
    np.testing.assert_array_equal(out["presence"].ravel(), [1.0, 0.0, 1.0, 1.0])
    assert np.isfinite(out["pooled"]).all() and np.isfinite(out["tokens"]).all()


def test_a_series_masks_its_missing_steps_out_of_the_pooled_vector():
    """Padding steps (all NaN) change nothing: the pooled vector is the mean over
    the steps that are there, whatever the encoder reads at the others."""
    spec = mmk.TimeSeriesInput("trace", features=["a"], steps=6, mean=[0.0], variance=[1.0], encoder="gru")
    keras.utils.set_random_seed(0)
    model = mmk.build_unimodal(spec, TASK, projection_dim=8)
    series = np.array([[[np.nan]] * 2 + [[1.0], [2.0], [3.0], [4.0]]], "float32")
    assert StepMask()(series).numpy().tolist() == [[False, False, True, True, True, True]]
    shorter = mmk.TimeSeriesInput("trace", features=["a"], steps=4, mean=[0.0], variance=[1.0], encoder="gru")
    keras.utils.set_random_seed(0)
    same_weights = mmk.build_unimodal(shorter, TASK, projection_dim=8)
    same_weights.set_weights(model.get_weights())
    np.testing.assert_allclose(model({"trace": series}).numpy(), same_weights({"trace": series[:, 2:]}).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_category_values_never_seen_in_training_share_the_out_of_vocabulary_buckets():
    spec = mmk.CategoryInput("machine", num_oov_buckets=2, embedding_dim=4)
    spec.adapt(np.array(["m2", "m1", "m1", "", "m3", "m3", "m3"], object))
    assert spec.vocabulary == ["m3", "m1", "m2"]  # by frequency, ties by value
    out = encode(spec, np.array(["m1", "never seen", "", "m3"], object))
    np.testing.assert_array_equal(out["presence"].ravel(), [1.0, 1.0, 0.0, 1.0])
    assert out["pooled"].shape == (4, 4) and np.isfinite(out["pooled"]).all()
    capped = mmk.CategoryInput("machine", max_tokens=2)
    capped.adapt(["a", "b", "b", "c", "c", "c"])
    assert capped.vocabulary == ["c", "b"]


ENCODER_CASES = {
    "image_small_cnn": lambda: (mmk.ImageInput("photo", size=(16, 16)),
                                np.random.default_rng(0).uniform(0, 255, (6, 16, 16, 3)).astype("float32")),
    **{f"text_{e}": (lambda e=e: (mmk.TextInput("review", encoder=e, sequence_length=8,
                                                vocabulary_size=200), TEXTS))
       for e in TEXT_ENCODERS},
    **{f"audio_{e}": (lambda e=e: (mmk.AudioInput("voice", sample_rate=4000, seconds=0.25,
                                                  num_mels=16, encoder=e), audio()))
       for e in ["cnn", "transformer"]},
    "sensor_flat": lambda: (mmk.SensorInput("readings", features=["t", "v"]),
                            np.random.default_rng(0).normal(size=(6, 2)).astype("float32")),
    **{f"timeseries_{e}": (lambda e=e: (mmk.TimeSeriesInput("trace", features=["t", "v"], steps=10, encoder=e),
                                         np.random.default_rng(0).normal(size=(6, 10, 2)).astype("float32")))
       for e in TIMESERIES_ENCODERS},
    "category": lambda: (mmk.CategoryInput("machine"), np.array(["m1", "m2", "m1", "", "m3", "m2"], object)),
}


@pytest.mark.parametrize("case", ENCODER_CASES)
def test_every_encoder_weight_gets_a_gradient(case):
    spec, values = ENCODER_CASES[case]()
    keras.utils.set_random_seed(0)
    model = mmk.build_unimodal(spec, TASK, projection_dim=16, adapt_data={spec.name: values})
    assert zero_gradient_weights(model, {spec.name: values}, LABELS) == []


@pytest.mark.parametrize("case", ENCODER_CASES)
def test_encoder_rebuilt_from_its_config_computes_the_same(case):
    spec, values = ENCODER_CASES[case]()
    keras.utils.set_random_seed(0)
    model = mmk.build_unimodal(spec, TASK, projection_dim=16, adapt_data={spec.name: values})
    # The config now holds what adapt() learned (vocabulary, statistics).
    restored = modalities.from_config(modalities.to_config(model.specs[0]))
    assert not restored.needs_adapt()
    keras.utils.set_random_seed(1)
    rebuilt = mmk.build_unimodal(restored, TASK, projection_dim=16)
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_allclose(rebuilt({spec.name: values}).numpy(), model({spec.name: values}).numpy(),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("spec", [
    mmk.ImageInput("photo", size=(8, 8), backbone="tiny_cnn", weights=None, trainable=False),
    mmk.TextInput("review", encoder="roberta_tiny", sequence_length=16,
                  vocabulary=RESERVED_TOKENS + ["a", "b"]),
    mmk.AudioInput("voice", sample_rate=8000, seconds=0.5, encoder="transformer"),
    mmk.SensorInput("readings", features=["t"], mean=[1.0], variance=[4.0]),
    mmk.TimeSeriesInput("trace", features=["x", "y"], steps=5, encoder="gru", pooling="max", mean=[1.0, 0.0],
                        variance=[4.0, 1.0]),
    mmk.CategoryInput("machine", max_tokens=10, num_oov_buckets=2, embedding_dim=3, vocabulary=["m1", "m2"]),
], ids=lambda spec: spec.kind)
def test_spec_config_round_trip(spec):
    restored = modalities.from_config(modalities.to_config(spec))
    assert type(restored) is type(spec)
    assert restored.get_config() == spec.get_config()


def test_unknown_encoders_are_refused_by_name():
    with pytest.raises(ValueError, match="Unknown text encoder 'gpt'"):
        mmk.TextInput("review", encoder="gpt")
    with pytest.raises(ValueError, match="'cnn' or 'transformer'.*'rnn'"):
        mmk.AudioInput("voice", encoder="rnn")
    with pytest.raises(ValueError, match="at least one feature"):
        mmk.SensorInput("readings", features=[])


# === Sensors: normalisation in the model, NaN = missing ===


def test_sensor_statistics_are_learned_from_training_data_ignoring_nan():
    train = np.array([[20.0, 1.0, 5.0], [30.0, np.nan, 5.0], [np.nan, 3.0, 5.0]])
    spec = mmk.SensorInput("readings", features=["t", "v", "constant"])
    spec.adapt(train)
    np.testing.assert_allclose(spec.mean, [25.0, 2.0, 5.0])
    # A constant feature keeps unit variance instead of dividing by zero.
    np.testing.assert_allclose(spec.variance, [25.0, 1.0, 1.0])


def test_sensor_model_normalises_and_turns_nan_into_zero_plus_flag():
    train = np.random.default_rng(0).normal([10.0, -3.0], [2.0, 0.5], (64, 2)).astype("float32")
    model = mmk.build_unimodal(mmk.SensorInput("readings", features=["t", "v"]), TASK,
                               adapt_data={"readings": train})
    missing = model.get_layer("readings_missing")
    features = keras.Model(model.input, missing.output[0])
    x = np.array([[12.0, np.nan], [10.0, -2.0]], "float32")
    expected_z = (x - train.mean(axis=0)) / train.std(axis=0)
    np.testing.assert_allclose(features({"readings": x}).numpy(), [
        [expected_z[0, 0], 0.0, 1.0, 0.0],
        [expected_z[1, 0], expected_z[1, 1], 1.0, 1.0],
    ], rtol=1e-4, atol=1e-5)
    assert np.isfinite(model.predict({"readings": x}, verbose=0)).all()


def test_large_sensor_readings_survive_mixed_precision():
    train = np.array([[101325.0, 2.0], [99000.0, 4.0], [102000.0, 3.0]], "float32")
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = mmk.build_unimodal(mmk.SensorInput("readings", features=["pa", "v"]), TASK,
                                   adapt_data={"readings": train})
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # float16 overflows at 65504: the readings must not turn into inf or NaN.
    features, presence = keras.Model(model.input, model.get_layer("readings_missing").output)(
        {"readings": train})
    np.testing.assert_array_equal(presence.numpy().ravel(), [1.0, 1.0, 1.0])
    expected = (train - train.mean(axis=0)) / train.std(axis=0)
    np.testing.assert_allclose(features.numpy()[:, :2], expected, rtol=1e-4, atol=1e-4)
    assert np.isfinite(model({"readings": train}).numpy()).all()


def test_sensor_adapt_refuses_the_wrong_number_of_features():
    spec = mmk.SensorInput("readings", features=["t", "v", "i"])
    with pytest.raises(ValueError, match=r"readings.*\[N, 3\].*Received shape \[4, 6\]"):
        spec.adapt(np.zeros((4, 6)))


def test_sensor_without_statistics_explains_how_to_get_them():
    spec = mmk.SensorInput("readings", features=["t"])
    with pytest.raises(ValueError, match="adapt_data"):
        spec.encode(spec.keras_input())


# === Frozen encoders ===


def _image_dataset(seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.uniform(0, 255, (32, 8, 8, 3)).astype("float32")
    labels = (pixels.mean(axis=(1, 2, 3)) > 127).astype("int32")
    return tf.data.Dataset.from_tensor_slices(({"photo": pixels}, labels)).batch(8)


def _fit_and_compare(trainable):
    keras.utils.set_random_seed(0)
    model = mmk.build_unimodal(mmk.ImageInput("photo", size=(8, 8), trainable=trainable), TASK)
    backbone = model.get_layer("photo_backbone")
    before = {v.path: np.array(v) for v in backbone.weights}
    head_before = np.array(model.get_layer("label").weights[0])
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(_image_dataset(), epochs=2, verbose=0)
    changed = {v.path for v in backbone.weights if not np.array_equal(before[v.path], np.array(v))}
    assert not np.array_equal(head_before, np.array(model.get_layer("label").weights[0]))
    return model, backbone, changed


def _backbone_runs_in_inference_mode_when_training(model):
    features = keras.Model(model.input, model.get_layer("photo_pool").output)
    x = {"photo": np.random.default_rng(1).uniform(0, 255, (8, 8, 8, 3)).astype("float32")}
    return np.allclose(features(x, training=True).numpy(), features(x, training=False).numpy(), atol=1e-6)


def test_frozen_image_backbone_keeps_weights_and_batchnorm_statistics():
    model, backbone, changed = _fit_and_compare(trainable=False)
    assert backbone.trainable_weights == []
    assert not any(v.path in {w.path for w in backbone.weights} for v in model.trainable_variables)
    moving = [v.path for v in backbone.weights if "moving" in v.path]
    assert moving  # small_cnn has BatchNorm
    assert changed == set()
    # BatchNorm normalises with its moving statistics even in a training step.
    assert _backbone_runs_in_inference_mode_when_training(model)


def test_trainable_image_backbone_updates_weights_and_batchnorm_statistics():
    model, backbone, changed = _fit_and_compare(trainable=True)
    assert {v.path for v in backbone.weights if "moving" in v.path} <= changed
    assert {v.path for v in backbone.trainable_weights} <= changed
    assert not _backbone_runs_in_inference_mode_when_training(model)


def test_frozen_text_encoder_gets_no_gradient():
    spec = mmk.TextInput("review", sequence_length=8, vocabulary_size=60, trainable=False)
    model = mmk.build_unimodal(spec, TASK, adapt_data={"review": TEXTS})
    encoder = model.get_layer("review_encoder")
    assert encoder.weights and encoder.trainable_weights == []
    encoder_paths = {v.path for v in encoder.weights}
    assert not encoder_paths & {v.path for v in model.trainable_variables}
    assert zero_gradient_weights(model, {"review": TEXTS}, LABELS) == []


def test_text_is_cut_to_max_characters_in_the_model_before_tokenizing():
    """The bound on what one (served) text costs is a spec setting, kept in the model's config."""
    spec = mmk.TextInput("note", vocabulary=["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]", "a", "b"],
                         sequence_length=8, max_characters=3)
    model = mmk.build_unimodal(spec, mmk.Classification(["x", "y"]))
    assert model.get_layer("note_tokenizer").max_characters == 3
    assert mmk.MultimodalClassifier.from_config(model.get_config()).specs[0].max_characters == 3
    short, long = model.predict(tf.data.Dataset.from_tensor_slices({"note": ["a b", "a b" + " a" * 10**6]}).batch(2),
                                verbose=0)
    np.testing.assert_allclose(short, long, atol=1e-6)  # the rest of the long text never reaches the model
    with pytest.raises(ValueError, match="max_characters must be >= 1"):
        mmk.TextInput("note", max_characters=0)


# === Batch statistics skip missing examples (issue 23) ===


def _moving_mean_after_one_step(layer_name, spec, batch):
    keras.utils.set_random_seed(0)
    model = mmk.build_unimodal(spec, TASK, projection_dim=8, feature_norm=True)
    model(batch, training=True)
    return model.get_layer(layer_name).moving_mean.numpy()


@pytest.mark.parametrize("layer", ["voice_mel_norm", "voice_feature_norm"])
def test_missing_clips_do_not_move_the_batch_statistics(layer):
    """A missing clip is silence at the decibel floor; counted, it would drag the mel
    normalisation (and the pooled-feature normalisation) towards it."""
    spec = mmk.AudioInput("voice", sample_rate=4000, seconds=0.25, num_mels=16, spec_augment=False)
    clips = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 1000)).astype("float32")
    with_missing = {"voice": np.concatenate([clips, np.full((2, 1000), np.nan, "float32")])}
    present_only = _moving_mean_after_one_step(layer, spec, {"voice": clips})
    np.testing.assert_allclose(_moving_mean_after_one_step(layer, spec, with_missing), present_only,
                               rtol=1e-4, atol=1e-5)
    assert np.abs(present_only).max() > 0  # the step did move the statistics
