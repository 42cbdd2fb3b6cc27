"""Figure 5: achieved FLOP/s of a training step over this machine's dense-matmul FLOP/s.

What: the inspection app (`apps/inspection`, the image-heavy one: `small_cnn` on
64x64 part images, a log-mel audio CNN, a sensor MLP, concat fusion, auxiliary
heads), its default model and training settings, one train step at the app's
batch size. Target: `flops_ratio` >= 0.3.

How:
- FLOPs of a step are counted, not estimated: `tf.compat.v1.profiler`'s
  `float_operation` over the graph of `model.train_step` traced for one fixed
  batch, so forward, loss, the gradient ops (`Conv2DBackpropInput` /
  `...Filter`, `MatMul`, ...) and the optimizer update are all in it. The
  forward pass alone (`model(x, training=False)`) is reported too; a step comes
  out near the usual 3x forward. The profiler has no statistics for `RFFT` (the
  log-mel front end), added here as 2.5 N log2 N per real transform, nor for ops
  inside `map_fn` loops (per-example dB scale, SpecAugment masks: elementwise,
  a few MFLOP), which count 0: the figure errs low.
- Time: `fit` on a few decoded batches held in memory (repeated), after a
  warm-up; no file reading or decoding is timed.
- Peak: a square matmul (2n^3 flops; n = 2048 on CPU, 4096 on GPU) in the
  dtype policy's compute dtype, in the same process and TF thread pools,
  `jit_compile` as the train step. (On NVIDIA GPUs TensorFlow runs float32
  matmuls and convolutions as TF32 by default, both sides alike.)
- `precision` is the Keras dtype policy set before the model is built
  (`mmkeras.training.set_precision`); `jit` is `compile_model(jit_compile=)`.
- Rounds of matmul and train timing are interleaved and each keeps its fastest
  round, so load from other processes on the machine hits both alike.

One call of `measure()` is one repetition; `python -m benchmarks` repeats it.
Usage: python benchmarks/flops.py [--quick] [--precision mixed_float16] [--jit]
"""

import argparse
import json
import math
import os
import tempfile
import time


def count_flops(concrete_function):
    """Float ops of one call of a traced `tf.function` (fully defined shapes)."""
    import tensorflow as tf

    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    graph = concrete_function.graph
    flops = tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops
    for op in graph.get_operations():
        if op.type == "RFFT":  # no registered statistics: the usual real-FFT count
            n = int(tf.get_static_value(op.inputs[1])[0])
            transforms = math.prod(op.inputs[0].shape[:-1])
            flops += int(2.5 * n * math.log2(n) * transforms)
    return flops


def matmul_gflops(n, dtype, jit, reps):
    """A timer of one round of `reps` n x n matmuls; returns GFLOP/s."""
    import tensorflow as tf

    a = tf.random.uniform((n, n), dtype="float32")
    a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
    product = tf.function(tf.linalg.matmul, jit_compile=jit)
    product(a, b).numpy()  # trace + warm up

    def one_round():
        start = time.perf_counter()
        for _ in range(reps):
            result = product(a, b)
        result.numpy()
        return 2 * n ** 3 * reps / (time.perf_counter() - start) / 1e9

    return one_round


def in_memory_batches(app, specs, batch_size, count, work_dir):
    """The app's training examples (demo data) and `count` full decoded training batches."""
    from mmkeras.app import prepare_data
    from mmkeras.data.pipeline import make_dataset

    _, (train, _, _) = prepare_data(app, None, work_dir, num_examples=int(batch_size * count / 0.7) + 2)
    dataset = make_dataset(train, specs, batch_size=batch_size, training=True)
    return train, [b for b in dataset.take(count) if len(b[1]) == batch_size]


def measure(quick=False, precision="float32", jit=False):
    """One repetition of figure 5: a flat dict of numbers."""
    import keras
    import tensorflow as tf

    from mmkeras import training
    from mmkeras.app import build_app_model, load_app

    gpu = bool(tf.config.list_physical_devices("GPU"))
    steps, rounds, count = (4, 2, 2) if quick else (10, 3, 4)
    n, reps = (4096, 20) if gpu else (2048, 2 if quick else 4)
    training.set_precision(precision)
    try:
        app = load_app(os.path.join(os.path.dirname(__file__), "..", "apps", "inspection"))
        specs, config = app.specs(), app.training
        with tempfile.TemporaryDirectory() as tmp:
            train, batches = in_memory_batches(app, specs, config.batch_size, count, tmp)
            model = build_app_model(app, specs, train)
        training.compile_model(model, multi_label=app.data.multi_label, learning_rate=config.learning_rate,
                               optimizer=config.optimizer, label_smoothing=config.label_smoothing,
                               clipnorm=config.clipnorm, auxiliary_loss_weight=config.auxiliary_loss_weight,
                               jit_compile=jit)
        stacked = tf.nest.map_structure(lambda *parts: tf.stack(parts), *batches)
        dataset = training.with_labels_for(model, tf.data.Dataset.from_tensor_slices(stacked)).repeat()
        model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0)  # trace, build optimizer, warm up

        spec = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), dataset.element_spec)
        step_flops = count_flops(tf.function(model.train_step).get_concrete_function(spec))
        forward_flops = count_flops(tf.function(model.call).get_concrete_function(spec[0], training=False))

        matmul_round = matmul_gflops(n, keras.mixed_precision.global_policy().compute_dtype, jit, reps)
        step_times, peaks = [], []
        for _ in range(rounds):
            peaks.append(matmul_round())
            start = time.perf_counter()
            model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
            step_times.append((time.perf_counter() - start) / steps)
    finally:
        training.set_precision("float32")
        keras.backend.clear_session()

    step = min(step_times)
    train_gflops = step_flops / step / 1e9
    return {"flops_ratio": train_gflops / max(peaks), "train_gflops_per_s": train_gflops,
            "matmul_gflops_per_s": max(peaks), "train_step_gflop": step_flops / 1e9,
            "forward_gflop": forward_flops / 1e9, "train_step_ms": 1000 * step,
            "batch_size": config.batch_size, "device": "gpu" if gpu else "cpu"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--jit", action="store_true", help="jit_compile=True for training and the matmul")
    args = parser.parse_args(argv)
    result = measure(args.quick, args.precision, args.jit)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()},
                     indent=2))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
