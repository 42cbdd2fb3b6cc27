"""Classification metrics of predicted probabilities against the truth.

What scikit-learn computes exactly comes from it: accuracy, precision, recall,
F1, the confusion matrix, ROC curves, ROC-AUC and PR-AUC (average precision,
the step-wise area). Precision, recall and F1 are 0 where their denominator
is 0. What it lacks is here: sensitivity at a given specificity and the
inspection rates (miss rate, false-alarm rate); calibration (ECE) is in
`calibration.py`.
"""

import numpy as np
import sklearn.metrics

from mmkeras.evaluation.calibration import calibration
from mmkeras.headlines import default_headline  # noqa: F401  (public here too)

# Headline metrics where smaller is better; every other scalar is "higher is
# better". Ablation importance is always "how much worse without it".
LOWER_IS_BETTER = ("ece", "miss_rate", "false_alarm_rate")


# === Validation ===


def class_ids(y_true):
    """Single-label targets as class ids `[N]`.

    Takes class ids `[N]`, class ids `[N, 1]` (the Keras datasets' convention,
    which Keras' sparse losses accept) or one-hot rows `[N, C]`. Only a last
    axis longer than 1 is one-hot: an arg-max over a last axis of 1 would make
    every label class 0.

    Example:
    >>> class_ids([[2], [0]]).tolist(), class_ids([[0, 0, 1], [1, 0, 0]]).tolist()
    ([2, 0], [2, 0])
    """
    y_true = np.asarray(y_true)
    if y_true.ndim == 2 and y_true.shape[1] == 1:
        return y_true[:, 0]
    if y_true.ndim == 2:
        return y_true.argmax(axis=1)
    return y_true


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


def has_both_classes(y_true):
    """Whether a 0/1 array holds positives and negatives (ranking metrics need both)."""
    return 0 < int(np.sum(y_true)) < len(y_true)


def roc_curve(y_true, scores):
    """ROC curve of a binary problem: a point at every distinct score.

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
    y_true = np.asarray(y_true)
    if not has_both_classes(y_true):
        raise ValueError("A ROC curve needs both positive and negative examples in `y_true`.")
    # Every point is kept: dropping collinear ones would hide operating points
    # from `sensitivity_at_specificity`.
    return sklearn.metrics.roc_curve(y_true, np.asarray(scores, dtype=np.float64), drop_intermediate=False)


def roc_auc(y_true, scores):
    """Area under the ROC curve; None when `y_true` lacks a class.

    Example:
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    if not has_both_classes(np.asarray(y_true)):
        return None
    return float(sklearn.metrics.roc_auc_score(y_true, scores))


def average_precision(y_true, scores):
    """PR-AUC as average precision, `sum_n (R_n - R_{n-1}) P_n`; None when undefined.

    Example:
    >>> round(average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 4)
    0.8333
    """
    if not has_both_classes(np.asarray(y_true)):
        return None
    return float(sklearn.metrics.average_precision_score(y_true, scores))


def sensitivity_at_specificity(y_true, scores, specificity=0.9):
    """Best sensitivity (recall) over thresholds whose specificity is at least `specificity`.

    Example:
    >>> sensitivity_at_specificity([0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.9, 0.8, 0.95], 0.75)
    1.0
    """
    if not has_both_classes(np.asarray(y_true)):
        return None
    fpr, tpr, _ = roc_curve(y_true, scores)
    allowed = (1.0 - fpr) >= specificity - 1e-12
    return float(tpr[allowed].max())


# === Classification metrics ===


def _safe_ratio(numerator, denominator):
    return float(numerator / denominator) if denominator else 0.0


