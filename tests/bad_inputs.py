"""A corpus of bad, odd and hostile inputs, generated (no committed binaries).

Each `Case` replaces one input of an otherwise valid example. `serving` is
what the SavedModel must do with it: `"ok"` (a legitimate input: a finite
answer), `"missing"` (read as a missing modality: a finite answer), or a
text the INVALID_ARGUMENT message must contain. `pipeline` is what the
training pipeline's row validation must do: `"ok"`, `"missing"`, or a text
the row error must contain; `None` where the case only exists in requests.
`docs/bad_inputs.md` lists the corpus with these outcomes
(`python tests/bad_inputs.py` prints it).
"""

import collections
import io
import struct
import wave

import numpy as np
from PIL import Image

Case = collections.namedtuple("Case", ["name", "input", "value", "pipeline", "serving"])

IMAGE, AUDIO, TEXT, SENSOR = "photo", "voice", "note", "readings"
SAMPLE_RATE = 8000
FEATURES = ("temperature", "current")


def png(array, **options):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **options)
    return buffer.getvalue()


def image_bytes(fmt, size=(20, 16), mode="RGB", **options):
    buffer = io.BytesIO()
    Image.new(mode, size, 128).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def grey16_png():
    buffer = io.BytesIO()
    Image.fromarray(np.full((12, 12), 40000, np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


def animated_gif():
    frames = [Image.new("P", (10, 10), i * 40) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def png_declaring(width, height):
    """A PNG header and IHDR declaring `width x height`, then a tiny IDAT: a decompression bomb."""
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def jpeg_declaring(width, height):
    """A JPEG whose frame header (SOF0) declares `width x height`."""
    data = bytearray(image_bytes("JPEG", size=(8, 8)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_declaring(width, height):
    data = bytearray(image_bytes("GIF", size=(8, 8), mode="P"))
    data[6:10] = struct.pack("<HH", width, height)  # logical screen
    descriptor = data.index(b"\x2c")
    data[descriptor + 5:descriptor + 9] = struct.pack("<HH", width, height)  # the image itself
    return bytes(data)


def bmp_declaring(width, height):
    data = bytearray(image_bytes("BMP", size=(8, 8)))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


# Real WebP bytes of each header kind: the first chunk is "VP8 " (lossy),
# "VP8L" (lossless, its alpha flag in the header) or "VP8X" (extended: alpha,
# metadata or animation, with the canvas size).
WEBP_KINDS = {b"VP8 ": dict(mode="RGB"), b"VP8L": dict(mode="RGBA", lossless=True),
              b"VP8X": dict(mode="RGBA")}


def webp(chunk, size=(20, 16)):
    data = image_bytes("WEBP", size=size, **WEBP_KINDS[chunk])
    assert data[12:16] == chunk, data[12:16]
    return data


def webp_declaring(chunk, width, height):
    """A real WebP whose header declares `width x height` (the frame itself stays small)."""
    data = bytearray(webp(chunk, size=(8, 8)))
    if chunk == b"VP8 ":  # 14-bit width and height after the start code 9d 01 2a
        data[26:30] = struct.pack("<HH", width & 0x3FFF, height & 0x3FFF)
    elif chunk == b"VP8L":  # after the signature 0x2f: width - 1, height - 1 in 14 bits each
        bits = int.from_bytes(data[21:25], "little") & ~((1 << 28) - 1)
        data[21:25] = (bits | (width - 1) | (height - 1) << 14).to_bytes(4, "little")
    else:  # VP8X: canvas width - 1 and height - 1 in 24 bits each
        data[24:30] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return bytes(data)


def wav(samples, sample_width=2, channels=1, rate=SAMPLE_RATE):
    """PCM WAV bytes of float samples in [-1, 1] at 8, 16, 24 or 32 bits."""
    samples = np.repeat(np.asarray(samples, "float64")[:, None], channels, axis=1)
    if sample_width == 1:
        frames = np.round((samples + 1.0) * 127.5).astype("u1").tobytes()
    elif sample_width == 3:
        ints = np.round(samples * (2**23 - 1)).astype("<i4")
        frames = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints.ravel())
    else:
        dtype = {2: "<i2", 4: "<i4"}[sample_width]
        frames = np.round(samples * (2 ** (8 * sample_width - 1) - 1)).astype(dtype).tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(sample_width)
        f.setframerate(rate)
        f.writeframes(frames)
    return buffer.getvalue()


def float_wav(samples, rate=SAMPLE_RATE):
    """IEEE-float WAV (format tag 3), which the wave module cannot write."""
    data = np.asarray(samples, "<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    return (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE" + b"fmt "
            + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data)


def extensible_wav(samples, rate=SAMPLE_RATE):
    """16-bit PCM in a WAVE_FORMAT_EXTENSIBLE header (format tag 65534, a 40-byte fmt chunk)."""
    data = np.round(np.asarray(samples) * 32767).astype("<i2").tobytes()
    # The sub-format GUID KSDATAFORMAT_SUBTYPE_PCM.
    pcm = b"\x01\x00\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 1, rate, rate * 2, 2, 16, 22, 16, 4) + pcm
    return (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE" + b"fmt "
            + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data)


def after_junk(wav_bytes):
    """The WAV with a JUNK chunk before its fmt chunk (as broadcast WAV writers put one)."""
    return wav_bytes[:12] + b"JUNK" + struct.pack("<I", 6) + b"\0" * 6 + wav_bytes[12:]


def tone(seconds=0.5, rate=SAMPLE_RATE):
    t = np.arange(int(seconds * rate)) / rate
    return 0.3 * np.sin(2 * np.pi * 440 * t)


# The graph's own message, and the dev server's check of the request against the signature.
_WRONG_SHAPE = ("Input readings takes 2 values per example", "Input 'readings' expects shape [-1,2]")


def corpus():
    """Every case, in the order of the docs table."""
    good_wav = wav(tone())
    cases = [
        # --- images ---
        Case("image: random bytes", IMAGE, bytes(range(256)) * 4, "cannot decode image",
             "Input photo is not a JPEG, PNG, GIF, BMP or WebP image"),
        Case("image: truncated JPEG", IMAGE, image_bytes("JPEG", size=(64, 64))[:200], "Invalid JPEG data",
             "Invalid JPEG data"),
        Case("image: zero bytes", IMAGE, b"", "file is empty", "missing"),
        Case("image: text bytes", IMAGE, b"this is not an image", "cannot decode image",
             "Input photo is not a JPEG, PNG, GIF, BMP or WebP image"),
        Case("image: grey PNG", IMAGE, image_bytes("PNG", mode="L"), "ok", "ok"),
        Case("image: RGBA PNG", IMAGE, image_bytes("PNG", mode="RGBA"), "ok", "ok"),
        Case("image: 16-bit PNG", IMAGE, grey16_png(), "ok", "ok"),
        Case("image: animated GIF (first frame)", IMAGE, animated_gif(), "ok", "ok"),
        Case("image: BMP", IMAGE, image_bytes("BMP"), "ok", "ok"),
        Case("image: PNG bomb (100000 x 100000 declared)", IMAGE, png_declaring(100000, 100000),
             "Input photo declares 100000 x 100000 pixels", "Input photo declares 100000 x 100000 pixels"),
        Case("image: PNG bomb (20000 x 20000 declared, within int range)", IMAGE, png_declaring(20000, 20000),
             "Input photo declares 20000 x 20000 pixels", "Input photo declares 20000 x 20000 pixels"),
        Case("image: JPEG bomb (65000 x 65000 declared)", IMAGE, jpeg_declaring(65000, 65000),
             "Input photo declares 65000 x 65000 pixels", "Input photo declares 65000 x 65000 pixels"),
        Case("image: GIF bomb (65000 x 65000 declared)", IMAGE, gif_declaring(65000, 65000),
             "Input photo declares 65000 x 65000 pixels", "Input photo declares 65000 x 65000 pixels"),
        Case("image: BMP bomb (60000 x 60000 declared)", IMAGE, bmp_declaring(60000, 60000),
             "Input photo declares 60000 x 60000 pixels", "Input photo declares 60000 x 60000 pixels"),
        Case("image: large valid PNG (2000 x 1500)", IMAGE, image_bytes("PNG", size=(2000, 1500)), "ok", "ok"),
        Case("image: WebP lossy (VP8)", IMAGE, webp(b"VP8 "), "ok", "ok"),
        Case("image: WebP lossless with alpha (VP8L)", IMAGE, webp(b"VP8L"), "ok", "ok"),
        Case("image: WebP with alpha (VP8X)", IMAGE, webp(b"VP8X"), "ok", "ok"),
        Case("image: WebP lossy bomb (16383 x 16383 declared)", IMAGE, webp_declaring(b"VP8 ", 16383, 16383),
             "Input photo declares 16383 x 16383 pixels", "Input photo declares 16383 x 16383 pixels"),
        Case("image: WebP lossless bomb (16384 x 16384 declared)", IMAGE,
             webp_declaring(b"VP8L", 16384, 16384),
             "Input photo declares 16384 x 16384 pixels", "Input photo declares 16384 x 16384 pixels"),
        Case("image: WebP canvas bomb (VP8X, 100000 x 100000 declared)", IMAGE,
             webp_declaring(b"VP8X", 100000, 100000), "Input photo declares 100000 x 100000 pixels",
             "Input photo declares 100000 x 100000 pixels"),
        # --- audio ---
        Case("audio: 16-bit mono", AUDIO, good_wav, "ok", "ok"),
        Case("audio: 8-bit", AUDIO, wav(tone(), sample_width=1), "cannot decode audio",
             "Input voice must be 16-bit PCM WAV; received format code 1 with 8 bits per sample"),
        Case("audio: 24-bit", AUDIO, wav(tone(), sample_width=3), "cannot decode audio",
             "Input voice must be 16-bit PCM WAV; received format code 1 with 24 bits per sample"),
        Case("audio: 32-bit integer", AUDIO, wav(tone(), sample_width=4), "cannot decode audio",
             "Input voice must be 16-bit PCM WAV; received format code 1 with 32 bits per sample"),
        Case("audio: 32-bit float", AUDIO, float_wav(tone()), "cannot decode audio",
             "Input voice must be 16-bit PCM WAV; received format code 3 with 32 bits per sample"),
        Case("audio: 16-bit in an extensible header", AUDIO, extensible_wav(tone()), "cannot decode audio",
             "Input voice must be 16-bit PCM WAV; received format code 65534 with 16 bits per sample"),
        Case("audio: 24-bit after a JUNK chunk", AUDIO, after_junk(wav(tone(), sample_width=3)),
             "cannot decode audio",
             "Input voice must be 16-bit PCM WAV; received format code 1 with 24 bits per sample"),
        Case("audio: 16-bit after a JUNK chunk", AUDIO, after_junk(wav(tone())), "ok", "ok"),
        Case("audio: stereo (mixed down)", AUDIO, wav(tone(), channels=2), "ok", "ok"),
        Case("audio: 44.1 kHz (resampled)", AUDIO, wav(tone(rate=44100), rate=44100), "ok", "ok"),
        Case("audio: over-long clip (60 s, cropped)", AUDIO, wav(tone(seconds=60.0)), "ok", "ok"),
        Case("audio: truncated header", AUDIO, good_wav[:30], "cannot decode audio",
             "Input voice is not a complete WAV file"),
        Case("audio: not WAV bytes", AUDIO, b"ID3\x03\x00 an mp3 pretender" * 3, "cannot decode audio",
             "Input voice is not a WAV file"),
        Case("audio: zero bytes", AUDIO, b"", "file is empty", "missing"),
        Case("audio: header only, no samples (silence)", AUDIO, wav(np.zeros(0)), "has no samples", "ok"),
        # --- text ---
        Case("text: empty", TEXT, "", "missing", "missing"),
        Case("text: whitespace only", TEXT, "   \t ", "missing", "missing"),
        Case("text: 1 MB (cut before tokenizing)", TEXT, "great battery " * 75000, "ok", "ok"),
        Case("text: emoji and accents", TEXT, "très bon 👍 ünïcödé", "ok", "ok"),
        Case("text: invalid UTF-8 bytes", TEXT, b"ok \xff\xfe\xfa bad", None, "ok"),
        # --- sensors ---
        Case("sensor: one value missing (NaN)", SENSOR, [float("nan"), 3.0], "ok", "ok"),
        Case("sensor: every value missing", SENSOR, [float("nan"), float("nan")], "missing", "missing"),
        Case("sensor: infinity", SENSOR, [float("inf"), 3.0], "infinite value",
             "Input readings holds an infinite value"),
        Case("sensor: too few values", SENSOR, [1.0], None, _WRONG_SHAPE),
        Case("sensor: too many values", SENSOR, [1.0, 2.0, 3.0], None, _WRONG_SHAPE),
        Case("sensor: text for a number", SENSOR, ["hot", "3"], "not a number", "float"),
    ]
    return cases


def docs_table(cases=None):
    """The Markdown table of `docs/bad_inputs.md`."""
    words = {"ok": "accepted", "missing": "read as a missing input", None: "(request only)"}
    lines = ["| case | input | training pipeline (row validation) | serving signature, dev server REST and gRPC |",
             "|---|---|---|---|"]
    for case in cases or corpus():
        pipeline = words.get(case.pipeline, f"row error: \"...{case.pipeline}...\"")
        messages = case.serving if isinstance(case.serving, tuple) else (case.serving,)
        serving = words.get(messages[0], " or ".join(f"INVALID_ARGUMENT: \"...{m}...\"" for m in messages))
        lines.append(f"| {case.name} | `{case.input}` | {pipeline} | {serving} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(docs_table())
