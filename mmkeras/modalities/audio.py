"""Audio modality: mono waveform -> log-mel + CNN/transformer, or a pretrained encoder."""

import io

import keras
import numpy as np
import tensorflow as tf

from mmkeras.data.decode import check_wav, decode_wav
from mmkeras.log_mel import LogMelSpectrogram, SpecAugment
from mmkeras.modalities.audio_pretrained import (
    PRETRAINED_AUDIO_ENCODERS,
    check_pretrained_spec,
    pretrained_audio_tokens,
)
from mmkeras.modalities.modality import Encoded, Modality, Occlusions, Proposal
from mmkeras.modalities.missing import PresentBatchNormalization, SplitMissing, TokenMask
from mmkeras.modalities.column_cells import sampled_files, starts_with
from mmkeras.modalities.raw_formats import FileBytesRaw, value_range
from mmkeras.modalities.waveform_augment import WaveformAugment

AUDIO_ENCODERS = ("cnn", "transformer", *PRETRAINED_AUDIO_ENCODERS)
# Files the data pipeline decodes with soundfile to WAV, what serving takes.
COMPRESSED_AUDIO = (".flac", ".ogg", ".mp3")
# First bytes of WAV, FLAC, OGG and MP3 (an ID3 tag or a frame sync) files.
AUDIO_SIGNATURES = ((8, b"WAVE"), b"fLaC", b"OggS", b"ID3", b"\xff\xfb", b"\xff\xf3")
# Demo-sized runs take ~30 steps an epoch: with Keras' 0.99 the moving
# statistics lag the weights for many epochs and validation swings.
BATCH_NORM_MOMENTUM = 0.9


