"""Tests for mmkeras.training: compile defaults, callbacks, resume, distribution."""

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras as mmk
from mmkeras import training

WORKER_SCRIPT = Path(__file__).with_name("training_worker.py")
_spec = importlib.util.spec_from_file_location("training_worker", WORKER_SCRIPT)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)

SUBPROCESS_TIMEOUT_S = 150


# === Helpers ===


def aux_model(seed=0):
    """Dict input, a "label" head and a sensor auxiliary head."""
    keras.utils.set_random_seed(seed)
    sensor = keras.Input((worker.NUM_FEATURES,), name="sensor")
    hidden = keras.layers.Dense(8, activation="relu")(sensor)
    outputs = {
        "label": keras.layers.Dense(worker.NUM_CLASSES, activation="softmax", name="label")(hidden),
        "sensor_aux": keras.layers.Dense(
            worker.NUM_CLASSES, activation="softmax", name="sensor_aux")(hidden),
    }
    return mmk.MultimodalClassifier({"sensor": sensor}, outputs, specs=[sensor_spec()],
                                    task=mmk.Classification(["a", "b", "c"]))


def multi_label_model(seed=0):
    keras.utils.set_random_seed(seed)
    sensor = keras.Input((worker.NUM_FEATURES,), name="sensor")
    head = keras.layers.Dense(worker.NUM_CLASSES, activation="sigmoid", name="label")
    return mmk.MultimodalClassifier({"sensor": sensor}, head(keras.layers.Dense(8, activation="relu")(sensor)),
                                    specs=[sensor_spec()],
                                    task=mmk.Classification(["a", "b", "c"], multi_label=True))


def sensor_spec():
    return mmk.SensorInput("sensor", features=[f"f{i}" for i in range(worker.NUM_FEATURES)],
                           mean=[0.0] * worker.NUM_FEATURES, variance=[1.0] * worker.NUM_FEATURES)


def one_batch(batch_size=16):
    return worker.make_dataset(batch_size=batch_size, num_examples=batch_size)


def changed(before, after):
    return any(not np.allclose(a, b) for a, b in zip(before, after))


def run_processes(commands, log_dir, envs=None, timeout=SUBPROCESS_TIMEOUT_S):
    """Run commands concurrently; kill them all on timeout or error. Returns exit codes."""
    envs = envs or [{}] * len(commands)
    processes, logs = [], []
    try:
        for i, (command, extra_env) in enumerate(zip(commands, envs)):
            # A TF_CONFIG inherited from the caller would turn any child into a cluster task.
            env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
            env.update({"TF_CPP_MIN_LOG_LEVEL": "3", **extra_env})
            log = open(Path(log_dir) / f"process_{i}.log", "w")
            logs.append(log)
            processes.append(subprocess.Popen(
                [sys.executable, str(WORKER_SCRIPT), *command],
                stdout=log, stderr=subprocess.STDOUT, env=env))
        return [process.wait(timeout=timeout) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for log in logs:
            log.close()


def log_tail(log_dir, lines=30):
    text = ""
    for path in sorted(Path(log_dir).glob("process_*.log")):
        text += f"--- {path.name}\n" + "\n".join(path.read_text().splitlines()[-lines:]) + "\n"
    return text


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# === Compile defaults ===


def test_compile_single_label_trains_one_step():
    model = training.compile_model(worker.make_model())
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    assert model.optimizer.global_clipnorm == 1.0
    before = model.get_weights()
    history = model.fit(one_batch(), epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    assert "accuracy" in history.history
    assert changed(before, model.get_weights())


def test_compile_multi_label_reads_head_and_trains_one_step():
    model = training.compile_model(multi_label_model())  # multi_label from the head
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)
    features, _ = worker.make_arrays(16)
    multi_hot = (features[:, :worker.NUM_CLASSES] > 0).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices(({"sensor": features}, multi_hot)).batch(16)
    before = model.get_weights()
    logs = model.fit(dataset, epochs=1, verbose=0, shuffle=False).history
    assert {"loss", "auc", "binary_accuracy"} <= set(logs)
    assert 0.0 <= logs["auc"][0] <= 1.0
    assert changed(before, model.get_weights())


def test_compile_aux_heads_weights_aux_loss_and_trains_one_step():
    model = training.compile_model(aux_model(), auxiliary_loss_weight=0.5)
    before = model.get_weights()
    dataset = training.with_labels_for(model, one_batch())
    logs = model.fit(dataset, epochs=1, verbose=0, shuffle=False).history
    # One batch: the logged losses are those of the initial weights.
    expected = logs["label_loss"][0] + 0.5 * logs["sensor_aux_loss"][0]
    assert logs["loss"][0] == pytest.approx(expected, rel=1e-5)
    assert "label_accuracy" in logs and "sensor_aux_accuracy" not in logs
    assert changed(before, model.get_weights())


def test_label_smoothing_loss_matches_categorical_and_survives_save(tmp_path):
    y_true = np.array([0, 2, 1])
    y_pred = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.3, 0.4, 0.3]], "float32")
    smoothed = training.SparseCategoricalCrossentropyWithSmoothing(label_smoothing=0.2)
    reference = keras.losses.CategoricalCrossentropy(label_smoothing=0.2)
    assert float(smoothed(y_true, y_pred)) == pytest.approx(
        float(reference(np.eye(3)[y_true], y_pred)), rel=1e-6)
    assert float(smoothed(y_true, y_pred)) != pytest.approx(
        float(keras.losses.SparseCategoricalCrossentropy()(y_true, y_pred)), rel=1e-3)

    model = training.compile_model(worker.make_model(), label_smoothing=0.2)
    model.optimizer.build(model.trainable_variables)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert loaded.loss.label_smoothing == pytest.approx(0.2)


