"""`python -m benchmarks`: what the toolkit costs, as ratios measured side by side.

Each figure compares mmkeras with what it stands in for (a hand-written Keras
model, in-memory tensors, `predict_on_batch`, the machine's matmul speed,
plain `import tensorflow, keras`) in the same run, so it holds on a noisy
machine. Every benchmark module runs `--repeats` times; the table shows the
median and spread (max - min) of each figure and whether it meets its target.

Usage:
    python -m benchmarks                      # all, 3 repeats
    python -m benchmarks --only overhead flops --repeats 5
    python -m benchmarks --quick --repeats 1  # tiny settings: proves every figure is produced
    python -m benchmarks --gpu                # figures 1, 2, 5: float32 vs mixed_float16 + XLA

Writes `runs/benchmarks/results.json` (or `--out`) and prints a Markdown table.
"""

import argparse
import importlib
import json
import os
import platform
import statistics
import sys

# module -> what it measures (issue 11's figures). Each module has
# `measure(quick, precision, jit) -> {figure: value}`, one repetition.
MODULES = {
    "overhead": "1: train step, build_model / hand-written Keras; 8: step-time slopes",
    "input_pipeline": "2: fit throughput, manifest files / in-memory tensors",
    "serving_overhead": "3: serving_default on raw bytes / predict_on_batch; signature latency",
    "serving_load": "4: dev-server REST / in-process signature; load p50/p99, memory growth",
    "flops": "5: training FLOP/s / dense-matmul FLOP/s",
    "memory": "6: peak RSS of training and export per app",
    "import_time": "7: mmkeras API import / import tensorflow, keras; mmkeras --help start-up",
}

# figure (a key of a module's result, `*` matching per-app keys) -> (direction, target).
TARGETS = {
    "train_step_ratio": ("<=", 1.03),
    "fit_throughput_ratio": (">=", 0.90),
    "serving_ratio_batch_32": (">=", 0.8),
    "rest_ratio": (">=", 0.7),
    "flops_ratio": (">=", 0.3),
    "train_peak_rss_gib_*": ("<=", 3.0),
    "export_peak_rss_gib_*": ("<=", 3.0),
    "import_ratio": ("<=", 1.2),
    "cli_help_s": ("<=", 1.0),
    "cli_predict_help_s": ("<=", 1.0),
}

# The GPU variant: modules run in float32 and in mixed_float16 with XLA; the
# gain is the speed of the second over the first on these figures (higher is
# better for rates, lower for times).
GPU_MODULES = ("overhead", "input_pipeline", "flops")
GPU_SPEED_FIGURES = {"build_model_step_ms": "time", "files_examples_per_s": "rate",
                     "train_gflops_per_s": "rate"}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(MODULES), help="run these modules only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny settings (for the test suite)")
    parser.add_argument("--gpu", action="store_true",
                        help="figures 1, 2, 5 in float32 and in mixed_float16 + jit_compile")
    parser.add_argument("--out", default="runs/benchmarks/results.json")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    names = args.only or (list(GPU_MODULES) if args.gpu else list(MODULES))
    settings = [("float32", False), ("mixed_float16", True)] if args.gpu else [("float32", False)]
    results = {"machine": machine(), "repeats": args.repeats, "quick": args.quick, "runs": {}}
    for precision, jit in settings:
        label = f"{precision}{' + XLA' if jit else ''}"
        results["runs"][label] = {name: summarise(repeat(name, args, precision, jit)) for name in names}
    if args.gpu:
        results["gpu_gain"] = gpu_gain(results["runs"])

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(format_table(results))
    print(f"\nwritten: {args.out}")
    return 0


def repeat(name, args, precision, jit):
    """`args.repeats` results of one module, each a dict of figures."""
    module = importlib.import_module(f"benchmarks.{name}")
    runs = []
    for i in range(args.repeats):
        print(f"[benchmarks] {name} ({precision}{', jit' if jit else ''}) {i + 1}/{args.repeats}",
              file=sys.stderr, flush=True)
        runs.append(module.measure(quick=args.quick, precision=precision, jit=jit))
        _reset_keras()
    return runs


def summarise(runs):
    """`{figure: {median, spread, values[, target, met]}}` over repeated runs.

    Example:
    >>> summarise([{"import_ratio": 1.1}, {"import_ratio": 1.3}, {"import_ratio": 1.0}])["import_ratio"]
    {'median': 1.1, 'spread': 0.3, 'values': [1.1, 1.3, 1.0], 'target': '<= 1.2', 'met': True}
    """
    figures = {}
    for key in runs[0]:
        values = [run[key] for run in runs]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            figures[key] = {"values": values}  # e.g. a device name: reported as is
            continue
        median = statistics.median(values)
        entry = {"median": round(median, 4), "spread": round(max(values) - min(values), 4),
                 "values": [round(v, 4) for v in values]}
        target = target_of(key)
        if target:
            direction, bound = target
            entry["target"] = f"{direction} {bound}"
            entry["met"] = median <= bound if direction == "<=" else median >= bound
        figures[key] = entry
    return figures


def target_of(key):
    """The (direction, bound) of a figure, matching `*`-suffixed per-app keys.

    >>> target_of("train_peak_rss_gib_inspection"), target_of("files_examples_per_s")
    (('<=', 3.0), None)
    """
    for pattern, target in TARGETS.items():
        if key == pattern or (pattern.endswith("*") and key.startswith(pattern[:-1])):
            return target
    return None


def gpu_gain(runs):
    """Speed of mixed_float16 + XLA over float32 on each speed figure (> 1: faster)."""
    base, fast = runs["float32"], runs["mixed_float16 + XLA"]
    gains = {}
    for name, figures in base.items():
        for key, kind in GPU_SPEED_FIGURES.items():
            if key in figures and key in fast[name]:
                a, b = figures[key]["median"], fast[name][key]["median"]
                gains[f"{name}.{key}"] = round(a / b if kind == "time" else b / a, 3)
    return gains


def format_table(results):
    lines = ["| run | benchmark | figure | median | spread | target | met |", "|---|---|---|---|---|---|---|"]
    for label, modules in results["runs"].items():
        for name, figures in modules.items():
            for key, entry in figures.items():
                if "median" not in entry:
                    lines.append(f"| {label} | {name} | {key} | {entry['values'][0]} | | | |")
                    continue
                met = {True: "yes", False: "**no**"}.get(entry.get("met"), "")
                lines.append(f"| {label} | {name} | {key} | {entry['median']:g} | {entry['spread']:g} "
                             f"| {entry.get('target', '')} | {met} |")
    for key, gain in results.get("gpu_gain", {}).items():
        lines.append(f"| gain | {key.split('.')[0]} | {key.split('.')[1]} (mixed + XLA / float32) "
                     f"| {gain:g} | | | |")
    return "\n".join(lines)


def machine():
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "cpu": cpu_description(), "tensorflow": tf.__version__,
            "device": (tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
                       if gpus else "cpu")}


def cpu_description():
    """The CPU's model name and widest vector instructions: figure 5 divides by a matmul
    peak that is 6x higher with AVX-512 than on the machines of 2026-11-26."""
    try:
        with open("/proc/cpuinfo") as file:
            info = file.read()
    except OSError:
        return platform.processor() or "unknown"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    vector = next((v for v in ("avx512f", "avx2", "avx") if v in flags), "sse")
    return f"{name} ({vector})"


def _reset_keras():
    # Each repetition starts from a clean Keras state (names, graph, dtype policy).
    import keras

    keras.backend.clear_session()
    keras.config.set_dtype_policy("float32")


if __name__ == "__main__":
    raise SystemExit(main())
