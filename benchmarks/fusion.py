"""Which fusion, and how much modality dropout: the fused model of each app
under every fusion strategy and several dropout rates, over seeds.

Usage: python benchmarks/fusion.py [APP ...] [--seeds 0 1 2] [--fusions ...] [--dropouts ...]

Each setting changes one key of the app's `model` section and keeps the rest
of its defaults; every seed generates fresh demo data. Baselines are not
trained (their figures do not depend on the fusion): see `learning.py`.
Writes `runs/benchmarks/fusion.json` and prints a Markdown table of the
headline metric and its fraction of the ceiling, mean (spread) over seeds.
"""

import argparse
import json
import os
import sys

import learning

from mmkeras.fusion import FUSIONS


def settings(app, fusions, dropouts):
    """`[(label, model_options)]`: every fusion at the app's dropout, then every
    dropout rate at the app's fusion."""
    from mmkeras.app import load_app

    defaults = load_app(os.path.join("apps", app)).model
    out = [(f"fusion={f}", {"fusion": f}) for f in fusions]
    out += [(f"modality_dropout={d}", {"modality_dropout": d}) for d in dropouts
            if d != defaults.modality_dropout]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("apps", nargs="*", default=list(learning.APPS), choices=learning.APPS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--fusions", nargs="+", default=sorted(FUSIONS), choices=sorted(FUSIONS))
    parser.add_argument("--dropouts", nargs="*", type=float, default=[0.0, 0.1, 0.25])
    parser.add_argument("--examples", type=int, help="demo examples (default: the app's)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the app's)")
    parser.add_argument("--out", default="runs/benchmarks/fusion.json")
    args = parser.parse_args(argv)
    runs = []
    for app in args.apps:
        for label, options in settings(app, args.fusions, args.dropouts):
            for seed in args.seeds:
                run = learning.run_once(app, seed, args.examples, args.epochs, options, baselines=False)
                runs.append({**run, "app": f"{app} {label}", "model_options": options})
                print(f"{app} {label} seed {seed}: {run['scores']['model']:.3f} ({run['seconds']:.0f} s)",
                      flush=True)
    summary = learning.summarise(runs)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"runs": runs, "summary": summary, "cpus": os.cpu_count()}, f, indent=2)
    print(learning.markdown(summary, args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
