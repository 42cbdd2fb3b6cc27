"""Evaluation: metrics, modality ablation, robustness, reports and plots.

A multimodal model is judged on more than accuracy. `evaluate` runs a model on
a labelled `tf.data` dataset and answers: how good is it (per-class metrics,
ROC/PR-AUC, calibration), which modality does it rely on (ablation), how does
it cope when inputs go missing (robustness), how does it weigh its inputs
(fusion weights), and does fusing beat a single modality (baselines). Results
go to `metrics.json`, `report.md`, `report.html`, PNG plots and TensorBoard.

Metrics are computed with NumPy (no scikit-learn dependency). PR-AUC is the
average precision (step-wise area, as in scikit-learn). Precision, recall and
F1 are 0 where their denominator is 0.

Missing modalities follow the project convention: a missing float input
(image, audio, sensor) is NaN everywhere in that example, a missing text is "".
"""

import base64
import html
import io
import json
import math
import os
import sys

import keras
import numpy as np
import tensorflow as tf

NUM_CALIBRATION_BINS = 15
DEFAULT_ROBUSTNESS_PROBABILITIES = (0.0, 0.25, 0.5)

# Headline metrics where smaller is better; every other scalar is "higher is
# better". Ablation importance is always "how much worse without it".
LOWER_IS_BETTER = ("ece", "miss_rate", "false_alarm_rate")


# === Validation ===


def _validate_predictions(y_true, y_prob, labels, multi_label):
    """Checks shapes, ranges and NaN; returns (y_true, y_prob) as NumPy arrays."""
    labels = list(labels)
    if len(set(labels)) != len(labels):
        raise ValueError(f"`labels` must be unique. Received: labels={labels}")
    y_prob = np.asarray(y_prob, dtype=np.float64)
    y_true = np.asarray(y_true)
    if y_prob.ndim != 2 or y_prob.shape[1] != len(labels):
        raise ValueError(
            f"Expected `y_prob` of shape [num_examples, {len(labels)}] (one column per "
            f"label in {labels}). Received: y_prob.shape={y_prob.shape}"
        )
    if y_prob.shape[0] == 0:
        raise ValueError("Expected at least one example. Received: an empty `y_prob`.")
    nan_rows = np.flatnonzero(np.isnan(y_prob).any(axis=1))
    if nan_rows.size:
        raise ValueError(
            f"`y_prob` contains NaN in {nan_rows.size} of {y_prob.shape[0]} rows "
            f"(first at row {nan_rows[0]}). Expected finite probabilities; a model "
            "that sees missing modalities must replace their NaN before its encoders."
        )
    # A little slack: float16 softmax outputs can overshoot 1 by an ulp or so.
    if y_prob.min() < -1e-3 or y_prob.max() > 1 + 1e-3:
        raise ValueError(
            "Expected probabilities in [0, 1] (did the model output logits?). "
            f"Received: y_prob in [{y_prob.min():.4g}, {y_prob.max():.4g}]"
        )
    y_prob = np.clip(y_prob, 0.0, 1.0)
    if multi_label:
        if y_true.shape != y_prob.shape:
            raise ValueError(
                f"Multi-label `y_true` must be a 0/1 matrix of the same shape as `y_prob` "
                f"{y_prob.shape}. Received: y_true.shape={y_true.shape}"
            )
        if not np.isin(y_true, (0, 1)).all():
            raise ValueError("Multi-label `y_true` must hold only 0 and 1.")
        return y_true.astype(np.int64), y_prob
    if y_true.shape != (y_prob.shape[0],):
        raise ValueError(
            f"Single-label `y_true` must be integer class ids of shape [{y_prob.shape[0]}] "
            f"(one per row of `y_prob`). Received: y_true.shape={y_true.shape}"
        )
    if y_true.dtype.kind == "f" and not np.all(np.mod(y_true, 1) == 0):
        raise ValueError("Single-label `y_true` must hold integer class ids; found non-integers.")
    y_true = y_true.astype(np.int64)
    bad = np.flatnonzero((y_true < 0) | (y_true >= len(labels)))
    if bad.size:
        raise ValueError(
            f"Class ids in `y_true` must be in [0, {len(labels)}). "
            f"Received: {y_true[bad[0]]} at row {bad[0]}"
        )
    return y_true, y_prob


# === Binary ranking metrics ===


def _binary_counts(y_true, scores):
    """Cumulative (false positives, true positives, threshold) per distinct score, high to low."""
    order = np.argsort(-scores, kind="mergesort")
    scores, y_true = scores[order], y_true[order]
    # Tied scores share one threshold: only the last index of each run counts.
    ends = np.r_[np.flatnonzero(np.diff(scores)), y_true.size - 1]
    tps = np.cumsum(y_true)[ends]
    fps = ends + 1 - tps
    return fps, tps, scores[ends]


def _has_both_classes(y_true):
    return 0 < int(np.sum(y_true)) < len(y_true)


def roc_curve(y_true, scores):
    """ROC curve of a binary problem.

    Args:
        y_true: 0/1 array `[N]` with both classes present.
        scores: array `[N]`, higher means more likely positive.

    Returns:
        `(fpr, tpr, thresholds)`, starting at (0, 0) with threshold `inf`.

    Example:
    >>> fpr, tpr, _ = roc_curve([0, 1], [0.2, 0.9])
    >>> tpr.tolist()
    [0.0, 1.0, 1.0]
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if not _has_both_classes(y_true):
        raise ValueError("A ROC curve needs both positive and negative examples in `y_true`.")
    fps, tps, thresholds = _binary_counts(y_true, scores)
    fpr = np.r_[0, fps] / fps[-1]
    tpr = np.r_[0, tps] / tps[-1]
    return fpr, tpr, np.r_[np.inf, thresholds]


def roc_auc(y_true, scores):
    """Area under the ROC curve; None when `y_true` lacks a class.

    Example:
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    if not _has_both_classes(np.asarray(y_true)):
        return None
    fpr, tpr, _ = roc_curve(y_true, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def average_precision(y_true, scores):
    """PR-AUC as average precision, `sum_n (R_n - R_{n-1}) P_n`; None when undefined.

    Example:
    >>> round(average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 4)
    0.8333
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if not _has_both_classes(y_true):
        return None
    fps, tps, _ = _binary_counts(y_true, scores)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0, recall]) * precision))


def sensitivity_at_specificity(y_true, scores, specificity=0.9):
    """Best sensitivity (recall) over thresholds whose specificity is at least `specificity`.

    Example:
    >>> sensitivity_at_specificity([0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.9, 0.8, 0.95], 0.75)
    1.0
    """
    if not _has_both_classes(np.asarray(y_true)):
        return None
    fpr, tpr, _ = roc_curve(y_true, scores)
    allowed = (1.0 - fpr) >= specificity - 1e-12
    return float(tpr[allowed].max())


# === Calibration ===


def calibration(confidence, correct, num_bins=NUM_CALIBRATION_BINS):
    """Expected calibration error and reliability-diagram data.

    Examples fall into `num_bins` equal-width bins `(lower, upper]` of confidence;
    ECE is `sum_b (n_b / N) |accuracy_b - confidence_b|`.

    Args:
        confidence: predicted probability of the outcome, `[N]` in [0, 1].
        correct: 1 where the outcome happened (the prediction was right), `[N]`.
        num_bins: number of bins.

    Returns:
        dict with `ece`, `num_bins` and `bins` (lower, upper, count, confidence,
        accuracy; the last two None for empty bins).

    Example:
    >>> calibration([0.9, 0.9], [1, 0])["ece"]
    0.4
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, num_bins - 1)
    bins, ece = [], 0.0
    for b in range(num_bins):
        members = index == b
        count = int(members.sum())
        mean_confidence = float(confidence[members].mean()) if count else None
        accuracy = float(correct[members].mean()) if count else None
        if count:
            ece += count / confidence.size * abs(accuracy - mean_confidence)
        bins.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": count,
                "confidence": mean_confidence,
                "accuracy": accuracy,
            }
        )
    return {"ece": float(ece), "num_bins": num_bins, "bins": bins}