def test_compile_rejects_bad_arguments():
    with pytest.raises(ValueError, match="optimizer"):
        training.compile_model(worker.make_model(), optimizer="lion9000")
    with pytest.raises(ValueError, match="label_smoothing"):
        training.compile_model(worker.make_model(), label_smoothing=1.5)


# === Class weights ===


def test_class_weights_balanced_and_clipped():
    labels = np.array([0] * 8 + [1] * 2)
    weights = training.class_weights(labels, num_classes=3)
    assert weights == pytest.approx({0: 10 / 24, 1: 10 / 6, 2: 1.0})  # class 2 absent
    # Balanced: every present class contributes the same total weight.
    assert 8 * weights[0] == pytest.approx(2 * weights[1])

    rare = training.class_weights(np.array([0] * 99 + [1]), num_classes=2, max_weight=10.0)
    assert rare[1] == 10.0  # 100 / 2 = 50, clipped
    assert rare[0] == pytest.approx(100 / 198)

    multi_hot = np.array([[1, 0], [1, 1], [1, 0], [1, 0]])
    assert training.class_weights(multi_hot, 2) == pytest.approx({0: 0.5, 1: 2.0})

    with pytest.raises(ValueError, match="received 5 at index 1"):
        training.class_weights(np.array([0, 5, 1]), num_classes=3)


def test_fit_applies_class_weight_to_aux_model(tmp_path):
    # Keras refuses class_weight for multi-output models; fit() turns it into sample weights.
    model = training.compile_model(aux_model(), auxiliary_loss_weight=0.5, optimizer="sgd")
    (features, labels), class_weight = worker.make_arrays(16), {0: 1.0, 1: 3.0, 2: 0.5}
    predicted = model.predict({"sensor": features}, verbose=0)

    def cross_entropy(probabilities):
        return -np.log(probabilities[np.arange(len(labels)), labels])

    weights = np.array([class_weight[c] for c in labels])
    expected = np.mean(weights * cross_entropy(predicted["label"])) + 0.5 * np.mean(
        weights * cross_entropy(predicted["sensor_aux"]))
    history = training.fit(model, one_batch(), epochs=1, out_dir=tmp_path, verbose=0,
                           class_weight=class_weight, tensorboard=False)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-4)


# === Callbacks ===