def mean_or_none(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def confusion_matrix(y_true, y_pred, num_classes):
    """Counts `[C, C]`: row = true class, column = predicted class.

    Example:
    >>> confusion_matrix([0, 1, 1], [0, 0, 1], 2).tolist()
    [[1, 0], [1, 1]]
    """
    return sklearn.metrics.confusion_matrix(y_true, y_pred, labels=np.arange(num_classes))


def _single_label_metrics(y_true, y_prob, labels, normal_label):
    num_classes = len(labels)
    y_pred = y_prob.argmax(axis=1)
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    precision, recall, f1, support = sklearn.metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(num_classes), zero_division=0)
    notes, per_class, roc, pr = [], {}, {}, {}
    for k, label in enumerate(labels):
        is_class = (y_true == k).astype(np.int64)
        roc[label] = roc_auc(is_class, y_prob[:, k])
        pr[label] = average_precision(is_class, y_prob[:, k])
        if roc[label] is None:
            why = "absent from" if support[k] == 0 else "the only class in"
            notes.append(f"ROC-AUC/PR-AUC skip class {label!r}: it is {why} y_true.")
        per_class[label] = {
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "f1": float(f1[k]),
            "support": int(support[k]),
            "roc_auc": roc[label],
            "pr_auc": pr[label],
        }
    confidence = y_prob.max(axis=1)
    calib = calibration(confidence, y_pred == y_true)
    calib["kind"] = "top-label confidence"
    metrics = {
        "task": "single_label",
        "num_examples": int(y_true.size),
        "labels": list(labels),
        "accuracy": float(sklearn.metrics.accuracy_score(y_true, y_pred)),
        # Without `labels=`, scikit-learn averages the classes that occur in
        # y_true or in the predictions, so unused labels don't count as 0.
        "macro_f1": float(sklearn.metrics.f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "roc_auc_macro": mean_or_none(roc.values()),
        "pr_auc_macro": mean_or_none(pr.values()),
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
    return {
        **inspection_rates(y_true, y_pred, normal),
        "inspection": {
            "normal_label": normal_label,
            "num_defects": int(is_defect.sum()),
            "num_normal": int((~is_defect).sum()),
            "recall_per_class": {label: per_class[label]["recall"] for label in labels},
        },
    }


def inspection_rates(y_true, y_pred, normal):
    """`miss_rate` (defects called normal) and `false_alarm_rate` (normal called a defect)."""
    is_defect, called_normal = y_true != normal, y_pred == normal
    return {"miss_rate": _safe_ratio(np.sum(is_defect & called_normal), np.sum(is_defect)),
            "false_alarm_rate": _safe_ratio(np.sum(~is_defect & ~called_normal), np.sum(~is_defect))}


def _multi_label_metrics(y_true, y_prob, labels, threshold=0.5, specificity=0.9):
    y_pred = (y_prob >= threshold).astype(np.int64)
    notes, per_label = [], {}
    for k, label in enumerate(labels):
        truth, scores, pred = y_true[:, k], y_prob[:, k], y_pred[:, k]
        # One binary problem per label (also right for a single-label column,
        # which scikit-learn would read as two classes).
        precision, recall, f1, _ = sklearn.metrics.precision_recall_fscore_support(
            truth, pred, labels=[1], zero_division=0)
        if not has_both_classes(truth):
            notes.append(
                f"ROC-AUC/PR-AUC/sensitivity skip label {label!r}: y_true has only "
                f"{'negatives' if truth.sum() == 0 else 'positives'} for it."
            )
        per_label[label] = {
            "roc_auc": roc_auc(truth, scores),
            "pr_auc": average_precision(truth, scores),
            "sensitivity_at_specificity": sensitivity_at_specificity(truth, scores, specificity),
            "precision": float(precision[0]),
            "recall": float(recall[0]),
            "f1": float(f1[0]),
            "support": int(truth.sum()),
        }
    # As for single-label: labels neither true nor predicted anywhere stay out of macro-F1.
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
        "roc_auc_macro": mean_or_none(m["roc_auc"] for m in per_label.values()),
        "pr_auc_macro": mean_or_none(m["pr_auc"] for m in per_label.values()),
        "sensitivity_at_specificity_macro": mean_or_none(
            m["sensitivity_at_specificity"] for m in per_label.values()
        ),
        "macro_f1": float(np.mean([per_label[l]["f1"] for l in seen])) if seen else 0.0,
        # On 0/1 matrices scikit-learn's accuracy is subset accuracy (every label right).
        "subset_accuracy": float(sklearn.metrics.accuracy_score(y_true, y_pred)),
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


# === The headline metric ===


def headline_value(metrics, name):
    """The scalar `name` of a `classification_metrics` dict (None where undefined)."""
    value = metrics.get(name, "absent")
    if value != "absent" and (value is None or isinstance(value, (int, float))):
        return value
    scalars = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)) and k != "num_examples")
    raise ValueError(f"Unknown headline metric {name!r}. Expected one of {scalars}.")


def worse_by(full, reduced, metric):
    """How much worse `reduced` is than `full` (positive = worse)."""
    if full is None or reduced is None:
        return None
    return float(reduced - full) if metric in LOWER_IS_BETTER else float(full - reduced)
