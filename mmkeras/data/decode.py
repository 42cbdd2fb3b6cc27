"""Decoding raw bytes into what the model takes, with core TF ops only.

These functions are the single definition of "bytes -> model input": the
tf.data pipeline maps them over files and the exported serving signature
maps them over request bytes, so training and serving cannot drift apart.
An empty string means the modality is missing and decodes to NaN.
"""

import tensorflow as tf


def decode_example(raw, specs):
    """One example's raw values (bytes, strings, floats) -> the model's inputs.

    Example:
    >>> import mmkeras as mmk
    >>> spec = mmk.SensorInput("readings", ["t"], mean=[0.0], variance=[1.0])
    >>> decode_example({"readings": [20.5]}, [spec])["readings"].numpy().tolist()
    [20.5]
    """
    decoded = {}
    for spec in specs:
        value = raw[spec.name]
        if spec.kind == "image":
            decoded[spec.name] = decode_image(value, spec.size, spec.name, spec.max_pixels)
        elif spec.kind == "audio":
            decoded[spec.name] = decode_wav(value, spec.sample_rate, spec.num_samples, spec.name)
        elif spec.kind == "sensor":
            decoded[spec.name] = tf.cast(value, tf.float32)
        else:
            decoded[spec.name] = tf.convert_to_tensor(value)
    return decoded


def decode_batch(raw, specs):
    """A batch of raw request values -> model inputs: `decode_example` per example.

    The serving signature uses this, so a request is decoded exactly as the
    training pipeline decodes a file.
    """
    signature = {}
    for spec in specs:
        if spec.kind == "image":
            signature[spec.name] = tf.TensorSpec((*spec.size, 3), tf.float32)
        elif spec.kind == "audio":
            signature[spec.name] = tf.TensorSpec((spec.num_samples,), tf.float32)
        elif spec.kind == "sensor":
            signature[spec.name] = tf.TensorSpec(spec.shape, tf.float32)
        else:
            signature[spec.name] = tf.TensorSpec((), tf.string)
    raw = _checked({spec.name: raw[spec.name] for spec in specs}, specs)
    return tf.map_fn(lambda example: decode_example(example, specs), raw, fn_output_signature=signature)


def _checked(raw, specs):
    """`raw`, after in-graph checks whose failure names the input and the reason.

    The checks run in the graph, so TF Serving answers INVALID_ARGUMENT with
    the same message:
    - at least one example, and as many for every input (else the request
      would be answered for the first input's count only, or fail deep in
      the model with a message about its layers);
    - a sensor input holds its features per example, and no infinity (NaN
      is a missing value; infinity would make every probability NaN).
    """
    first = tf.shape(next(iter(raw.values())))[0]
    checks = [tf.debugging.Assert(first > 0, ["A request must hold at least one example"])]
    checks += [_same_batch_size(raw)] if len(raw) > 1 else []
    for spec in specs:
        if spec.kind == "sensor":
            checks += _sensor_checks(spec, tf.convert_to_tensor(raw[spec.name]))
    with tf.control_dependencies(checks):
        return {name: tf.identity(value) for name, value in raw.items()}


def _same_batch_size(raw):
    names = sorted(raw)
    sizes = [tf.shape(raw[name])[0] for name in names]
    received = ", ".join(f"{name}: {{}}" for name in names)
    message = tf.strings.format(f"Every input must hold the same number of examples; received {received}",
                                sizes)
    return tf.debugging.Assert(tf.reduce_all(tf.equal(tf.stack(sizes), sizes[0])), [message])


def _sensor_checks(spec, values):
    shape = tf.shape(values)
    expected = tf.constant(spec.shape, tf.int32)
    right_shape = tf.cond(tf.equal(tf.size(shape), 1 + len(spec.shape)),
                          lambda: tf.reduce_all(tf.equal(shape[1:], expected)), lambda: tf.constant(False))
    wanted = "x".join(str(d) for d in spec.shape)
    shape_message = tf.strings.format(
        f"Input {spec.name} takes {wanted} values per example ({', '.join(spec.features)}); "
        f"received a tensor of shape {{}}", [shape])
    finite = tf.logical_not(tf.reduce_any(tf.math.is_inf(tf.cast(values, tf.float32))))
    return [tf.debugging.Assert(right_shape, [shape_message]),
            tf.debugging.Assert(finite, [f"Input {spec.name} holds an infinite value; send finite "
                                         f"numbers, and NaN for a missing one"])]


