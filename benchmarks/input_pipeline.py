"""Figure 2: steady-state `fit` throughput reading files / the same model fed decoded tensors.

What: the sentiment app's fused model (text + image + audio) trained on a
manifest of JPEG images, 16-bit WAV clips and text. Target: reading the
files through `mmkeras.data.pipeline.make_dataset` keeps >= 0.90 of the
examples/s of feeding the same model tensors that are already decoded.

How: demo data is generated (`mmkeras.data.demo.generate`); its PNG photos
are re-encoded as JPEG and the manifest rewritten, then validated with the
app (`App.load_examples`). One model is built and compiled; three datasets
feed it the same epochs (`steps` batches, every example once):
- "files": `make_dataset(..., training=True)` as a user gets it (decoded
  examples cached in memory after the first pass, shuffled, flipped);
- "files_uncached": the same with `cache=False` (every epoch decodes files);
- "in_memory": `from_tensor_slices` of the tensors the pipeline decoded once,
  shuffled and batched.
After a warm-up epoch each (which also fills the cache), timed epochs run
interleaved (files, uncached, in-memory, then the reverse order, ...); the
median time per arm gives examples/s (the figure); the median process CPU
time per arm gives `fit_cpu_cost_ratio*`, steadier when other work shares
the CPU. An epoch is timed from its start to its last step (`_EpochTimer`).
Then the uncached pipelines run alone, without the model (`decode_only_*`:
in order; `train_pipeline_*`: shuffled, as training reads), to tell decode
cost from model cost and to show the wait for the shuffle buffer before the
first batch.

`precision` sets the Keras dtype policy before the model is built; `jit`
compiles the train step with XLA where the model allows it (not with a text
input: see `_jit_applies`).

Usage: python benchmarks/input_pipeline.py [--quick] [--precision mixed_float16] [--jit]
"""

import argparse
import csv
import json
import pathlib
import shutil
import sys
import tempfile
import time

import keras
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

APP = "apps/sentiment"


def _jpeg_manifest(out_dir, num_examples, image_size, seed=0):
    """Sentiment demo data whose photos are JPEG files (the generator writes PNG)."""
    from PIL import Image

    from mmkeras.data import demo

    manifest = demo.generate("sentiment", out_dir, num_examples=num_examples, seed=seed,
                             image_size=image_size)
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    columns = list(rows[0])
    for row in rows:
        png = pathlib.Path(out_dir, row["photo"])
        jpeg = png.with_suffix(".jpg")
        Image.open(png).convert("RGB").save(jpeg, format="JPEG", quality=95)
        png.unlink()
        row["photo"] = str(jpeg.relative_to(out_dir))
    jpeg_manifest = pathlib.Path(out_dir, "manifest_jpeg.csv")
    with open(jpeg_manifest, "w", newline="", encoding="utf-8") as f:
        csv.DictWriter(f, columns).writeheader()
        csv.DictWriter(f, columns).writerows(rows)
    return jpeg_manifest


def _jit_applies(jit, specs):
    """`jit`, except for a model with a text input: XLA cannot take its strings
    (tf2xla: no `_Arg` kernel for DT_STRING), so its steps run without XLA and
    the result says `jit_applied: 0`."""
    if jit and any(spec.keras_input().dtype == "string" for spec in specs):
        print("jit=True ignored: the model takes strings (a text input), which XLA cannot compile",
              file=sys.stderr)
        return False
    return jit


def compiled_model_on_jpegs(tmp, num_examples, precision, jit, image_size=None):
    """The sentiment app's compiled model and `num_examples` of its demo data as
    JPEG + WAV + text files in `tmp`, in a fresh Keras session (memory stays
    flat over repeats). Returns `(app, specs, examples, model, jit applied)`."""
    from mmkeras import training
    from mmkeras.app import build_app_model, load_app
    from mmkeras.modalities import ImageInput

    keras.utils.clear_session()
    training.set_precision(precision)
    app = load_app(APP)
    specs = app.specs()
    size = image_size or next(spec.size[0] for spec in specs if isinstance(spec, ImageInput))
    examples, _ = app.load_examples(_jpeg_manifest(tmp, num_examples, size))
    model = build_app_model(app, specs, examples)
    jit = _jit_applies(jit, specs)
    training.compile_model(model, multi_label=app.data.multi_label, jit_compile=jit)
    return app, specs, examples, model, jit


def _decoded_once(dataset):
    """All (inputs, labels) of a batched, unshuffled dataset as numpy arrays."""
    batches = [(x, y) for x, y in dataset]
    return ({name: np.concatenate([x[name].numpy() for x, _ in batches]) for name in batches[0][0]},
            np.concatenate([y.numpy() for _, y in batches]))


