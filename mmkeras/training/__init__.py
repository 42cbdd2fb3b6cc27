"""Training helpers: compile defaults, callbacks, precision and distribution.

Everything here returns plain Keras / TensorFlow objects, so users who prefer
to write `model.compile(...)` and `model.fit(...)` themselves lose nothing:
these helpers only bundle the choices a multimodal classifier usually needs
(the right loss and metrics for the head, auxiliary-head loss weights,
gradient clipping, a run directory that survives a crash, class weights,
mixed precision and `tf.distribute` strategies).

A run directory written by `callbacks()` / `fit()` looks like:
```
out_dir/
  checkpoints/best.keras   best model so far (by `monitor`)
  checkpoints/best.json    its epoch and monitored value
  history.csv              every epoch's logs (`training_summary` reads it)
  backup/                  BackupAndRestore state; deleted when fit completes
  tensorboard/             scalars (+ hparams)
  workers/<type>_<i>/      the same, for non-chief multi-worker tasks
```
"""

from mmkeras.training.callbacks import callbacks, monitor_note, validation_monitor
from mmkeras.training.class_weights import class_weights
from mmkeras.training.compile import (SparseCategoricalCrossentropyWithSmoothing, compile_model,
                                      warmup_cosine)
from mmkeras.training.determinism import enable_determinism
from mmkeras.training.distribution import set_precision, strategy
from mmkeras.training.fit import fit, with_labels_for
from mmkeras.training.history import training_summary

__all__ = ["SparseCategoricalCrossentropyWithSmoothing", "callbacks", "class_weights", "compile_model",
           "enable_determinism", "fit", "monitor_note", "set_precision", "strategy", "validation_monitor",
           "training_summary", "warmup_cosine", "with_labels_for"]
