"""tf.data pipelines: validated examples or TFRecords -> decoded, batched inputs."""

import numpy as np
import tensorflow as tf

from mmkeras.data.decode import decode_example

AUTOTUNE = tf.data.AUTOTUNE


CACHE_LIMIT_BYTES = 2 << 30


def make_dataset(examples, specs, *, batch_size=32, training=False, seed=0, cache=None):
    """A dataset of `(inputs, labels)` batches from validated `Examples`.

    Each input's column value becomes its raw value (`read_raw`: a file's
    bytes, a series' floats), decoded in parallel with the same functions the
    serving signature uses. Training datasets are shuffled and augmented
    where a kind asks for it (`batch_augmenter`: image flips, RandAugment);
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
    dataset = dataset.map(lambda x, y: (_read_raw(x, specs), y), num_parallel_calls=AUTOTUNE)
    if cache is None:
        cache = len(examples) * sum(spec.decoded_bytes() for spec in specs) <= CACHE_LIMIT_BYTES
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
    augmenters = [spec.batch_augmenter(seed) for spec in specs] if training else []
    for augment in filter(None, augmenters):
        dataset = dataset.map(lambda x, y, a=augment: (a(x), y), num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def _as_tensors(columns, specs):
    return {name: tf.constant(values.tolist(), tf.string) if values.dtype == object else tf.constant(values)
            for name, values in columns.items()}


def _read_raw(example, specs):
    """Column values -> raw values (file paths become their bytes; "" stays missing)."""
    return {spec.name: spec.read_raw(example[spec.name]) for spec in specs}


def decoded_arrays(examples, specs, batch_size=64):
    """The examples' decoded inputs as NumPy arrays, `{name: [N, ...]}` (what the model takes).

    Example:
    >>> import numpy as np, mmkeras as mmk
    >>> from mmkeras.data.manifest import Examples
    >>> examples = Examples({"readings": np.ones((3, 2), "float32")}, np.zeros(3, "int32"), [1, 2, 3])
    >>> decoded_arrays(examples, [mmk.SensorInput("readings", ["a", "b"])])["readings"].shape
    (3, 2)
    """
    columns = {}
    for x, _ in make_dataset(examples, specs, batch_size=batch_size, cache=False):
        for name, value in x.items():
            columns.setdefault(name, []).append(value.numpy())
    return {name: np.concatenate(parts) for name, parts in columns.items()}
