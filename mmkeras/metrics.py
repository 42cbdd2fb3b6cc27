"""Training metrics Keras lacks for integer class-id targets."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmkeras")
class SparseMacroF1(keras.metrics.F1Score):
    """Macro-averaged F1 of the arg-max class, for integer class-id targets.

    `keras.metrics.F1Score` takes one-hot targets; this one takes the class
    ids a single-label head trains on. Logged as `macro_f1`, so a run can keep
    the epoch with the best validation macro-F1: with class weights, accuracy
    favours the epochs that predict the majority class.

    Example:
    >>> metric = SparseMacroF1(num_classes=3)
    >>> metric.update_state([0, 1, 2], [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.2, 0.2]])
    >>> round(float(metric.result()), 3)
    0.556
    """

    def __init__(self, num_classes, name="macro_f1", **kwargs):
        kwargs.pop("average", None)
        super().__init__(average="macro", name=name, **kwargs)
        self.num_classes = int(num_classes)

    def update_state(self, y_true, y_pred, sample_weight=None):
        ids = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        return super().update_state(ops.one_hot(ids, self.num_classes), y_pred, sample_weight)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}
