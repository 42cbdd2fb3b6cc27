"""Audio helpers for the demo clips: the clip format, time axis, band-limited noise, loudness.

Example:
>>> t = time_axis()
>>> t.size == SAMPLE_RATE * AUDIO_SECONDS
True
>>> noise = band_noise(np.random.default_rng(0), t.size, 200, 400)
>>> round(float(np.sqrt(np.mean(noise**2))), 3)
1.0
"""

import numpy as np

SAMPLE_RATE = 16000
AUDIO_SECONDS = 1.0


def normalise_rms(signal, rms):
    return signal * (rms / (np.sqrt(np.mean(signal**2)) + 1e-9))


def band_noise(rng, num_samples, low_hz, high_hz, sample_rate=SAMPLE_RATE):
    """White noise restricted to [low_hz, high_hz], unit RMS."""
    spectrum = np.fft.rfft(rng.normal(size=num_samples))
    freqs = np.fft.rfftfreq(num_samples, 1.0 / sample_rate)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0.0
    return normalise_rms(np.fft.irfft(spectrum, n=num_samples), 1.0)


def time_axis(seconds=AUDIO_SECONDS, sample_rate=SAMPLE_RATE):
    return np.arange(int(round(seconds * sample_rate))) / sample_rate

