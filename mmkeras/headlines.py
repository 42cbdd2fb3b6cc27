"""The report's headline metrics, and the training-log metric that picks the best epoch for each.

Plain data without TensorFlow: `config.py` checks `evaluation.headline` with it
when an app loads (before anything trains), `training` compiles the tracking
metric into the model and monitors it.

Example:
>>> tracker("roc_auc_macro", multi_label=False)
Tracker(logged='auc', note=None)
>>> check_headline("macro_f2", multi_label=False, normal_label=None)
Traceback (most recent call last):
...
ValueError: unknown headline 'macro_f2' (did you mean 'macro_f1'?); a single-label app offers: accuracy, macro_f1, roc_auc_macro, pr_auc_macro, ece, miss_rate, false_alarm_rate
"""

import collections

from mmkeras.registry import did_you_mean

# `logged`: the metric's name in the training logs (`val_<logged>`), "loss" for
# the validation loss; `note`: why a headline Keras cannot log per epoch is
# tracked by another metric (None where the headline itself is logged).
Tracker = collections.namedtuple("Tracker", ["logged", "note"])

_CALIBRATION = Tracker("loss", "ECE is not logged while training; the validation loss (cross-entropy, "
                               "which rewards calibrated probabilities) picks the best epoch")
_INSPECTION = Tracker("macro_f1", "the inspection rates are not logged while training; validation "
                                  "macro-F1 (every class's recall and precision) picks the best epoch")

# Every scalar `evaluation.classification_metrics` reports, per head kind.
SINGLE_LABEL = {
    "accuracy": Tracker("accuracy", None),
    "macro_f1": Tracker("macro_f1", None),
    "roc_auc_macro": Tracker("auc", None),
    "pr_auc_macro": Tracker("pr_auc", None),
    "ece": _CALIBRATION,
    "miss_rate": _INSPECTION,
    "false_alarm_rate": _INSPECTION,
}
MULTI_LABEL = {
    "roc_auc_macro": Tracker("auc", None),
    "pr_auc_macro": Tracker("pr_auc", None),
    "macro_f1": Tracker("macro_f1", None),
    "sensitivity_at_specificity_macro": Tracker(
        "auc", "sensitivity at 90% specificity is not logged while training; validation ROC AUC "
               "(the whole ROC curve) picks the best epoch"),
    "subset_accuracy": Tracker(
        "binary_accuracy", "subset accuracy is not logged while training; validation per-label "
                           "accuracy picks the best epoch"),
    "ece": _CALIBRATION,
}
# Headlines that compare against the normal class (`evaluation.normal_label`).
NEEDS_NORMAL_LABEL = ("miss_rate", "false_alarm_rate")


def default_headline(multi_label):
    """The headline metric: accuracy for single-label, macro ROC-AUC for multi-label."""
    return "roc_auc_macro" if multi_label else "accuracy"


def headlines(multi_label):
    """`{headline: Tracker}` a head of this kind offers."""
    return MULTI_LABEL if multi_label else SINGLE_LABEL


def tracker(headline, multi_label):
    """The `Tracker` of `headline` (None: the default headline) for this kind of head."""
    headline = headline or default_headline(multi_label)
    check_headline(headline, multi_label, normal_label=None, needs_label=False)
    return headlines(multi_label)[headline]


def check_headline(headline, multi_label, normal_label, needs_label=True):
    """Raises a ValueError naming the allowed headlines when `headline` is not one of them.

    With `needs_label`, a miss or false-alarm rate also needs `normal_label`.
    """
    offered = headlines(multi_label)
    kind = "multi-label" if multi_label else "single-label"
    if headline not in offered:
        raise ValueError(f"unknown headline {headline!r}{did_you_mean(headline, offered)}; a {kind} app "
                         f"offers: {', '.join(offered)}")
    if needs_label and headline in NEEDS_NORMAL_LABEL and normal_label is None:
        raise ValueError(f"headline {headline!r} compares against the normal class: set "
                         f"evaluation.normal_label (one of data.labels)")
