"""Pretrained audio encoders (Whisper, Moonshine) from local KerasHub presets.

Each preset is a tiny backbone plus its audio converter written with
`save_to_preset`, as KerasHub lays out published presets. The tests check
that the classifier's encoder is the preset's encoder (same weights, same
front end, same tokens), that it trains or stays frozen, that the model
exports, serves and reloads, and that wrong presets and rates are refused.
"""

import json
import os
import re
import shutil
from pathlib import Path

import keras
import keras_hub
import numpy as np
import pytest
from serving_roundtrip import assert_serves_like_predict

import mmkeras as mmk
from mmkeras.modalities.audio_pretrained import MoonshineWaveform

TASK = mmk.Classification(labels=["no", "yes"])
SECONDS = 0.5
SAMPLES = 8000  # 0.5 s at 16 kHz
WHISPER_WINDOW = 1  # seconds; published presets use 30


@pytest.fixture(scope="module")
def whisper_preset(tmp_path_factory):
    """A tiny Whisper preset: 16 mels, a 1 s window (100 frames, 50 encoder positions)."""
    backbone = keras_hub.models.WhisperBackbone(
        vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64,
        num_mels=16, max_encoder_sequence_length=100, max_decoder_sequence_length=8)
    converter = keras_hub.layers.WhisperAudioConverter(num_mels=16, max_audio_length=WHISPER_WINDOW)
    directory = str(tmp_path_factory.mktemp("whisper_preset"))
    backbone.save_to_preset(directory)
    converter.save_to_preset(directory)
    return directory, backbone, converter


@pytest.fixture(scope="module")
def moonshine_preset(tmp_path_factory):
    """A tiny Moonshine preset whose converter normalises each clip."""
    backbone = keras_hub.models.MoonshineBackbone(
        vocabulary_size=50, filter_dim=32, encoder_num_layers=2, decoder_num_layers=1, hidden_dim=32,
        intermediate_dim=64, encoder_num_heads=2, decoder_num_heads=2, max_position_embeddings=64)
    converter = keras_hub.layers.MoonshineAudioConverter(do_normalize=True)
    directory = str(tmp_path_factory.mktemp("moonshine_preset"))
    backbone.save_to_preset(directory)
    converter.save_to_preset(directory)
    return directory, backbone, converter


def waveforms(batch=2, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (batch, SAMPLES)).astype("float32")


def tokens(model, name, inputs):
    """The encoder tokens fusion gets (what the `<name>_pool` layer pools)."""
    return keras.Model(model.input, model.get_layer(f"{name}_pool").input).predict(inputs, verbose=0)


def decoder_inputs(batch):
    return {"decoder_token_ids": np.ones((batch, 3), "int32"), "decoder_padding_mask": np.ones((batch, 3), "int32")}


# === The preset's encoder, unchanged ===


def test_whisper_tokens_are_the_presets_encoder_output_over_its_log_mel(whisper_preset):
    directory, backbone, converter = whisper_preset
    spec = mmk.AudioInput("voice", seconds=SECONDS, encoder="whisper", weights=directory, spec_augment=False)
    model = mmk.build_unimodal(spec, TASK)
    audio = waveforms()
    encoded = tokens(model, "voice", {"voice": audio})

    # The preset's converter pads 0.5 s to the 1 s window: 100 frames, 50
    # tokens, of which the first 25 cover the clip.
    features = np.asarray(converter(audio))
    assert features.shape == (2, 100, 16)
    expected = backbone({"encoder_features": features, **decoder_inputs(2)})["encoder_sequence_output"]
    assert encoded.shape == (2, 25, 32)
    np.testing.assert_allclose(encoded, np.asarray(expected)[:, :25], atol=1e-4)
    # Only the encoder half of the preset is in the model.
    assert model.get_layer("voice_encoder").count_params() < backbone.count_params() * 0.7