# === Classification metrics ===


def _safe_ratio(numerator, denominator):
    return float(numerator / denominator) if denominator else 0.0


def _f1(precision, recall):
    return _safe_ratio(2 * precision * recall, precision + recall)


def _mean_or_none(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def confusion_matrix(y_true, y_pred, num_classes):
    """Counts `[C, C]`: row = true class, column = predicted class.

    Example:
    >>> confusion_matrix([0, 1, 1], [0, 0, 1], 2).tolist()
    [[1, 0], [1, 1]]
    """
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def _single_label_metrics(y_true, y_prob, labels, normal_label):
    num_classes = len(labels)
    y_pred = y_prob.argmax(axis=1)
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    notes, per_class, roc, pr = [], {}, {}, {}
    for k, label in enumerate(labels):
        tp, predicted, support = matrix[k, k], matrix[:, k].sum(), matrix[k, :].sum()
        precision, recall = _safe_ratio(tp, predicted), _safe_ratio(tp, support)
        is_class = (y_true == k).astype(np.int64)
        roc[label] = roc_auc(is_class, y_prob[:, k])
        pr[label] = average_precision(is_class, y_prob[:, k])
        if roc[label] is None:
            why = "absent from" if support == 0 else "the only class in"
            notes.append(f"ROC-AUC/PR-AUC skip class {label!r}: it is {why} y_true.")
        per_class[label] = {
            "precision": precision,
            "recall": recall,
            "f1": _f1(precision, recall),
            "support": int(support),
            "roc_auc": roc[label],
            "pr_auc": pr[label],
        }
    # Like scikit-learn without `labels=`: macro-F1 averages the classes that
    # occur in y_true or in the predictions, so unused labels don't count as 0.
    seen = [k for k in range(num_classes) if matrix[k, :].sum() or matrix[:, k].sum()]
    confidence = y_prob.max(axis=1)
    calib = calibration(confidence, y_pred == y_true)
    calib["kind"] = "top-label confidence"
    metrics = {
        "task": "single_label",
        "num_examples": int(y_true.size),
        "labels": list(labels),
        "accuracy": float(np.mean(y_pred == y_true)),
        "macro_f1": float(np.mean([per_class[labels[k]]["f1"] for k in seen])),
        "roc_auc_macro": _mean_or_none(roc.values()),
        "pr_auc_macro": _mean_or_none(pr.values()),
        "ece": calib["ece"],
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "calibration": calib,
        "notes": notes,
    }
    if normal_label is not None:
        metrics.update(_inspection_metrics(y_true, y_pred, labels, normal_label, per_class))
    return metrics


def _inspection_metrics(y_true, y_pred, labels, normal_label, per_class):
    """Industrial inspection: a defect called normal is the costly mistake."""
    if normal_label not in labels:
        raise ValueError(f"`normal_label` must be one of {labels}. Received: {normal_label!r}")
    normal = labels.index(normal_label)
    is_defect = y_true != normal
    called_normal = y_pred == normal
    return {
        "miss_rate": _safe_ratio(np.sum(is_defect & called_normal), np.sum(is_defect)),
        "false_alarm_rate": _safe_ratio(np.sum(~is_defect & ~called_normal), np.sum(~is_defect)),
        "inspection": {
            "normal_label": normal_label,
            "num_defects": int(is_defect.sum()),
            "num_normal": int((~is_defect).sum()),
            "recall_per_class": {label: per_class[label]["recall"] for label in labels},
        },
    }


def _multi_label_metrics(y_true, y_prob, labels, threshold=0.5, specificity=0.9):
    y_pred = (y_prob >= threshold).astype(np.int64)
    notes, per_label = [], {}
    for k, label in enumerate(labels):
        truth, scores, pred = y_true[:, k], y_prob[:, k], y_pred[:, k]
        tp = int(np.sum(truth & pred))
        precision = _safe_ratio(tp, pred.sum())
        recall = _safe_ratio(tp, truth.sum())
        if not _has_both_classes(truth):
            notes.append(
                f"ROC-AUC/PR-AUC/sensitivity skip label {label!r}: y_true has only "
                f"{'negatives' if truth.sum() == 0 else 'positives'} for it."
            )
        per_label[label] = {
            "roc_auc": roc_auc(truth, scores),
            "pr_auc": average_precision(truth, scores),
            "sensitivity_at_specificity": sensitivity_at_specificity(truth, scores, specificity),
            "precision": precision,
            "recall": recall,
            "f1": _f1(precision, recall),
            "support": int(truth.sum()),
        }
    seen = [labels[k] for k in range(len(labels)) if y_true[:, k].any() or y_pred[:, k].any()]
    # Each (example, label) probability is a binary forecast of that label.
    calib = calibration(y_prob.ravel(), y_true.ravel())
    calib["kind"] = "per-label probability"
    return {
        "task": "multi_label",
        "num_examples": int(y_true.shape[0]),
        "labels": list(labels),
        "threshold": threshold,
        "specificity": specificity,
        "roc_auc_macro": _mean_or_none(m["roc_auc"] for m in per_label.values()),
        "pr_auc_macro": _mean_or_none(m["pr_auc"] for m in per_label.values()),
        "sensitivity_at_specificity_macro": _mean_or_none(
            m["sensitivity_at_specificity"] for m in per_label.values()
        ),
        "macro_f1": float(np.mean([per_label[l]["f1"] for l in seen])) if seen else 0.0,
        "subset_accuracy": float(np.mean((y_pred == y_true).all(axis=1))),
        "ece": calib["ece"],
        "per_label": per_label,
        "calibration": calib,
        "notes": notes,
    }


def classification_metrics(y_true, y_prob, labels, multi_label=False, normal_label=None, threshold=0.5):
    """Metrics of a classifier's probabilities against the truth.

    Single-label: accuracy, per-class precision/recall/F1/support, macro-F1,
    one-vs-rest ROC-AUC and PR-AUC (macro over classes that have positives and
    negatives in `y_true`; skipped classes get a note), the confusion matrix,
    and calibration (`ece` over 15 bins, reliability-diagram data). With
    `normal_label` also `miss_rate` (defects predicted normal), `false_alarm_rate`
    (normal predicted as a defect) and per-class recall under `inspection`.

    Multi-label: per-label ROC-AUC, PR-AUC, sensitivity at 90% specificity and
    precision/recall/F1 at `threshold`; their macro means, subset accuracy
    and calibration of the per-label probabilities.

    Args:
        y_true: single-label: integer class ids `[N]`; multi-label: 0/1 `[N, C]`.
        y_prob: probabilities `[N, C]`, columns in the order of `labels`.
        labels: class names.
        multi_label: whether each example can have several labels.
        normal_label: single-label only; the "nothing wrong" class (e.g. "ok").
        threshold: multi-label only; the probability from which a label is
            predicted (the model head's, so the report scores what serving
            answers).

    Returns:
        A JSON-serialisable dict.

    Example:
    >>> m = classification_metrics([0, 1], [[0.9, 0.1], [0.3, 0.7]], ["cat", "dog"])
    >>> m["accuracy"], m["roc_auc_macro"]
    (1.0, 1.0)
    """
    labels = list(labels)
    y_true, y_prob = _validate_predictions(y_true, y_prob, labels, multi_label)
    if multi_label:
        if normal_label is not None:
            raise ValueError(
                "`normal_label` applies to single-label classification; a multi-label "
                f"example with no label is the normal case. Received: normal_label={normal_label!r}"
            )
        return _multi_label_metrics(y_true, y_prob, labels, threshold)
    return _single_label_metrics(y_true, y_prob, labels, normal_label)


def default_headline(multi_label):
    """The headline metric: accuracy for single-label, macro ROC-AUC for multi-label."""
    return "roc_auc_macro" if multi_label else "accuracy"


def _headline_value(metrics, name):
    value = metrics.get(name, "absent")
    if value != "absent" and (value is None or isinstance(value, (int, float))):
        return value
    scalars = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)) and k != "num_examples")
    raise ValueError(f"Unknown headline metric {name!r}. Expected one of {scalars}.")


