"""Pretrained speech encoders from KerasHub presets: Whisper and Moonshine.

A KerasHub preset of these models holds an encoder-decoder backbone and the
audio converter it was trained with. mmkeras keeps only the encoder (a
functional sub-model cut from the backbone's graph, so the decoder's weights
are neither loaded into the classifier nor exported) and runs it over the
preset's own front end:

- Whisper: the preset's `WhisperAudioConverter` is a layer of the model. It
  computes Whisper's log-mel with core TF ops (`tf.signal.stft`, matmul,
  log), so it serves on stock TF Serving. It zero-pads every clip to the
  preset's window (30 s for the published presets) because Whisper was only
  ever trained on full windows: its encoder has no padding mask, and feeding
  fewer frames (slicing the positional embeddings) changes what every token
  encodes. The tokens that cover only the padding are then dropped, so
  pooling and attention fusion see the clip alone.
- Moonshine: the backbone reads the raw 16 kHz waveform (its conv front end
  is part of the encoder) and takes any length, so a short clip costs little.
  Its converter only adds a channel axis and, where the preset says so,
  normalises; `MoonshineWaveform` does that without the converter's
  trace-time duration warning.
"""

import json
import math
import os

import keras
from keras import ops

from mmkeras.log_mel import SpecAugment
from mmkeras.modalities.missing import TokenMask
from mmkeras.modalities.submodel import SubModel

# Encoder name -> (KerasHub backbone class, audio converter class) a preset
# directory must hold; one line per model family.
PRETRAINED_AUDIO_ENCODERS = {
    "whisper": ("WhisperBackbone", "WhisperAudioConverter"),
    "moonshine": ("MoonshineBackbone", "MoonshineAudioConverter"),
}
# Both families were trained on 16 kHz audio.
PRETRAINED_SAMPLE_RATE = 16000
# The clip lengths Moonshine's converter accepts without warning, in seconds.
MOONSHINE_SECONDS = (0.1, 64.0)


def check_pretrained_spec(encoder, weights, sample_rate, seconds):
    """Refuses spec arguments a pretrained audio encoder cannot take (no file access)."""
    if weights is None:
        raise ValueError(
            f"AudioInput encoder={encoder!r} needs `weights=`: a local KerasHub "
            f"{PRETRAINED_AUDIO_ENCODERS[encoder][0]} preset directory (or a preset handle, "
            f"which downloads). Received: weights=None"
        )
    if sample_rate != PRETRAINED_SAMPLE_RATE:
        raise ValueError(
            f"AudioInput encoder={encoder!r} takes {PRETRAINED_SAMPLE_RATE} Hz audio (the rate "
            f"it was trained on; the pipeline resamples every clip to `sample_rate`). "
            f"Received: sample_rate={sample_rate}"
        )
    low, high = MOONSHINE_SECONDS
    if encoder == "moonshine" and not low <= seconds <= high:
        raise ValueError(
            f"AudioInput encoder='moonshine' takes clips of {low} to {high} seconds. "
            f"Received: seconds={seconds}"
        )


def pretrained_audio_tokens(encoder, waveform, *, name, weights, trainable, spec_augment):
    """Waveform `[B, samples]` at 16 kHz -> encoder tokens `[B, N, C]` of one clip.

    Args:
        encoder: `"whisper"` or `"moonshine"`.
        waveform: float32 `[B, samples]` KerasTensor.
        name: the modality name, prefixing every layer this adds.
        weights: a KerasHub preset directory or handle of that family.
        trainable: `False` freezes the encoder.
        spec_augment: SpecAugment on Whisper's log-mel in training.

    Example:
    >>> x = keras.Input((8000,))
    >>> tokens = pretrained_audio_tokens("whisper", x, name="voice",  # doctest: +SKIP
    ...     weights="presets/whisper_tiny_en", trainable=False, spec_augment=False)
    >>> tuple(tokens.shape)  # doctest: +SKIP
    (None, 25, 384)
    """
    backbone, converter = load_audio_preset(encoder, weights, name)
    if encoder == "whisper":
        return _whisper_tokens(backbone, converter, waveform, name, trainable, spec_augment)
    return _moonshine_tokens(backbone, converter, waveform, name, trainable)


def load_audio_preset(encoder, weights, name):
    """`(backbone, converter)` from a preset, refused unless it is `encoder`'s model."""
    import keras_hub

    backbone_class, converter_class = PRETRAINED_AUDIO_ENCODERS[encoder]
    backbone_cls = getattr(keras_hub.models, backbone_class)
    weights = os.fspath(weights)
    if os.path.isdir(os.path.expanduser(weights)):
        weights = os.path.expanduser(weights)
        _check_preset_directory(encoder, weights)
    elif "://" not in weights and weights not in backbone_cls.presets:
        raise FileNotFoundError(
            f"Weights for AudioInput encoder={encoder!r} not found: {weights!r} is neither a "
            f"directory nor a {backbone_class} preset handle ('kaggle://...', 'hf://...', or "
            f"one of {sorted(backbone_cls.presets)})."
        )
    # KerasHub 0.32's Moonshine encoder fails under mixed_float16 (a float16
    # and a float32 tensor meet in MoonshineEncoderBlock): it runs in float32.
    backbone = backbone_cls.from_preset(weights, **({"dtype": "float32"} if encoder == "moonshine" else {}))
    # float32 under mixed precision too: the front end needs the full
    # resolution of the waveform and of the spectrogram's dynamic range.
    converter = getattr(keras_hub.layers, converter_class).from_preset(
        weights, dtype="float32", name=f"{name}_log_mel" if encoder == "whisper" else f"{name}_converter")
    if converter.sampling_rate != PRETRAINED_SAMPLE_RATE:
        raise ValueError(
            f"The audio converter of preset {weights!r} takes {converter.sampling_rate} Hz audio; "
            f"AudioInput encoder={encoder!r} feeds it {PRETRAINED_SAMPLE_RATE} Hz."
        )
    return backbone, converter


