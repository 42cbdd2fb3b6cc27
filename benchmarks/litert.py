"""The inspection model at the edge: LiteRT files against the SavedModel (issue 27).

Trains the inspection app's fused model on its demo data (no baselines; the
run exports the SavedModel and, as app.yaml asks, an int8 LiteRT file), then
writes the model as LiteRT float32, float16 and int8 (calibrated on 200
training rows) and measures each on the test split, through the pip runtime
(`ai-edge-litert`) against the Keras model:

- parity: the largest probability difference, the share of test examples
  given the same label, and the headline (macro-F1) beside the Keras model's;
- size: the `.tflite` file / the SavedModel version folder (variables and
  assets included);
- latency: one example, median of the test examples, LiteRT
  `serving_default` / the SavedModel's `serve_decoded` (the same decoded
  inputs, so decoding costs neither), both on every core of this CPU
  (TensorFlow's default; LiteRT's `num_threads`).

Targets: float32 max difference <= 1e-4; float16 label agreement >= 99.5%;
int8 headline within 0.02 of the Keras model's; int8 size <= 0.3x and
latency <= 0.5x.

Usage: python benchmarks/litert.py [--seed S] [--examples N] [--epochs E] [--reuse DIR] [--out F]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time


def measure(seed=0, examples=None, epochs=None, reuse=None):
    """Trains the inspection app once (or takes the run in `reuse`, a folder an
    earlier measurement printed) and measures its three LiteRT files."""
    import tensorflow as tf

    from mmkeras import litert, litert_runtime
    from mmkeras.app import load_app, run_app
    from mmkeras.data.pipeline import decoded_arrays
    from mmkeras.data.splits import recorded_split
    from mmkeras.evaluation.headline_metric import headline_score

    from mmkeras.api import load_model

    app = load_app(os.path.join("apps", "inspection"))
    work = reuse or tempfile.mkdtemp(prefix="litert-")
    print(f"run folder: {work}", flush=True)
    started = time.perf_counter()
    if not reuse:
        run_app(app, work_dir=os.path.join(work, "run"), export_dir=os.path.join(work, "models"),
                num_examples=examples, epochs=epochs, baselines=False, seed=seed, verbose=0)
    train_seconds = time.perf_counter() - started
    model, saved = load_model(os.path.join(work, "run", "model.keras")), os.path.join(work, "models", "1")
    train, test = (recorded_split(app, os.path.join(work, "run"), part) for part in ("train", "test"))
    inputs = decoded_arrays(test, model.specs)
    representative = litert.representative_arrays(train, model.specs)
    score = headline_score(app.evaluation.headline or "accuracy", app.data.labels, False,
                           app.evaluation.normal_label, 0.5)
    keras_probabilities = litert_runtime.keras_probabilities(model, inputs)
    saved_seconds = _saved_model_latency(saved, inputs)
    figures = {"seed": seed, "train_seconds": round(train_seconds, 1), "test_examples": len(test),
               "keras_headline": round(score(test.labels, keras_probabilities), 4),
               "savedmodel_bytes": _folder_bytes(saved), "savedmodel_latency_ms": round(1000 * saved_seconds, 3),
               "files": {}}
    for quantize in litert.LITERT_QUANTIZATIONS:
        content = litert.convert(model, quantize, representative)
        compared = litert_runtime.compare(model, content, inputs)
        probabilities = litert_runtime.predict(content, inputs)
        seconds = _litert_latency(content, inputs)
        figures["files"][quantize] = {
            **compared,
            "headline": round(score(test.labels, probabilities), 4),
            "bytes": len(content), "size_ratio": round(len(content) / figures["savedmodel_bytes"], 3),
            "latency_ms": round(1000 * seconds, 3), "latency_ratio": round(seconds / saved_seconds, 3),
            "float_ops": litert_runtime.float_ops(content) if quantize == "int8" else None,
        }
        print(quantize, json.dumps(figures["files"][quantize]), flush=True)
    figures["tensorflow"] = tf.__version__
    return figures


def _folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(folder) for name in names)


def _examples(inputs):
    count = len(next(iter(inputs.values())))
    return [{name: value[i:i + 1] for name, value in inputs.items()} for i in range(count)]


def _median_seconds(call, examples, warmup=5):
    for example in examples[:warmup]:
        call(example)
    times = []
    for example in examples:
        started = time.perf_counter()
        call(example)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _saved_model_latency(path, inputs):
    import tensorflow as tf

    serve = tf.saved_model.load(path).signatures["serve_decoded"]
    examples = [{name: tf.constant(value) for name, value in example.items()} for example in _examples(inputs)]
    return _median_seconds(lambda example: serve(**example)["probabilities"].numpy(), examples)


def _litert_latency(content, inputs):
    from mmkeras import litert_runtime

    runner = litert_runtime.interpreter(content, num_threads=os.cpu_count()).get_signature_runner()
    return _median_seconds(lambda example: runner(**example)["probabilities"], _examples(inputs))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--examples", type=int, help="demo rows (default: the app's)")
    parser.add_argument("--epochs", type=int, help="default: the app's")
    parser.add_argument("--reuse", help="the run folder of an earlier measurement: no training")
    parser.add_argument("--out", default="runs/bench/litert.json")
    args = parser.parse_args(argv)
    figures = measure(args.seed, args.examples, args.epochs, args.reuse)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as file:
        json.dump(figures, file, indent=2)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    sys.exit(main())
