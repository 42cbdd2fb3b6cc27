"""Audio modality: mono waveform -> log-mel (tensorflow-io) -> CNN or transformer."""

import keras

from mmkeras.audio import LogMelSpectrogram, SpecAugment
from mmkeras.modalities.base import Encoded, Modality
from mmkeras.modalities.missing import SplitMissing, TokenMask


class AudioInput(Modality):
    """An audio input: a mono float waveform in [-1, 1] at `sample_rate`.

    The data pipeline and the serving signature decode, mix down, resample
    and pad/crop every clip to `seconds`; the model computes the log-mel
    spectrogram, applies SpecAugment while training, and encodes it.

    Args:
        name: input name (model input and serving field).
        sample_rate: Hz.
        seconds: clip duration the model sees.
        num_mels: mel bands of the front end.
        encoder: `"cnn"` (small 2D CNN over log-mel) or `"transformer"`.
        spec_augment: frequency/time masking during training.

    Example:
    >>> spec = AudioInput("voice", sample_rate=8000, seconds=1.0)
    >>> spec.num_samples
    8000
    >>> encoded = spec.encode(spec.keras_input())
    >>> encoded.pooled.shape[-1]  # 64 mels / 8 after the CNN, x 128 channels
    1024
    """

    kind = "audio"

    def __init__(self, name, sample_rate=16000, seconds=1.0, num_mels=64, encoder="cnn",
                 spec_augment=True):
        super().__init__(name)
        if encoder not in ("cnn", "transformer"):
            raise ValueError(f"AudioInput encoder must be 'cnn' or 'transformer'. Received: {encoder!r}")
        self.sample_rate = int(sample_rate)
        self.seconds = float(seconds)
        self.num_mels = int(num_mels)
        self.encoder = encoder
        self.spec_augment = bool(spec_augment)

    @property
    def num_samples(self):
        return int(round(self.sample_rate * self.seconds))

    def keras_input(self):
        return keras.Input(shape=(self.num_samples,), dtype="float32", name=self.name)

    def encode(self, x):
        # float32 under mixed precision too: the log-mel front end needs the
        # waveform's full resolution.
        waveform, presence = SplitMissing(dtype="float32", name=f"{self.name}_missing")(x)
        # 25 ms windows, 10 ms hops, as speech and sound-event models use.
        log_mel = LogMelSpectrogram(
            sample_rate=self.sample_rate, fft_size=_next_power_of_two(self.sample_rate // 40),
            window_size=self.sample_rate // 40, hop_size=self.sample_rate // 100,
            num_mels=self.num_mels, name=f"{self.name}_log_mel",
        )(waveform)
        log_mel = keras.layers.BatchNormalization(name=f"{self.name}_mel_norm")(log_mel)
        if self.spec_augment:
            # After normalisation, so masked bins hold the mean (0), as in the
            # SpecAugment paper, not 0 dB; and masks do not skew the statistics.
            log_mel = SpecAugment(name=f"{self.name}_spec_augment")(log_mel)
        if self.encoder == "cnn":
            tokens = _cnn_encoder(log_mel, self.name)
        else:
            tokens = _transformer_encoder(log_mel, self.name)
        pooled = keras.layers.GlobalAveragePooling1D(name=f"{self.name}_pool")(tokens)
        token_mask = TokenMask(name=f"{self.name}_token_mask")(tokens)
        return Encoded(pooled, tokens, token_mask, presence)

    def get_config(self):
        return {"name": self.name, "sample_rate": self.sample_rate, "seconds": self.seconds,
                "num_mels": self.num_mels, "encoder": self.encoder,
                "spec_augment": self.spec_augment}


def _cnn_encoder(log_mel, name, filters=(32, 64, 128)):
    """Conv blocks over (time, mel); each time step becomes one token."""
    x = keras.layers.Reshape((log_mel.shape[1], log_mel.shape[2], 1), name=f"{name}_image")(log_mel)
    for i, width in enumerate(filters):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{i}")(x)
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"{name}_pool{i}")(x)
    return keras.layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]), name=f"{name}_tokens")(x)


def _transformer_encoder(log_mel, name, hidden_dim=128, num_layers=2, num_heads=4):
    """Strided 1D conv to 4x fewer frames, then a small transformer."""
    import keras_hub

    x = keras.layers.Conv1D(hidden_dim, 4, strides=4, padding="same", name=f"{name}_patches")(log_mel)
    positions = keras_hub.layers.PositionEmbedding(x.shape[1], name=f"{name}_positions")(x)
    x = keras.layers.Add(name=f"{name}_add_positions")([x, positions])
    for i in range(num_layers):
        x = keras_hub.layers.TransformerEncoder(
            intermediate_dim=hidden_dim * 2, num_heads=num_heads, name=f"{name}_transformer{i}"
        )(x)
    return x


def _next_power_of_two(n):
    return 1 << max(int(n) - 1, 1).bit_length()