def _worse_by(full, reduced, metric):
    """How much worse `reduced` is than `full` (positive = worse)."""
    if full is None or reduced is None:
        return None
    return float(reduced - full) if metric in LOWER_IS_BETTER else float(full - reduced)


# === Prediction ===


def _head_output(outputs):
    """The classification head's tensor from a model output (a dict when aux heads are on)."""
    if isinstance(outputs, dict):
        if "label" not in outputs:
            raise ValueError(f"Expected a model output dict with key 'label'. Received keys: {list(outputs)}")
        return outputs["label"]
    if isinstance(outputs, (list, tuple)):
        return outputs[0]
    return outputs


def _model_input_names(model):
    if isinstance(model.input, dict):
        return list(model.input)
    return None


def _predict_raw(model, inputs, batch_size):
    """`model.predict` over in-memory inputs; strings travel as tf.string."""
    names = _model_input_names(model)
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
    >>> import keras
    >>> x = keras.Input((2,), name="readings")
    >>> model = keras.Model({"readings": x}, keras.layers.Dense(2, activation="softmax", name="label")(x))
    >>> model_predict_fn(model)({"readings": np.zeros((3, 2), "float32")}).shape
    (3, 2)
    """

    def predict_fn(inputs):
        return np.asarray(_head_output(_predict_raw(model, inputs, batch_size)), dtype=np.float64)

    return predict_fn


def _as_predict_fn(model_or_fn, batch_size):
    if isinstance(model_or_fn, keras.Model):
        return model_predict_fn(model_or_fn, batch_size)
    if callable(model_or_fn):
        return model_or_fn
    raise TypeError(f"Expected a keras.Model or a callable. Received: {type(model_or_fn).__name__}")


# === Missing modalities ===


def _num_examples(inputs):
    sizes = {name: len(value) for name, value in inputs.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"All inputs must have the same number of examples. Received: {sizes}")
    return next(iter(sizes.values()))


def mark_missing(inputs, name, mask=None):
    """A copy of `inputs` where modality `name` is missing in the examples of `mask`.

    Float inputs become NaN in those examples, string inputs "".

    Args:
        inputs: dict of arrays keyed by modality name.
        name: the modality to remove.
        mask: bool `[N]`, which examples lose it; None means all.

    Example:
    >>> out = mark_missing({"review": np.array([b"good", b"bad"], object)}, "review", [True, False])
    >>> out["review"].tolist()
    [b'', b'bad']
    """
    if name not in inputs:
        raise KeyError(f"No input named {name!r}. Received keys: {list(inputs)}")
    value = np.asarray(inputs[name])
    mask = np.ones(len(value), bool) if mask is None else np.asarray(mask, bool)
    if value.dtype.kind in "OSU":
        value = value.astype(object)
        empty = b"" if value.size and isinstance(value.flat[0], bytes) else ""
    elif value.dtype.kind == "f":
        empty = np.nan
    else:
        raise TypeError(
            f"Input {name!r} has dtype {value.dtype}; a missing modality is expressible "
            "only for float (NaN) or string ('') inputs."
        )
    value = value.copy()
    value[mask] = empty
    return {**inputs, name: value}


def _model_head(model):
    """The model's `"label"` layer, or None (a model from elsewhere)."""
    try:
        return model.get_layer("label")
    except (ValueError, AttributeError):
        return None


def _headline_scorer(y_true, labels, metric, multi_label, normal_label, threshold=0.5):
    """`y_prob -> the headline metric` of these targets."""
    def score(y_prob):
        return _headline_value(
            classification_metrics(y_true, y_prob, labels, multi_label, normal_label, threshold), metric)

    return score


def _score(predict_fn, inputs, scorer, context):
    y_prob = np.asarray(predict_fn(inputs), dtype=np.float64)
    if np.isnan(y_prob).any():
        raise ValueError(
            f"The model returned NaN probabilities {context}. A model evaluated with "
            "missing modalities must replace NaN inputs before its encoders."
        )
    return scorer(y_prob)


def _labels_for(labels, y_prob):
    return list(labels) if labels is not None else [str(k) for k in range(np.shape(y_prob)[1])]


