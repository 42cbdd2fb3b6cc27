"""Learning quality: each app's fused model and unimodal baselines, raw and as a
fraction of the best the demo data allows, mean and spread over seeds.

Usage: python benchmarks/learning.py [APP ...] [--seeds 0 1 2] [--examples N] [--epochs N]

Every seed generates its own demo data (fresh examples, fresh split, fresh
weights), runs the app's defaults end to end (no export) and scores the test
split against the ceilings of `mmkeras.data.ceiling`. Writes
`runs/benchmarks/learning.json` and prints a Markdown table.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

APPS = ("sentiment", "medical", "inspection")


def run_once(app, seed, examples, epochs, model_options=None, baselines=True):
    """One default run of `app` on fresh demo data; `model_options` override keys of its
    `model` section (e.g. `{"fusion": "concat"}`)."""
    from mmkeras.app import load_app, run_app, with_overrides

    settings = [f"model.{key}={value}" for key, value in (model_options or {}).items()]
    config = with_overrides(load_app(os.path.join("apps", app)), settings)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        results = run_app(config, work_dir=tmp, export=False, verbose=0, seed=seed,
                          num_examples=examples, epochs=epochs, baselines=baselines)
    report = results["report"]
    scores = {"model": report["headline"]["value"],
              **{name: b["value"] for name, b in ((report["baselines"] or {}).get("baselines") or {}).items()}}
    return {"app": app, "seed": seed, "metric": report["headline"]["metric"], "seconds": time.perf_counter() - start,
            "scores": scores, "fraction_of_ceiling": {n: c["fraction"] for n, c in report["ceilings"].items()}}


def summarise(runs):
    """`{app: {model: {"score": (mean, spread), "fraction": (mean, spread)}}}`; spread = max - min."""
    def mean_spread(values):
        return round(statistics.mean(values), 3), round(max(values) - min(values), 3)

    summary = {}
    for app in dict.fromkeys(r["app"] for r in runs):
        mine = [r for r in runs if r["app"] == app]
        summary[app] = {"metric": mine[0]["metric"], "seconds": mean_spread([r["seconds"] for r in mine]),
                        "models": {name: {"score": mean_spread([r["scores"][name] for r in mine]),
                                          "fraction": mean_spread([r["fraction_of_ceiling"][name] for r in mine])}
                                   for name in mine[0]["scores"]}}
    return summary


def markdown(summary, seeds):
    lines = [f"| app | model | metric | mean (spread) over seeds {list(seeds)} | fraction of ceiling |",
             "|---|---|---|---|---|"]
    for app, s in summary.items():
        for name, m in s["models"].items():
            lines.append(f"| {app} | {name} | {s['metric']} | {m['score'][0]:.3f} ({m['score'][1]:.3f}) "
                         f"| {m['fraction'][0]:.2f} ({m['fraction'][1]:.2f}) |")
        lines.append(f"| {app} | wall time | s | {s['seconds'][0]:.0f} ({s['seconds'][1]:.0f}) | |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("apps", nargs="*", default=list(APPS), choices=APPS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--examples", type=int, help="demo examples (default: the app's)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the app's)")
    parser.add_argument("--out", default="runs/benchmarks/learning.json")
    args = parser.parse_args(argv)
    runs = [run_once(app, seed, args.examples, args.epochs) for app in args.apps for seed in args.seeds]
    summary = summarise(runs)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"runs": runs, "summary": summary, "cpus": os.cpu_count()}, f, indent=2)
    print(markdown(summary, args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
