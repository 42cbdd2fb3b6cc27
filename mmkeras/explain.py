"""What each input adds to a prediction, answered by the model itself.

A modality's contribution to an example is the probability of the predicted
class (the highest-scoring label of a multi-label head) with every input as
sent, minus that probability with the modality replaced by its missing value
(NaN for images, audio, sensors and series; "" for text and categories). The
models are trained for missing inputs (modality dropout, learned missing
embeddings), so the second probability is the model's own answer without that
input, not an out-of-distribution probe. A modality the request left out
contributes 0.

Cost: the batch runs through the model M + 1 times (stacked into one call),
for M modalities. `serving_default` does not pay it: the export's `explain`
signature does.

Example:
>>> import mmkeras as mmk
>>> model = mmk.build_model([mmk.SensorInput("readings", features=["a", "b"], mean=[0, 0], variance=[1, 1]),
...                          mmk.TextInput("note", vocabulary_size=20)],
...                         task=mmk.Classification(["ok", "fault"]), adapt_data={"note": ["hot pipe", "cold"]})
>>> out = explain_batch(model, {"readings": tf.constant([[1.0, 2.0]]), "note": tf.constant([""])})
>>> out["modality_contributions"].shape, float(out["modality_contributions"][0, 1])
(TensorShape([1, 2]), 0.0)
"""

import numpy as np
import tensorflow as tf

from mmkeras.tasks import label_output


def missing_like(tensor):
    """`tensor` with every example missing: NaN for floats, "" for strings."""
    if tensor.dtype == tf.string:
        return tf.fill(tf.shape(tensor), "")
    return tf.fill(tf.shape(tensor), tf.constant(float("nan"), tensor.dtype))


def is_present(tensor):
    """Bool `[B]`: whether each example holds the input (not all NaN, not "")."""
    held = tf.not_equal(tensor, "") if tensor.dtype == tf.string else tf.logical_not(tf.math.is_nan(tensor))
    return tf.reduce_any(tf.reshape(held, [tf.shape(tensor)[0], -1]), axis=1)


def explain_batch(model, decoded):
    """`probabilities` `[B, C]` and `modality_contributions` `[B, M]` (modalities
    in `model.specs` order) of a batch of decoded inputs."""
    names = [spec.name for spec in model.specs]
    copies = [decoded] + [{**decoded, name: missing_like(decoded[name])} for name in names]
    stacked = {name: tf.concat([copy[name] for copy in copies], axis=0) for name in decoded}
    probabilities = tf.cast(label_output(model(stacked, training=False)), tf.float32)
    # [(M + 1) * B, C] -> [M + 1, B, C]: copy 0 has every input, copy 1 + m lacks modality m.
    per_copy = tf.reshape(probabilities, [len(names) + 1, -1, tf.shape(probabilities)[-1]])
    full = per_copy[0]
    predicted = tf.argmax(full, axis=-1)
    chosen = tf.gather(tf.transpose(per_copy, [1, 0, 2]), predicted, axis=2, batch_dims=1)  # [B, M + 1]
    contributions = chosen[:, :1] - chosen[:, 1:]
    present = tf.stack([is_present(decoded[name]) for name in names], axis=1)
    return {"probabilities": full,
            "modality_contributions": tf.where(present, contributions, tf.zeros_like(contributions))}


def contributions(full_prob, without, missing):
    """The contributions of a set of examples from probabilities already computed.

    Args:
        full_prob: `[N, C]` probabilities with every input.
        without: `{modality: [N, C] probabilities with it missing in every example}`.
        missing: `{modality: bool [N]}`, where the data already lacks it.

    Returns:
        `[N, M]`, modalities in the order of `without`.

    Example:
    >>> full = np.array([[0.2, 0.8]])
    >>> contributions(full, {"photo": np.array([[0.6, 0.4]])}, {"photo": np.array([False])}).tolist()
    [[0.4]]
    """
    predicted = np.argmax(full_prob, axis=-1)
    rows = np.arange(len(predicted))
    values = np.stack([full_prob[rows, predicted] - prob[rows, predicted] for prob in without.values()], axis=1)
    return np.where(np.stack([missing[name] for name in without], axis=1), 0.0, values)


def reference_contributions(model, decoded):
    """The same contributions computed apart, with `model.predict` on NumPy
    copies (the export checks its `explain` signature against this)."""
    from mmkeras.evaluation.predict import model_predict_fn
    from mmkeras.evaluation.robustness import is_missing, mark_missing

    predict = model_predict_fn(model, batch_size=64)
    names = [spec.name for spec in model.specs]
    return contributions(predict(decoded), {name: predict(mark_missing(decoded, name)) for name in names},
                         {name: is_missing(decoded, name) for name in names})
