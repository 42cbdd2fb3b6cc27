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
  backup/                  BackupAndRestore state; deleted when fit completes
  tensorboard/             scalars (+ hparams)
  workers/<type>_<i>/      the same, for non-chief multi-worker tasks
```
"""

import contextlib
import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from mmkeras.metrics import SparseMacroF1
from mmkeras.tasks import LABEL_OUTPUT, is_multi_label, label_output

AUX_SUFFIX = "_aux"

# === Compile defaults ===


@keras.saving.register_keras_serializable(package="mmkeras")
class SparseCategoricalCrossentropyWithSmoothing(keras.losses.Loss):
    """Sparse categorical cross-entropy on probabilities, with label smoothing.

    Keras' `SparseCategoricalCrossentropy` has no `label_smoothing`; this one
    one-hot encodes integer labels and applies Keras' categorical
    cross-entropy, so datasets keep their integer labels.

    Args:
        label_smoothing: float in [0, 1]; 0 is plain cross-entropy.
        name: loss name.
        reduction: Keras loss reduction.
        dtype: loss computation dtype.

    Example:
    >>> loss = SparseCategoricalCrossentropyWithSmoothing(label_smoothing=0.1)
    >>> float(loss(np.array([1]), np.array([[0.1, 0.9]]))) > 0
    True
    """

    def __init__(self, label_smoothing=0.0, name="sparse_categorical_crossentropy",
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        if len(y_true.shape) == len(y_pred.shape):
            y_true = keras.ops.squeeze(y_true, axis=-1)
        y_true = keras.ops.one_hot(keras.ops.cast(y_true, "int32"), y_pred.shape[-1])
        return keras.losses.categorical_crossentropy(
            y_true, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        config = super().get_config()
        config["label_smoothing"] = self.label_smoothing
        return config


_OPTIMIZERS = {
    "adamw": lambda lr, clip: keras.optimizers.AdamW(lr, global_clipnorm=clip),
    "adam": lambda lr, clip: keras.optimizers.Adam(lr, global_clipnorm=clip),
    "sgd": lambda lr, clip: keras.optimizers.SGD(lr, momentum=0.9, global_clipnorm=clip),
}


def warmup_cosine(learning_rate, total_steps, warmup_fraction=0.1):
    """A learning-rate schedule: linear warm-up to `learning_rate`, then cosine decay to 0.

    Warm-up keeps the first, noisy steps of freshly initialised heads from
    wrecking pretrained or normalised encoders; decaying to zero settles the
    weights that early stopping keeps.

    Args:
        learning_rate: peak learning rate.
        total_steps: training steps of the whole run (epochs x steps per epoch).
        warmup_fraction: part of `total_steps` spent warming up.

    Example:
    >>> schedule = warmup_cosine(1e-3, total_steps=100)
    >>> [round(float(schedule(step)), 6) for step in (0, 10, 100)]
    [0.0, 0.001, 0.0]
    """
    total_steps = max(int(total_steps), 1)
    warmup_steps = int(total_steps * warmup_fraction)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=max(total_steps - warmup_steps, 1),
        warmup_target=float(learning_rate), warmup_steps=warmup_steps)


def compile_model(model, *, multi_label=None, learning_rate=1e-3, optimizer="adamw",
                  jit_compile=False, label_smoothing=0.0, auxiliary_loss_weight=0.3,
                  clipnorm=1.0, steps_per_execution=1):
    """Compile a classifier with the loss and metrics its head needs.

    Single-label heads (softmax) get sparse categorical cross-entropy and
    `accuracy`; multi-label heads (sigmoid, multi-hot targets) get binary
    cross-entropy, `auc` (multi-label ROC AUC) and `binary_accuracy`. A model
    whose output is a dict `{"label": ..., "<modality>_aux": ...}` gets the
    same loss on every output, weighted 1 for `"label"` and
    `auxiliary_loss_weight` for each auxiliary head; metrics are reported for
    `"label"` only. Gradients are clipped by their global norm.

    The optimizer and metric variables are created in the model's
    distribution strategy scope, so this may be called outside `scope()`.

    Args:
        model: a `keras.Model` whose outputs are probabilities.
        multi_label: `True` for sigmoid heads with multi-hot targets. `None`
            reads the model's `task` (a `MultimodalClassifier`'s), and falls
            back to `False` for a model built elsewhere.
        learning_rate: float or a `keras.optimizers.schedules` schedule.
        optimizer: `"adamw"`, `"adam"`, `"sgd"` (momentum 0.9) or a
            `keras.optimizers.Optimizer` instance (used as is: no clipping is
            added to it).
        jit_compile: compile the train step with XLA.
        label_smoothing: float in [0, 1].
        auxiliary_loss_weight: loss weight of each `*_aux` output.
        clipnorm: global gradient norm limit; `None` turns clipping off.
        steps_per_execution: train steps run per `tf.function` call (raise it
            on TPUs).

    Returns:
        The model, compiled.

    Example:
    >>> inputs = {"sensor": keras.Input((4,), name="sensor")}
    >>> probs = keras.layers.Dense(3, activation="softmax", name="label")(inputs["sensor"])
    >>> model = compile_model(keras.Model(inputs, probs))
    >>> model.loss.name
    'sparse_categorical_crossentropy'
    """
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"Expected label_smoothing in [0, 1]; received {label_smoothing}.")
    if multi_label is None:
        multi_label = is_multi_label(model)
    output_names = list(model.output_names)
    aux_names = _aux_output_names(model)
    num_classes = label_output(model.output).shape[-1]
    with model.distribute_strategy.scope():
        loss, metrics = _head_loss_and_metrics(multi_label, label_smoothing, num_classes)
        if aux_names:
            loss = {name: _copy_loss(loss) for name in output_names}
            loss_weights = {name: (auxiliary_loss_weight if name in aux_names else 1.0)
                            for name in output_names}
            metrics = {LABEL_OUTPUT: metrics}
        else:
            loss_weights = None
        model.compile(
            optimizer=_make_optimizer(optimizer, learning_rate, clipnorm),
            loss=loss,
            loss_weights=loss_weights,
            metrics=metrics,
            jit_compile=jit_compile,
            steps_per_execution=steps_per_execution,
        )
    return model


def _head_loss_and_metrics(multi_label, label_smoothing, num_classes):
    if multi_label:
        loss = keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
        # num_labels builds the AUC variables now, not lazily inside the
        # (possibly distributed) train step.
        metrics = [keras.metrics.AUC(multi_label=True, num_labels=num_classes, name="auc"),
                   keras.metrics.BinaryAccuracy(name="binary_accuracy")]
    else:
        if label_smoothing:
            loss = SparseCategoricalCrossentropyWithSmoothing(label_smoothing)
        else:
            loss = keras.losses.SparseCategoricalCrossentropy()
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                   SparseMacroF1(num_classes)]
    return loss, metrics


def _copy_loss(loss):
    return loss.__class__.from_config(loss.get_config())


def _make_optimizer(optimizer, learning_rate, clipnorm):
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer
    if optimizer not in _OPTIMIZERS:
        raise ValueError(f"Expected optimizer in {sorted(_OPTIMIZERS)} or a "
                         f"keras.optimizers.Optimizer; received {optimizer!r}.")
    return _OPTIMIZERS[optimizer](learning_rate, clipnorm)


def _aux_output_names(model):
    """Names of the `*_aux` outputs of a dict-output model, else []."""
    if not isinstance(model.output, dict):
        return []
    label_output(model.output)  # checks the dict has the label
    return [name for name in model.output if name.endswith(AUX_SUFFIX)]


# === Callbacks ===


class _EpochAndStepBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that saves at each epoch end and every `steps` batches.

    Keras' callback saves at one or the other, and its step saves record the
    epoch counted from the start of the current `fit` call, so a second crash
    after a resume would restart from epoch 0. A resumed run re-runs the
    interrupted epoch from its first batch, starting from the backed-up
    weights and optimizer state.
    """

    def __init__(self, backup_dir, steps=None):
        super().__init__(backup_dir, save_freq=steps or "epoch", delete_checkpoint=True)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":
            self._save_model()


class _BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """Best-only `ModelCheckpoint` whose record survives a resume.

    It writes the best value next to the model; when a run resumes from a
    backup, that value is the threshold to beat, so a worse epoch after the
    restart does not overwrite the best model of the interrupted run.
    """

    def __init__(self, filepath, monitor, backup_dir):
        super().__init__(filepath, monitor=monitor, save_best_only=True, mode=_mode(monitor))
        self.record_path = os.path.splitext(filepath)[0] + ".json"
        self.backup_dir = backup_dir

    def on_train_begin(self, logs=None):
        resuming = os.path.exists(os.path.join(self.backup_dir, "training_metadata.json"))
        if resuming and os.path.exists(self.record_path):
            with open(self.record_path) as f:
                record = json.load(f)
            if record.get("monitor") == self.monitor:
                self.best = record["value"]

    def on_epoch_end(self, epoch, logs=None):
        previous = self.best
        super().on_epoch_end(epoch, logs)
        if self.best is not None and self.best != previous:
            with open(self.record_path, "w") as f:
                json.dump({"monitor": self.monitor, "value": float(self.best),
                           "epoch": epoch + 1}, f)


def callbacks(out_dir, *, monitor="val_loss", patience=5, tensorboard=True,
              confusion_matrix=None, hparams=None, backup_every_steps=None):
    """The callbacks a resumable, monitored training run needs.

    In order: `BackupAndRestore` (first, so the restored state is what the
    others see), `TerminateOnNaN`, a best-only checkpoint
    `out_dir/checkpoints/best.keras`, `EarlyStopping(restore_best_weights=True)`,
    then optionally `TensorBoard`, a TensorBoard hparams record and the
    confusion-matrix callback. Re-running the same script with the same
    `out_dir` after a crash resumes at the interrupted epoch, with the
    weights and optimizer state of the last backup; the best checkpoint
    keeps the interrupted run's record, early stopping's patience restarts.

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
    ['_EpochAndStepBackup', 'TerminateOnNaN', '_BestCheckpoint', 'EarlyStopping']
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
    result = [
        _EpochAndStepBackup(backup_dir, steps=backup_every_steps and int(backup_every_steps)),
        keras.callbacks.TerminateOnNaN(),
        _BestCheckpoint(os.path.join(run_dir, "checkpoints", "best.keras"), monitor, backup_dir),
    ]
    if patience is not None:
        result.append(keras.callbacks.EarlyStopping(
            monitor=monitor, mode=_mode(monitor), patience=patience, restore_best_weights=True))
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


def validation_monitor(model, metric=None):
    """The logged validation metric that picks a classifier's best epoch.

    A metric, not `val_loss`: on a few hundred validation examples the loss
    swings with the confidence of a handful of mistakes, and class weights
    and label smoothing move it without changing a prediction.

    Args:
        model: a classifier compiled by `compile_model`.
        metric: `"accuracy"` or `"macro_f1"` (single-label heads), `"auc"`
            (multi-label heads); None: accuracy, or ROC AUC for a
            multi-label head.

    Returns:
        The name in the training logs, of the `"label"` output when the model
        has auxiliary heads.

    Example:
    >>> x = keras.Input((2,), name="sensor")
    >>> validation_monitor(keras.Model(x, keras.layers.Dense(2, activation="softmax", name="label")(x)))
    'val_accuracy'
    """
    multi_label = is_multi_label(model)
    known = ("auc",) if multi_label else ("accuracy", "macro_f1")
    metric = metric or known[0]
    if metric not in known:
        raise ValueError(f"A {'multi' if multi_label else 'single'}-label head logs {list(known)}; "
                         f"received metric={metric!r}.")
    prefix = f"val_{LABEL_OUTPUT}_" if _aux_output_names(model) else "val_"
    return prefix + metric


def _mode(monitor):
    return "min" if monitor.endswith("loss") else "max"


# Alias so `fit(callbacks=...)` can still reach the function above.
_default_callbacks = callbacks


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


# === Class imbalance ===


def class_weights(labels_array, num_classes, *, max_weight=10.0):
    """Balanced class weights `n / (num_classes * count_c)`, clipped.

    Clipping to `[1 / max_weight, max_weight]` keeps a class with a handful
    of examples from dominating the loss. A class absent from `labels_array`
    gets weight 1.0 (it never occurs, so its weight is never used).

    Args:
        labels_array: integer class ids `[N]`, or one-hot / multi-hot `[N, C]`
            (counts are then per-column sums).
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


# === Precision and distribution ===

_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def set_precision(policy="float32"):
    """Set Keras' global dtype policy; call it before building the model.

    `"mixed_float16"` suits NVIDIA GPUs (compute capability 7.0+): `compile`
    then wraps the optimizer in a `LossScaleOptimizer` by itself.
    `"mixed_bfloat16"` suits TPUs and recent CPUs/GPUs and needs no loss
    scaling. Variables stay float32 either way.

    Args:
        policy: `"float32"`, `"mixed_float16"` or `"mixed_bfloat16"`.

    Returns:
        The `keras.DTypePolicy` now in effect.

    Example:
    >>> set_precision("mixed_bfloat16").compute_dtype
    'bfloat16'
    >>> set_precision("float32").name
    'float32'
    """
    if policy not in _POLICIES:
        raise ValueError(f"Expected precision in {_POLICIES}; received {policy!r}.")
    keras.mixed_precision.set_global_policy(policy)
    return keras.mixed_precision.global_policy()


_STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def strategy(name="default", *, devices=None, tpu=None):
    """A `tf.distribute.Strategy` by name. Build and compile under its scope.

    - `"default"`: one device (no distribution).
    - `"mirrored"`: synchronous data parallelism on one machine, over
      `devices`, else all GPUs, else all logical CPU devices.
    - `"multi_worker"`: `MultiWorkerMirroredStrategy`; the cluster and this
      task come from the `TF_CONFIG` environment variable. Create it at
      program start, before any other TensorFlow call, and train with
      `mmkeras.training.fit`: Keras 3's own `model.fit` fails under this
      strategy (keras-team/keras#20585), `fit` works around it.
    - `"tpu"`: `TPUStrategy` via `TPUClusterResolver(tpu)`; `tpu` is a TPU
      name, a `grpc://` address or `"local"` on a TPU VM (`None` reads the
      `TPU_NAME` environment variable).

    Args:
        name: one of `"default"`, `"mirrored"`, `"multi_worker"`, `"tpu"`.
        devices: device names for `"mirrored"`.
        tpu: TPU name or address for `"tpu"`.

    Returns:
        A `tf.distribute.Strategy`.

    Example:
    >>> with strategy("default").scope():
    ...     model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        return _multi_worker_strategy()
    if name == "tpu":
        return _tpu_strategy(tpu)
    raise ValueError(f"Expected strategy name in {_STRATEGIES}; received {name!r}.")


