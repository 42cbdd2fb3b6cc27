"""Training metrics Keras lacks: macro-F1 as the report computes it, and class-id AUC."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmkeras")
class MacroF1(keras.metrics.F1Score):
    """Macro-averaged F1 over the classes that occur, as the report computes it.

    `keras.metrics.F1Score(average="macro")` averages every class, so a class
    neither true nor predicted in the validation data counts as F1 0; the
    report (scikit-learn's `f1_score(average="macro")`) averages the classes
    that are true or predicted somewhere. This metric averages those too, so
    the training log's `val_macro_f1` and the report's `macro_f1` agree on the
    same predictions. Predictions are the arg-max class (`threshold=None`), or
    every label whose probability is at least `threshold` (multi-label).

    Example:
    >>> metric = MacroF1(num_classes=3)
    >>> metric.update_state([[1, 0, 0], [0, 1, 0]], [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1]])
    >>> round(float(metric.result()), 3)  # class 2 occurs nowhere: skipped, as scikit-learn does
    1.0
    """

    def __init__(self, num_classes, threshold=None, name="macro_f1", **kwargs):
        kwargs.pop("average", None)
        super().__init__(average=None, threshold=None, name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.label_threshold = None if threshold is None else float(threshold)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.label_threshold is not None:
            # At least the threshold, as the report and the export decide a label
            # (Keras' own threshold is a strict "greater than").
            y_pred = ops.cast(ops.greater_equal(y_pred, self.label_threshold), self.dtype)
        return super().update_state(y_true, y_pred, sample_weight)

    def result(self):
        per_class = super().result()
        occurs = ops.cast(self.true_positives + self.false_positives + self.false_negatives > 0, self.dtype)
        return ops.sum(per_class * occurs) / ops.maximum(ops.sum(occurs), 1.0)

    def get_config(self):
        config = {**super().get_config(), "num_classes": self.num_classes, "threshold": self.label_threshold}
        config.pop("average", None)
        return config


@keras.saving.register_keras_serializable(package="mmkeras")
class SparseMacroF1(MacroF1):
    """`MacroF1` of the arg-max class, for integer class-id targets.

    Logged as `macro_f1`, so a run can keep the epoch with the best validation
    macro-F1: with class weights, accuracy favours the epochs that predict the
    majority class.

    Example:
    >>> metric = SparseMacroF1(num_classes=3)
    >>> metric.update_state([0, 1, 2], [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.2, 0.2]])
    >>> round(float(metric.result()), 3)
    0.556
    """

    def __init__(self, num_classes, name="macro_f1", **kwargs):
        kwargs.pop("threshold", None)
        super().__init__(num_classes, name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        ids = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        return super().update_state(ops.one_hot(ids, self.num_classes), y_pred, sample_weight)


@keras.saving.register_keras_serializable(package="mmkeras")
class SparseAUC(keras.metrics.AUC):
    """One-vs-rest ROC (or PR) AUC averaged over classes, for integer class-id targets.

    Tracks the report's `roc_auc_macro` / `pr_auc_macro` of a single-label head.

    Example:
    >>> metric = SparseAUC(num_classes=2)
    >>> metric.update_state([0, 1], [[0.9, 0.1], [0.2, 0.8]])
    >>> round(float(metric.result()), 3)
    1.0
    """

    def __init__(self, num_classes, name="auc", **kwargs):
        kwargs.pop("multi_label", None)
        kwargs.pop("num_labels", None)
        super().__init__(multi_label=True, num_labels=int(num_classes), name=name, **kwargs)
        self.num_classes = int(num_classes)

    def update_state(self, y_true, y_pred, sample_weight=None):
        ids = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        return super().update_state(ops.one_hot(ids, self.num_classes), y_pred, sample_weight)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}
