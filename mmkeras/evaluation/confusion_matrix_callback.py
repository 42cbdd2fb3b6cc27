"""Training callbacks that show evaluation results while a model trains."""

import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from mmkeras.evaluation.metrics import class_ids, confusion_matrix
from mmkeras.evaluation.plots import confusion_matrix_figure, png_bytes
from mmkeras.evaluation.predict import head_output
from mmkeras.tasks import is_multi_label
from mmkeras.evaluation.tensorboard import png_to_image_batch


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
        if is_multi_label(self.model):
            warnings.warn("ConfusionMatrixCallback is for single-label models; the 'label' head "
                          "is multi-label, so no confusion matrix is written.")
            self._disabled = True

    def _confusion_matrix(self):
        matrix = np.zeros((len(self.labels),) * 2, dtype=np.int64)
        dataset = self.val_data if self.max_batches is None else self.val_data.take(self.max_batches)
        for batch in dataset:
            x, y = batch[0], batch[1]
            probs = np.asarray(head_output(self.model(x, training=False)))
            y = class_ids(head_output(y)).astype(np.int64)
            matrix += confusion_matrix(y, probs.argmax(axis=1), len(self.labels))
        return matrix

    def on_epoch_end(self, epoch, logs=None):
        if self._disabled or (epoch + 1) % self.every_n_epochs:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        figure = confusion_matrix_figure(self._confusion_matrix(), self.labels,
                                         title=f"Confusion matrix (epoch {epoch + 1})")
        with self._writer.as_default():
            tf.summary.image("confusion_matrix", png_to_image_batch(png_bytes(figure)), step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
