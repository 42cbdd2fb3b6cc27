"""What the toolkit costs per train step, and how step time scales (issue 11, figures 1 and 8).

Figure 1, overhead: train-step time of a `build_model` model over the same
architecture written by hand with the Keras functional API. The model is
`ImageInput("photo", size=(64, 64))` (default `small_cnn`) + an 8-feature
`SensorInput`, concat fusion, the builder's 128-wide projections and head.
Two hand-written models:
- `plain` (the headline ratio): what a user writes for complete data. Same
  layers, sizes and activations (Resizing, Rescaling, the VGG stages of
  `small_cnn`, the sensor MLP, projections, concat -> Dense 256 -> head) but
  no missing-modality machinery: no NaN checks (`SplitMissing*`), no presence
  flags, no `ModalityDropout` and its learned missing embeddings. It has 1,280
  fewer weights: the sensor MLP reads F values, not F values + F flags
  (8 x 64), concat fusion reads 2 x 128 values, not + 2 presence flags
  (2 x 256), and 2 x 128 missing embeddings.
- `exact`: the same computation as `build_model`'s, wired by hand from the
  library's layers; its ratio shows what the builder itself adds.
All three get `mmkeras.training.compile_model` (same AdamW, loss and metrics)
and the same in-memory batch; after a warm-up, single train steps are
interleaved A/B/C (a random order each round) and a ratio is the median of
per-round ratios: of wall-clock times (the figure) and, as a check that holds
while other processes share the CPU, of process CPU times.

Figure 8, scaling: step time of `build_model` models (`ImageInput` + a cnn
`TextInput`) against batch size, image size (in kilopixels), text length (in
words, one token each) and number of modalities (added `ImageInput`s), one
factor varied at a time; a line is fitted per factor (slope, intercept, R^2;
`quick` fits two points, so its R^2 is 1 by construction). All models are
built first and timed interleaved as above.
Under `jit=True` the text input is replaced by a `SensorInput` and the text
factor is skipped: XLA cannot compile the tokenizer's string ops.

One call of `measure()` is one repetition; `python -m benchmarks` repeats it.
Usage: python benchmarks/overhead.py [--quick] [--precision mixed_float16] [--jit]
"""

import argparse
import json
import time

import numpy as np

CLASSES = ["a", "b", "c"]
FEATURES = [f"f{i}" for i in range(8)]
WORDS = [f"w{i}" for i in range(200)]


# === Data and models ===


def _specs(image_size=64, images=1, text_length=None, sensor=False):
    import mmkeras as mmk
    from mmkeras.modalities.text import RESERVED_TOKENS

    specs = [mmk.ImageInput(f"photo{i}" if i else "photo", size=(image_size, image_size))
             for i in range(images)]
    if text_length:
        specs.append(mmk.TextInput("review", sequence_length=text_length + 2,
                                   vocabulary=RESERVED_TOKENS + WORDS))
    if sensor:
        specs.append(mmk.SensorInput("readings", FEATURES, mean=[0.0] * len(FEATURES),
                                     variance=[1.0] * len(FEATURES)))
    return specs


