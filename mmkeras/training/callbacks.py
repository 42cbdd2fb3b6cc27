"""Callbacks of a training run: best checkpoint, crash-safe backup, early stopping, TensorBoard."""

import json
import os

import keras

from mmkeras.headlines import tracker
from mmkeras.tasks import LABEL_OUTPUT, aux_output_names, is_multi_label


_BACKUP_METADATA = "training_metadata.json"  # what keras.callbacks.BackupAndRestore writes
HISTORY_FILE = "history.csv"
BEST_RECORD = os.path.join("checkpoints", "best.json")


def _backup_epoch(backup_dir):
    """The epoch a backup resumes at, or None when `backup_dir` holds no backup."""
    path = os.path.join(backup_dir, _BACKUP_METADATA)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return int(json.load(f)["epoch"])


def _best_record(record_path, monitor):
    """`{"monitor", "value", "epoch"}` of the best epoch so far for `monitor`, or None."""
    if not os.path.exists(record_path):
        return None
    with open(record_path) as f:
        record = json.load(f)
    return record if record.get("monitor") == monitor else None


class _EpochAndStepBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that saves at each epoch end and every `steps` batches.

    Keras' callback saves at one or the other, and its step saves record the
    epoch counted from the start of the current `fit` call, so a second crash
    after a resume would restart from epoch 0. A resumed run re-runs the
    interrupted epoch from its first batch, starting from the backed-up
    weights and optimizer state; the optimizer's step counter is set back to
    that epoch's first step, so a learning-rate schedule is where it was at
    the epoch's start and never runs past its end.
    """

    def __init__(self, backup_dir, steps=None):
        super().__init__(backup_dir, save_freq=steps or "epoch", delete_checkpoint=True)
        self._resumed_epoch = None

    def on_train_begin(self, logs=None):
        self._resumed_epoch = _backup_epoch(self.backup_dir)
        super().on_train_begin(logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        steps = self.params.get("steps") if self.params else None
        if self._resumed_epoch is not None and steps and self.model.optimizer is not None:
            # A step backup holds the count after part of the epoch, which runs again whole.
            self.model.optimizer.iterations.assign(epoch * steps)
        self._resumed_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":
            self._save_model()


class _BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """Best-only `ModelCheckpoint` whose record survives a resume.

    It writes the best value next to the model; when a run resumes from a
    backup, that value is the threshold to beat, so a worse epoch after the
    restart does not overwrite the best model of the interrupted run.
    `training.fit` loads this checkpoint's weights when training ends.
    """

    def __init__(self, filepath, monitor, backup_dir):
        super().__init__(filepath, monitor=monitor, save_best_only=True, mode=_mode(monitor))
        self.record_path = os.path.splitext(filepath)[0] + ".json"
        self.backup_dir = backup_dir

    def on_train_begin(self, logs=None):
        record = _best_record(self.record_path, self.monitor)
        if record and _backup_epoch(self.backup_dir) is not None:
            self.best = record["value"]

    def on_epoch_end(self, epoch, logs=None):
        previous = self.best
        super().on_epoch_end(epoch, logs)
        if self.best is not None and self.best != previous:
            with open(self.record_path, "w") as f:
                json.dump({"monitor": self.monitor, "value": float(self.best),
                           "epoch": epoch + 1}, f)


class _ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`EarlyStopping` that, on a resume, continues from the interrupted run's
    best value and the epochs waited since it (Keras' restarts with no best)."""

    def __init__(self, monitor, patience, record_path, backup_dir):
        super().__init__(monitor=monitor, mode=_mode(monitor), patience=patience, restore_best_weights=True)
        self.record_path = record_path
        self.backup_dir = backup_dir

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        record = _best_record(self.record_path, self.monitor)
        resumed_epoch = _backup_epoch(self.backup_dir)
        if record and resumed_epoch is not None:
            self.best, self.best_epoch = record["value"], record["epoch"] - 1
            self.wait = max(resumed_epoch - record["epoch"], 0)


class _RunLog(keras.callbacks.CSVLogger):
    """`CSVLogger` of every epoch's logs to `history.csv`: a resumed run
    continues the interrupted run's file, a new run starts a new one.
    `training.training_summary` reads it (a resumed epoch is logged twice; the
    later row counts)."""

    def __init__(self, filename, backup_dir):
        super().__init__(filename, append=True)
        self.backup_dir = backup_dir

    def on_train_begin(self, logs=None):
        self.append = _backup_epoch(self.backup_dir) is not None
        super().on_train_begin(logs)