def test_moonshine_tokens_are_the_presets_encoder_output_over_the_waveform(moonshine_preset):
    directory, backbone, converter = moonshine_preset
    spec = mmk.AudioInput("voice", seconds=SECONDS, encoder="moonshine", weights=directory)
    model = mmk.build_unimodal(spec, TASK)
    audio = waveforms()
    encoded = tokens(model, "voice", {"voice": audio})

    values = np.asarray(converter(audio))
    expected = backbone({"encoder_input_values": values, "encoder_padding_mask": np.ones((2, SAMPLES), bool),
                         **decoder_inputs(2)})["encoder_sequence_output"]
    assert encoded.shape == (2, 19, 32)  # 8000 samples through strides 64, 3, 2
    np.testing.assert_allclose(encoded, np.asarray(expected), atol=1e-4)


@pytest.mark.parametrize("do_normalize", [False, True])
def test_moonshine_waveform_computes_the_converters_output(do_normalize):
    audio = waveforms(seed=1) * np.array([[1.0], [0.01]], "float32") + 0.2
    layer = MoonshineWaveform(do_normalize=do_normalize)
    expected = keras_hub.layers.MoonshineAudioConverter(do_normalize=do_normalize)(audio)
    np.testing.assert_allclose(layer(audio).numpy(), np.asarray(expected), rtol=1e-4, atol=1e-4)
    restored = MoonshineWaveform.from_config(layer.get_config())
    assert restored.do_normalize == do_normalize


