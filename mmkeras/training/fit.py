"""`fit`: a multi-head-aware `model.fit` with crash-safe run folders."""

import os
import sys

import keras
import tensorflow as tf

from mmkeras.tasks import AUX_SUFFIX, LABEL_OUTPUT, aux_output_names, is_multi_label
from mmkeras.training.callbacks import callbacks as default_callbacks
from mmkeras.training.callbacks import validation_monitor
from mmkeras.training.distribution import _multi_worker_reduce_fixes


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
    >>> import keras, numpy as np
    >>> x = keras.Input((2,), name="sensor")
    >>> h = keras.layers.Dense(4)(x)
    >>> outputs = {"label": keras.layers.Dense(2, activation="softmax", name="label")(h),
    ...            "sensor_aux": keras.layers.Dense(2, activation="softmax", name="sensor_aux")(h)}
    >>> ds = tf.data.Dataset.from_tensor_slices(({"sensor": [[0.0, 1.0], [np.nan, np.nan]]}, [1, 0]))
    >>> x, y, weights = next(iter(with_labels_for(keras.Model({"sensor": x}, outputs), ds.batch(2))))
    >>> sorted(y), weights["sensor_aux"].numpy().tolist()
    (['label', 'sensor_aux'], [1.0, 0.0])
    """
    aux_names = aux_output_names(model)
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
        the epochs it ran). The model holds the weights of the best epoch
        (the best checkpoint's, across a resume).

    Example:
    >>> import tempfile, keras
    >>> from mmkeras.training import compile_model
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
        callbacks = default_callbacks(out_dir, monitor=monitor, **callback_options)
    elif callback_options:
        raise ValueError("Expected either callbacks=[...] or callback options, not both; "
                         f"received options {sorted(callback_options)}.")
    if class_weight is not None and is_multi_label(model):
        # Keras would weight each example by its first positive label only
        # (the arg-max of a multi-hot target).
        raise ValueError("class_weight weights single-label targets; a multi-label head's "
                         "multi-hot targets would be weighted by their first positive label only. "
                         "Leave class_weight None for multi-label models.")
    if class_weight is not None and aux_output_names(model):
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
        history = model.fit(train_ds, validation_data=val_ds, epochs=epochs,
                            class_weight=class_weight, callbacks=callbacks,
                            steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                            verbose=verbose, shuffle=False)
    _load_best_checkpoint(model, callbacks)
    return history


def _load_best_checkpoint(model, callbacks):
    """Leaves the best recorded epoch's weights in `model`.

    EarlyStopping restores the best epoch of this `fit` call only; after a
    resume the best epoch may be one the interrupted run saw, which only the
    best checkpoint holds. So what is saved, evaluated and exported next is
    that checkpoint.
    """
    paths = [c.filepath for c in callbacks if isinstance(c, keras.callbacks.ModelCheckpoint)
             and c.save_best_only and c.filepath.endswith(".keras")]
    if len(paths) == 1 and os.path.exists(paths[0]):
        model.load_weights(paths[0])
