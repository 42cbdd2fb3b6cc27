"""The one door to tensorflow-io.

tensorflow-io is unmaintained and its C++ kernels load only on TensorFlow
2.17 and older, so mmkeras touches it here and nowhere else. What goes into a
model (log-mel front end, SpecAugment) uses tfio's pure-Python functions,
which trace to core TF ops and so serve on stock TF Serving. Decoding FLAC,
OGG and MP3 needs tfio's custom kernels: training pipelines only.
"""

import keras
import tensorflow as tf


def _tfio_audio():
    import tensorflow_io as tfio

    return tfio.audio


@keras.saving.register_keras_serializable(package="mmkeras")
class LogMelSpectrogram(keras.layers.Layer):
    """Waveform `[B, samples]` -> log-mel spectrogram `[B, frames, mels]` in dB.

    tfio's `spectrogram -> melscale -> dbscale`. `dbscale` clips at
    `max - top_db` over the whole tensor it gets, so it runs per example: an
    example's features then do not depend on what else is in its batch.

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
        audio = _tfio_audio()
        waveform = tf.cast(waveform, "float32")
        spectrogram = audio.spectrogram(waveform, nfft=self.fft_size, window=self.window_size,
                                        stride=self.hop_size)
        mel = audio.melscale(spectrogram, rate=self.sample_rate, mels=self.num_mels,
                             fmin=self.min_freq, fmax=self.max_freq)
        return tf.map_fn(lambda example: audio.dbscale(example, top_db=self.top_db), mel)

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

    Each example gets one frequency mask of up to `freq_mask_param` bands and
    one time mask of up to `time_mask_param` frames (tfio's `freq_mask` and
    `time_mask`). At inference the layer is the identity, so no random op
    reaches a serving graph.

    Example:
    >>> import numpy as np
    >>> x = np.ones((2, 50, 32), "float32")
    >>> bool((SpecAugment()(x, training=False).numpy() == x).all())
    True
    """

    def __init__(self, freq_mask_param=8, time_mask_param=10, **kwargs):
        super().__init__(**kwargs)
        self.freq_mask_param = int(freq_mask_param)
        self.time_mask_param = int(time_mask_param)

    def call(self, spectrogram, training=None):
        if not training:
            return spectrogram
        audio = _tfio_audio()
        # tfio fails when a mask can be as wide as the axis (short clips, few
        # mels): cap each mask at the axis length.
        frames, mels = spectrogram.shape[1], spectrogram.shape[2]
        freq_param = min(self.freq_mask_param, mels or self.freq_mask_param)
        time_param = min(self.time_mask_param, frames or self.time_mask_param)

        def mask(example):
            example = audio.freq_mask(example, param=freq_param)
            return audio.time_mask(example, param=time_param)

        return tf.map_fn(mask, spectrogram)

    def get_config(self):
        return {**super().get_config(), "freq_mask_param": self.freq_mask_param,
                "time_mask_param": self.time_mask_param}


def decode_compressed_audio(path):
    """Decodes FLAC/OGG/MP3 (tfio kernels) -> mono float32 `[samples]` and rate.

    For training pipelines only: the serving signature accepts WAV.
    """
    import tensorflow_io as tfio

    audio = tfio.audio.AudioIOTensor(path)
    samples = tf.cast(audio.to_tensor(), "float32")
    if audio.dtype.is_integer:  # int16 / int32 PCM -> [-1, 1]
        samples = samples / float(2 ** (audio.dtype.size * 8 - 1))
    return tf.reduce_mean(samples, axis=-1), tf.cast(audio.rate, "int32")