def _multi_worker_strategy():
    raw = os.environ.get("TF_CONFIG")
    example = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}')
    if not raw:
        raise RuntimeError("strategy('multi_worker') reads the cluster from the TF_CONFIG "
                           f"environment variable, which is not set. Expected e.g. {example}.")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}); received {raw!r}.") from None
    if not config.get("cluster") or "task" not in config:
        raise ValueError(f"Expected TF_CONFIG with 'cluster' and 'task' keys, e.g. {example}; "
                         f"received {raw!r}.")
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:
        raise RuntimeError("strategy('multi_worker') must be created at program start, "
                           f"before any other TensorFlow call; TensorFlow says: {error}") from error


def _tpu_strategy(tpu):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        if tpu != "local":  # a TPU VM's chips are local devices: no cluster to join
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise RuntimeError(
            f"strategy('tpu') found no usable TPU (tpu={tpu!r}): {error}. Expected to run on "
            "a TPU VM with tpu='local', or tpu=<TPU name or grpc:// address>, or "
            "TPU_NAME set.") from error


# === Data and fit ===


def with_labels_for(model, dataset):
    """Map a dataset's single target to every output of a multi-head model.

    A model with auxiliary heads outputs `{"label": ..., "<m>_aux": ...}`;
    each head is trained on the same target. Datasets of `(x, y)` or
    `(x, y, sample_weight)` become `(x, {name: y, ...}, {name: weight, ...})`:
    `"label"` keeps the sample weight (1 without one), and `"<m>_aux"` gets it
    times the presence of modality `m` in the example, so a head is never
    trained to predict the label from an input that is missing (all NaN, or
    an empty string). Single-output models, and datasets whose targets are
    already dicts, pass through.

    Args:
        model: the `keras.Model` to train.
        dataset: a `tf.data.Dataset` of `(x, y)` or `(x, y, sample_weight)`.

    Returns:
        A `tf.data.Dataset`.

    Example:
    >>> x = keras.Input((2,), name="sensor")
    >>> h = keras.layers.Dense(4)(x)
    >>> outputs = {"label": keras.layers.Dense(2, activation="softmax", name="label")(h),
    ...            "sensor_aux": keras.layers.Dense(2, activation="softmax", name="sensor_aux")(h)}
    >>> ds = tf.data.Dataset.from_tensor_slices(({"sensor": [[0.0, 1.0], [np.nan, np.nan]]}, [1, 0]))
    >>> x, y, weights = next(iter(with_labels_for(keras.Model({"sensor": x}, outputs), ds.batch(2))))
    >>> sorted(y), weights["sensor_aux"].numpy().tolist()
    (['label', 'sensor_aux'], [1.0, 0.0])
    """
    aux_names = _aux_output_names(model)
    if not aux_names:
        return dataset
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        raise ValueError("Expected a dataset of (x, y) or (x, y, sample_weight) tuples; "
                         f"received elements {spec}.")
    if isinstance(spec[1], dict):
        return dataset
    inputs_of = {name: name[: -len(AUX_SUFFIX)] for name in aux_names}
    unknown = sorted(set(inputs_of.values()) - set(spec[0]))
    if unknown:
        raise ValueError(f"Auxiliary heads {sorted(aux_names)} need inputs {unknown}, which the "
                         f"dataset does not have; it has {sorted(spec[0])}.")

    def fan_out(x, y, weight=None):
        if weight is None:
            weight = tf.ones(tf.shape(y)[:1], "float32")
        weight = tf.cast(weight, "float32")
        weights = {LABEL_OUTPUT: weight}
        weights.update({name: weight * _presence(x[inputs_of[name]]) for name in aux_names})
        return x, {name: y for name in model.output}, weights

    return dataset.map(fan_out, num_parallel_calls=tf.data.AUTOTUNE)


