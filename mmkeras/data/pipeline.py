"""tf.data pipelines: validated examples or TFRecords -> decoded, batched inputs."""

import keras
import tensorflow as tf

from mmkeras.data.decode import decode_example
from mmkeras.data.manifest import COMPRESSED_AUDIO, raw_file_bytes

AUTOTUNE = tf.data.AUTOTUNE


CACHE_LIMIT_BYTES = 2 << 30


def make_dataset(examples, specs, *, batch_size=32, training=False, seed=0, cache=None):
    """A dataset of `(inputs, labels)` batches from validated `Examples`.

    Files are read and decoded in parallel with the same functions the
    serving signature uses. Training datasets are shuffled and augmented
    (random flips, and RandAugment where an image spec asks for it);
    SpecAugment for audio runs inside the model. `cache=None` keeps the
    decoded examples in memory when they fit in `CACHE_LIMIT_BYTES`.

    Example:
    >>> import numpy as np, mmkeras as mmk
    >>> from mmkeras.data.manifest import Examples
    >>> examples = Examples({"readings": np.zeros((4, 2), "float32")}, np.zeros(4, "int32"), [1, 2, 3, 4])
    >>> ds = make_dataset(examples, [mmk.SensorInput("readings", ["a", "b"])], batch_size=2)
    >>> next(iter(ds))[0]["readings"].shape
    TensorShape([2, 2])
    """
    columns = {spec.name: examples.columns[spec.name] for spec in specs}
    dataset = tf.data.Dataset.from_tensor_slices((_as_tensors(columns, specs), examples.labels))
    dataset = dataset.map(lambda x, y: (_read_files(x, specs), y), num_parallel_calls=AUTOTUNE)
    if cache is None:
        cache = len(examples) * _decoded_bytes(specs) <= CACHE_LIMIT_BYTES
    return finish(dataset, specs, batch_size=batch_size, training=training, seed=seed, cache=cache,
                  size=len(examples))


def finish(raw, specs, *, batch_size, training, seed=0, cache=False, size=None):
    """Decodes raw-bytes examples, then caches, shuffles, batches, augments, prefetches.

    Without a cache, training examples are shuffled while still encoded: a
    buffer of decoded examples holds gigabytes, and each epoch would decode a
    whole buffer before its first batch (benchmarks/input_pipeline.py).
    """
    buffer = min(size or 10_000, 10_000)
    if training and not cache:
        raw = raw.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = raw.map(lambda x, y: (decode_example(x, specs), y), num_parallel_calls=AUTOTUNE)
    if cache:
        dataset = dataset.cache()
        if training:
            dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    augmented = [spec for spec in specs if spec.kind == "image" and spec.augment]
    for spec in augmented if training else []:
        augment = _image_augmenter(spec.augment, seed)
        dataset = dataset.map(lambda x, y, s=spec, a=augment: (_augment(x, s, a), y),
                              num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def _decoded_bytes(specs):
    """float32 bytes of one decoded example (text counted as nothing)."""
    sizes = {"image": lambda s: s.size[0] * s.size[1] * 3, "audio": lambda s: s.num_samples,
             "sensor": lambda s: len(s.features) * (s.window or 1), "text": lambda s: 0}
    return 4 * sum(sizes[spec.kind](spec) for spec in specs)


def _as_tensors(columns, specs):
    return {name: tf.constant(values.tolist(), tf.string) if values.dtype == object else tf.constant(values)
            for name, values in columns.items()}


def _read_files(example, specs):
    """Replaces file paths by their bytes ("" stays "" = missing)."""
    out = dict(example)
    for spec in specs:
        if spec.kind in ("image", "audio"):
            read = _read_audio if spec.kind == "audio" else tf.io.read_file
            path = example[spec.name]
            out[spec.name] = tf.cond(tf.strings.length(path) > 0, lambda p=path, r=read: r(p),
                                     lambda: tf.constant(b""))
    return out


def _read_audio(path):
    """Audio file bytes as WAV; FLAC/OGG/MP3 are decoded with soundfile."""
    pattern = ".*(" + "|".join(ext.replace(".", r"\.") for ext in COMPRESSED_AUDIO) + ")"
    compressed = tf.strings.regex_full_match(tf.strings.lower(path), pattern)
    as_wav = lambda p: raw_file_bytes(p.numpy().decode(), "audio")  # noqa: E731
    return tf.cond(compressed, lambda: tf.py_function(as_wav, [path], tf.string),
                   lambda: tf.io.read_file(path))


def _image_augmenter(kind, seed):
    """`"flip"`: random horizontal flips; `"dihedral"`: random turns and
    mirrors; `"randaugment"`: horizontal flips plus RandAugment.

    Keras core's augmentation layers (KerasCV's successors), applied in the
    training pipeline only, never inside the model. RandAugment changes
    colours, so it is opt-in for images whose colour carries the label.
    """
    if kind == "dihedral":
        flip = keras.layers.RandomFlip("horizontal_and_vertical", seed=seed)
        return lambda images, training: _random_transpose(flip(images, training=training), seed)
    layers = [keras.layers.RandomFlip("horizontal", seed=seed)]
    if kind == "randaugment":
        layers.append(keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=0.3, seed=seed))
    return keras.Sequential(layers)


def _random_transpose(images, seed):
    """Swaps height and width of a random half of a batch of square images.

    With both flips this draws each of the 8 turns and mirrors: a defect on
    a part seen from above is the same defect in any of them (inspection:
    the part-image baseline stops memorising its noisy label, `benchmarks/README.md`).
    """
    swap = tf.random.uniform([tf.shape(images)[0], 1, 1, 1], seed=seed) < 0.5
    return tf.where(swap, tf.transpose(images, [0, 2, 1, 3]), images)


def _augment(inputs, spec, augment):
    out = dict(inputs)
    images = inputs[spec.name]
    missing = tf.reduce_all(tf.math.is_nan(images), axis=[1, 2, 3], keepdims=True)
    augmented = augment(tf.where(missing, 0.0, images), training=True)
    out[spec.name] = tf.where(missing, images, tf.cast(augmented, images.dtype))
    return out
