"""Sharded TFRecords of `tf.train.Example`s: the scale-out data format.

Each record holds what a client would send (each kind's `client_raw`:
encoded image bytes, WAV bytes, UTF-8 text, floats) and the label. Reading decodes with the same
functions as the manifest pipeline and the serving signature, so datasets
can stream from local disk or any `tf.io.gfile` file system.
"""

import os

import numpy as np
import tensorflow as tf

from mmkeras.data.pipeline import AUTOTUNE, finish
from mmkeras.modalities.raw_formats import floats_feature

LABEL_KEY = "__label__"


def write_tfrecords(examples, specs, out_dir, num_shards=4, prefix="data"):
    """Writes validated `Examples` as `out_dir/<prefix>-0000i-of-0000n.tfrecord`.

    Each shard is written under a temporary name and renamed when complete,
    so a reader never sees half a shard.

    Returns:
        The list of shard paths.
    """
    tf.io.gfile.makedirs(out_dir)
    # Shards of an earlier write with another shard count would match the glob.
    for stale in tf.io.gfile.glob(os.path.join(out_dir, f"{prefix}-*.tfrecord")):
        tf.io.gfile.remove(stale)
    num_shards = max(1, min(int(num_shards), len(examples)))
    paths = []
    for shard in range(num_shards):
        path = os.path.join(out_dir, f"{prefix}-{shard:05d}-of-{num_shards:05d}.tfrecord")
        tmp = path + ".tmp"
        with tf.io.TFRecordWriter(tmp) as writer:
            for i in range(shard, len(examples), num_shards):
                writer.write(_example(examples, specs, i).SerializeToString())
        tf.io.gfile.rename(tmp, path, overwrite=True)
        paths.append(path)
    return paths


def tfrecord_dataset(pattern, specs, *, num_classes, multi_label=False, batch_size=32, training=False,
                     seed=0, cache=False):
    """Batches of `(inputs, labels)` from TFRecord shards matching `pattern`.

    Example:
    >>> ds = tfrecord_dataset("data/train-*.tfrecord", specs, num_classes=3)  # doctest: +SKIP
    """
    files = tf.data.Dataset.list_files(pattern, shuffle=training, seed=seed)
    records = files.interleave(tf.data.TFRecordDataset, num_parallel_calls=AUTOTUNE,
                               deterministic=not training)
    description = _feature_description(specs, num_classes, multi_label)

    def parse(record):
        features = tf.io.parse_single_example(record, description)
        label = features.pop(LABEL_KEY)
        return features, label if multi_label else tf.cast(label, tf.int32)

    raw = records.map(parse, num_parallel_calls=AUTOTUNE)
    return finish(raw, specs, batch_size=batch_size, training=training, seed=seed, cache=cache)


def _feature_description(specs, num_classes, multi_label):
    description = {spec.name: spec.tfrecord_feature() for spec in specs}
    description[LABEL_KEY] = (tf.io.FixedLenFeature([num_classes], tf.float32) if multi_label
                              else tf.io.FixedLenFeature([], tf.int64))
    return description


def _example(examples, specs, i):
    feature = {spec.name: spec.tfrecord_value(spec.client_raw(examples.columns[spec.name][i])) for spec in specs}
    label = examples.labels[i]
    feature[LABEL_KEY] = floats_feature(label) if np.ndim(label) else tf.train.Feature(
        int64_list=tf.train.Int64List(value=[int(label)]))
    return tf.train.Example(features=tf.train.Features(feature=feature))
