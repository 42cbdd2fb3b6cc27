"""Class weights against label imbalance."""

import numpy as np


def class_weights(labels_array, num_classes, *, max_weight=10.0):
    """Balanced class weights `n / (num_classes * count_c)`, clipped.

    Clipping to `[1 / max_weight, max_weight]` keeps a class with a handful
    of examples from dominating the loss. A class absent from `labels_array`
    gets weight 1.0 (it never occurs, so its weight is never used).

    Args:
        labels_array: integer class ids `[N]` or `[N, 1]`, or one-hot /
            multi-hot `[N, C]` (counts are then per-column sums).
        num_classes: number of classes C.
        max_weight: clip bound (> 0).

    Returns:
        `{class_id: weight}` for every class id in `range(num_classes)`, as
        `model.fit(class_weight=...)` expects.

    Example:
    >>> class_weights([0, 0, 0, 1], num_classes=2)
    {0: 0.6666666666666666, 1: 2.0}
    """
    labels = np.asarray(labels_array)
    if labels.ndim == 2 and labels.shape[1] == 1 and num_classes > 1:
        labels = labels[:, 0]  # class ids [N, 1], the Keras datasets' convention: not one-hot
    if max_weight <= 0:
        raise ValueError(f"Expected max_weight > 0; received {max_weight}.")
    if labels.ndim == 2:
        if labels.shape[1] != num_classes:
            raise ValueError(f"Expected labels of shape [N, {num_classes}]; "
                             f"received {labels.shape}.")
        counts = labels.astype("float64").sum(axis=0)
        total = labels.shape[0]
    elif labels.ndim == 1:
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"Expected integer class ids; received dtype {labels.dtype}.")
        bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
        if bad.size:
            raise ValueError(f"Expected class ids in [0, {num_classes}); received "
                             f"{labels[bad[0]]} at index {bad[0]}.")
        counts = np.bincount(labels, minlength=num_classes).astype("float64")
        total = labels.shape[0]
    else:
        raise ValueError(f"Expected labels of shape [N] or [N, C]; received {labels.shape}.")
    weights = {}
    for class_id, count in enumerate(counts):
        weight = total / (num_classes * count) if count else 1.0
        weights[class_id] = float(np.clip(weight, 1.0 / max_weight, max_weight))
    return weights
