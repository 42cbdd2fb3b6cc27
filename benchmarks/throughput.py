"""Training / inference throughput and serving latency of an app's model.

Builds the app's model on its demo data, then measures:
- training examples/s over `--steps` batches of `model.fit` (after one warm-up epoch),
- `model.predict` examples/s on decoded inputs,
- the exported SavedModel's `serving_default` latency on raw bytes (batch 1 and 32),
- peak resident memory of the process.

Usage: python benchmarks/throughput.py --app sentiment [--steps 30] [--batch-size 32]
       [--precision mixed_float16] [--jit]
"""

import argparse
import json
import os
import resource
import tempfile
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--app", default="sentiment")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--jit", action="store_true", help="jit_compile=True for training")
    args = parser.parse_args()

    import tensorflow as tf

    from mmkeras import training
    from mmkeras.app import build_app_model, load_app, prepare_data, raw_examples
    from mmkeras.data.pipeline import make_dataset
    from mmkeras.export import export

    training.set_precision(args.precision)
    app = load_app(os.path.join("apps", args.app))
    tmp = tempfile.mkdtemp()
    examples = args.batch_size * (args.steps + 1)
    _, (train, _, test) = prepare_data(app, None, tmp, num_examples=int(examples / 0.7) + 1)
    specs = app.specs()
    model = build_app_model(app, specs, train)
    # A model with auxiliary heads (inspection) takes the label once per head.
    train_ds = training.with_labels_for(
        model, make_dataset(train, specs, batch_size=args.batch_size, training=True).repeat())
    training.compile_model(model, multi_label=app.data.multi_label, jit_compile=args.jit)
    model.fit(train_ds, steps_per_epoch=2, epochs=1, verbose=0)  # trace + warm up

    start = time.perf_counter()
    model.fit(train_ds, steps_per_epoch=args.steps, epochs=1, verbose=0)
    train_rate = args.steps * args.batch_size / (time.perf_counter() - start)

    batch = next(iter(make_dataset(train, specs, batch_size=args.batch_size)))[0]
    model.predict(batch, verbose=0)
    start = time.perf_counter()
    for _ in range(5):
        model.predict(batch, verbose=0)
    predict_rate = 5 * args.batch_size / (time.perf_counter() - start)

    path = export(model, os.path.join(tmp, "savedmodels", args.app), warmup=False)
    signature = tf.saved_model.load(path).signatures["serving_default"]
    latency = {}
    for size in (1, 32):
        raw = (raw_examples(test, specs, count=len(test)) * 32)[:size]
        inputs = {s.name: tf.constant(s.raw_batch([r[s.name] for r in raw])) for s in specs}
        signature(**inputs)
        times = []
        for _ in range(10):
            start = time.perf_counter()
            signature(**inputs)
            times.append(time.perf_counter() - start)
        latency[f"batch_{size}_ms"] = round(1000 * float(np.median(times)), 1)

    record = {
        "app": args.app, "device": tf.config.list_physical_devices("GPU") and "gpu" or "cpu",
        "precision": args.precision, "jit": args.jit, "batch_size": args.batch_size,
        "train_examples_per_s": round(train_rate, 1), "predict_examples_per_s": round(predict_rate, 1),
        "serving_latency": latency,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    os.makedirs("runs/benchmarks", exist_ok=True)
    with open(f"runs/benchmarks/throughput_{args.app}_{record['device']}.json", "w") as f:
        json.dump(record, f, indent=2)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