def _ablation(predict_fn, inputs, full_prob, scorer, metric, on_pass):
    full = scorer(full_prob)
    missing = {}
    for name in inputs:
        missing[name] = _score(predict_fn, mark_missing(inputs, name), scorer, f"with {name!r} missing")
        on_pass()
    return {
        "metric": metric,
        "full": full,
        "missing": missing,
        "importance": {name: _worse_by(full, value, metric) for name, value in missing.items()},
    }


def modality_ablation(predict_fn, inputs, y_true, *, labels=None, metric=None, multi_label=False,
                      normal_label=None, batch_size=32):
    """The metric with each modality removed from every example, one at a time.

    Args:
        predict_fn: a Keras model or a callable `inputs_dict -> probabilities [N, C]`.
        inputs: dict of arrays keyed by modality name.
        y_true: class ids `[N]` or multi-hot `[N, C]`.
        labels: class names (default "0", "1", ...).
        metric: a scalar of `classification_metrics` (default `default_headline`).
        multi_label: whether `y_true` is multi-hot.
        normal_label: the normal class, needed for `metric="miss_rate"`.
        batch_size: batch size when `predict_fn` is a Keras model.

    Returns:
        dict with `metric`, `full` (all modalities), `missing` (metric with each
        modality missing) and `importance` (how much worse without it).

    Example:
    >>> predict = lambda x: np.stack([1 - x["a"][:, 0], x["a"][:, 0]], 1).clip(0, 1)
    >>> out = modality_ablation(lambda x: np.nan_to_num(predict(x)),
    ...                         {"a": np.array([[0.0], [1.0]])}, [0, 1])
    >>> out["importance"]["a"]
    0.5
    """
    predict_fn = _as_predict_fn(predict_fn, batch_size)
    _num_examples(inputs)
    full_prob = np.asarray(predict_fn(inputs), dtype=np.float64)
    labels = _labels_for(labels, full_prob)
    metric = metric or default_headline(multi_label)
    scorer = _headline_scorer(y_true, labels, metric, multi_label, normal_label)
    return _ablation(predict_fn, inputs, full_prob, scorer, metric, on_pass=lambda: None)


def sample_missing_mask(num_examples, num_modalities, p, rng):
    """Bool `[N, V]`: True where a modality is dropped, each with probability `p`.

    No example loses every modality: where all were drawn, one chosen at random
    is kept.
    """
    mask = rng.random((num_examples, num_modalities)) < p
    all_gone = np.flatnonzero(mask.all(axis=1))
    mask[all_gone, rng.integers(0, num_modalities, size=all_gone.size)] = False
    return mask


def _robustness(predict_fn, inputs, full_prob, scorer, metric, probabilities, seed, on_pass):
    names = list(inputs)
    num_examples = _num_examples(inputs)
    rng = np.random.default_rng(seed)
    results, notes = [], []
    if len(names) < 2:
        notes.append("Robustness needs at least 2 modalities: one is always kept.")
    for p in probabilities:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Drop probabilities must be in [0, 1). Received: {p}")
        mask = sample_missing_mask(num_examples, len(names), p, rng)
        dropped = inputs
        for v, name in enumerate(names):
            if mask[:, v].any():
                dropped = mark_missing(dropped, name, mask[:, v])
        if mask.any():
            value = _score(predict_fn, dropped, scorer, f"with modalities dropped at p={p}")
            on_pass()
        else:
            value = scorer(full_prob)
        results.append(
            {
                "p": float(p),
                "value": value,
                "fraction_missing": float(mask.mean()),
                "fraction_missing_per_modality": {n: float(mask[:, v].mean()) for v, n in enumerate(names)},
            }
        )
    return {"metric": metric, "seed": seed, "results": results, "notes": notes}


def missing_modality_robustness(predict_fn, inputs, y_true, *, labels=None, metric=None,
                                probabilities=DEFAULT_ROBUSTNESS_PROBABILITIES, multi_label=False,
                                normal_label=None, seed=0, batch_size=32):
    """The metric when each example loses each modality independently with probability p.

    Masks are drawn with `numpy.random.default_rng(seed)`; an example never
    loses all its modalities, so the realised fraction can be a little below p
    (it is reported as `fraction_missing`).

    Args:
        predict_fn: a Keras model or a callable `inputs_dict -> probabilities [N, C]`.
        inputs: dict of arrays keyed by modality name.
        y_true: class ids `[N]` or multi-hot `[N, C]`.
        labels: class names (default "0", "1", ...).
        metric: a scalar of `classification_metrics` (default `default_headline`).
        probabilities: drop probabilities p, each in [0, 1).
        multi_label: whether `y_true` is multi-hot.
        normal_label: the normal class, needed for `metric="miss_rate"`.
        seed: random seed of the masks.
        batch_size: batch size when `predict_fn` is a Keras model.

    Returns:
        dict with `metric`, `seed` and `results`: one `{p, value, fraction_missing,
        fraction_missing_per_modality}` per p.

    Example:
    >>> predict = lambda x: np.nan_to_num(np.stack([1 - x["a"][:, 0], x["a"][:, 0]], 1))
    >>> out = missing_modality_robustness(
    ...     predict, {"a": np.array([[0.0], [1.0]]), "b": np.zeros((2, 1))}, [0, 1])
    >>> out["results"][0]["value"]
    1.0
    """
    predict_fn = _as_predict_fn(predict_fn, batch_size)
    y_prob = np.asarray(predict_fn(inputs), dtype=np.float64)
    labels = _labels_for(labels, y_prob)
    metric = metric or default_headline(multi_label)
    scorer = _headline_scorer(y_true, labels, metric, multi_label, normal_label)
    return _robustness(predict_fn, inputs, y_prob, scorer, metric, probabilities, seed, on_pass=lambda: None)


def fusion_weights(model, inputs, batch_size=32):
    """Mean per-modality fusion weight, or None when the model exposes none.

    Looks for a layer named "fusion" whose output is `(fused, weights [B, V])`
    and averages `weights` over the examples.

    Args:
        model: a functional Keras model.
        inputs: dict of arrays keyed by modality name.
        batch_size: prediction batch size.

    Returns:
        `{modality_name: mean weight}` in the order of `fusion.modality_names`, or None.
    """
    try:
        fusion = model.get_layer("fusion")
    except ValueError:
        return None
    output = fusion.output
    if not isinstance(output, (list, tuple)) or len(output) != 2:
        return None
    probe = keras.Model(model.input, output[1], name="fusion_weights_probe")
    weights = np.asarray(_predict_raw(probe, inputs, batch_size), dtype=np.float64)
    weights = weights.reshape(weights.shape[0], weights.shape[1], -1).mean(axis=2)
    names = list(getattr(fusion, "modality_names", None) or _model_input_names(model) or [])
    if len(names) != weights.shape[1]:
        names = [str(v) for v in range(weights.shape[1])]
    means = weights.mean(axis=0)
    return {name: float(means[v]) for v, name in enumerate(names)}


