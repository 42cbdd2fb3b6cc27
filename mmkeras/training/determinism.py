"""Reproducible training: the same seed trains the same weights."""

import tensorflow as tf


def enable_determinism():
    """Turns on TensorFlow's op determinism for the rest of the process.

    Seeding (`keras.utils.set_random_seed`) fixes the data order, the
    initial weights and every seeded random op, but not the order in which
    parallel threads add floating-point numbers in some kernels, nor which
    element of a parallel `tf.data` map draws which random number: two runs
    with one seed can then train different models. With op determinism,
    TensorFlow picks deterministic kernels and runs `tf.data` maps holding
    random ops (the training augmentations) in a fixed order. It cannot be
    turned off again in the same process, and it costs time
    (`training.deterministic` in the README gives the measured cost).

    Example:
    >>> enable_determinism()  # doctest: +SKIP
    """
    tf.config.experimental.enable_op_determinism()