# Decoded RGB pixels one image may have (an 8000 x 5000 photo): a few bytes
# of header can declare gigapixels, which the decoder would allocate.
DEFAULT_MAX_PIXELS = 40_000_000


def decode_image(encoded, size, name="image", max_pixels=DEFAULT_MAX_PIXELS):
    """Encoded JPEG/PNG/BMP/GIF/WebP bytes -> float32 RGB `[height, width, 3]` in 0..255.

    Bytes of another kind, and an image whose header declares more than
    `max_pixels`, fail before decoding with an error naming the input
    (`name`).

    Grey and RGBA images become RGB; GIFs give their first frame. The image
    is resized to `size` so examples batch; the model resizes again (a
    no-op at this size) so decoded inputs of any size also work.

    Example:
    >>> import tensorflow as tf
    >>> png = tf.io.encode_png(tf.zeros((5, 7, 1), tf.uint8))
    >>> decode_image(png, (4, 4)).shape
    TensorShape([4, 4, 3])
    >>> bool(tf.reduce_all(tf.math.is_nan(decode_image(b"", (4, 4)))))
    True
    """
    height, width = size

    def decode():
        known = tf.debugging.Assert(_is_image(encoded), [
            f"Input {name} is not a JPEG, PNG, GIF, BMP or WebP image (its first bytes say otherwise)"])
        with tf.control_dependencies([known]):
            declared = _declared_size(encoded)
        small_enough = tf.debugging.Assert(declared[0] * declared[1] <= max_pixels, [tf.strings.format(
            f"Input {name} declares {{}} x {{}} pixels, more than the limit of {max_pixels} "
            f"(ImageInput max_pixels)", [declared[1], declared[0]])])
        with tf.control_dependencies([small_enough]):
            image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), (height, width))
        return tf.ensure_shape(image, (height, width, 3))

    missing = tf.fill((height, width, 3), float("nan"))
    return tf.cond(tf.strings.length(encoded) > 0, decode, lambda: missing)


def _starts(encoded, offset, magic):
    """Whether `encoded[offset:offset + len(magic)] == magic` (False when it is shorter)."""
    padded = tf.strings.join([encoded, b"\0" * (offset + len(magic))])
    return tf.equal(tf.strings.substr(padded, offset, len(magic)), magic)


def _is_image(encoded):
    """Whether bytes start like a format `tf.io.decode_image` reads."""
    def starts(offset, magic):
        return _starts(encoded, offset, magic)

    return tf.reduce_any(tf.stack([
        starts(0, b"\xff\xd8\xff"), starts(0, b"\x89PNG"), starts(0, b"GIF8"), starts(0, b"BM"),
        tf.logical_and(starts(0, b"RIFF"), starts(8, b"WEBP"))]))


def _declared_size(encoded):
    """int64 `[height, width]` a PNG, GIF, BMP or JPEG header declares ([0, 0] for WebP)."""
    head = tf.cast(tf.io.decode_raw(tf.strings.substr(tf.strings.join([encoded, b"\0" * 26]), 0, 26),
                                    tf.uint8), tf.int64)

    def number(start, length, big_endian):
        digits = head[start:start + length]
        weights = 256 ** tf.range(length - 1, -1, -1, dtype=tf.int64) if big_endian else \
            256 ** tf.range(length, dtype=tf.int64)
        return tf.reduce_sum(digits * weights)

    def bmp():
        height = number(22, 4, False)
        height = tf.where(height >= 2**31, 2**32 - height, height)  # negative: stored top-down
        return tf.stack([height, number(18, 4, False)])

    def jpeg():
        return tf.cast(tf.io.extract_jpeg_shape(encoded)[:2], tf.int64)

    return tf.case([
        (_starts(encoded, 0, b"\x89PNG"), lambda: tf.stack([number(20, 4, True), number(16, 4, True)])),
        (_starts(encoded, 0, b"GIF8"), lambda: tf.stack([number(8, 2, False), number(6, 2, False)])),
        (_starts(encoded, 0, b"BM"), bmp),
        (_starts(encoded, 0, b"\xff\xd8\xff"), jpeg),
    ], default=lambda: tf.zeros([2], tf.int64))