class AudioInput(FileBytesRaw, Modality):
    """An audio input: a mono float waveform in [-1, 1] at `sample_rate`.

    The data pipeline and the serving signature decode, mix down, resample
    and pad/crop every clip to `seconds`; the model computes the features
    and encodes them. `"cnn"` and `"transformer"` train from scratch on a
    log-mel spectrogram (SpecAugment while training). `"whisper"` and
    `"moonshine"` are pretrained speech encoders from a KerasHub preset,
    each over the front end it was trained with (see
    `mmkeras.modalities.audio_pretrained`): Whisper pads every clip to its
    30 s window (its cost does not shrink with the clip), Moonshine reads
    the waveform at any length (better for short clips).

    Args:
        name: input name (model input and serving field).
        sample_rate: Hz. The pretrained encoders take 16000 only.
        seconds: clip duration the model sees. Whisper: up to the preset's
            window (30 s); Moonshine: 0.1 to 64 s.
        num_mels: mel bands of the `"cnn"`/`"transformer"` front end (a
            pretrained encoder uses its preset's).
        encoder: `"cnn"` (small 2D CNN over log-mel), `"transformer"`,
            `"whisper"` or `"moonshine"`.
        spec_augment: frequency/time masking of the log-mel during training
            (every encoder but Moonshine, which reads the waveform).
        waveform_augment: random gain (up to +-6 dB) and time shift (up to
            10% of the clip) of the waveform during training, every encoder
            (`WaveformAugment`). Off by default: on the sentiment and
            inspection demos (seed 0) the fused models lost 0.03 and 0.01
            macro-F1 with it, within run-to-run noise but not a gain
            (benchmarks/README.md, "Audio gain and time shift").
        weights: for `"whisper"`/`"moonshine"` (required there): a local
            KerasHub preset directory holding the backbone and its audio
            converter, or a preset handle (downloads). Only the encoder half
            of the encoder-decoder backbone enters the model.
        trainable: `False` freezes a pretrained encoder.

    Example:
    >>> spec = AudioInput("voice", sample_rate=8000, seconds=1.0)
    >>> spec.num_samples
    8000
    >>> encoded = spec.encode(spec.keras_input())
    >>> encoded.pooled.shape[-1]  # 64 mels / 8 after the CNN, x 128 channels
    1024
    >>> speech = AudioInput("speech", seconds=5.0, encoder="whisper",
    ...                     weights="presets/whisper_tiny_en", trainable=False)
    >>> speech.num_samples  # the preset is read when the model is built
    80000
    """

    kind = "audio"

    def __init__(self, name, sample_rate=16000, seconds=1.0, num_mels=64, encoder="cnn",
                 spec_augment=True, weights=None, trainable=True, waveform_augment=False):
        super().__init__(name)
        if encoder not in AUDIO_ENCODERS:
            pretrained = " or ".join(repr(known) for known in PRETRAINED_AUDIO_ENCODERS)
            raise ValueError(f"AudioInput encoder must be 'cnn' or 'transformer' (trained from "
                             f"scratch), or a pretrained {pretrained}. Received: {encoder!r}")
        self.sample_rate = int(sample_rate)
        self.seconds = float(seconds)
        self.num_mels = int(num_mels)
        self.encoder = encoder
        self.spec_augment = bool(spec_augment)
        self.waveform_augment = bool(waveform_augment)
        self.weights = None if weights is None else str(weights)
        self.trainable = bool(trainable)
        if encoder in PRETRAINED_AUDIO_ENCODERS:
            check_pretrained_spec(encoder, self.weights, self.sample_rate, self.seconds)
        elif weights is not None:
            raise ValueError(
                f"AudioInput encoder={encoder!r} trains from scratch and takes no weights; "
                f"pretrained encoders: {sorted(PRETRAINED_AUDIO_ENCODERS)}. Received: weights={weights!r}"
            )

    @property
    def num_samples(self):
        return int(round(self.sample_rate * self.seconds))

    def keras_input(self):
        return keras.Input(shape=(self.num_samples,), dtype="float32", name=self.name)

    def encode(self, x):
        # float32 under mixed precision too: the front end needs the
        # waveform's full resolution.
        waveform, presence = SplitMissing(dtype="float32", name=f"{self.name}_missing")(x)
        if self.waveform_augment:
            waveform = WaveformAugment(name=f"{self.name}_waveform_augment")(waveform)
        if self.encoder in PRETRAINED_AUDIO_ENCODERS:
            tokens = pretrained_audio_tokens(
                self.encoder, waveform, name=self.name, weights=self.weights,
                trainable=self.trainable, spec_augment=self.spec_augment)
        else:
            tokens = self._log_mel_tokens(waveform, presence)
        pooled = keras.layers.GlobalAveragePooling1D(name=f"{self.name}_pool")(tokens)
        token_mask = TokenMask(name=f"{self.name}_token_mask")(tokens)
        return Encoded(pooled, tokens, token_mask, presence)

    def _log_mel_tokens(self, waveform, presence):
        # 25 ms windows, 10 ms hops, as speech and sound-event models use.
        log_mel = LogMelSpectrogram(
            sample_rate=self.sample_rate, fft_size=_next_power_of_two(self.sample_rate // 40),
            window_size=self.sample_rate // 40, hop_size=self.sample_rate // 100,
            num_mels=self.num_mels, name=f"{self.name}_log_mel",
        )(waveform)
        # Statistics of the clips that are there: a missing clip is silence at the decibel floor.
        log_mel = PresentBatchNormalization(momentum=BATCH_NORM_MOMENTUM,
                                            name=f"{self.name}_mel_norm")(log_mel, presence)
        if self.spec_augment:
            # After normalisation, so masked bins hold the mean (0), as in the
            # SpecAugment paper, not 0 dB; and masks do not skew the statistics.
            log_mel = SpecAugment(name=f"{self.name}_spec_augment")(log_mel)
        if self.encoder == "cnn":
            return _cnn_encoder(log_mel, presence, self.name)
        return _transformer_encoder(log_mel, self.name)

    def edge_float_layers(self):
        # The spectrogram's magnitudes span decades: int8 would zero the quiet bins before the log.
        return [f"{self.name}_{layer}" for layer in ("missing", "log_mel", "mel_norm")]

    # --- Its path: a manifest cell names a WAV (or FLAC/OGG/MP3) file; a client
    # sends 16-bit PCM WAV bytes; the graph decodes them to `num_samples`.

    def parse_cells(self, cells):
        return cells.checked_file(cells.column, "audio", self._check_file)

    def _check_file(self, path):
        content = self.client_raw(path)
        check_wav(tf.constant(content), self.name)  # the pipeline's and serving's message
        if tf.audio.decode_wav(content).audio.shape[0] == 0:
            raise ValueError("it has no samples")

    def client_raw(self, value):
        """The file's bytes; FLAC/OGG/MP3 become WAV (soundfile, `mmkeras.log_mel`)."""
        if value and value.lower().endswith(COMPRESSED_AUDIO):
            from mmkeras.log_mel import decode_compressed_audio

            samples, rate = decode_compressed_audio(value)
            return tf.audio.encode_wav(samples[:, None], rate).numpy()
        return super().client_raw(value)

    def read_raw(self, value):
        pattern = ".*(" + "|".join(ext.replace(".", r"\.") for ext in COMPRESSED_AUDIO) + ")"
        compressed = tf.strings.regex_full_match(tf.strings.lower(value), pattern)
        as_wav = lambda path: self.client_raw(path.numpy().decode())  # noqa: E731
        return tf.cond(compressed, lambda: tf.reshape(tf.py_function(as_wav, [value], tf.string), []),
                       lambda: super(AudioInput, self).read_raw(value))

    def summarize(self, values):
        present = [v for v in values if v]
        entry = {"missing": len(values) - len(present)}
        if present:
            clips = [tf.audio.decode_wav(self.client_raw(path)) for path in present]
            entry["seconds"] = value_range([c.audio.shape[0] / int(c.sample_rate) for c in clips])
            entry["sample_rates"] = sorted({int(c.sample_rate) for c in clips})
        return entry

    @classmethod
    def propose(cls, column, cells, folder):
        """Files that start like audio; the clip length covers 9 in 10 of them
        (rounded up to half a second, at most 30 s), the rate is 16 kHz where
        every clip has that many samples a second, else the lowest rate seen."""
        import soundfile

        files = sampled_files(cells, folder)
        if files is None or not all(starts_with(path, AUDIO_SIGNATURES) for path in files[1]):
            return None
        present, paths = files
        infos = []
        for path in paths:
            with tf.io.gfile.GFile(path, "rb") as f:
                infos.append(soundfile.info(io.BytesIO(f.read())))
        seconds = [info.duration for info in infos]
        rates = sorted({int(info.samplerate) for info in infos})
        length = float(min(30.0, max(0.5, np.ceil(np.percentile(seconds, 90) * 2) / 2)))
        rate = 16000 if rates[0] >= 16000 else rates[0]
        seen = (f"{len(present)} audio files, {len(cells) - len(present)} empty; {min(seconds):.2f}-"
                f"{max(seconds):.2f} s at {rates} Hz (first {len(paths)}); {length} s at {rate} Hz from them")
        return Proposal(1.0, {"sample_rate": rate, "seconds": length}, seen)

    def synthetic_raw(self, rng):
        wave = rng.uniform(-0.5, 0.5, (self.num_samples, 1)).astype("float32")
        return tf.audio.encode_wav(wave, self.sample_rate).numpy()

    def decode(self, raw):
        return decode_wav(raw, self.sample_rate, self.num_samples, self.name)

    def decoded_spec(self):
        return tf.TensorSpec((self.num_samples,), tf.float32)

    def decoded_bytes(self):
        return 4 * self.num_samples

    def occlusions(self, value, windows=16):
        """Each of `windows` equal spans of the clip silenced."""
        edges = np.linspace(0, len(value), windows + 1, dtype=int)
        parts, copies = [], []
        for start, end in zip(edges[:-1], edges[1:]):
            copy = value.copy()
            copy[start:end] = 0.0
            parts.append((float(start / self.sample_rate), float(end / self.sample_rate)))
            copies.append(copy)
        return Occlusions("time", parts, np.stack(copies))

    def get_config(self):
        return {"name": self.name, "sample_rate": self.sample_rate, "seconds": self.seconds,
                "num_mels": self.num_mels, "encoder": self.encoder,
                "spec_augment": self.spec_augment, "waveform_augment": self.waveform_augment,
                "weights": self.weights,
                "trainable": self.trainable}


def _cnn_encoder(log_mel, presence, name, filters=(32, 64, 128)):
    """Conv blocks over (time, mel); each time step becomes one token. Batch
    statistics, as the mel normalisation's, count the clips that are there."""
    x = keras.layers.Reshape((log_mel.shape[1], log_mel.shape[2], 1), name=f"{name}_image")(log_mel)
    for i, width in enumerate(filters):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = PresentBatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"{name}_bn{i}")(x, presence)
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
