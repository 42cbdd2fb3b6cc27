"""Bootstrap confidence intervals: how much of a difference is noise.

A test split of a few hundred examples moves a headline by several points
from one draw to the next. The report gives every headline, every
model-minus-baseline difference and every ablation importance a percentile
interval: the examples are resampled with replacement `RESAMPLES` times and
the figure recomputed on each resample. The same resamples serve every model,
so a difference is paired (both models scored on the same examples), which is
what makes it narrower than the two intervals side by side.
"""

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95


def bootstrap_scores(y_true, scored, resamples=RESAMPLES, seed=0):
    """The score of each set of probabilities on the same resamples of the examples.

    Args:
        y_true: the targets, `[N]` or `[N, C]`.
        scored: `{name: (y_prob [N, C], score)}`, score `(y_true, y_prob) ->
            float or None` (None: undefined on that resample, e.g. a ROC-AUC
            whose resample lacks a class).
        resamples: how many resamples.
        seed: seed of the resampling.

    Returns:
        `{name: float array [resamples]}`, NaN where the score was undefined.

    Example:
    >>> y = np.array([0, 1, 1, 0])
    >>> right = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    >>> accuracy = lambda t, p: float(np.mean(p.argmax(1) == t))
    >>> bootstrap_scores(y, {"model": (right, accuracy)}, resamples=5)["model"].tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0]
    """
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, len(y_true), size=(resamples, len(y_true)))
    scores = {}
    for name, (y_prob, score) in scored.items():
        values = (score(y_true[rows], y_prob[rows]) for rows in indices)
        scores[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return scores


def percentile_interval(samples, level=LEVEL):
    """`[low, high]`: the central `level` of the defined samples, or None when
    fewer than half of them are defined.

    Example:
    >>> percentile_interval(np.arange(1001.0))
    [25.0, 975.0]
    """
    samples = np.asarray(samples, dtype=np.float64)
    defined = samples[~np.isnan(samples)]
    if len(defined) < len(samples) / 2:
        return None
    tail = (100 - 100 * level) / 2
    low, high = np.percentile(defined, [tail, 100 - tail])
    return [float(low), float(high)]
