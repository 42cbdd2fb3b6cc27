"""The log-mel front end and SpecAugment: tensorflow-io and core TF agree."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from mmkeras import log_mel
from mmkeras.log_mel import CORE_OPS, LogMelSpectrogram, SpecAugment

tfio_audio = log_mel.audio_functions()
needs_tfio = pytest.mark.skipif(tfio_audio is CORE_OPS, reason="tensorflow-io is not installed (Python 3.13)")


@needs_tfio
def test_core_log_mel_equals_tensorflow_io():
    waveform = tf.constant(np.random.default_rng(0).uniform(-0.5, 0.5, (3, 4000)), tf.float32)
    results = []
    for functions in (tfio_audio, CORE_OPS):
        spectrogram = functions.spectrogram(waveform, nfft=256, window=200, stride=80)
        mel = functions.melscale(spectrogram, rate=8000, mels=32, fmin=20.0, fmax=4000.0)
        results.append(mel.numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-5)


@needs_tfio
def test_the_layers_decibels_are_tensorflow_ios_dbscale_per_example():
    clips = np.random.default_rng(2).uniform(-0.5, 0.5, (3, 4000)).astype("float32")
    clips[1] *= 1e-3  # a quiet clip: its own peak, not the batch's, sets its floor
    clips[2] = 0.0
    layer = LogMelSpectrogram(sample_rate=8000, fft_size=256, window_size=200, hop_size=80, num_mels=32)
    spectrogram = tfio_audio.spectrogram(clips, nfft=256, window=200, stride=80)
    mel = tfio_audio.melscale(spectrogram, rate=8000, mels=32, fmin=20.0, fmax=4000.0)
    expected = np.stack([tfio_audio.dbscale(example, top_db=80.0).numpy() for example in mel])
    np.testing.assert_allclose(layer(clips).numpy(), expected, rtol=1e-5, atol=1e-3)


def test_spec_augment_masks_are_seeded_and_within_their_bounds():
    """One band per axis and example, narrower than its parameter; the same seed draws
    the same masks, so a seeded run reproduces (issue 23, item 13: tensorflow-io's masks
    drew per example inside a parallel loop, in thread order)."""
    spectrogram = tf.ones((64, 40, 16))
    first = SpecAugment(freq_mask_param=6, time_mask_param=10, seed=3)(spectrogram, training=True).numpy()
    again = SpecAugment(freq_mask_param=6, time_mask_param=10, seed=3)(spectrogram, training=True).numpy()
    np.testing.assert_array_equal(first, again)
    masked_bands = (first == 0).all(axis=1).sum(axis=1)  # mel bands masked over every frame
    masked_frames = (first == 0).all(axis=2).sum(axis=1)  # frames masked over every band
    assert masked_bands.max() <= 5 and masked_frames.max() <= 9
    assert len(set(masked_bands.tolist())) > 1 and len(set(masked_frames.tolist())) > 1  # drawn per example


def test_layers_compute_the_same_with_core_ops(monkeypatch):
    waveform = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 8000)).astype("float32")
    layer = LogMelSpectrogram(sample_rate=8000, fft_size=256, window_size=200, hop_size=80, num_mels=32)
    expected = layer(waveform).numpy()
    monkeypatch.setattr(log_mel, "audio_functions", lambda: CORE_OPS)
    np.testing.assert_allclose(layer(waveform).numpy(), expected, rtol=1e-5, atol=1e-4)
    masked = SpecAugment(freq_mask_param=8, time_mask_param=8)(tf.ones((4, 50, 32)), training=True).numpy()
    assert masked.shape == (4, 50, 32) and (masked == 0).any() and (masked == 1).any()


def test_importing_mmkeras_and_its_audio_front_end_prints_nothing():
    code = "import mmkeras, mmkeras.log_mel; mmkeras.log_mel.audio_functions()"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")
