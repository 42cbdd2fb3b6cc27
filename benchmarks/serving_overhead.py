"""Figure 3: exported `serving_default` (raw bytes in, decode included) / `predict_on_batch`.

What: the sentiment app's fused model (text + JPEG photo + WAV clip),
exported with `mmkeras.export.export`. Target: at batch 32 the SavedModel's
`serving_default` signature, fed what a client sends (JPEG bytes, WAV bytes,
strings), keeps >= 0.8 of the examples/s of `model.predict_on_batch` on the
same examples already decoded. Also the signature's p50 / p99 latency at
batch 1.

How: demo data with JPEG photos (`input_pipeline._jpeg_manifest`), an
untrained model (weights do not change the cost), `export(..., warmup=False)`,
`tf.saved_model.load`. For batch 1 and 32, after a warm-up call each, four
calls run interleaved, repeated `calls` times:
- `signature`: `serving_default` on raw bytes (the figure's numerator);
- `predict_on_batch`: the Keras model on the decoded tensors (denominator);
- `serve_decoded`: the SavedModel's other signature, decoded tensors in
  (SavedModel call overhead without decoding);
- `decode`: `mmkeras.data.decode.decode_batch` alone, as a `tf.function`.
Medians give each ratio; the signature's own times give its latency
percentiles. `precision` sets the Keras dtype policy before the model is
built; `jit` compiles `predict_on_batch` with XLA where the model allows it
(a text input does not: `jit_applied` says), never the signature (a serving
signature never uses XLA).

Usage: python benchmarks/serving_overhead.py [--quick] [--precision mixed_float16] [--jit]
"""

import argparse
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

BATCH_SIZES = (1, 32)


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(quick=False, precision="float32", jit=False, calls=None, latency_calls=None):
    """One repetition of figure 3; returns ratios and per-call milliseconds."""
    import tensorflow as tf

    from benchmarks.input_pipeline import compiled_model_on_jpegs
    from mmkeras import training
    from mmkeras.app import raw_examples
    from mmkeras.data.decode import decode_batch
    from mmkeras.export import export

    calls = calls or (5 if quick else 40)
    latency_calls = latency_calls or (30 if quick else 300)
    tmp = tempfile.mkdtemp(prefix="mmk_serving_overhead_")
    try:
        _, specs, examples, model, jit = compiled_model_on_jpegs(tmp, max(BATCH_SIZES), precision, jit)
        path = export(model, os.path.join(tmp, "savedmodels", "sentiment"), warmup=False)
        loaded = tf.saved_model.load(path)
        signature = loaded.signatures["serving_default"]
        serve_decoded = loaded.signatures["serve_decoded"]
        decode = tf.function(lambda raw: decode_batch(raw, specs))

        record = {"jit_applied": float(jit)}
        for size in BATCH_SIZES:
            raw = raw_examples(examples, specs, count=size)
            inputs = {s.name: tf.constant(s.raw_batch([r[s.name] for r in raw])) for s in specs}
            decoded = {name: tf.identity(value) for name, value in decode(inputs).items()}
            arms = {
                "signature": lambda: signature(**inputs)["probabilities"].numpy(),
                "predict_on_batch": lambda: model.predict_on_batch(decoded),
                "serve_decoded": lambda: serve_decoded(**decoded)["probabilities"].numpy(),
                "decode": lambda: {k: v.numpy() for k, v in decode(inputs).items()},
            }
            times = {name: [] for name in arms}
            for fn in arms.values():
                fn()  # trace / warm up
            for _ in range(calls):
                for name, fn in arms.items():
                    times[name].append(_timed(fn))
            ms = {name: 1000 * float(np.median(t)) for name, t in times.items()}
            record[f"serving_ratio_batch_{size}"] = ms["predict_on_batch"] / ms["signature"]
            record[f"serve_decoded_ratio_batch_{size}"] = ms["predict_on_batch"] / ms["serve_decoded"]
            for name, value in ms.items():
                record[f"{name}_ms_batch_{size}"] = value
            record[f"signature_examples_per_s_batch_{size}"] = 1000 * size / ms["signature"]
            record[f"predict_on_batch_examples_per_s_batch_{size}"] = 1000 * size / ms["predict_on_batch"]
            if size == 1:
                latency = [1000 * _timed(arms["signature"]) for _ in range(latency_calls)]
                record["signature_p50_ms_batch_1"] = float(np.percentile(latency, 50))
                record["signature_p99_ms_batch_1"] = float(np.percentile(latency, 99))
    finally:
        training.set_precision("float32")
        shutil.rmtree(tmp, ignore_errors=True)
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--jit", action="store_true", help="XLA for predict_on_batch (not the signature)")
    parser.add_argument("--calls", type=int, default=None, help="interleaved calls per arm and batch size")
    parser.add_argument("--latency-calls", type=int, default=None, help="signature calls for p50 / p99")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    record = measure(args.quick, args.precision, args.jit, calls=args.calls,
                     latency_calls=args.latency_calls)
    record = {key: round(value, 3) for key, value in record.items()}
    record["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main(sys.argv[1:])