def _presence(values):
    """1.0 per example where a batch of one input is present, as the model sees it
    (`mmkeras.modalities.missing`): a non-empty string, or any non-NaN value."""
    flat = tf.reshape(values, [tf.shape(values)[0], -1])
    if values.dtype == tf.string:
        present = tf.reduce_any(tf.strings.length(tf.strings.strip(flat)) > 0, axis=1)
    else:
        present = tf.logical_not(tf.reduce_all(tf.math.is_nan(tf.cast(flat, "float32")), axis=1))
    return tf.cast(present, "float32")


def _with_class_weight_as_sample_weight(dataset, class_weight):
    """Keras refuses `class_weight` for multi-output models: use sample weights."""
    spec = dataset.element_spec
    if len(spec) != 2 or len(spec[1].shape) > 2 or (
            len(spec[1].shape) == 2 and spec[1].shape[-1] != 1):
        raise ValueError("Expected (x, y) elements with integer class ids y to apply "
                         f"class_weight to a multi-output model; received {spec}.")
    table = tf.constant([class_weight.get(i, 1.0) for i in range(max(class_weight) + 1)],
                        dtype="float32")

    def add_weight(x, y):
        ids = tf.reshape(tf.cast(y, "int32"), [-1])
        return x, y, tf.gather(table, ids)

    return dataset.map(add_weight, num_parallel_calls=tf.data.AUTOTUNE)


