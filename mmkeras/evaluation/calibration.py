"""Calibration: do the predicted probabilities match how often the outcome happens?

scikit-learn's `calibration_curve` bins the same way but returns no bin
counts (and drops empty bins), and it has no expected calibration error, so
the reliability-diagram data and the ECE are computed here.
"""

import numpy as np

NUM_CALIBRATION_BINS = 15


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