class _EpochTimer(keras.callbacks.Callback):
    """Wall and process CPU seconds of one epoch, from its start to its last step.

    Not the whole `fit` call: after it, deleting the tf.data iterator
    (`RootDataset::Iterator` waiting for its autotune thread) blocks for up
    to ~2.5 s at random, which is no part of an epoch's throughput.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def _one_pass(dataset):
    """Seconds for one pass over a dataset from a fresh iterator, and to its first batch."""
    start = time.perf_counter()
    iterator = iter(dataset)
    next(iterator)
    first = time.perf_counter() - start
    for _ in iterator:
        pass
    return time.perf_counter() - start, first


def measure(quick=False, precision="float32", jit=False, batch_size=32, steps=None, repeats=None,
            image_size=None):
    """One repetition of figure 2; returns examples/s per arm and their ratios."""
    import tensorflow as tf

    from mmkeras import training
    from mmkeras.data.pipeline import make_dataset

    steps = steps or (3 if quick else 16)
    repeats = repeats or (1 if quick else 4)
    tmp = tempfile.mkdtemp(prefix="mmk_input_pipeline_")
    try:
        # One epoch = every training example once: the cache is full after the warm-up.
        _, specs, examples, model, jit = compiled_model_on_jpegs(tmp, steps * batch_size, precision, jit,
                                                                image_size)

        x, y = _decoded_once(make_dataset(examples, specs, batch_size=batch_size, cache=False))
        # No `.repeat()`: each fit call reads one whole epoch, as `fit(..., epochs=n)`
        # does, and no iterator is left decoding the next epoch behind the next arm.
        arms = {
            "files": make_dataset(examples, specs, batch_size=batch_size, training=True),
            "files_uncached": make_dataset(examples, specs, batch_size=batch_size, training=True,
                                           cache=False),
            "in_memory": (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=0)
                          .batch(batch_size).prefetch(tf.data.AUTOTUNE)),
        }
        for dataset in arms.values():  # trace, warm up, fill the cache
            model.fit(dataset, epochs=1, verbose=0, shuffle=False)
        times = {name: [] for name in arms}
        cpu = {name: [] for name in arms}
        order = list(arms)
        for _ in range(repeats):
            for name in order:
                timer = _EpochTimer()
                model.fit(arms[name], epochs=1, verbose=0, shuffle=False, callbacks=[timer])
                times[name].append(timer.wall)
                cpu[name].append(timer.cpu)
            order.reverse()  # A B C, C B A, ...: no arm always follows the same one

        # Without the model: fresh passes of the uncached pipeline, in order and shuffled.
        decode_s, decode_first_s = _one_pass(make_dataset(examples, specs, batch_size=batch_size,
                                                          cache=False))
        shuffled_s, first_batch_s = _one_pass(arms["files_uncached"])
    finally:
        training.set_precision("float32")
        shutil.rmtree(tmp, ignore_errors=True)

    rate = {name: steps * batch_size / float(np.median(t)) for name, t in times.items()}
    cpu_ms = {name: 1000 * float(np.median(t)) / (steps * batch_size) for name, t in cpu.items()}
    return {
        "fit_throughput_ratio": rate["files"] / rate["in_memory"],
        # CPU seconds of the whole process per example: steadier than wall time on a shared machine.
        "fit_cpu_cost_ratio": cpu_ms["in_memory"] / cpu_ms["files"],
        "fit_cpu_cost_ratio_uncached": cpu_ms["in_memory"] / cpu_ms["files_uncached"],
        "fit_throughput_ratio_uncached": rate["files_uncached"] / rate["in_memory"],
        "files_examples_per_s": rate["files"],
        "files_uncached_examples_per_s": rate["files_uncached"],
        "in_memory_examples_per_s": rate["in_memory"],
        "jit_applied": float(jit),
        "decode_only_examples_per_s": len(y) / decode_s,
        "train_pipeline_only_examples_per_s": len(y) / shuffled_s,
        "decode_only_first_batch_s": decode_first_s,
        "train_pipeline_first_batch_s": first_batch_s,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--jit", action="store_true", help="jit_compile=True for the train step")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=None, help="batches per timed epoch")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved timed epochs per arm")
    parser.add_argument("--image-size", type=int, default=None,
                        help="side of the JPEG files (default: the app's input size)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    record = measure(args.quick, args.precision, args.jit, batch_size=args.batch_size,
                     steps=args.steps, repeats=args.repeats, image_size=args.image_size)
    record = {key: round(value, 3) for key, value in record.items()}
    record["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main(sys.argv[1:])