def fit(model, train_ds, val_ds=None, *, epochs, out_dir, class_weight=None, callbacks=None,
        monitor=None, steps_per_epoch=None, validation_steps=None, verbose="auto",
        **callback_options):
    """`model.fit` with the run directory, callbacks and target mapping set up.

    Targets are fanned out to auxiliary heads (`with_labels_for`) and
    `class_weight` is turned into sample weights where Keras would refuse
    it (multi-output models). Re-running after a crash with the same
    `out_dir` resumes at the interrupted epoch.

    Args:
        model: a compiled `keras.Model` (see `compile_model`).
        train_ds: `tf.data.Dataset` of `(x, y)` batches, already shuffled.
        val_ds: optional validation `tf.data.Dataset`.
        epochs: total number of epochs.
        out_dir: run directory (see `callbacks`).
        class_weight: optional `{class_id: weight}` (see `class_weights`).
        callbacks: a list to use instead of `callbacks(out_dir, ...)`.
        monitor: defaults to `validation_monitor(model)` with `val_ds`
            (the validation accuracy, or ROC AUC for multi-label heads),
            else `"loss"`.
        steps_per_epoch, validation_steps: as in `model.fit`.
        verbose: as in `model.fit`; `"auto"` shows a progress bar on a
            terminal and one line per epoch when output goes to a file.
        **callback_options: passed to `callbacks()` (e.g. `patience`,
            `hparams`, `confusion_matrix`, `backup_every_steps`).

    Returns:
        The `keras.callbacks.History` of this call (a resumed run holds only
        the epochs it ran).

    Example:
    >>> import tempfile
    >>> x = keras.Input((2,), name="sensor")
    >>> model = compile_model(keras.Model({"sensor": x}, keras.layers.Dense(
    ...     2, activation="softmax", name="label")(x)))
    >>> ds = tf.data.Dataset.from_tensor_slices(({"sensor": [[0.0, 1.0]] * 4}, [1] * 4)).batch(2)
    >>> history = fit(model, ds, epochs=1, out_dir=tempfile.mkdtemp(), verbose=0)
    >>> len(history.history["loss"])
    1
    """
    if callbacks is None:
        monitor = monitor or (validation_monitor(model) if val_ds is not None else "loss")
        callbacks = _default_callbacks(out_dir, monitor=monitor, **callback_options)
    elif callback_options:
        raise ValueError("Expected either callbacks=[...] or callback options, not both; "
                         f"received options {sorted(callback_options)}.")
    if class_weight is not None and is_multi_label(model):
        # Keras would weight each example by its first positive label only
        # (the arg-max of a multi-hot target).
        raise ValueError("class_weight weights single-label targets; a multi-label head's "
                         "multi-hot targets would be weighted by their first positive label only. "
                         "Leave class_weight None for multi-label models.")
    if class_weight is not None and _aux_output_names(model):
        train_ds = _with_class_weight_as_sample_weight(train_ds, class_weight)
        class_weight = None
    train_ds = with_labels_for(model, train_ds)
    if val_ds is not None:
        val_ds = with_labels_for(model, val_ds)
    if verbose == "auto":
        # A progress bar on a terminal; in a log file or CI one line per epoch,
        # not a redrawn bar per batch (hundreds of KB for a short run).
        verbose = 1 if sys.stdout.isatty() else 2
    with _multi_worker_reduce_fixes(model.distribute_strategy):
        # shuffle=False: a dataset is shuffled by its pipeline; Keras would only warn.
        return model.fit(train_ds, validation_data=val_ds, epochs=epochs,
                         class_weight=class_weight, callbacks=callbacks,
                         steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                         verbose=verbose, shuffle=False)


