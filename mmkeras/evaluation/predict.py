"""Running a model on in-memory inputs, and finding its classification head.

A `MultimodalClassifier` says what it classifies in `model.task` (labels,
`multi_label`, `threshold`; `mmkeras.tasks.task_of` reads it); `head_output`
picks the label probabilities out of a model's (or a dataset's) outputs.
"""

import keras
import numpy as np
import tensorflow as tf

from mmkeras.tasks import label_output


def head_output(outputs):
    """The classification head's tensor from a model output (a dict when aux heads are on).

    Example:
    >>> head_output({"label": [0.2, 0.8], "photo_aux": [0.5, 0.5]})
    [0.2, 0.8]
    """
    if isinstance(outputs, (list, tuple)):
        return outputs[0]  # a model from elsewhere with several outputs: the first classifies
    return label_output(outputs)


def model_input_names(model):
    """The names of a model's dict inputs; None for a model whose input is not a dict."""
    if isinstance(model.input, dict):
        return list(model.input)
    return None


def predict_raw(model, inputs, batch_size):
    """`model.predict` over in-memory inputs; strings travel as tf.string."""
    names = model_input_names(model)
    if names is not None:
        missing = [n for n in names if n not in inputs]
        if missing:
            raise ValueError(
                f"The model takes inputs {names}; the data lacks {missing}. Received keys: {list(inputs)}"
            )
        inputs = {n: inputs[n] for n in names}
    dataset = tf.data.Dataset.from_tensor_slices(inputs).batch(batch_size)
    return model.predict(dataset, verbose=0)


def model_predict_fn(model, batch_size=32):
    """Wraps a Keras model as `predict_fn(inputs_dict) -> probabilities [N, C]`.

    Example:
    >>> x = keras.Input((2,), name="readings")
    >>> model = keras.Model({"readings": x}, keras.layers.Dense(2, activation="softmax", name="label")(x))
    >>> model_predict_fn(model)({"readings": np.zeros((3, 2), "float32")}).shape
    (3, 2)
    """

    def predict_fn(inputs):
        return np.asarray(head_output(predict_raw(model, inputs, batch_size)), dtype=np.float64)

    return predict_fn


def as_predict_fn(model_or_fn, batch_size):
    """A `predict_fn` from a Keras model or from a callable that already is one."""
    if isinstance(model_or_fn, keras.Model):
        return model_predict_fn(model_or_fn, batch_size)
    if callable(model_or_fn):
        return model_or_fn
    raise TypeError(f"Expected a keras.Model or a callable. Received: {type(model_or_fn).__name__}")