# === Plots ===


def _figure(width=6.0, height=4.5):
    # A bare Figure (no pyplot): no global backend state, renders with Agg.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png_bytes(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def confusion_matrix_figure(matrix, labels, title="Confusion matrix"):
    """A matplotlib Figure of a confusion matrix, coloured by row-normalised recall."""
    matrix = np.asarray(matrix)
    size = max(4.0, 0.6 * len(labels) + 2.5)
    figure = _figure(size, size * 0.85)
    axes = figure.add_subplot()
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, label="fraction of true class")
    ticks = np.arange(len(labels))
    axes.set_xticks(ticks, labels, rotation=45, ha="right")
    axes.set_yticks(ticks, labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                axes.text(j, i, str(matrix[i, j]), ha="center", va="center",
                          color="white" if rates[i, j] > 0.5 else "black", fontsize=8)
    return figure


def _reliability_figure(calib):
    figure = _figure(5, 5)
    axes = figure.add_subplot()
    bins = [b for b in calib["bins"] if b["count"]]
    width = 1.0 / calib["num_bins"]
    axes.bar([b["lower"] for b in calib["bins"]],
             [b["accuracy"] or 0.0 for b in calib["bins"]],
             width=width, align="edge", edgecolor="black", alpha=0.7, label="observed")
    axes.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    axes.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="C1",
              label="bin mean confidence")
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel=calib["kind"],
             ylabel="observed frequency", title=f"Reliability diagram (ECE {calib['ece']:.3f})")
    axes.legend(loc="upper left")
    return figure


def _roc_figure(y_true, y_prob, labels, multi_label):
    figure = _figure(6, 5)
    axes = figure.add_subplot()
    for k, label in enumerate(labels[:20]):
        truth = y_true[:, k] if multi_label else (y_true == k).astype(np.int64)
        if not _has_both_classes(truth):
            continue
        fpr, tpr, _ = roc_curve(truth, y_prob[:, k])
        axes.plot(fpr, tpr, label=f"{label} (AUC {roc_auc(truth, y_prob[:, k]):.3f})")
    axes.plot([0, 1], [0, 1], "k:", linewidth=1)
    axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate",
             title="ROC curves" + ("" if multi_label else " (one-vs-rest)"))
    axes.legend(loc="lower right", fontsize=8)
    return figure


def _bar_figure(values, title, ylabel, highlight_first=False):
    figure = _figure(max(5.0, 1.2 * len(values) + 2), 4)
    axes = figure.add_subplot()
    names = list(values)
    heights = [values[n] if values[n] is not None else 0.0 for n in names]
    colors = ["C1" if highlight_first and i == 0 else "C0" for i in range(len(names))]
    bars = axes.bar(names, heights, color=colors)
    axes.bar_label(bars, fmt="%.3f", fontsize=8)
    axes.axhline(0, color="k", linewidth=0.5)
    axes.set(title=title, ylabel=ylabel)
    axes.tick_params(axis="x", labelrotation=20)
    return figure


def _robustness_figure(robustness):
    figure = _figure(5, 4)
    axes = figure.add_subplot()
    points = [(r["p"], r["value"]) for r in robustness["results"] if r["value"] is not None]
    axes.plot([p for p, _ in points], [v for _, v in points], "o-")
    axes.set(xlabel="drop probability per modality", ylabel=robustness["metric"],
             title="Missing-modality robustness")
    return figure


def _write_plots(results, y_true, y_prob, out_dir):
    """Writes the PNGs; returns {plot name: file name}."""
    labels, multi_label = results["labels"], results["multi_label"]
    metrics, metric = results["metrics"], results["headline"]["metric"]
    figures = {}
    if not multi_label:
        figures["confusion_matrix"] = confusion_matrix_figure(metrics["confusion_matrix"], labels)
    figures["reliability_diagram"] = _reliability_figure(metrics["calibration"])
    if any(_has_both_classes(y_true[:, k] if multi_label else (y_true == k)) for k in range(len(labels))):
        figures["roc_curves"] = _roc_figure(y_true, y_prob, labels, multi_label)
    if results["ablation"]:
        figures["modality_ablation"] = _bar_figure(
            results["ablation"]["importance"], "Modality ablation", f"{metric} lost without modality"
        )
    if results["robustness"] and len(results["robustness"]["results"]) > 1:
        figures["robustness"] = _robustness_figure(results["robustness"])
    if results["baselines"]:
        values = {"model": results["baselines"]["model"]}
        values.update({n: b["value"] for n, b in results["baselines"]["baselines"].items()})
        figures["baselines"] = _bar_figure(values, "Model vs unimodal baselines", metric, highlight_first=True)
    files = {}
    for name, figure in figures.items():
        files[name] = f"{name}.png"
        figure.savefig(os.path.join(out_dir, files[name]))
    return files


# === Reports ===


def _fmt(value):
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.3f}" if math.isfinite(value) else "n/a"
    return str(value)


def _signed(value):
    return "n/a" if value is None else f"{value:+.3f}"


_SCALAR_METRICS = ["accuracy", "subset_accuracy", "macro_f1", "roc_auc_macro", "pr_auc_macro",
                   "sensitivity_at_specificity_macro", "ece", "miss_rate", "false_alarm_rate"]


def _baselines(results):
    return (results.get("baselines") or {}).get("baselines") or {}


def _per_class_table(metrics, multi_label):
    """A `("table", header, rows)` block of one model's per-label / per-class metrics."""
    if multi_label:
        header = ["label", "ROC-AUC", "PR-AUC", f"sensitivity @ {metrics['specificity']:.0%} specificity",
                  f"F1 @ {metrics['threshold']}", "support"]
        rows = [[label, _fmt(m["roc_auc"]), _fmt(m["pr_auc"]), _fmt(m["sensitivity_at_specificity"]),
                 _fmt(m["f1"]), _fmt(m["support"])] for label, m in metrics["per_label"].items()]
    else:
        header = ["class", "precision", "recall", "F1", "support", "ROC-AUC", "PR-AUC"]
        rows = [[label, _fmt(m["precision"]), _fmt(m["recall"]), _fmt(m["f1"]), _fmt(m["support"]),
                 _fmt(m["roc_auc"]), _fmt(m["pr_auc"])] for label, m in metrics["per_class"].items()]
    return ("table", header, rows)


