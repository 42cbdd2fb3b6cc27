"""Writing the demo files: images, WAV clips and CSV tables, each atomically.

Example:
>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_csv(folder / "table.csv", ["a", "b"], [{"a": 1, "b": "x"}]).read_text().splitlines()
['a,b', '1,x']
"""

import csv
import io
import os
import wave

import numpy as np
from PIL import Image

from mmkeras.data.demo.sound import SAMPLE_RATE


def _atomic_write_bytes(path, data):
    # A crash mid-write leaves a stray ".tmp", never a truncated file.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_image(path, pixels):
    """Writes a uint8 `[H, W]` or `[H, W, 3]` array as PNG or JPEG (by suffix)."""
    buffer = io.BytesIO()
    image = Image.fromarray(pixels)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        # No chroma subsampling: small coloured spots must survive encoding.
        image.save(buffer, format="JPEG", quality=95, subsampling=0)
    else:
        image.save(buffer, format="PNG")
    _atomic_write_bytes(path, buffer.getvalue())


def write_wav(path, samples, sample_rate=SAMPLE_RATE):
    """Writes float samples in [-1, 1] as 16-bit mono PCM WAV."""
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(pcm.tobytes())
    _atomic_write_bytes(path, buffer.getvalue())


def write_series(path, series):
    """Writes `{feature: [T]}` as `.npy` (`[T, F]`, features in order) or as `.csv`
    (a header; a `time_s` column first, at 10 samples a second, which an app ignores)."""
    table = np.stack([np.asarray(values, "float32") for values in series.values()], axis=1)
    buffer = io.BytesIO()
    if path.suffix == ".npy":
        np.save(buffer, table)
    else:
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["time_s", *series])
        writer.writerows([[f"{0.1 * step:.1f}", *(f"{v:.4f}" for v in row)] for step, row in enumerate(table)])
        buffer.write(text.getvalue().encode("utf-8"))
    _atomic_write_bytes(path, buffer.getvalue())


def write_csv(path, columns, rows):
    # The manifest is written last and renamed into place: a manifest only
    # ever lists files that are already complete.
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row[column] for column in columns])
    os.replace(tmp, path)
    return path

