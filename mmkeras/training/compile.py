"""Compile defaults: the loss and metrics a head needs, optimizers, the learning-rate schedule."""

import keras

from mmkeras.headlines import tracker
from mmkeras.training.logged_metrics import MacroF1, SparseAUC, SparseMacroF1
from mmkeras.tasks import (LABEL_OUTPUT, aux_output_names, decision_threshold, is_multi_label,
                           label_output)


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
    >>> import numpy as np
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
                  clipnorm=1.0, steps_per_execution=1, headline=None):
    """Compile a classifier with the loss and metrics its head needs.

    Single-label heads (softmax) get sparse categorical cross-entropy and
    `accuracy`; multi-label heads (sigmoid, multi-hot targets) get binary
    cross-entropy, `auc` (multi-label ROC AUC) and `binary_accuracy`; the
    metric that tracks a report `headline` is added where it is not among
    them (`mmkeras.headlines`: `auc` or `pr_auc` of a single-label head,
    `macro_f1` or `pr_auc` of a multi-label one). A model
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
        headline: the report metric the run is judged by (`evaluation.headline`);
            None: the default headline, which the default metrics track.

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
    if jit_compile:
        _check_xla_inputs(model)
    if multi_label is None:
        multi_label = is_multi_label(model)
    output_names = list(model.output_names)
    aux_names = aux_output_names(model)
    num_classes = label_output(model.output).shape[-1]
    with model.distribute_strategy.scope():
        loss, metrics = _head_loss_and_metrics(multi_label, label_smoothing, num_classes,
                                               decision_threshold(model),
                                               tracker(headline, multi_label).logged)
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


def _check_xla_inputs(model):
    # XLA compiles numeric tensors only; a text input is tokenized inside the
    # model, so its train step cannot be XLA-compiled (TF's own error says
    # "tf2xla conversion failed" deep in the first step).
    inputs = model.input if isinstance(model.input, dict) else {"input": model.input}
    strings = [name for name, tensor in inputs.items() if tensor.dtype == "string"]
    if strings:
        raise ValueError(f"jit_compile=True cannot compile a model with text inputs {strings} (XLA "
                         f"takes no strings; the tokenizer runs in the model). Set "
                         f"training.jit_compile: false for this model.")


def _head_loss_and_metrics(multi_label, label_smoothing, num_classes, threshold, tracked):
    """The head's loss, its default metrics, and the metric named `tracked` if it is not one."""
    if multi_label:
        loss = keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
        # num_labels builds the AUC variables now, not lazily inside the
        # (possibly distributed) train step.
        metrics = {"auc": lambda: keras.metrics.AUC(multi_label=True, num_labels=num_classes, name="auc"),
                   "binary_accuracy": lambda: keras.metrics.BinaryAccuracy(name="binary_accuracy")}
        extra = {"macro_f1": lambda: MacroF1(num_classes, threshold=threshold),
                 "pr_auc": lambda: keras.metrics.AUC(curve="PR", multi_label=True, num_labels=num_classes,
                                                     name="pr_auc")}
    else:
        if label_smoothing:
            loss = SparseCategoricalCrossentropyWithSmoothing(label_smoothing)
        else:
            loss = keras.losses.SparseCategoricalCrossentropy()
        metrics = {"accuracy": lambda: keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                   "macro_f1": lambda: SparseMacroF1(num_classes)}
        extra = {"auc": lambda: SparseAUC(num_classes),
                 "pr_auc": lambda: SparseAUC(num_classes, curve="PR", name="pr_auc")}
    if tracked in extra:
        metrics[tracked] = extra[tracked]
    return loss, [make() for make in metrics.values()]


def _copy_loss(loss):
    return loss.__class__.from_config(loss.get_config())


def _make_optimizer(optimizer, learning_rate, clipnorm):
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer
    if optimizer not in _OPTIMIZERS:
        raise ValueError(f"Expected optimizer in {sorted(_OPTIMIZERS)} or a "
                         f"keras.optimizers.Optimizer; received {optimizer!r}.")
    return _OPTIMIZERS[optimizer](learning_rate, clipnorm)