class CountingCallback(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


def test_callbacks_layout_and_hparams(tmp_path):
    extra = CountingCallback()
    result = training.callbacks(tmp_path, hparams={"fusion": "gated", "lr": 1e-3},
                                confusion_matrix=extra, patience=3)
    kinds = [type(c) for c in result]
    assert issubclass(kinds[0], keras.callbacks.BackupAndRestore)  # first: restores before others
    assert keras.callbacks.TerminateOnNaN in kinds
    early = next(c for c in result if isinstance(c, keras.callbacks.EarlyStopping))
    assert early.restore_best_weights and early.patience == 3
    assert result[-1] is extra
    with pytest.raises(TypeError, match="confusion_matrix"):
        training.callbacks(tmp_path, confusion_matrix=object())

    model = training.compile_model(worker.make_model())
    training.fit(model, one_batch(), one_batch(), epochs=2, out_dir=tmp_path, verbose=0,
                 callbacks=result)
    assert extra.epochs == 2
    assert keras.models.load_model(tmp_path / "checkpoints" / "best.keras") is not None
    assert json.loads((tmp_path / "checkpoints" / "best.json").read_text())["monitor"] == "val_loss"
    assert not (tmp_path / "backup").exists()  # a completed run leaves no backup
    plugins = set()
    for event_file in (tmp_path / "tensorboard").rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            plugins.update(v.metadata.plugin_data.plugin_name for v in event.summary.value)
    assert {"hparams", "scalars"} <= plugins


@pytest.mark.parametrize("resuming", [True, False])
def test_best_checkpoint_keeps_record_of_interrupted_run(tmp_path, resuming):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    interrupted_best = training.compile_model(worker.make_model(seed=1))
    interrupted_best.save(checkpoints / "best.keras")
    saved = (checkpoints / "best.keras").read_bytes()
    (checkpoints / "best.json").write_text(
        json.dumps({"monitor": "val_accuracy", "value": 1.1, "epoch": 1}))  # fit's default monitor
    if resuming:  # what BackupAndRestore leaves behind when a run dies
        (tmp_path / "backup").mkdir()
        (tmp_path / "backup" / "training_metadata.json").write_text('{"epoch": 0, "batch": 0}')
    model = training.compile_model(worker.make_model())
    training.fit(model, one_batch(), one_batch(), epochs=1, out_dir=tmp_path, verbose=0,
                 tensorboard=False)
    kept = (checkpoints / "best.keras").read_bytes() == saved
    assert kept == resuming  # a fresh run in the same directory starts a new record
    if resuming:  # and the interrupted run's best is the model fit leaves behind
        for trained, best in zip(model.get_weights(), interrupted_best.get_weights()):
            np.testing.assert_array_equal(trained, best)


def test_best_epoch_is_picked_by_the_validation_metric(tmp_path):
    """Not by val_loss: early stopping and the best checkpoint follow the headline metric."""
    model = training.compile_model(worker.make_model())
    history = training.fit(model, one_batch(), one_batch(), epochs=2, out_dir=tmp_path, verbose=0,
                           tensorboard=False)
    record = json.loads((tmp_path / "checkpoints" / "best.json").read_text())
    assert record["monitor"] == "val_accuracy"
    assert record["value"] == max(history.history["val_accuracy"])
    assert training.validation_monitor(aux_model()) == "val_label_accuracy"
    assert training.validation_monitor(multi_label_model()) == "val_auc"
    # Macro-F1 is logged too: with class weights, accuracy favours majority-class epochs.
    assert training.validation_monitor(model, "macro_f1") == "val_macro_f1"
    assert "val_macro_f1" in history.history
    with pytest.raises(ValueError, match=r"unknown headline 'macro_f2' \(did you mean 'macro_f1'\?\)"):
        training.validation_monitor(multi_label_model(), "macro_f2")
    for monitor, mode in (("val_loss", "min"), ("val_label_accuracy", "max")):
        early = training.callbacks(tmp_path, monitor=monitor, tensorboard=False)[-1]
        assert early.monitor == monitor and early.mode == mode


def test_fit_prints_one_line_per_epoch_when_output_is_not_a_terminal(tmp_path, capsys):
    model = training.compile_model(worker.make_model())
    training.fit(model, worker.make_dataset(batch_size=4, num_examples=32), epochs=2, out_dir=tmp_path,
                 tensorboard=False)
    out = capsys.readouterr().out
    assert out.count("Epoch ") == 2 and "\r" not in out and "\x08" not in out and "━" not in out


def test_class_weight_is_refused_for_multi_label_heads(tmp_path):
    model = training.compile_model(multi_label_model())
    features, _ = worker.make_arrays(16)
    multi_hot = (features[:, :worker.NUM_CLASSES] > 0).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices(({"sensor": features}, multi_hot)).batch(16)
    with pytest.raises(ValueError, match="first positive label only"):
        training.fit(model, dataset, epochs=1, out_dir=tmp_path, class_weight={0: 1.0, 1: 5.0, 2: 1.0},
                     verbose=0)


def test_with_labels_for_passes_through_single_output():
    dataset = one_batch()
    assert training.with_labels_for(worker.make_model(), dataset) is dataset
    weighted = dataset.map(lambda x, y: (x, y, tf.ones_like(y, "float32")))
    mapped = training.with_labels_for(aux_model(), weighted)
    x, y, sample_weight = next(iter(mapped))
    assert sorted(y) == ["label", "sensor_aux"]
    np.testing.assert_array_equal(y["label"], y["sensor_aux"])
    assert {name: w.shape for name, w in sample_weight.items()} == {"label": (16,), "sensor_aux": (16,)}


def test_aux_head_of_a_missing_input_learns_nothing():
    """Auxiliary losses are masked by presence: a head whose input is missing is
    not trained to predict the label from the encoder's fill value."""
    from mmkeras.modalities.missing import SplitMissing

    keras.utils.set_random_seed(0)
    inputs = {name: keras.Input((worker.NUM_FEATURES,), name=name) for name in ("sensor", "camera")}
    filled = {name: SplitMissing()(x)[0] for name, x in inputs.items()}
    outputs = {"label": keras.layers.Dense(worker.NUM_CLASSES, activation="softmax", name="label")(
        keras.layers.Concatenate()(list(filled.values())))}
    for name, x in filled.items():
        outputs[f"{name}_aux"] = keras.layers.Dense(
            worker.NUM_CLASSES, activation="softmax", name=f"{name}_aux")(x)
    model = training.compile_model(keras.Model(inputs, outputs), multi_label=False, optimizer="adam")
    features, labels = worker.make_arrays(16)
    camera = np.where(np.arange(16)[:, None] < 8, np.nan, features)  # half the cameras missing
    dataset = tf.data.Dataset.from_tensor_slices(({"sensor": features, "camera": camera}, labels))
    _, _, weights = next(iter(training.with_labels_for(model, dataset.batch(16))))
    assert weights["camera_aux"].numpy().tolist() == [0.0] * 8 + [1.0] * 8
    assert weights["sensor_aux"].numpy().tolist() == [1.0] * 16

    all_missing = dataset.map(lambda x, y: ({**x, "camera": x["camera"] * np.nan}, y)).batch(16)
    before = model.get_layer("camera_aux").get_weights()
    logs = model.fit(training.with_labels_for(model, all_missing), epochs=1, verbose=0).history
    assert logs["camera_aux_loss"][0] == 0.0 and logs["sensor_aux_loss"][0] > 0.0
    for a, b in zip(before, model.get_layer("camera_aux").get_weights()):
        np.testing.assert_array_equal(a, b)  # the bias too: its gradient was masked


# === Precision and strategies ===


def test_set_precision():
    try:
        policy = training.set_precision("mixed_bfloat16")
        layer = keras.layers.Dense(2)
        layer.build((None, 3))
        assert policy.compute_dtype == "bfloat16" and layer.compute_dtype == "bfloat16"
        assert layer.kernel.dtype == "float32"
    finally:
        training.set_precision("float32")
    try:
        training.set_precision("mixed_float16")
        model = training.compile_model(worker.make_model())
        # Keras adds loss scaling for float16 by itself; clipping stays on the inner optimizer.
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        assert model.optimizer.inner_optimizer.global_clipnorm == 1.0
        before = model.get_weights()
        history = model.fit(one_batch(), epochs=1, verbose=0, shuffle=False)
        assert np.isfinite(history.history["loss"][0])
        assert changed(before, model.get_weights())
    finally:
        training.set_precision("float32")
    assert keras.layers.Dense(2).compute_dtype == "float32"
    with pytest.raises(ValueError, match="mixed_float16"):
        training.set_precision("float8")


def test_strategy_errors_are_clear(monkeypatch):
    assert training.strategy("default") is tf.distribute.get_strategy()
    with pytest.raises(ValueError, match="'horovod'"):
        training.strategy("horovod")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(RuntimeError, match="TF_CONFIG"):
        training.strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        training.strategy("multi_worker")
    for name in ("TPU_NAME", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS", "TPU_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="found no usable TPU"):
        training.strategy("tpu")


def test_mirrored_strategy_matches_single_device(tmp_path):
    result_path = tmp_path / "mirrored.npz"
    codes = run_processes([["mirrored", str(result_path)]], tmp_path)
    assert codes == [0], log_tail(tmp_path)
    result = np.load(result_path)
    assert int(result["num_replicas"]) == 2
    assert set(result["copies_per_variable"]) == {2}
    assert float(result["max_replica_difference"]) == 0.0
    assert result["mirrored_loss"][-1] < result["mirrored_loss"][0]
    for i in range(len(result["copies_per_variable"])):
        single, mirrored = result[f"single_{i}"], result[f"mirrored_{i}"]
        assert not np.allclose(mirrored, result[f"initial_{i}"], atol=1e-3)  # it learned
        np.testing.assert_allclose(mirrored, single, atol=1e-5)


def test_multi_worker_strategy_two_local_workers(tmp_path):
    out_dir = tmp_path / "run"
    hosts = [f"127.0.0.1:{port}" for port in free_ports(2)]
    envs = [{"TF_CONFIG": json.dumps({"cluster": {"worker": hosts},
                                      "task": {"type": "worker", "index": i}})}
            for i in range(2)]
    results = [tmp_path / f"worker_{i}.npz" for i in range(2)]
    commands = [["multi_worker", str(out_dir), str(path)] for path in results]
    codes = run_processes(commands, tmp_path, envs=envs)
    assert codes == [0, 0], log_tail(tmp_path)

    chief, other = (np.load(path) for path in results)
    assert int(chief["num_replicas"]) == 2
    num_weights = len([k for k in chief.files if k.startswith("final_")])
    for i in range(num_weights):
        np.testing.assert_array_equal(chief[f"final_{i}"], other[f"final_{i}"])
        assert not np.allclose(chief[f"final_{i}"], chief[f"initial_{i}"], atol=1e-3)
    # Synchronous data parallelism over 2 workers computes the global-batch step.
    reference = training.compile_model(worker.make_model())
    reference.fit(worker.make_dataset(batch_size=16), epochs=3, verbose=0, shuffle=False)
    for i, expected in enumerate(reference.get_weights()):
        np.testing.assert_allclose(chief[f"final_{i}"], expected, atol=1e-5)
    # Only the chief writes to out_dir; the other worker writes beside it.
    assert (out_dir / "checkpoints" / "best.keras").exists()
    assert (out_dir / "workers" / "worker_1" / "checkpoints" / "best.keras").exists()


# === Resume after a crash ===


class FirstEpochProbe(keras.callbacks.Callback):
    """What the model looks like when the (resumed) run starts its first epoch."""

    def __init__(self, backup_dir):
        super().__init__()
        self.backup_dir = backup_dir
        self.first_epoch = self.metadata_after_batch_1 = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch
            self.iterations = int(self.model.optimizer.iterations.numpy())
            self.weights = self.model.get_weights()

    def on_train_batch_end(self, batch, logs=None):
        metadata = self.backup_dir / "training_metadata.json"
        if batch == 1 and self.metadata_after_batch_1 is None and metadata.exists():
            self.metadata_after_batch_1 = json.loads(metadata.read_text())


@pytest.mark.parametrize("backup_steps, restored_iterations", [(None, 8), (2, 10)])
def test_killed_run_resumes_from_backup(tmp_path, backup_steps, restored_iterations):
    # 8 batches per epoch; the process dies after batch index 2 of epoch index 1.
    # Epoch backups restore the end of epoch 0 (8 steps); backups every 2 steps
    # restore the state after batch index 1 of epoch 1 (10 steps). Epoch 1 then
    # runs again whole, so its step counter starts at 8 either way: the cosine
    # schedule is where it was at the epoch's start, not 2 steps past it.
    out_dir, record_path = tmp_path / "run", tmp_path / "record.npz"
    command = ["crash", str(out_dir), str(record_path), "2", str(backup_steps or 0)]
    assert run_processes([command], tmp_path) == [worker.CRASH_EXIT_CODE], log_tail(tmp_path)
    metadata = json.loads((out_dir / "backup" / "training_metadata.json").read_text())
    assert metadata["epoch"] == 1

    record = np.load(record_path)
    restored_state = [record[f"state_{restored_iterations}_{i}"] for i in range(4)]
    model = training.compile_model(worker.make_model(), optimizer="adam")
    fresh_weights = model.get_weights()
    probe = FirstEpochProbe(out_dir / "backup")
    run_callbacks = training.callbacks(out_dir, patience=None, tensorboard=False,
                                       backup_every_steps=backup_steps) + [probe]
    history = training.fit(model, worker.make_dataset(), worker.make_dataset(seed=2), epochs=4,
                           out_dir=out_dir, callbacks=run_callbacks, verbose=0)

    assert probe.first_epoch == 1
    assert len(history.history["loss"]) == 3
    # The run's log continues the interrupted one: epoch 0 from before the crash, 1-3 after.
    summary = training.training_summary(out_dir, epochs=4, patience=None)
    assert summary["epochs_run"] == 4 and len(summary["curves"]["loss"]) == 4
    assert summary["curves"]["loss"][1:] == pytest.approx(history.history["loss"])
    assert probe.iterations == 8  # the epoch's first step, whatever the backup's count
    assert int(model.optimizer.iterations.numpy()) == 4 * 8  # 4 epochs: the schedule ends where planned
    assert changed(fresh_weights, probe.weights)  # not from scratch
    for restored, expected in zip(probe.weights, restored_state):
        np.testing.assert_allclose(restored, expected, rtol=1e-6, atol=1e-7)
    if backup_steps:  # a step backup after the resume records the resumed epoch
        assert probe.metadata_after_batch_1["epoch"] == 1
    assert not (out_dir / "backup").exists()

    # The best checkpoint is the best over both runs, and it loads.
    all_val_losses = list(record["val_losses"]) + history.history["val_loss"]
    best = keras.models.load_model(out_dir / "checkpoints" / "best.keras")
    logs = best.evaluate(worker.make_dataset(seed=2), verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(min(all_val_losses), rel=1e-5)
    # ... and it is the model fit leaves behind, to be saved, evaluated and exported.
    for trained, kept in zip(model.get_weights(), best.get_weights()):
        np.testing.assert_array_equal(trained, kept)


def test_early_stopping_resumes_with_the_interrupted_runs_best(tmp_path):
    """Keras' EarlyStopping restarts with no best after BackupAndRestore."""
    run_callbacks = training.callbacks(tmp_path, monitor="val_accuracy", patience=3, tensorboard=False)
    early = run_callbacks[-1]
    (tmp_path / "checkpoints" / "best.json").write_text(
        json.dumps({"monitor": "val_accuracy", "value": 0.9, "epoch": 2}))
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "training_metadata.json").write_text(json.dumps({"epoch": 4, "batch": 0}))
    early.set_model(training.compile_model(worker.make_model()))
    early.on_train_begin()
    assert (early.best, early.best_epoch, early.wait) == (0.9, 1, 2)  # epochs 3 and 4 did not beat it
    early.on_epoch_end(4, {"val_accuracy": 0.8})
    assert early.model.stop_training  # the third epoch without a better value


def test_xla_is_refused_for_text_inputs_with_a_plain_message():
    spec = mmk.TextInput("note", vocabulary=["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]", "good"])
    model = mmk.build_unimodal(spec, mmk.Classification(["a", "b"]))
    with pytest.raises(ValueError, match=r"jit_compile=True cannot compile a model with text inputs \['note'\]"):
        training.compile_model(model, jit_compile=True)


# === Every headline picks the best epoch; macro-F1 as the report computes it (issue 23, items 5, 8) ===


def multi_label_dataset(batch_size=16):
    features, labels = worker.make_arrays(num_examples=batch_size)
    multi_hot = np.eye(worker.NUM_CLASSES, dtype="float32")[labels]
    multi_hot[:, 0] = 1.0
    return tf.data.Dataset.from_tensor_slices(({"sensor": features}, multi_hot)).batch(batch_size)


@pytest.mark.parametrize("multi_label", [False, True])
def test_every_report_headline_works_as_the_early_stopping_monitor(multi_label, tmp_path):
    from mmkeras.headlines import headlines

    for headline in headlines(multi_label):
        model = multi_label_model() if multi_label else aux_model()
        data = multi_label_dataset() if multi_label else one_batch()
        training.compile_model(model, headline=headline)
        monitor = training.validation_monitor(model, headline)
        history = training.fit(model, data, data, epochs=1, out_dir=tmp_path / headline, monitor=monitor,
                               verbose=0, tensorboard=False)
        assert monitor in history.history, (headline, monitor, sorted(history.history))


def test_training_macro_f1_agrees_with_the_report_when_a_class_is_absent():
    """Keras' F1Score counts a class absent from truth and predictions as 0; the report skips it."""
    from mmkeras.evaluation import classification_metrics
    from mmkeras.training.logged_metrics import MacroF1, SparseMacroF1

    y_true = np.array([0, 1, 1, 0])
    y_prob = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])
    report = classification_metrics(y_true, y_prob, ["a", "b", "c"])["macro_f1"]
    metric = SparseMacroF1(num_classes=3)
    metric.update_state(y_true, y_prob)
    assert report == pytest.approx(float(metric.result())) == pytest.approx(1.0)
    wrong = np.array([[0.1, 0.1, 0.8], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])
    metric.reset_state()
    metric.update_state(y_true, wrong)
    assert float(metric.result()) == pytest.approx(classification_metrics(y_true, wrong, ["a", "b", "c"])["macro_f1"])
    multi_true = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0]])
    multi_prob = np.array([[0.9, 0.2, 0.1], [0.5, 0.4, 0.2], [0.3, 0.8, 0.1]])
    multi = MacroF1(num_classes=3, threshold=0.5)
    multi.update_state(multi_true, multi_prob)
    expected = classification_metrics(multi_true, multi_prob, ["a", "b", "c"], multi_label=True)["macro_f1"]
    assert float(multi.result()) == pytest.approx(expected)
    restored = MacroF1.from_config(multi.get_config())
    assert restored.label_threshold == 0.5 and restored.num_classes == 3


# === Reproducibility (issue 23, item 13) ===

_SEEDED_RUN = """
import hashlib, sys
import numpy as np
from mmkeras.app import load_app, run_app, with_overrides
app = with_overrides(load_app("apps/sentiment"), ["training.deterministic=true", "training.epochs=1"])
result = run_app(app, work_dir=sys.argv[1], num_examples=48, baselines=False, export=False, seed=0, verbose=0)
print("WEIGHTS", hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in result["model"].get_weights())).hexdigest())
"""


def test_two_deterministic_runs_train_identical_weights(tmp_path):
    """The sentiment app (text, image with flips, audio with SpecAugment), twice with one seed."""
    # The two runs at once, one per core: most of each is single-threaded tracing.
    runs = [subprocess.Popen([sys.executable, "-c", _SEEDED_RUN, str(tmp_path / run)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
            for run in ("first", "second")]
    hashes = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=SUBPROCESS_TIMEOUT_S * 2)
        assert run.returncode == 0, stderr[-2000:]
        hashes.append(next(line for line in stdout.splitlines() if line.startswith("WEIGHTS")))
    assert hashes[0] == hashes[1]