def test_moonshine_runs_in_float32_under_mixed_precision(moonshine_preset):
    # KerasHub 0.32's Moonshine encoder fails in float16.
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        spec = mmk.AudioInput("voice", seconds=SECONDS, encoder="moonshine", weights=moonshine_preset[0])
        model = mmk.build_unimodal(spec, TASK)
        probabilities = model.predict({"voice": waveforms()}, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("voice_projection").compute_dtype == "float16"
    assert np.isfinite(probabilities).all()


# === Training, freezing, export, serving, .keras ===


def two_encoder_model(whisper_dir, moonshine_dir):
    specs = [mmk.AudioInput("speech", seconds=SECONDS, encoder="whisper", weights=whisper_dir, trainable=False),
             mmk.AudioInput("voice", seconds=SECONDS, encoder="moonshine", weights=moonshine_dir)]
    model = mmk.build_model(specs, fusion="attention", task=TASK, projection_dim=16)
    return model, specs


def test_fit_trains_moonshine_keeps_frozen_whisper_then_serves_wav_bytes(whisper_preset, moonshine_preset,
                                                                          tmp_path):
    model, specs = two_encoder_model(whisper_preset[0], moonshine_preset[0])
    whisper_encoder, moonshine_encoder = model.get_layer("speech_encoder"), model.get_layer("voice_encoder")
    assert not whisper_encoder.trainable_weights
    whisper_before = [w.copy() for w in whisper_encoder.get_weights()]
    moonshine_before = [w.copy() for w in moonshine_encoder.get_weights()]

    # Whisper runs with SpecAugment on (the default) in training.
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    inputs = {"speech": waveforms(4, seed=2), "voice": waveforms(4, seed=3)}
    model.fit(inputs, np.array([0, 1, 0, 1]), batch_size=4, epochs=1, verbose=0)

    for after, before in zip(whisper_encoder.get_weights(), whisper_before):
        np.testing.assert_array_equal(after, before)
    unchanged = [w.path for w, before in zip(moonshine_encoder.weights, moonshine_before)
                 if w.trainable and np.array_equal(w.numpy(), before)]
    assert unchanged == []
    assert_serves_like_predict(model, specs, tmp_path, name="speech")


def test_keras_file_round_trip_in_safe_mode(whisper_preset, moonshine_preset, tmp_path):
    model, _ = two_encoder_model(whisper_preset[0], moonshine_preset[0])
    path = str(tmp_path / "model.keras")
    model.save(path)
    # The preset directories are not needed to load: the file holds the
    # encoders' architecture and weights.
    restored = keras.saving.load_model(path, safe_mode=True)
    inputs = {"speech": waveforms(3, seed=4), "voice": waveforms(3, seed=5)}
    inputs["voice"][1] = np.nan  # a missing clip
    np.testing.assert_allclose(restored.predict(inputs, verbose=0), model.predict(inputs, verbose=0), atol=1e-6)
    assert not restored.get_layer("speech_encoder").trainable_weights
    # The frozen Whisper encoder stays frozen inside the reloaded model too.
    assert len(restored.trainable_weights) == len(model.trainable_weights)
    # Exported from the file alone: the audio inputs are found from the model.
    export_path = mmk.export(restored, tmp_path / "models" / "speech", warmup=False)
    metadata = json.loads((Path(export_path) / "assets.extra" / "mmkeras.json").read_text())
    assert [(i["name"], i["kind"], i["sample_rate"]) for i in metadata["inputs"]] == [
        ("speech", "audio", 16000), ("voice", "audio", 16000)]


# === Refusals ===


def test_a_preset_of_the_other_model_is_refused_naming_both_classes(whisper_preset):
    directory = whisper_preset[0]
    spec = mmk.AudioInput("voice", seconds=SECONDS, encoder="moonshine", weights=directory)
    with pytest.raises(ValueError, match=rf"{re.escape(directory)}.* a WhisperBackbone in config.json.*"
                                         rf"expects a MoonshineBackbone"):
        mmk.build_unimodal(spec, TASK)


def test_a_preset_without_its_audio_converter_is_refused(whisper_preset, tmp_path):
    directory = str(tmp_path / "backbone_only")
    shutil.copytree(whisper_preset[0], directory, ignore=shutil.ignore_patterns("audio_converter.json"))
    spec = mmk.AudioInput("voice", seconds=SECONDS, encoder="whisper", weights=directory)
    with pytest.raises(ValueError, match=r"backbone_only.*holds no audio_converter.json.*expects a "
                                         r"WhisperAudioConverter"):
        mmk.build_unimodal(spec, TASK)


@pytest.mark.parametrize("converter_config, message", [
    (dict(sampling_rate=8000), r"converter of preset .* takes 8000 Hz audio"),
    (dict(max_audio_length=2), r"gives 200 frames, more than its encoder's max_encoder_sequence_length=100"),
])
def test_a_whisper_converter_that_does_not_fit_is_refused(whisper_preset, tmp_path, converter_config,
                                                          message):
    directory = str(tmp_path / "preset")
    shutil.copytree(whisper_preset[0], directory)
    keras_hub.layers.WhisperAudioConverter(num_mels=16, **{"max_audio_length": 1, **converter_config}
                                           ).save_to_preset(directory)
    spec = mmk.AudioInput("voice", seconds=SECONDS, encoder="whisper", weights=directory)
    with pytest.raises(ValueError, match=message):
        mmk.build_unimodal(spec, TASK)


def test_a_clip_longer_than_the_whisper_window_is_refused(whisper_preset):
    spec = mmk.AudioInput("voice", seconds=WHISPER_WINDOW + 0.5, encoder="whisper", weights=whisper_preset[0])
    with pytest.raises(ValueError, match=r"24000 samples, longer than the Whisper preset's 16000-sample"):
        mmk.build_unimodal(spec, TASK)


def test_a_missing_weights_path_is_refused(tmp_path):
    spec = mmk.AudioInput("voice", encoder="whisper", weights=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        mmk.build_unimodal(spec, TASK)


@pytest.mark.parametrize("kwargs, message", [
    (dict(encoder="whisper", weights="preset", sample_rate=8000), r"takes 16000 Hz.*sample_rate=8000"),
    (dict(encoder="moonshine", weights="preset", sample_rate=44100), r"takes 16000 Hz.*sample_rate=44100"),
    (dict(encoder="whisper"), r"needs `weights=`.*WhisperBackbone"),
    (dict(encoder="moonshine", weights="preset", seconds=0.05), r"0.1 to 64.0 seconds.*seconds=0.05"),
    (dict(encoder="cnn", weights="preset"), r"trains from scratch and takes no weights"),
    (dict(encoder="wav2vec"), r"'transformer'.*pretrained 'whisper' or 'moonshine'.*'wav2vec'"),
])
def test_arguments_a_pretrained_encoder_cannot_take_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mmk.AudioInput("voice", **kwargs)


def test_spec_config_round_trips_with_weights_and_trainable():
    from mmkeras import modalities

    spec = mmk.AudioInput("voice", seconds=2.0, encoder="moonshine", weights=os.path.join("a", "b"),
                          trainable=False)
    restored = modalities.from_config(modalities.to_config(spec))
    assert restored.get_config() == spec.get_config()
    assert (restored.encoder, restored.weights, restored.trainable) == ("moonshine", os.path.join("a", "b"), False)