def _report_sections(results):
    """The report as data: [(title, [block])], block = ("text", str) | ("table", header, rows) | ("image", file)."""
    metrics, headline = results["metrics"], results["headline"]
    plots = results.get("files", {}).get("plots", {})
    metric = headline["metric"]
    sections = []
    summary = [
        ("text", f"{results['num_examples']} examples; task: "
                 f"{'multi-label' if results['multi_label'] else 'single-label'}; "
                 f"labels: {', '.join(results['labels'])}."),
        ("text", f"Headline metric: {metric} = {_fmt(headline['value'])}"
                 f"{' (lower is better)' if metric in LOWER_IS_BETTER else ''}."),
    ]
    # Every metric of the model and of each unimodal baseline, side by side.
    every_model = {"model": metrics, **{name: b["metrics"] for name, b in _baselines(results).items()}}
    rows = [[n] + [_fmt(m[n]) for m in every_model.values()] for n in _SCALAR_METRICS if n in metrics]
    summary.append(("table", ["metric", *every_model], rows))
    sections.append(("Summary", summary))

    baselines = results["baselines"]
    if baselines:
        header, rows = comparison_rows(results)
        blocks = [("table", header, rows)]
        if "baselines" in plots:
            blocks.append(("image", plots["baselines"]))
        sections.append(("Model vs unimodal baselines", blocks))

    for name, model_metrics in every_model.items():
        title = "Per-label metrics" if results["multi_label"] else "Per-class metrics"
        sections.append((title if name == "model" else f"{title}: {name}",
                         [_per_class_table(model_metrics, results["multi_label"])]))
    if not results["multi_label"]:
        if "inspection" in metrics:
            inspection = metrics["inspection"]
            sections.append(("Inspection", [
                ("text", f"Normal class: {inspection['normal_label']!r}. Miss rate (defects predicted "
                         f"normal): {_fmt(metrics['miss_rate'])} of {inspection['num_defects']} defects. "
                         f"False alarm rate: {_fmt(metrics['false_alarm_rate'])} of "
                         f"{inspection['num_normal']} normal examples."),
            ]))
        matrix = metrics["confusion_matrix"]
        rows = [[label] + [str(c) for c in row] for label, row in zip(results["labels"], matrix)]
        blocks = [("text", "Rows: true class; columns: predicted class."),
                  ("table", ["true \\ predicted"] + results["labels"], rows)]
        if "confusion_matrix" in plots:
            blocks.append(("image", plots["confusion_matrix"]))
        sections.append(("Confusion matrix", blocks))

    calib = metrics["calibration"]
    blocks = [("text", f"Expected calibration error over {calib['num_bins']} bins "
                       f"({calib['kind']}): {_fmt(calib['ece'])}.")]
    for name in ("reliability_diagram", "roc_curves"):
        if name in plots:
            blocks.append(("image", plots[name]))
    sections.append(("Calibration and ROC", blocks))

    ablation = results["ablation"]
    if ablation:
        rows = [[name, _fmt(ablation["missing"][name]), _signed(ablation["importance"][name])]
                for name in ablation["missing"]]
        blocks = [("text", f"{metric} with all modalities: {_fmt(ablation['full'])}. Each row marks one "
                           "modality missing in every example; importance is how much worse the "
                           "model gets without it."),
                  ("table", ["modality", f"{metric} without it", "importance"], rows)]
        if "modality_ablation" in plots:
            blocks.append(("image", plots["modality_ablation"]))
        sections.append(("Modality ablation", blocks))

    robustness = results["robustness"]
    if robustness:
        rows = [[f"{r['p']:.2f}", _fmt(r["fraction_missing"]), _fmt(r["value"])] for r in robustness["results"]]
        blocks = [("text", "Each example loses each modality independently with probability p "
                           f"(never all of them; seed {robustness['seed']})."),
                  ("table", ["p", "fraction missing", metric], rows)]
        if "robustness" in plots:
            blocks.append(("image", plots["robustness"]))
        sections.append(("Missing-modality robustness", blocks))

    if results["fusion_weights"]:
        rows = [[name, _fmt(w)] for name, w in results["fusion_weights"].items()]
        sections.append(("Fusion weights", [("text", "Mean weight the fusion layer gives each modality."),
                                            ("table", ["modality", "mean weight"], rows)]))
    notes = metrics["notes"] + results["notes"]
    if notes:
        sections.append(("Notes", [("text", note) for note in notes]))
    return sections


def _markdown(sections):
    lines = ["# Evaluation report", ""]
    for title, blocks in sections:
        lines += [f"## {title}", ""]
        for block in blocks:
            if block[0] == "text":
                lines += [block[1], ""]
            elif block[0] == "table":
                _, header, rows = block
                cells = lambda row: "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"
                lines += [cells(header), "|" + "---|" * len(header)] + [cells(r) for r in rows] + [""]
            else:
                lines += [f"![{block[1]}]({block[1]})", ""]
    return "\n".join(lines)


_HTML_STYLE = (
    "body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
    "text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}"
    "img{max-width:100%;margin:0.5em 0}"
)


