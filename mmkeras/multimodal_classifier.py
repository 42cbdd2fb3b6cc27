"""`MultimodalClassifier`: a functional Keras model that describes itself."""

import keras

from mmkeras import modalities
from mmkeras.tasks import Classification


@keras.saving.register_keras_serializable(package="mmkeras")
class MultimodalClassifier(keras.Model):
    """A functional classifier whose config carries its inputs and task.

    What `build_model` and `build_unimodal` return. It is a plain functional
    `keras.Model` (fit, callbacks, `tf.distribute`, `.keras` files work as
    usual); beside the layer graph, its config holds the modality specs (how
    each input is decoded) and the `Classification` (labels, multi-label,
    threshold). A `.keras` file is therefore all `export` and `evaluate` need,
    as a KerasHub task carries its preprocessor.

    Args:
        inputs, outputs: the functional graph, as for `keras.Model`.
        specs: the modality specs, in input order (specs or their configs).
        task: the `Classification` (or its config).

    Example:
    >>> import mmkeras as mmk
    >>> model = mmk.build_unimodal(mmk.ImageInput("photo", size=(32, 32)),
    ...                            mmk.Classification(labels=["ok", "defect"]))
    >>> restored = MultimodalClassifier.from_config(model.get_config())
    >>> restored.task.labels, restored.specs[0].size
    (['ok', 'defect'], (32, 32))
    """

    # `*args, **kwargs`: Keras revives a functional subclass from its config
    # only through a constructor of this shape (the graph comes back as
    # `inputs=`/`outputs=`, our own keys as keyword arguments).
    def __init__(self, *args, specs, task, **kwargs):
        super().__init__(*args, **kwargs)
        self.specs = tuple(spec if isinstance(spec, modalities.Modality) else modalities.from_config(spec)
                           for spec in specs)
        self.task = task if isinstance(task, Classification) else Classification.from_config(task)
        _check_inputs(self.input, self.specs)

    def get_config(self):
        return {**super().get_config(), "specs": [modalities.to_config(spec) for spec in self.specs],
                "task": self.task.get_config()}


def _check_inputs(model_input, specs):
    names = sorted(model_input) if isinstance(model_input, dict) else None
    if names != sorted(spec.name for spec in specs):
        raise ValueError(f"A MultimodalClassifier takes a dict of inputs named as its specs. "
                         f"Specs: {[spec.name for spec in specs]}; model inputs: {names}")
