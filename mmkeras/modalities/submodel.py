"""`SubModel`: a functional model over part of a backbone that reloads frozen."""

import keras


@keras.saving.register_keras_serializable(package="mmkeras")
class SubModel(keras.Model):
    """A functional model over part of a backbone's graph that reloads frozen.

    Keras 3.15 revives a functional model's `trainable=False` before it
    tracks its layers, and KerasHub layers build their sublayers after their
    own `trainable=False` is set, so a reloaded frozen sub-model keeps
    trainable variables (its parent model trains them). This class sets the
    flag again once everything is built.

    Example:
    >>> x = keras.Input((2,))
    >>> tower = SubModel(x, keras.layers.Dense(3)(x))
    >>> tower.trainable = False
    >>> restored = SubModel.from_config(tower.get_config())
    >>> [v.trainable for v in restored.weights]
    [False, False]
    """

    @classmethod
    def from_config(cls, config, custom_objects=None):
        trainable = config.get("trainable", True)  # read first: Keras pops it
        model = super().from_config(config, custom_objects=custom_objects)
        # Flipped first: on TensorFlow, Keras skips assigning an attribute the
        # value it already holds, and the setter would not reach sublayers.
        model.trainable = not trainable
        model.trainable = trainable
        return model
