"""Running a model on in-memory inputs, and finding its classification head.

Evaluation looks the head up in one place, `model_task`: it holds the head's
settings (`multi_label`, `threshold`). `head_output` picks the head's
probabilities out of a model's (or a dataset's) outputs.
"""

import keras
import numpy as np
import tensorflow as tf

from mmkeras.tasks import LABEL_OUTPUT


def model_task(model):
    """What the model says about its task (`multi_label`, `threshold`); None when it says nothing.

    Today that is the head layer named "label" (an mmkeras `ClassifierHead`);
    a model from elsewhere may have none.

    Example:
    >>> x = keras.Input((2,))
    >>> model_task(keras.Model(x, keras.layers.Dense(2, name="logits")(x))) is None
    True
    """
    # Evaluation's only lookup of the head, so that reading `model.task`
    # instead, once models carry it, changes this function alone.
    try:
        return model.get_layer(LABEL_OUTPUT)
    except (ValueError, AttributeError):
        return None


def head_output(outputs):
    """The classification head's tensor from a model output (a dict when aux heads are on).

    Example:
    >>> head_output({"label": [0.2, 0.8], "photo_aux": [0.5, 0.5]})
    [0.2, 0.8]
    """
    if isinstance(outputs, dict):
        if LABEL_OUTPUT not in outputs:
            raise ValueError(
                f"Expected a model output dict with key {LABEL_OUTPUT!r}. Received keys: {list(outputs)}")
        return outputs[LABEL_OUTPUT]
    if isinstance(outputs, (list, tuple)):
        return outputs[0]
    return outputs


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
