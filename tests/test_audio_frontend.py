"""The log-mel front end and SpecAugment: tensorflow-io and core TF agree."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from mmkeras import audio
from mmkeras.audio import CORE_OPS, LogMelSpectrogram, SpecAugment

tfio_audio = audio.audio_functions()
needs_tfio = pytest.mark.skipif(tfio_audio is CORE_OPS, reason="tensorflow-io is not installed (Python 3.13)")


@needs_tfio
def test_core_log_mel_equals_tensorflow_io():
    waveform = tf.constant(np.random.default_rng(0).uniform(-0.5, 0.5, (3, 4000)), tf.float32)
    results = []
    for functions in (tfio_audio, CORE_OPS):
        spectrogram = functions.spectrogram(waveform, nfft=256, window=200, stride=80)
        mel = functions.melscale(spectrogram, rate=8000, mels=32, fmin=20.0, fmax=4000.0)
        results.append(functions.dbscale(mel, top_db=80.0).numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-4)


@needs_tfio
@pytest.mark.parametrize("mask", ["freq_mask", "time_mask"])
def test_core_masks_equal_tensorflow_io_under_the_same_seed(mask):
    spectrogram = tf.ones((40, 16))
    results = []
    for functions in (tfio_audio, CORE_OPS):
        tf.random.set_seed(7)
        results.append(np.stack([getattr(functions, mask)(spectrogram, param=10).numpy() for _ in range(5)]))
    np.testing.assert_array_equal(results[1], results[0])
    assert (results[0] == 0).any()  # the masks did mask something


def test_layers_compute_the_same_with_core_ops(monkeypatch):
    waveform = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 8000)).astype("float32")
    layer = LogMelSpectrogram(sample_rate=8000, fft_size=256, window_size=200, hop_size=80, num_mels=32)
    expected = layer(waveform).numpy()
    monkeypatch.setattr(audio, "audio_functions", lambda: CORE_OPS)
    np.testing.assert_allclose(layer(waveform).numpy(), expected, rtol=1e-5, atol=1e-4)
    masked = SpecAugment(freq_mask_param=8, time_mask_param=8)(tf.ones((4, 50, 32)), training=True).numpy()
    assert masked.shape == (4, 50, 32) and (masked == 0).any() and (masked == 1).any()


def test_importing_mmkeras_and_its_audio_front_end_prints_nothing():
    code = "import mmkeras, mmkeras.audio; mmkeras.audio.audio_functions()"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")
