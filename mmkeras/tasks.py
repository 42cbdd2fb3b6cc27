"""Task specs and their heads. One task today: classification."""

import keras

# The name of the classifier's output (its key when the model also has
# auxiliary `<modality>_aux` outputs).
LABEL_OUTPUT = "label"
# Auxiliary per-modality heads are named `<modality><AUX_SUFFIX>`.
AUX_SUFFIX = "_aux"


@keras.saving.register_keras_serializable(package="mmkeras")
class ClassifierHead(keras.layers.Layer):
    """Dense logits -> softmax (single-label) or sigmoid (multi-label) in float32.

    The head carries the class names, so an exported or reloaded model
    knows its labels.

    Args:
        labels: class names, in output order.
        multi_label: sigmoid per label instead of softmax over labels.
        threshold: probability over which a multi-label class is predicted.

    Example:
    >>> import numpy as np
    >>> head = ClassifierHead(["ok", "dent"])
    >>> head(np.ones((1, 4), "float32")).shape
    TensorShape([1, 2])
    """

    def __init__(self, labels, multi_label=False, threshold=0.5, **kwargs):
        super().__init__(**kwargs)
        self.labels = [str(label) for label in labels]
        self.multi_label = bool(multi_label)
        self.threshold = float(threshold)
        self.dense = keras.layers.Dense(len(self.labels), name="logits")
        self.activation = keras.layers.Activation(
            "sigmoid" if self.multi_label else "softmax", dtype="float32", name="probabilities")

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, inputs):
        return self.activation(self.dense(inputs))

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((inputs.shape[0], len(self.labels)), dtype="float32")

    def get_config(self):
        return {**super().get_config(), "labels": self.labels, "multi_label": self.multi_label,
                "threshold": self.threshold}


class Classification:
    """Single-label (softmax) or multi-label (sigmoid) classification.

    Args:
        labels: class names.
        multi_label: each example may have any subset of `labels`.
        auxiliary_heads: add one head per modality (`"<name>_aux"` outputs),
            trained on the same label; it keeps every encoder learning.
        threshold: multi-label decision threshold.

    Example:
    >>> task = Classification(labels=["negative", "neutral", "positive"])
    >>> task.num_classes
    3
    """

    def __init__(self, labels, multi_label=False, auxiliary_heads=False, threshold=0.5):
        self.labels = [str(label) for label in labels]
        if len(self.labels) < 2 and not multi_label:
            raise ValueError(f"Classification needs at least 2 labels. Received: {self.labels}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"Classification labels must be unique. Received: {self.labels}")
        self.multi_label = bool(multi_label)
        self.auxiliary_heads = bool(auxiliary_heads)
        self.threshold = float(threshold)

    @property
    def num_classes(self):
        return len(self.labels)

    def head(self, name=LABEL_OUTPUT):
        return ClassifierHead(self.labels, self.multi_label, self.threshold, name=name)

    def get_config(self):
        return {"labels": self.labels, "multi_label": self.multi_label,
                "auxiliary_heads": self.auxiliary_heads, "threshold": self.threshold}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def label_output(outputs):
    """The label probabilities among a model's outputs (arrays or symbolic).

    A model with auxiliary heads outputs a dict; its `"label"` entry is the
    classifier's.

    Example:
    >>> label_output({"label": [0.2, 0.8], "photo_aux": [0.5, 0.5]})
    [0.2, 0.8]
    """
    if isinstance(outputs, dict):
        if LABEL_OUTPUT not in outputs:
            raise ValueError(f"Expected a dict of model outputs to have a {LABEL_OUTPUT!r} key; "
                             f"received keys {sorted(outputs)}.")
        return outputs[LABEL_OUTPUT]
    if isinstance(outputs, (list, tuple)):
        raise ValueError(f"Expected the model output to be the label probabilities or a dict with "
                         f"a {LABEL_OUTPUT!r} key; received {len(outputs)} outputs.")
    return outputs


def aux_output_names(model):
    """Names of the `<modality>_aux` outputs of a multi-head model, else [].

    Example:
    >>> import keras
    >>> x = keras.Input((2,))
    >>> model = keras.Model(x, {"label": keras.layers.Dense(2)(x), "a_aux": keras.layers.Dense(2)(x)})
    >>> aux_output_names(model)
    ['a_aux']
    """
    if not isinstance(model.output, dict):
        return []
    label_output(model.output)  # checks the dict has the label
    return [name for name in model.output if name.endswith(AUX_SUFFIX)]


def task_of(model):
    """The model's `Classification` (a `MultimodalClassifier` carries one);
    None for a model built elsewhere, which says nothing about its task.

    Example:
    >>> import keras
    >>> x = keras.Input((2,))
    >>> task_of(keras.Model(x, keras.layers.Dense(2)(x))) is None
    True
    """
    return getattr(model, "task", None)


def is_multi_label(model):
    """What the model's task says; a model built elsewhere is single-label
    unless the caller says otherwise."""
    task = task_of(model)
    return bool(task is not None and task.multi_label)


def decision_threshold(model):
    """The probability from which a multi-label head predicts a label: its
    task's, or 0.5 for a model built elsewhere (the report, training metrics
    and the export then decide alike)."""
    task = task_of(model)
    return 0.5 if task is None else float(task.threshold)
