"""Subprocess entry points for tests/test_training.py.

Each mode needs a process of its own: logical CPU devices must be set before
TensorFlow initialises, a multi-worker strategy must be created at program
start, and a crash test kills its process.

    python tests/training_worker.py mirrored RESULT.npz
    python tests/training_worker.py multi_worker OUT_DIR RESULT.npz   (TF_CONFIG set)
    python tests/training_worker.py crash OUT_DIR RECORD.npz CRASH_BATCH BACKUP_STEPS
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mmkeras import training  # noqa: E402

NUM_FEATURES = 4
NUM_CLASSES = 3
CRASH_EXIT_CODE = 3


def make_model(seed=0):
    """A tiny classifier following the mmkeras conventions (dict input, "label" head)."""
    keras.utils.set_random_seed(seed)
    sensor = keras.Input((NUM_FEATURES,), name="sensor")
    hidden = keras.layers.Dense(8, activation="relu")(sensor)
    probabilities = keras.layers.Dense(NUM_CLASSES, activation="softmax", name="label")(hidden)
    return keras.Model({"sensor": sensor}, probabilities)


def make_arrays(num_examples=64, seed=1):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(num_examples, NUM_FEATURES)).astype("float32")
    labels = (features[:, 0] > 0).astype("int32") + (features[:, 1] > 1).astype("int32")
    return features, labels


def make_dataset(batch_size=8, num_examples=64, seed=1):
    features, labels = make_arrays(num_examples, seed)
    return tf.data.Dataset.from_tensor_slices(({"sensor": features}, labels)).batch(batch_size)


def weights_of(model):
    return [np.array(w) for w in model.get_weights()]


def run_mirrored(result_path):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    dataset = make_dataset(batch_size=16)

    single = training.compile_model(make_model())
    initial = weights_of(single)
    single_history = single.fit(dataset, epochs=3, verbose=0, shuffle=False)

    mirrored_strategy = training.strategy("mirrored")
    with mirrored_strategy.scope():
        mirrored = make_model()
        mirrored.set_weights(initial)
    training.compile_model(mirrored)
    mirrored_history = mirrored.fit(dataset, epochs=3, verbose=0, shuffle=False)

    # Each Keras variable wraps a tf.distribute MirroredVariable: one copy per device.
    replicas = [[np.array(copy) for copy in variable.value.values]
                for variable in mirrored.weights]
    np.savez(
        result_path,
        num_replicas=mirrored_strategy.num_replicas_in_sync,
        copies_per_variable=np.array([len(copies) for copies in replicas]),
        max_replica_difference=max(float(np.abs(copies[0] - other).max())
                                   for copies in replicas for other in copies[1:]),
        single_loss=np.array(single_history.history["loss"]),
        mirrored_loss=np.array(mirrored_history.history["loss"]),
        **{f"initial_{i}": w for i, w in enumerate(initial)},
        **{f"single_{i}": w for i, w in enumerate(weights_of(single))},
        **{f"mirrored_{i}": w for i, w in enumerate(weights_of(mirrored))},
    )


def run_multi_worker(out_dir, result_path):
    # First TensorFlow call of the process: collective ops are configured now.
    worker_strategy = training.strategy("multi_worker")
    with worker_strategy.scope():
        model = make_model()
        initial = weights_of(model)
    training.compile_model(model)
    history = training.fit(model, make_dataset(batch_size=16), epochs=3, out_dir=out_dir,
                           tensorboard=False, verbose=0)
    np.savez(
        result_path,
        num_replicas=worker_strategy.num_replicas_in_sync,
        loss=np.array(history.history["loss"]),
        **{f"initial_{i}": w for i, w in enumerate(initial)},
        **{f"final_{i}": w for i, w in enumerate(weights_of(model))},
    )


class StateRecorder(keras.callbacks.Callback):
    """Remembers (optimizer iterations -> weights) after every batch."""

    def __init__(self):
        super().__init__()
        self.states = {}
        self.val_losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.states[int(self.model.optimizer.iterations.numpy())] = weights_of(self.model)

    def on_epoch_end(self, epoch, logs=None):
        self.val_losses.append(logs["val_loss"])


class CrashAt(keras.callbacks.Callback):
    """Kills the process, with no clean-up, after `batch` of epoch index `epoch`."""

    def __init__(self, epoch, batch, recorder, record_path):
        super().__init__()
        self.epoch, self.batch = epoch, batch
        self.recorder, self.record_path = recorder, record_path
        self.current_epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current_epoch == self.epoch and batch == self.batch:
            arrays = {f"state_{it}_{i}": w for it, ws in self.recorder.states.items()
                      for i, w in enumerate(ws)}
            np.savez(self.record_path, val_losses=np.array(self.recorder.val_losses), **arrays)
            sys.stdout.flush()
            os._exit(CRASH_EXIT_CODE)


def run_crash(out_dir, record_path, crash_batch, backup_steps):
    model = training.compile_model(make_model(), optimizer="adam")
    recorder = StateRecorder()
    run_callbacks = training.callbacks(
        out_dir, patience=None, tensorboard=False, backup_every_steps=backup_steps)
    run_callbacks += [recorder, CrashAt(1, crash_batch, recorder, record_path)]
    training.fit(model, make_dataset(), make_dataset(seed=2), epochs=4, out_dir=out_dir,
                 callbacks=run_callbacks, verbose=0)
    raise SystemExit("training finished without reaching the crash point")


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "mirrored":
        run_mirrored(*args)
    elif mode == "multi_worker":
        run_multi_worker(*args)
    elif mode == "crash":
        run_crash(args[0], args[1], int(args[2]), int(args[3]) or None)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