def _batch(specs, batch_size, seed=0):
    """One in-memory batch `(inputs, labels)` of decoded tensors."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x = {spec.name: _decoded(spec, batch_size, rng) for spec in specs}
    return x, tf.constant(rng.integers(0, len(CLASSES), batch_size))


def _decoded(spec, batch_size, rng):
    """A batch of decoded values of one input: texts of `sequence_length` words
    (a tokenizer's whole budget), else the kind's random raw values decoded."""
    import tensorflow as tf

    import mmkeras as mmk

    if isinstance(spec, mmk.TextInput):
        return tf.constant([" ".join(rng.choice(WORDS, spec.sequence_length - 2)) for _ in range(batch_size)])
    return tf.stack([spec.decode(spec.synthetic_raw(rng)) for _ in range(batch_size)])


def _built(specs, jit):
    import mmkeras as mmk
    from mmkeras import training

    model = mmk.build_model(specs, task=mmk.Classification(CLASSES))
    return training.compile_model(model, jit_compile=jit)


def hand_written(image_size=64, exact=False, projection_dim=128):
    """Figure 1's architecture in plain Keras; `exact` adds build_model's missing-data layers."""
    import keras

    from mmkeras.fusion import ConcatFusion, ModalityDropout
    from mmkeras.modalities.missing import SplitMissing, SplitMissingFeatures

    layers = keras.layers
    photo = keras.Input((None, None, 3), name="photo")
    readings = keras.Input((len(FEATURES),), name="readings")
    pixels, photo_presence = SplitMissing()(photo) if exact else (photo, None)
    x = layers.Resizing(image_size, image_size)(pixels, training=False)
    x = layers.Rescaling(1.0 / 255.0)(x)
    for width in (16, 32, 64):  # small_cnn
        for _ in range(2):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
            x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
        x = layers.MaxPooling2D()(x)
    photo_embedding = layers.Dense(projection_dim)(layers.GlobalAveragePooling2D()(x))
    r = layers.Normalization(mean=[0.0] * len(FEATURES), variance=[1.0] * len(FEATURES),
                             dtype="float32")(readings)
    r, readings_presence = SplitMissingFeatures(dtype="float32")(r) if exact else (r, None)
    r = layers.Dense(64, activation="gelu")(layers.Dense(64, activation="gelu")(r))
    readings_embedding = layers.Dense(projection_dim)(r)
    if exact:
        stacked = layers.Concatenate(axis=1)([layers.Reshape((1, projection_dim))(e)
                                              for e in (photo_embedding, readings_embedding)])
        presence = layers.Concatenate()([photo_presence, readings_presence])
        stacked, presence = ModalityDropout(0.1)(stacked, presence)
        x = ConcatFusion(["photo", "readings"])(stacked, presence)
    else:
        x = layers.Concatenate()([photo_embedding, readings_embedding])
        x = layers.Dropout(0.1)(layers.Dense(256, activation="gelu")(x))
    x = layers.Dropout(0.1)(layers.Dense(projection_dim, activation="gelu")(x))
    x = layers.Activation("softmax", dtype="float32")(layers.Dense(len(CLASSES))(x))
    return keras.Model({"photo": photo, "readings": readings}, x)


# === Timing ===


def time_steps(models, batches, steps, seed=0):
    """ms of each train step `[model, step]`: wall clock, and process CPU time (a CPU-only check).

    After two warm-up steps (tracing), each round runs one `train_on_batch` of
    every model in a fresh random order, so a shared machine's slow spells hit
    all alike.
    """
    for model, (x, y) in zip(models, batches):
        for _ in range(2):
            model.train_on_batch(x, y)
    wall, cpu = np.zeros((2, len(models), steps))
    rng = np.random.default_rng(seed)
    for step in range(steps):
        for i in rng.permutation(len(models)):
            start, start_cpu = time.perf_counter(), time.process_time()
            models[i].train_on_batch(*batches[i])
            wall[i, step] = 1000 * (time.perf_counter() - start)
            cpu[i, step] = 1000 * (time.process_time() - start_cpu)
    return wall, cpu


def figure1(quick=False, jit=False):
    from mmkeras import training

    size, batch_size = (32, 8) if quick else (64, 32)
    steps = 15 if quick else 100
    specs = _specs(size, sensor=True)
    models = [_built(specs, jit)]
    for exact in (False, True):
        models.append(training.compile_model(hand_written(size, exact=exact), jit_compile=jit))
    times, cpu = time_steps(models, [_batch(specs, batch_size)] * 3, steps)
    medians = np.median(times, axis=1)
    return {
        "train_step_ratio": float(np.median(times[0] / times[1])),
        "train_step_ratio_cpu_time": float(np.median(cpu[0] / cpu[1])),
        "train_step_ratio_exact": float(np.median(times[0] / times[2])),
        "build_model_step_ms": float(medians[0]), "hand_written_step_ms": float(medians[1]),
        "hand_written_exact_step_ms": float(medians[2]),
        "params_build_model": models[0].count_params(), "params_hand_written": models[1].count_params(),
        "params_hand_written_exact": models[2].count_params(),
    }


# Figure 8: each factor's values (others at the base), the base, and the x units.
FACTORS = {
    "batch": ("batch_size", [8, 16, 32, 64], [4, 8], "example"),
    "image": ("image_size", [24, 32, 48, 64], [16, 24], "kilopixel"),
    "text": ("text_length", [16, 32, 64, 128], [8, 16], "word"),
    "modalities": ("modalities", [2, 3, 4], [2, 3], "modality"),
}
BASE = {"batch_size": 16, "image_size": 32, "text_length": 32, "modalities": 2}
QUICK_BASE = {"batch_size": 4, "image_size": 16, "text_length": 8, "modalities": 2}


def figure8(quick=False, jit=False):
    base = QUICK_BASE if quick else BASE
    steps = 6 if quick else 25
    factors = {k: v for k, v in FACTORS.items() if not (jit and k == "text")}
    configs = []  # distinct settings, the base shared by every factor
    for key, values, quick_values, _ in factors.values():
        for value in quick_values if quick else values:
            config = {**base, key: value}
            if config not in configs:
                configs.append(config)
    models, batches = [], []
    for c in configs:
        specs = _specs(c["image_size"], c["modalities"] - 1, None if jit else c["text_length"], jit)
        models.append(_built(specs, jit))
        batches.append(_batch(specs, c["batch_size"]))
    medians = np.median(time_steps(models, batches, steps)[0], axis=1)
    result = {}
    for name, (key, _, _, unit) in factors.items():
        points = [(c[key], ms) for c, ms in zip(configs, medians)
                  if all(c[k] == base[k] for k in base if k != key)]
        x, y = np.array(points, dtype=float).T
        if name == "image":
            x = x * x / 1000.0
        slope, intercept = np.polyfit(x, y, 1)
        residual = y - (slope * x + intercept)
        total = np.sum((y - y.mean()) ** 2)
        result[f"slope_ms_per_{unit}"] = float(slope)
        result[f"intercept_ms_{name}"] = float(intercept)
        result[f"r2_{name}"] = float(1 - np.sum(residual ** 2) / total) if total > 0 else 1.0
    return result


def measure(quick=False, precision="float32", jit=False):
    """One repetition of figures 1 and 8: a flat dict of numbers."""
    import keras

    from mmkeras import training

    training.set_precision(precision)
    try:
        result = {**figure1(quick, jit), **figure8(quick, jit)}
    finally:
        training.set_precision("float32")
        keras.backend.clear_session()
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--jit", action="store_true", help="jit_compile=True for training")
    parser.add_argument("--figure", choices=["1", "8"], help="only one figure")
    args = parser.parse_args(argv)
    from mmkeras import training

    training.set_precision(args.precision)
    if args.figure:
        result = (figure1 if args.figure == "1" else figure8)(args.quick, args.jit)
    else:
        result = measure(args.quick, args.precision, args.jit)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()},
                     indent=2))


if __name__ == "__main__":
    main()