def callbacks(out_dir, *, monitor="val_loss", patience=5, tensorboard=True,
              confusion_matrix=None, hparams=None, backup_every_steps=None):
    """The callbacks a resumable, monitored training run needs.

    In order: `BackupAndRestore` (first, so the restored state is what the
    others see), `TerminateOnNaN`, a best-only checkpoint
    `out_dir/checkpoints/best.keras`, a log of every epoch `out_dir/history.csv`,
    `EarlyStopping(restore_best_weights=True)`, then optionally `TensorBoard`, a TensorBoard hparams record and the
    confusion-matrix callback. Re-running the same script with the same
    `out_dir` after a crash resumes at the interrupted epoch, with the
    weights and optimizer state of the last backup; the best checkpoint and
    early stopping keep the interrupted run's best value (early stopping
    also the epochs waited since it).

    Under `MultiWorkerMirroredStrategy` (a `TF_CONFIG` with more than one
    task) only the chief writes to `out_dir`; other tasks write to
    `out_dir/workers/<type>_<index>/`, so workers never overwrite each other.

    Args:
        out_dir: run directory (created as needed).
        monitor: logged quantity for the best checkpoint and early stopping:
            a loss (lower is better) or a metric (higher is better, e.g.
            `"val_accuracy"`, see `validation_monitor`). `"val_*"` needs
            validation data, use `"loss"` without it.
        patience: epochs without improvement before stopping; `None` turns
            early stopping off.
        tensorboard: write TensorBoard scalars to `out_dir/tensorboard`.
        confusion_matrix: an optional `keras.callbacks.Callback` (e.g. from
            `mmkeras.evaluation`), appended as is.
        hparams: optional dict `{name: bool | int | float | str}` recorded
            with TensorBoard's hparams plugin.
        backup_every_steps: also back up every this many batches (long
            epochs); `None` backs up at epoch ends only.

    Returns:
        A list of `keras.callbacks.Callback`.

    Example:
    >>> import tempfile
    >>> [type(c).__name__ for c in callbacks(tempfile.mkdtemp(), tensorboard=False)]
    ['_EpochAndStepBackup', 'TerminateOnNaN', '_BestCheckpoint', '_RunLog', '_ResumableEarlyStopping']
    """
    if confusion_matrix is not None and not isinstance(confusion_matrix, keras.callbacks.Callback):
        raise TypeError("Expected confusion_matrix to be a keras.callbacks.Callback; "
                        f"received {type(confusion_matrix).__name__}.")
    if backup_every_steps is not None and int(backup_every_steps) < 1:
        raise ValueError("Expected backup_every_steps >= 1 or None; "
                         f"received {backup_every_steps}.")
    run_dir = _task_dir(os.fspath(out_dir))
    os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
    backup_dir = os.path.join(run_dir, "backup")
    best = _BestCheckpoint(os.path.join(run_dir, os.path.splitext(BEST_RECORD)[0] + ".keras"), monitor, backup_dir)
    result = [
        _EpochAndStepBackup(backup_dir, steps=backup_every_steps and int(backup_every_steps)),
        keras.callbacks.TerminateOnNaN(),
        best,
        _RunLog(os.path.join(run_dir, HISTORY_FILE), backup_dir),
    ]
    if patience is not None:
        result.append(_ResumableEarlyStopping(monitor, patience, best.record_path, backup_dir))
    log_dir = os.path.join(run_dir, "tensorboard")
    if tensorboard:
        # No graph and no profiler: a backbone's graph is large and slow to write.
        result.append(keras.callbacks.TensorBoard(
            log_dir=log_dir, write_graph=False, profile_batch=0))
    if hparams:
        from tensorboard.plugins.hparams import api as hp

        result.append(hp.KerasCallback(log_dir, dict(hparams)))
    if confusion_matrix is not None:
        result.append(confusion_matrix)
    return result


def validation_monitor(model, headline=None):
    """The logged validation metric that picks a classifier's best epoch.

    The one that tracks the report's `headline` (`mmkeras.headlines`): the
    headline itself where training logs it (`compile_model(headline=...)` adds
    it), else the nearest logged metric, which `monitor_note` names. A
    metric, not `val_loss`, for the default headlines: on a few hundred
    validation examples the loss swings with the confidence of a handful of
    mistakes, and class weights and label smoothing move it without changing
    a prediction.

    Args:
        model: a classifier compiled by `compile_model` with the same headline.
        headline: a report headline (`evaluation.headline`); None: accuracy,
            or ROC AUC for a multi-label head.

    Returns:
        The name in the training logs, of the `"label"` output when the model
        has auxiliary heads.

    Example:
    >>> x = keras.Input((2,), name="sensor")
    >>> model = keras.Model(x, keras.layers.Dense(2, activation="softmax", name="label")(x))
    >>> validation_monitor(model), validation_monitor(model, "roc_auc_macro"), validation_monitor(model, "ece")
    ('val_accuracy', 'val_auc', 'val_loss')
    """
    logged = tracker(headline, is_multi_label(model)).logged
    prefix = f"val_{LABEL_OUTPUT}_" if aux_output_names(model) else "val_"
    return prefix + logged


def monitor_note(model, headline=None):
    """Why the best epoch is picked by another metric than `headline`; None where it is the headline."""
    return tracker(headline, is_multi_label(model)).note


def _mode(monitor):
    return "min" if monitor.endswith("loss") else "max"


def _task_dir(out_dir):
    """`out_dir` for the chief (or a single process), a per-task subdirectory otherwise."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    cluster = config.get("cluster", {})
    if sum(len(tasks) for tasks in cluster.values()) <= 1:
        return out_dir
    task = config.get("task", {})
    task_type, index = task.get("type", "worker"), int(task.get("index", 0))
    is_chief = task_type == "chief" or (
        task_type == "worker" and index == 0 and "chief" not in cluster)
    return out_dir if is_chief else os.path.join(out_dir, "workers", f"{task_type}_{index}")
