"""The one door to tensorflow-io (and to soundfile, for compressed audio).

tensorflow-io is unmaintained: its C++ kernels no longer load on current
TensorFlow, and it has no Python 3.13 wheel. What mmkeras uses of it, the
log-mel front end inside the model, are pure-Python functions over core TF
ops, so they still work and serve on stock TF Serving. (Its SpecAugment
masks are not used: they draw unseeded per example in a parallel loop, so
no seed reproduces them; `SpecAugment` below draws its own.) Where
tensorflow-io is not installed (Python 3.13), the same functions are
computed here with `tf.signal` (`tests` check the two agree).
Its import prints two UserWarnings about kernels that fail to load; they are
silenced here and only here.

Compressed audio (FLAC/OGG/MP3) in training pipelines is decoded with
soundfile (libsndfile); WAV uses core TF ops everywhere.
"""

import functools
import io
import types
import warnings

import keras
import numpy as np
import tensorflow as tf


# === The same functions with core TF ops (tensorflow-io 0.37.1's definitions) ===


def _spectrogram(waveform, nfft, window, stride):
    return tf.math.abs(tf.signal.stft(waveform, frame_length=window, frame_step=stride,
                                      fft_length=nfft, pad_end=True))


def _melscale(spectrogram, rate, mels, fmin, fmax):
    matrix = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=mels, num_spectrogram_bins=tf.shape(spectrogram)[-1], sample_rate=rate,
        lower_edge_hertz=fmin, upper_edge_hertz=fmax)
    return tf.tensordot(spectrogram, matrix, 1)


CORE_OPS = types.SimpleNamespace(spectrogram=_spectrogram, melscale=_melscale)


def _per_example_db(mel, top_db):
    """Mel magnitudes `[B, frames, mels]` -> dB, clipped at each example's peak - `top_db`.

    tensorflow-io's `dbscale` (`10 log10(max(x^2, 1e-10))` over the whole
    tensor), written as `20 log10(max(x, 1e-5))` with the peak per example:
    the same values, but 1e-5 stays above zero in float16 (a LiteRT float16
    model would take log(0) of a silent clip), and a max over axes needs no
    loop over examples (`tf.map_fn`, which int8 conversion cannot calibrate).
    """
    log_spec = 20.0 * tf.math.log(tf.math.maximum(mel, 1e-5)) / tf.math.log(10.0)
    return tf.math.maximum(log_spec, tf.math.reduce_max(log_spec, axis=[1, 2], keepdims=True) - top_db)


@functools.cache
def audio_functions():
    """`tfio.audio` where tensorflow-io is installed, else `CORE_OPS`.

    Example:
    >>> hasattr(audio_functions(), "melscale")
    True
    """
    try:
        with warnings.catch_warnings():
            # "unable to load libtensorflow_io_plugins.so" / "file system plugins
            # are not loaded": kernels mmkeras does not use.
            warnings.simplefilter("ignore", UserWarning)
            import tensorflow_io as tfio
    except ImportError:
        return CORE_OPS
    return tfio.audio


# === Layers ===


