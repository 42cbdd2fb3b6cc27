"""One headline metric computed alone, for the bootstrap's thousand resamples.

`classification_metrics` computes every metric, per-class table and
calibration bin of a set of predictions (10-20 ms); the report's intervals
need one scalar a thousand times per model. `headline_metric` computes just
that scalar with the same definitions (a test checks that the two agree on
every headline, with absent classes and tied scores).
"""

import numpy as np
import scipy.stats

from mmkeras.evaluation.calibration import calibration
from mmkeras.evaluation.metrics import (average_precision, has_both_classes, inspection_rates, mean_or_none,
                                        sensitivity_at_specificity)


def headline_score(metric, labels, multi_label, normal_label, threshold):
    """`(y_true, y_prob) -> the headline` (probabilities clipped to [0, 1], as
    `classification_metrics` reads them).

    Example:
    >>> score = headline_score("accuracy", ["cat", "dog"], False, None, 0.5)
    >>> score(np.array([0, 1]), np.array([[0.9, 0.1], [0.6, 0.4]]))
    0.5
    """
    def score(y_true, y_prob):
        return headline_metric(y_true, np.clip(y_prob, 0, 1), metric, labels, multi_label, normal_label,
                               threshold)

    return score


def headline_metric(y_true, y_prob, metric, labels, multi_label=False, normal_label=None, threshold=0.5):
    """One headline scalar of `classification_metrics`, computed alone.

    The same definitions, without the per-class tables, calibration bins and
    checks: the bootstrap (`bootstrap.py`) computes a headline a thousand
    times. `y_true` and `y_prob` must already be valid (as
    `classification_metrics` checks them). None where the metric is
    undefined (e.g. ROC-AUC with one class only).

    Example:
    >>> headline_metric(np.array([0, 1]), np.array([[0.9, 0.1], [0.3, 0.7]]), "accuracy", ["cat", "dog"])
    1.0
    """
    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob, dtype=np.float64)
    if multi_label:
        return _multi_label_headline(y_true, y_prob, metric, threshold)
    y_pred = y_prob.argmax(axis=1)
    if metric == "accuracy":
        return float(np.mean(y_pred == y_true))
    if metric == "macro_f1":
        counts = np.bincount(y_true * len(labels) + y_pred, minlength=len(labels) ** 2)
        matrix = counts.reshape(len(labels), len(labels))
        true_positives, seen = np.diag(matrix), matrix.sum(axis=0) + matrix.sum(axis=1)
        # F1 = 2TP / (true + predicted), over the classes true or predicted somewhere (scikit-learn's).
        return float(np.mean(2 * true_positives[seen > 0] / seen[seen > 0]))
    if metric in ("roc_auc_macro", "pr_auc_macro"):
        area = _rank_roc_auc if metric == "roc_auc_macro" else average_precision
        return mean_or_none(area((y_true == k).astype(np.int64), y_prob[:, k]) for k in range(len(labels)))
    if metric == "ece":
        return calibration(y_prob.max(axis=1), y_pred == y_true)["ece"]
    if metric in ("miss_rate", "false_alarm_rate"):
        return inspection_rates(y_true, y_pred, list(labels).index(normal_label))[metric]
    raise ValueError(f"Unknown headline metric {metric!r} for a single-label head.")


def _rank_roc_auc(y_true, scores):
    """`roc_auc` as the Mann-Whitney statistic (ties count one half): the same
    value as scikit-learn's, at a twentieth of its cost for the bootstrap."""
    if not has_both_classes(y_true):
        return None
    ranks = scipy.stats.rankdata(scores)
    positives = int(np.sum(y_true))
    negatives = len(y_true) - positives
    return float((ranks[y_true == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _multi_label_headline(y_true, y_prob, metric, threshold):
    y_pred = (y_prob >= threshold).astype(np.int64)
    columns = range(y_true.shape[1])
    if metric in ("roc_auc_macro", "pr_auc_macro", "sensitivity_at_specificity_macro"):
        area = {"roc_auc_macro": _rank_roc_auc, "pr_auc_macro": average_precision,
                "sensitivity_at_specificity_macro": sensitivity_at_specificity}[metric]
        return mean_or_none(area(y_true[:, k], y_prob[:, k]) for k in columns)
    if metric == "macro_f1":
        # F1 = 2TP / (2TP + FP + FN), over the labels true or predicted somewhere.
        seen = [k for k in columns if y_true[:, k].any() or y_pred[:, k].any()]
        f1 = [2 * np.sum(y_true[:, k] & y_pred[:, k]) / (np.sum(y_true[:, k]) + np.sum(y_pred[:, k]))
              for k in seen]
        return float(np.mean(f1)) if seen else 0.0
    if metric == "subset_accuracy":
        return float(np.mean(np.all(y_true == y_pred, axis=1)))
    if metric == "ece":
        return calibration(y_prob.ravel(), y_true.ravel())["ece"]
    raise ValueError(f"Unknown headline metric {metric!r} for a multi-label head.")