@contextlib.contextmanager
def _multi_worker_reduce_fixes(distribution):
    """Work around Keras 3 `fit` calls that `MultiWorkerMirroredStrategy` rejects.

    Keras 3.x's TensorFlow trainer calls `strategy.reduce` in two ways that
    only `MirroredStrategy` accepts (keras-team/keras#20585):
    - before the first step, on a whole batch (a nested structure), to build
      the model. Keras reads only shapes and dtypes of the result, so nested
      calls get each value's local copy, with no cross-worker traffic (string
      inputs could not be all-reduced anyway);
    - on scalar per-replica logs with `axis=0`; a scalar has no axis 0, so
      these are reduced over replicas with `axis=None`, which is the mean
      over replicas that Keras asks for.
    The strategy is restored when `fit` returns.
    """
    if not isinstance(distribution, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    reduce_one = distribution.reduce

    def local_copy(value):
        return distribution.experimental_local_results(value)[0]

    def reduce(reduce_op, value, axis=None):
        if tf.nest.is_nested(value):
            return tf.nest.map_structure(local_copy, value)
        if axis is not None and local_copy(value).shape.rank == 0:
            axis = None
        return reduce_one(reduce_op, value, axis=axis)

    distribution.reduce = reduce
    try:
        yield
    finally:
        del distribution.reduce