@keras.saving.register_keras_serializable(package="mmkeras")
class LogMelSpectrogram(keras.layers.Layer):
    """Waveform `[B, samples]` -> log-mel spectrogram `[B, frames, mels]` in dB.

    tensorflow-io's `spectrogram -> melscale`, then dB clipped at each
    example's own `max - top_db` (`_per_example_db`): an example's features do
    not depend on what else is in its batch.

    Args:
        sample_rate: Hz of the input waveform.
        fft_size: FFT length.
        window_size: STFT window in samples.
        hop_size: STFT hop in samples.
        num_mels: mel bands.
        min_freq, max_freq: mel filterbank edges in Hz (`max_freq=None`:
            Nyquist).
        top_db: dynamic range kept below each example's peak.

    Example:
    >>> import numpy as np
    >>> layer = LogMelSpectrogram(sample_rate=16000, num_mels=32)
    >>> layer(np.zeros((2, 16000), "float32")).shape
    TensorShape([2, 100, 32])
    """

    def __init__(self, sample_rate=16000, fft_size=512, window_size=400, hop_size=160,
                 num_mels=64, min_freq=20.0, max_freq=None, top_db=80.0, **kwargs):
        super().__init__(**kwargs)
        self.sample_rate = int(sample_rate)
        self.fft_size = int(fft_size)
        self.window_size = int(window_size)
        self.hop_size = int(hop_size)
        self.num_mels = int(num_mels)
        self.min_freq = float(min_freq)
        self.max_freq = float(max_freq or sample_rate / 2)
        self.top_db = float(top_db)

    def call(self, waveform):
        audio = audio_functions()
        waveform = tf.cast(waveform, "float32")
        spectrogram = audio.spectrogram(waveform, nfft=self.fft_size, window=self.window_size,
                                        stride=self.hop_size)
        mel = audio.melscale(spectrogram, rate=self.sample_rate, mels=self.num_mels,
                             fmin=self.min_freq, fmax=self.max_freq)
        return _per_example_db(mel, self.top_db)

    def num_frames(self, num_samples):
        return -(-num_samples // self.hop_size)  # stft(pad_end=True)

    def compute_output_spec(self, waveform):
        frames = None if waveform.shape[-1] is None else self.num_frames(waveform.shape[-1])
        return keras.KerasTensor((waveform.shape[0], frames, self.num_mels), dtype="float32")

    def get_config(self):
        return {**super().get_config(), "sample_rate": self.sample_rate, "fft_size": self.fft_size,
                "window_size": self.window_size, "hop_size": self.hop_size,
                "num_mels": self.num_mels, "min_freq": self.min_freq, "max_freq": self.max_freq,
                "top_db": self.top_db}


@keras.saving.register_keras_serializable(package="mmkeras")
class SpecAugment(keras.layers.Layer):
    """SpecAugment masking of `[B, frames, mels]`, in training only.

    Each example gets one frequency mask of `w ~ U{0, ..., freq_mask_param - 1}`
    bands starting at `U{0, ..., mels - w - 1}`, and one time mask drawn the
    same way over frames (tensorflow-io's `freq_mask` and `time_mask`). The
    masks of a batch are drawn at once from the layer's seed generator, so a
    seeded run draws the same masks every time (tensorflow-io's draw per
    example inside a parallel loop, in whatever order its threads run). At
    inference the layer is the identity, so no random op reaches a serving graph.

    Args:
        freq_mask_param: the widest frequency mask is one band less than this.
        time_mask_param: the widest time mask is one frame less than this.
        seed: seed of the masks (None: from Keras' global seed).

    Example:
    >>> import numpy as np
    >>> x = np.ones((2, 50, 32), "float32")
    >>> bool((SpecAugment()(x, training=False).numpy() == x).all())
    True
    >>> masked = SpecAugment(seed=1)(x, training=True).numpy()
    >>> bool(((masked == 0) | (masked == 1)).all() and (masked == 1).any())
    True
    """

    def __init__(self, freq_mask_param=8, time_mask_param=10, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.freq_mask_param = int(freq_mask_param)
        self.time_mask_param = int(time_mask_param)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, spectrogram, training=None):
        if not training:
            return spectrogram
        # A mask as wide as its axis would leave no start to draw (short
        # clips, few mels): cap each mask at the axis length.
        frames, mels = spectrogram.shape[1], spectrogram.shape[2]
        freq_param = min(self.freq_mask_param, mels or self.freq_mask_param)
        time_param = min(self.time_mask_param, frames or self.time_mask_param)
        shape = tf.shape(spectrogram)
        in_time_band = self._random_band(shape[0], shape[1], time_param)[:, :, None]
        in_freq_band = self._random_band(shape[0], shape[2], freq_param)[:, None, :]
        masked = tf.logical_or(in_time_band, in_freq_band)
        return tf.where(masked, tf.cast(0, spectrogram.dtype), spectrogram)

    def _random_band(self, batch, length, param):
        """bool `[batch, length]`: one band per example, `width < param`, inside `length`."""
        width = keras.random.randint((batch,), 0, param, seed=self.seed_generator)
        room = tf.cast(length - width, "float32")  # starts 0 .. length - width - 1
        start = tf.cast(tf.floor(keras.random.uniform((batch,), seed=self.seed_generator) * room), "int32")
        indices = tf.range(length)[None, :]
        return tf.logical_and(indices >= start[:, None], indices < (start + width)[:, None])

    def get_config(self):
        return {**super().get_config(), "freq_mask_param": self.freq_mask_param,
                "time_mask_param": self.time_mask_param, "seed": self.seed}


# === Compressed audio files ===


def decode_compressed_audio(path):
    """Decodes a FLAC/OGG/MP3 file -> mono float32 `[samples]` in [-1, 1] and its rate.

    soundfile (libsndfile) reads it; any `tf.io.gfile` path works. For
    training pipelines only: the serving signature accepts WAV.

    Raises:
        ValueError: the file is not audio soundfile can decode (names the file).
    """
    import soundfile

    with tf.io.gfile.GFile(path, "rb") as f:
        content = io.BytesIO(f.read())
    try:
        samples, rate = soundfile.read(content, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as e:
        raise ValueError(f"cannot decode audio file {path}: {e}") from e
    return np.mean(samples, axis=-1), int(rate)
