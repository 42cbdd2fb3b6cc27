"""Decoding raw bytes into what the model takes, with core TF ops only.

These functions are the single definition of "bytes -> model input": the
tf.data pipeline maps them over files and the exported serving signature
maps them over request bytes, so training and serving cannot drift apart.
An empty string means the modality is missing and decodes to NaN.
"""

import tensorflow as tf


def decode_example(raw, specs):
    """One example's raw values (bytes, strings, floats) -> the model's inputs,
    each by its kind's `decode`.

    Example:
    >>> import mmkeras as mmk
    >>> spec = mmk.SensorInput("readings", ["t"], mean=[0.0], variance=[1.0])
    >>> decode_example({"readings": [20.5]}, [spec])["readings"].numpy().tolist()
    [20.5]
    """
    return {spec.name: spec.decode(raw[spec.name]) for spec in specs}


def decode_batch(raw, specs):
    """A batch of raw request values -> model inputs: `decode_example` per example.

    The serving signature uses this, so a request is decoded exactly as the
    training pipeline decodes a file.
    """
    signature = {spec.name: spec.decoded_spec() for spec in specs}
    raw = _checked({spec.name: raw[spec.name] for spec in specs}, specs)
    return tf.map_fn(lambda example: decode_example(example, specs), raw, fn_output_signature=signature)


def _checked(raw, specs):
    """`raw`, after in-graph checks whose failure names the input and the reason.

    The checks run in the graph, so TF Serving answers INVALID_ARGUMENT with
    the same message: at least one example, and as many for every input
    (else the request would be answered for the first input's count only, or
    fail deep in the model with a message about its layers); then each kind's
    own `raw_checks` (a sensor input's shape, no infinity).
    """
    first = tf.shape(next(iter(raw.values())))[0]
    checks = [tf.debugging.Assert(first > 0, ["A request must hold at least one example"])]
    checks += [_same_batch_size(raw)] if len(raw) > 1 else []
    for spec in specs:
        checks += spec.raw_checks(tf.convert_to_tensor(raw[spec.name]))
    with tf.control_dependencies(checks):
        return {name: tf.identity(value) for name, value in raw.items()}


def _same_batch_size(raw):
    names = sorted(raw)
    sizes = [tf.shape(raw[name])[0] for name in names]
    received = ", ".join(f"{name}: {{}}" for name in names)
    message = tf.strings.format(f"Every input must hold the same number of examples; received {received}",
                                sizes)
    return tf.debugging.Assert(tf.reduce_all(tf.equal(tf.stack(sizes), sizes[0])), [message])


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
            image = _decode_rgb(encoded)
        image = tf.image.resize(tf.cast(image, tf.float32), (height, width))
        return tf.ensure_shape(image, (height, width, 3))

    missing = tf.fill((height, width, 3), float("nan"))
    return tf.cond(tf.strings.length(encoded) > 0, decode, lambda: missing)


def _starts(encoded, offset, magic):
    """Whether `encoded[offset:offset + len(magic)] == magic` (False when it is shorter)."""
    padded = tf.strings.join([encoded, b"\0" * (offset + len(magic))])
    return tf.equal(tf.strings.substr(padded, offset, len(magic)), magic)


def _is_webp(encoded, chunk):
    """Whether bytes are a WebP whose first chunk is `chunk`.

    The container ("RIFF", size, "WEBP") holds its first chunk's FourCC at
    byte 12, its size at 16 and its data from 20; the spec allows only
    "VP8 " (lossy), "VP8L" (lossless) or "VP8X" (extended) there.
    """
    return tf.reduce_all(tf.stack([_starts(encoded, 0, b"RIFF"), _starts(encoded, 8, b"WEBP"),
                                   _starts(encoded, 12, chunk)]))


def _is_image(encoded):
    """Whether bytes start like a format `tf.io.decode_image` reads, with a header
    `_declared_size` reads."""
    def starts(offset, magic):
        return _starts(encoded, offset, magic)

    return tf.reduce_any(tf.stack([
        starts(0, b"\xff\xd8\xff"), starts(0, b"\x89PNG"), starts(0, b"GIF8"), starts(0, b"BM"),
        _is_webp(encoded, b"VP8 "), _is_webp(encoded, b"VP8L"), _is_webp(encoded, b"VP8X")]))