def _html(sections, out_dir):
    # PNGs are embedded as data URIs so the HTML stays complete when mailed or moved.
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Evaluation report</title>",
             f"<style>{_HTML_STYLE}</style></head><body><h1>Evaluation report</h1>"]
    for title, blocks in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        for block in blocks:
            if block[0] == "text":
                parts.append(f"<p>{html.escape(block[1])}</p>")
            elif block[0] == "table":
                _, header, rows = block
                parts.append("<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
                for row in rows:
                    parts.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
                parts.append("</table>")
            else:
                with open(os.path.join(out_dir, block[1]), "rb") as f:
                    data = base64.b64encode(f.read()).decode("ascii")
                parts.append(f"<img alt='{html.escape(block[1])}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def json_clean(value):
    """Converts NumPy values and tuples to plain JSON types; NaN and inf become None."""
    if isinstance(value, dict):
        return {str(k): json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_clean(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _fractions_of_ceiling(ceilings, metric, value, comparison):
    """`{"model" | baseline name: {"value": ceiling, "fraction": score / ceiling}}`."""
    if not ceilings:
        return None
    scores = {"model": value, **{n: b["value"] for n, b in ((comparison or {}).get("baselines") or {}).items()}}
    out = {}
    for name, ceiling in ceilings.items():
        best, score = ceiling.get(metric), scores.get(name)
        out[name] = {"value": best, "fraction": None if not best or score is None else score / best}
    return out


def comparison_rows(results):
    """`(header, rows)`: the model and each baseline on the headline metric,
    with the ceiling the data allows and the fraction reached, when known."""
    metric, value = results["headline"]["metric"], results["headline"]["value"]
    ceilings = results.get("ceilings") or {}
    rows = [["model (all modalities)", ", ".join(results["modalities"]), value, None, "model"]]
    for name, b in ((results.get("baselines") or {}).get("baselines") or {}).items():
        rows.append([name, b["input"], b["value"], b["model_minus_baseline"], name])
    header = ["model", "inputs", metric, "model - baseline"]
    table = [[name, inputs, _fmt(v), "" if d is None else _signed(d)] for name, inputs, v, d, _ in rows]
    if ceilings:
        header += ["ceiling", "of ceiling"]
        for row, (*_, key) in zip(table, rows):
            ceiling = ceilings.get(key) or {}
            row += [_fmt(ceiling.get("value")), _fmt(ceiling.get("fraction"))]
    return header, table


def format_results_table(results):
    """A short plain-text table of the headline metric: model vs baselines.

    Args:
        results: the dict returned by `evaluate`.

    Returns:
        str, one row per model.
    """
    header, rows = comparison_rows(results)
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


# === TensorBoard ===


def _png_to_image_batch(png):
    return tf.image.decode_png(png, channels=4)[None]


def _write_tensorboard(results, log_dir, step=0):
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        for name in ("accuracy", "macro_f1", "roc_auc_macro", "pr_auc_macro", "ece", "miss_rate",
                     "false_alarm_rate", "subset_accuracy"):
            if results["metrics"].get(name) is not None:
                tf.summary.scalar(f"evaluation/{name}", results["metrics"][name], step=step)
        for name, value in (results["ablation"] or {}).get("importance", {}).items():
            if value is not None:
                tf.summary.scalar(f"ablation_importance/{name}", value, step=step)
        for r in (results["robustness"] or {}).get("results", []):
            if r["value"] is not None:
                tf.summary.scalar(f"robustness/p={r['p']:.2f}", r["value"], step=step)
        for name, b in (results["baselines"] or {}).get("baselines", {}).items():
            if b["value"] is not None:
                tf.summary.scalar(f"baselines/{name}", b["value"], step=step)
        if not results["multi_label"]:
            figure = confusion_matrix_figure(results["metrics"]["confusion_matrix"], results["labels"])
            tf.summary.image("evaluation/confusion_matrix", _png_to_image_batch(_png_bytes(figure)), step=step)
    writer.flush()
    writer.close()


class ConfusionMatrixCallback(keras.callbacks.Callback):
    """Writes the validation confusion matrix as a TensorBoard image after each epoch.

    Single-label models only; on a multi-label head it warns and does nothing.

    Args:
        val_data: batched `tf.data.Dataset` of `(inputs, y)` (y: class ids or one-hot).
        labels: class names.
        log_dir: TensorBoard log directory (as given to `keras.callbacks.TensorBoard`).
        subdir: run below `log_dir` ("validation", next to TensorBoard's validation scalars).
        every_n_epochs: write every n-th epoch.
        max_batches: use at most this many validation batches (None: all).

    Example:
    >>> callback = ConfusionMatrixCallback(val_ds, ["cat", "dog"], "runs/demo")  # doctest: +SKIP
    >>> model.fit(train_ds, validation_data=val_ds, callbacks=[callback])  # doctest: +SKIP
    """

    def __init__(self, val_data, labels, log_dir, subdir="validation", every_n_epochs=1, max_batches=None):
        super().__init__()
        self.val_data = val_data
        self.labels = list(labels)
        self.log_dir = os.path.join(log_dir, subdir) if subdir else log_dir
        self.every_n_epochs = every_n_epochs
        self.max_batches = max_batches
        self._writer = None
        self._disabled = False

    def on_train_begin(self, logs=None):
        try:
            head = self.model.get_layer("label")
        except ValueError:
            head = None
        if getattr(head, "multi_label", False):
            import warnings

            warnings.warn("ConfusionMatrixCallback is for single-label models; the 'label' head "
                          "is multi-label, so no confusion matrix is written.")
            self._disabled = True

    def _confusion_matrix(self):
        matrix = np.zeros((len(self.labels),) * 2, dtype=np.int64)
        dataset = self.val_data if self.max_batches is None else self.val_data.take(self.max_batches)
        for batch in dataset:
            x, y = batch[0], batch[1]
            probs = np.asarray(_head_output(self.model(x, training=False)))
            y = np.asarray(_head_output(y))
            if y.ndim == 2:  # one-hot
                y = y.argmax(axis=1)
            matrix += confusion_matrix(y.astype(np.int64).ravel(), probs.argmax(axis=1), len(self.labels))
        return matrix

    def on_epoch_end(self, epoch, logs=None):
        if self._disabled or (epoch + 1) % self.every_n_epochs:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        figure = confusion_matrix_figure(self._confusion_matrix(), self.labels,
                                         title=f"Confusion matrix (epoch {epoch + 1})")
        with self._writer.as_default():
            tf.summary.image("confusion_matrix", _png_to_image_batch(_png_bytes(figure)), step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


# === evaluate ===


def _progbar(target, verbose, unit_name):
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 0
    return keras.utils.Progbar(target, verbose=verbose, unit_name=unit_name)


def _collect(dataset, multi_label, max_examples, verbose):
    """Reads a batched dataset of (inputs, y[, weights]) into NumPy arrays."""
    cardinality = int(dataset.cardinality())
    bar = _progbar(cardinality if cardinality > 0 else None, verbose, "batch")
    columns, targets, count = {}, [], 0
    for step, element in enumerate(dataset):
        if not isinstance(element, (tuple, list)) or len(element) < 2 or not isinstance(element[0], dict):
            raise ValueError("Expected a dataset of (inputs_dict, y) pairs, inputs keyed by modality name. "
                             f"Received an element of type {type(element).__name__}.")
        x, y = element[0], np.asarray(_head_output(element[1]))
        expected_rank = 2 if multi_label else 1
        if y.ndim not in (expected_rank, 2):
            raise ValueError(
                f"Expected a batched dataset with y of shape "
                f"{'[batch, num_labels] (multi-hot)' if multi_label else '[batch] (class ids)'}. "
                f"Received y of shape {y.shape} in batch {step}; call dataset.batch(n) first?"
            )
        for name, value in x.items():
            columns.setdefault(name, []).append(value.numpy())
        targets.append(y)
        count += len(y)
        bar.update(step + 1)
        if max_examples is not None and count >= max_examples:
            break
    if not targets:
        raise ValueError("The evaluation dataset is empty.")
    inputs = {name: np.concatenate(parts)[:max_examples] for name, parts in columns.items()}
    y_true = np.concatenate(targets)[:max_examples]
    if not multi_label and y_true.ndim == 2:  # one-hot targets, as for categorical_crossentropy
        y_true = y_true.argmax(axis=1)
    return inputs, y_true


def _unimodal_prob(model, inputs, input_name, batch_size):
    if input_name not in inputs:
        raise ValueError(f"Baseline input {input_name!r} is not in the data. Received keys: {list(inputs)}")
    if isinstance(model, keras.Model) and not isinstance(model.input, dict):
        # A single-input model that is not keyed by name takes the bare array.
        dataset = tf.data.Dataset.from_tensor_slices(inputs[input_name]).batch(batch_size)
        return np.asarray(_head_output(model.predict(dataset, verbose=0)), dtype=np.float64)
    return _as_predict_fn(model, batch_size)({input_name: inputs[input_name]})


def evaluate(model, dataset, *, labels, multi_label=False, normal_label=None, baselines=None,
             ceilings=None, out_dir=None, tensorboard_dir=None, headline=None,
             robustness_probabilities=DEFAULT_ROBUSTNESS_PROBABILITIES, seed=0, batch_size=32,
             max_examples=None, verbose="auto"):
    """Evaluates a multimodal classifier and writes a report.

    Runs `model` on `dataset`, then computes `classification_metrics`, the
    modality ablation, missing-modality robustness, fusion weights and the
    comparison with unimodal `baselines` on the headline metric. The examples
    are held in memory (the ablation re-runs the model on them), so cap large
    sets with `max_examples`.

    Args:
        model: functional Keras model with dict inputs keyed by modality name.
        dataset: batched `tf.data.Dataset` of `(inputs_dict, y)`; y is class ids
            `[B]` (or one-hot), multi-hot `[B, C]` when `multi_label`.
        labels: class names, in the order of the model's output columns.
        multi_label: whether the head is multi-label (sigmoid).
        normal_label: single-label inspection tasks: the normal class (e.g. "ok").
        baselines: `{name: (unimodal_model, input_name)}`; each model takes only
            its own input.
        ceilings: `{"model" | baseline name: {metric: best possible value}}`,
            e.g. from `mmkeras.data.ceiling`; the report shows each score
            beside its ceiling and the fraction of it reached.
        out_dir: where to write `metrics.json`, `report.md`, `report.html` and PNGs.
        tensorboard_dir: where to write scalars and the confusion-matrix image.
        headline: scalar of `classification_metrics` to compare on (default
            accuracy, or roc_auc_macro for multi-label).
        robustness_probabilities: drop probabilities for the robustness sweep.
        seed: seed of the robustness masks.
        batch_size: prediction batch size.
        max_examples: evaluate at most this many examples.
        verbose: "auto" (progress bar on a terminal), 0 or 1.

    Returns:
        A JSON-clean dict: `headline`, `metrics`, `ablation`, `robustness`,
        `fusion_weights`, `baselines`, `notes` (and `files` when `out_dir`).

    Example:
    >>> results = evaluate(model, val_ds, labels=["neg", "pos"], out_dir="runs/eval")  # doctest: +SKIP
    >>> print(format_results_table(results))  # doctest: +SKIP
    """
    labels = list(labels)
    metric = headline or default_headline(multi_label)
    baselines = dict(baselines or {})
    all_inputs, y_true = _collect(dataset, multi_label, max_examples, verbose)
    for name, baseline in baselines.items():
        if not (isinstance(baseline, (tuple, list)) and len(baseline) == 2):
            raise ValueError(f"Expected baselines[{name!r}] = (unimodal_model, input_name). Received: {baseline!r}")
    # Only the model's own inputs are modalities; other fields (ids, ...) stay out of the ablation.
    names = _model_input_names(model) or list(all_inputs)
    missing = [n for n in names if n not in all_inputs]
    if missing:
        raise ValueError(f"The model takes inputs {names}; the dataset lacks {missing}. "
                         f"Received keys: {list(all_inputs)}")
    inputs = {n: all_inputs[n] for n in names}
    modalities = list(inputs)
    notes = []
    if 0.0 not in robustness_probabilities:
        robustness_probabilities = (0.0, *robustness_probabilities)
    num_passes = 1 + len(modalities) + len([p for p in robustness_probabilities if p > 0]) + len(baselines)
    bar = _progbar(num_passes, verbose, "pass")
    passes_done = [0]

    def advance():
        passes_done[0] += 1
        bar.update(min(passes_done[0], num_passes))

    predict_fn = model_predict_fn(model, batch_size)
    y_prob = predict_fn(inputs)
    advance()
    # Multi-label predictions at the head's own threshold, as the export answers.
    threshold = float(getattr(_model_head(model), "threshold", 0.5))
    metrics = classification_metrics(y_true, y_prob, labels, multi_label, normal_label, threshold)
    value = _headline_value(metrics, metric)
    y_true = np.asarray(y_true).astype(np.int64)
    scorer = _headline_scorer(y_true, labels, metric, multi_label, normal_label, threshold)

    ablation = _ablation(predict_fn, inputs, y_prob, scorer, metric, on_pass=advance)
    robustness = _robustness(predict_fn, inputs, y_prob, scorer, metric, robustness_probabilities, seed,
                             on_pass=advance)
    weights = fusion_weights(model, inputs, batch_size)
    if weights is None:
        notes.append("The model exposes no fusion weights (no 'fusion' layer with a (fused, weights) output).")

    comparison = None
    if baselines:
        comparison = {"metric": metric, "model": value, "baselines": {}}
        for name, (baseline_model, input_name) in baselines.items():
            prob = _unimodal_prob(baseline_model, all_inputs, input_name, batch_size)
            baseline_metrics = classification_metrics(y_true, prob, labels, multi_label, normal_label,
                                                      float(getattr(_model_head(baseline_model), "threshold", 0.5)))
            baseline_value = _headline_value(baseline_metrics, metric)
            advance()
            comparison["baselines"][name] = {
                "input": input_name,
                "value": baseline_value,
                "model_minus_baseline": None if None in (value, baseline_value) else value - baseline_value,
                "metrics": baseline_metrics,
            }

    results = {
        "num_examples": int(len(y_true)),
        "labels": labels,
        "modalities": modalities,
        "multi_label": bool(multi_label),
        "normal_label": normal_label,
        "headline": {"metric": metric, "value": value, "higher_is_better": metric not in LOWER_IS_BETTER},
        "metrics": metrics,
        "ablation": ablation,
        "robustness": robustness,
        "fusion_weights": weights,
        "baselines": comparison,
        "ceilings": _fractions_of_ceiling(ceilings, metric, value, comparison),
        "notes": notes + robustness.pop("notes"),
    }
    results = json_clean(results)
    if passes_done[0] < num_passes:  # robustness skips passes where nothing was dropped
        bar.update(num_passes)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        plots = _write_plots(results, y_true, np.clip(y_prob, 0, 1), out_dir)
        results["files"] = {"metrics": "metrics.json", "report_md": "report.md",
                            "report_html": "report.html", "plots": plots}
        sections = _report_sections(results)
        with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as f:
            f.write(_markdown(sections))
        with open(os.path.join(out_dir, "report.html"), "w", encoding="utf-8") as f:
            f.write(_html(sections, out_dir))
        with open(os.path.join(out_dir, "metrics.json"), "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2, allow_nan=False)
    if tensorboard_dir:
        _write_tensorboard(results, tensorboard_dir)
    return results