def decode_wav(encoded, sample_rate, num_samples, name="audio"):
    """16-bit PCM WAV bytes -> mono float32 `[num_samples]` at `sample_rate`.

    Multi-channel audio is averaged to mono, another rate is resampled
    (band-limited, core TF ops), and the clip is cropped or zero-padded to
    `num_samples`. Only the part of the clip that survives the crop is
    resampled, so a long clip costs no more than a short one.

    Example:
    >>> import tensorflow as tf
    >>> wav = tf.audio.encode_wav(tf.zeros((800, 2)), 8000)
    >>> decode_wav(wav, 16000, 2000).shape
    TensorShape([2000])
    """

    def decode():
        is_wav = tf.logical_and(_starts(encoded, 0, b"RIFF"), _starts(encoded, 8, b"WAVE"))
        known = tf.debugging.Assert(is_wav, [f"Input {name} is not a WAV file (no RIFF/WAVE header)"])
        with tf.control_dependencies([known]):
            audio, rate = tf.audio.decode_wav(encoded)
        mono = tf.reduce_mean(audio, axis=-1)
        # Samples at the input rate that cover `num_samples` at the output rate.
        needed = (tf.cast(num_samples, tf.int64) * tf.cast(rate, tf.int64)) // sample_rate + 1
        return fit_length(resample(mono[:needed], rate, sample_rate), num_samples)

    missing = tf.fill((num_samples,), float("nan"))
    return tf.cond(tf.strings.length(encoded) > 0, decode, lambda: missing)


def resample(waveform, rate_in, rate_out):
    """Band-limited resampling of a 1-D waveform by FFT truncation/zero-padding.

    The same method as `scipy.signal.resample`, built from RFFT/IRFFT so it
    serves on stock TF Serving (tensorflow-io's resampler is a custom op). An
    empty clip, or one too short to give a single output sample, gives zeros.

    Example:
    >>> import tensorflow as tf
    >>> resample(tf.zeros(800), 8000, 16000).shape
    TensorShape([1600])
    """
    rate_in = tf.cast(rate_in, tf.int64)
    rate_out = tf.cast(rate_out, tf.int64)
    n_in = tf.shape(waveform, out_type=tf.int64)[0]
    n_out = (n_in * rate_out + rate_in // 2) // tf.maximum(rate_in, 1)

    def convert():
        spectrum = tf.signal.rfft(waveform, fft_length=[tf.cast(n_in, tf.int32)])
        bins_out = n_out // 2 + 1
        kept = spectrum[: tf.minimum(tf.shape(spectrum, out_type=tf.int64)[0], bins_out)]
        kept = tf.pad(kept, [[0, bins_out - tf.shape(kept, out_type=tf.int64)[0]]])
        out = tf.signal.irfft(kept, fft_length=[tf.cast(n_out, tf.int32)])
        return out * tf.cast(n_out, tf.float32) / tf.cast(n_in, tf.float32)

    # A zero-length FFT aborts the whole process: never run one.
    empty = tf.logical_or(tf.equal(n_in, 0), tf.equal(n_out, 0))
    return tf.cond(
        tf.equal(rate_in, rate_out), lambda: tf.identity(waveform),
        lambda: tf.cond(empty, lambda: tf.zeros([n_out], waveform.dtype), convert))


def fit_length(waveform, num_samples):
    """Crops or zero-pads a 1-D waveform to `num_samples` (keeps the start)."""
    waveform = waveform[:num_samples]
    padding = num_samples - tf.shape(waveform)[0]
    return tf.ensure_shape(tf.pad(waveform, [[0, padding]]), (num_samples,))