# Header bytes read for the declared size: a WebP's VP8X canvas height ends at byte 29.
_HEADER_BYTES = 30


def _number(digits, big_endian=False):
    """The unsigned integer whose bytes (int64 values) are `digits`."""
    powers = tf.range(tf.shape(digits, out_type=tf.int64)[0], dtype=tf.int64)
    return tf.reduce_sum(digits * 256 ** (tf.reverse(powers, [0]) if big_endian else powers))


def _declared_size(encoded):
    """int64 `[height, width]` a PNG, GIF, BMP, JPEG or WebP header declares."""
    head = tf.strings.substr(tf.strings.join([encoded, b"\0" * _HEADER_BYTES]), 0, _HEADER_BYTES)
    head = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)

    def number(start, length, big_endian=False):
        return _number(head[start:start + length], big_endian)

    def bmp():
        height = number(22, 4)
        height = tf.where(height >= 2**31, 2**32 - height, height)  # negative: stored top-down
        return tf.stack([height, number(18, 4)])

    def jpeg():
        return tf.cast(tf.io.extract_jpeg_shape(encoded)[:2], tf.int64)

    # WebP lossy: a 3-byte frame tag, the start code 9d 01 2a, then 14-bit
    # width and height (their top 2 bits are an upscaling hint decoders ignore).
    def vp8():
        return tf.bitwise.bitwise_and(tf.stack([number(28, 2), number(26, 2)]), 0x3FFF)

    # WebP lossless: the signature 0x2f, then width - 1 and height - 1 in 14
    # bits each of the next 4 bytes.
    def vp8l():
        bits = number(21, 4)
        height_width = tf.stack([tf.bitwise.right_shift(bits, 14), bits])
        return tf.bitwise.bitwise_and(height_width, 0x3FFF) + 1

    # WebP extended: flags, 3 reserved bytes, then the canvas width - 1 and
    # height - 1 in 24 bits each; every frame must fit the canvas.
    def vp8x():
        return tf.stack([number(27, 3), number(24, 3)]) + 1

    return tf.case([
        (_starts(encoded, 0, b"\x89PNG"), lambda: tf.stack([number(20, 4, True), number(16, 4, True)])),
        (_starts(encoded, 0, b"GIF8"), lambda: tf.stack([number(8, 2), number(6, 2)])),
        (_starts(encoded, 0, b"BM"), bmp),
        (_starts(encoded, 0, b"\xff\xd8\xff"), jpeg),
        (_is_webp(encoded, b"VP8 "), vp8),
        (_is_webp(encoded, b"VP8L"), vp8l),
        (_is_webp(encoded, b"VP8X"), vp8x),
    ], default=lambda: tf.zeros([2], tf.int64))


def _decode_rgb(encoded):
    """uint8 RGB pixels of an image `_is_image` accepts.

    TF decodes a WebP with alpha only to 4 channels (it refuses 3), so one is
    decoded as RGBA and its alpha dropped, as libpng drops a PNG's.
    """
    def rgba():
        return tf.io.decode_image(encoded, channels=4, expand_animations=False)[..., :3]

    def rgb():
        return tf.io.decode_image(encoded, channels=3, expand_animations=False)

    return tf.cond(_webp_has_alpha(encoded), rgba, rgb)


def _webp_has_alpha(encoded):
    """The alpha flag of a VP8X header (0x10 of byte 20) or a VP8L header
    (bit 28 of bytes 21-24: 0x10 of byte 24); False for anything else."""
    head = tf.strings.substr(tf.strings.join([encoded, b"\0" * 25]), 20, 5)
    head = tf.io.decode_raw(head, tf.uint8)

    def flag(byte):
        return tf.not_equal(tf.bitwise.bitwise_and(head[byte], 0x10), 0)

    return tf.logical_or(tf.logical_and(_is_webp(encoded, b"VP8X"), flag(0)),
                         tf.logical_and(_is_webp(encoded, b"VP8L"), flag(4)))


