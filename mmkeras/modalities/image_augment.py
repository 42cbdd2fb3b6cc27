"""Image augmentation in the training pipeline (`ImageInput(augment=...)`).

Keras core's augmentation layers (KerasCV's successors), applied to training
batches in the tf.data pipeline only, never inside the model: the SavedModel
computes the same thing at every call.
"""

import keras
import tensorflow as tf


def batch_augmenter(name, kind, seed):
    """`inputs -> inputs` that augments the images of input `name` in a batch.

    `kind`: `"flip"`: random horizontal flips; `"dihedral"`: random turns and
    mirrors; `"randaugment"`: horizontal flips plus RandAugment (it changes
    colours, so it is opt-in for images whose colour carries the label).
    A missing image (NaN) stays missing.
    """
    augment = _augmenter(kind, seed)

    def augment_batch(inputs):
        out = dict(inputs)
        images = inputs[name]
        missing = tf.reduce_all(tf.math.is_nan(images), axis=[1, 2, 3], keepdims=True)
        augmented = augment(tf.where(missing, 0.0, images), training=True)
        out[name] = tf.where(missing, images, tf.cast(augmented, images.dtype))
        return out

    return augment_batch


def _augmenter(kind, seed):
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