def _check_preset_directory(encoder, directory):
    """The directory holds a backbone of the expected class and its audio converter."""
    for file_name, expected in zip(("config.json", "audio_converter.json"), PRETRAINED_AUDIO_ENCODERS[encoder]):
        found = _preset_class(directory, file_name)
        if found != expected:
            held = f"a {found} in {file_name}" if found else f"no {file_name}"
            raise ValueError(
                f"Preset directory {directory!r} holds {held}, but AudioInput encoder={encoder!r} "
                f"expects a {expected} (KerasHub's `save_to_preset(directory)` writes the backbone "
                f"to config.json and its audio converter to audio_converter.json)."
            )


def _preset_class(directory, file_name):
    """The class name a preset's JSON file records; None when there is no such file."""
    path = os.path.join(directory, file_name)
    if not os.path.isfile(path):
        return None
    with open(path) as file:
        return json.load(file).get("class_name")


def _encoder_part(inputs, output, name, trainable):
    """The backbone's graph from `inputs` to `output` as its own model (no decoder)."""
    encoder = SubModel(inputs, output, name=f"{name}_encoder")
    encoder.trainable = trainable
    return encoder


def _whisper_tokens(backbone, converter, waveform, name, trainable, spec_augment):
    window = converter.num_samples
    clip = waveform.shape[-1]
    if clip > window:
        raise ValueError(
            f"AudioInput({name!r}) clips have {clip} samples, longer than the Whisper preset's "
            f"{window}-sample window ({converter.max_audio_length} s). Use seconds <= "
            f"{converter.max_audio_length}, or encoder='moonshine' for longer clips."
        )
    frames = window // converter.stride
    if frames > backbone.max_encoder_sequence_length:
        raise ValueError(
            f"The Whisper preset's converter gives {frames} frames, more than its encoder's "
            f"max_encoder_sequence_length={backbone.max_encoder_sequence_length}."
        )
    features = converter(waveform)  # zero-padded to the full window
    if spec_augment:
        features = SpecAugment(name=f"{name}_spec_augment")(features)
    encoder = _encoder_part(backbone.input["encoder_features"],
                            backbone.output["encoder_sequence_output"], name, trainable)
    tokens = encoder(features, training=None if trainable else False)
    # Token j stands for frames 2j and 2j+1 (the second conv has stride 2);
    # the tokens after the clip's frames stand for the padding.
    keep = math.ceil(math.ceil(clip / converter.stride) / 2)
    return keras.layers.Cropping1D((0, tokens.shape[1] - keep), name=f"{name}_clip_tokens")(tokens)


def _moonshine_tokens(backbone, converter, waveform, name, trainable):
    values = MoonshineWaveform(converter.do_normalize, dtype="float32", name=f"{name}_waveform")(waveform)
    # Every sample counts: the pipeline zero-pads clips to `seconds`, as
    # Moonshine's converter pads with zeros.
    padding_mask = TokenMask(name=f"{name}_padding_mask")(values)
    encoder = _encoder_part(
        [backbone.input["encoder_input_values"], backbone.input["encoder_padding_mask"]],
        backbone.output["encoder_sequence_output"], name, trainable)
    return encoder([values, padding_mask], training=None if trainable else False)


@keras.saving.register_keras_serializable(package="mmkeras")
class MoonshineWaveform(keras.layers.Layer):
    """Waveform `[B, samples]` -> Moonshine's encoder input `[B, samples, 1]`.

    What `MoonshineAudioConverter` computes for a clip of fixed length: a
    channel axis and, with `do_normalize`, zero mean and unit variance per
    example (the converter's epsilon, 1e-7).

    Args:
        do_normalize: normalise each example, as the preset's converter says.

    Example:
    >>> import numpy as np
    >>> out = MoonshineWaveform(do_normalize=True)(np.array([[1.0, 3.0]], "float32"))
    >>> np.round(out.numpy()[..., 0], 3).tolist()
    [[-1.0, 1.0]]
    """

    def __init__(self, do_normalize=False, **kwargs):
        super().__init__(**kwargs)
        self.do_normalize = bool(do_normalize)

    def call(self, waveform):
        values = ops.expand_dims(ops.cast(waveform, self.compute_dtype), -1)
        if not self.do_normalize:
            return values
        mean = ops.mean(values, axis=1, keepdims=True)
        variance = ops.var(values, axis=1, keepdims=True)
        return (values - mean) / ops.sqrt(variance + 1e-7)

    def compute_output_spec(self, waveform):
        return keras.KerasTensor((*waveform.shape, 1), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "do_normalize": self.do_normalize}