def decode_wav(encoded, sample_rate, num_samples, name="audio"):
    """16-bit PCM WAV bytes -> mono float32 `[num_samples]` at `sample_rate`.

    Bytes that are not a 16-bit PCM WAV (8, 24 or 32 bits, float, a cut
    header) fail before decoding with an error naming the input (`name`),
    what it must be and what it is.

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
        with tf.control_dependencies([check_wav(encoded, name)]):
            audio, rate = tf.audio.decode_wav(encoded)
        mono = tf.reduce_mean(audio, axis=-1)
        # Samples at the input rate that cover `num_samples` at the output rate.
        needed = (tf.cast(num_samples, tf.int64) * tf.cast(rate, tf.int64)) // sample_rate + 1
        return fit_length(resample(mono[:needed], rate, sample_rate), num_samples)

    missing = tf.fill((num_samples,), float("nan"))
    return tf.cond(tf.strings.length(encoded) > 0, decode, lambda: missing)


def check_wav(encoded, name):
    """The in-graph checks that bytes are a 16-bit PCM WAV, each naming the
    input (TF's own messages do not), chained so the first failure speaks."""
    is_wav = tf.logical_and(_starts(encoded, 0, b"RIFF"), _starts(encoded, 8, b"WAVE"))
    check = tf.debugging.Assert(is_wav, [f"Input {name} is not a WAV file (no RIFF/WAVE header)"])
    with tf.control_dependencies([check]):
        code, bits = tf.unstack(_wav_format(encoded))
    check = tf.debugging.Assert(code >= 0, [
        f"Input {name} is not a complete WAV file (its header has no whole format chunk)"])
    with tf.control_dependencies([check]):
        pcm16 = tf.logical_and(tf.equal(code, 1), tf.equal(bits, 16))
        return tf.debugging.Assert(pcm16, [tf.strings.format(
            f"Input {name} must be 16-bit PCM WAV; received format code {{}} with {{}} bits per "
            f"sample (1 is PCM, 3 float, 65534 extensible)", [code, bits])])


# Chunks (JUNK, bext, ...) TF's decoder skips before "fmt ": walk at most this many.
_WAV_SKIPPED_CHUNKS = 8


def _wav_format(encoded):
    """int64 `[format code, bits per sample]` of a WAV's "fmt " chunk (`[-1, -1]`
    when no whole one follows the first chunks).

    The chunks are walked as TF's decoder walks them, so the check reads the
    header that the decoder reads; the walk is bounded, so a hostile header
    costs nothing.
    """
    encoded = tf.reshape(encoded, [])  # bytes from a py_function (compressed audio) have no shape
    length = tf.cast(tf.strings.length(encoded), tf.int64)
    padded = tf.strings.join([encoded, b"\0" * 24])

    def at(offset, size):  # zeros past the end
        return tf.strings.substr(padded, tf.minimum(offset, length), tf.constant(size, tf.int64))

    def number(offset, size):  # little-endian
        return _number(tf.cast(tf.io.decode_raw(at(offset, size), tf.uint8), tf.int64))

    def is_fmt(offset):
        return tf.equal(at(offset, 4), b"fmt ")

    def more(offset, steps):
        return tf.logical_and(tf.logical_and(steps < _WAV_SKIPPED_CHUNKS, offset < length),
                              tf.logical_not(is_fmt(offset)))

    def skip(offset, steps):  # a chunk: FourCC, 32-bit size, data
        return offset + 8 + number(offset + 4, 4), steps + 1

    offset, _ = tf.while_loop(more, skip, [tf.constant(12, tf.int64), tf.constant(0)])
    whole = tf.logical_and(is_fmt(offset), offset + 24 <= length)
    code_bits = tf.stack([number(offset + 8, 2), number(offset + 22, 2)])
    return tf.where(whole, code_bits, tf.constant(-1, tf.int64))


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
