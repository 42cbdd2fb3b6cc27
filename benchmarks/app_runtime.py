"""Wall time of an app's default end-to-end run (the README's main job).

Usage: python benchmarks/app_runtime.py [sentiment|medical|inspection] [--target-seconds 300]
Exits 1 when the run is slower than the target.
"""

import argparse
import json
import os
import sys
import tempfile
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("app", nargs="?", default="sentiment")
    parser.add_argument("--target-seconds", type=float, default=300.0)
    args = parser.parse_args()
    start = time.perf_counter()
    from mmkeras.app import run_app

    with tempfile.TemporaryDirectory() as tmp:
        results = run_app(os.path.join("apps", args.app), work_dir=os.path.join(tmp, "run"),
                          export_dir=os.path.join(tmp, "savedmodels", args.app), verbose=0)
    seconds = time.perf_counter() - start
    headline = results["report"]["headline"]
    record = {"app": args.app, "seconds": round(seconds, 1), "target_seconds": args.target_seconds,
              "headline": headline, "cpus": os.cpu_count()}
    os.makedirs("runs/benchmarks", exist_ok=True)
    with open(f"runs/benchmarks/app_runtime_{args.app}.json", "w") as f:
        json.dump(record, f, indent=2)
    print(f"{args.app}: {seconds:.1f} s end to end (target {args.target_seconds:.0f} s), "
          f"{headline['metric']} = {headline['value']:.3f}")
    return 0 if seconds <= args.target_seconds else 1


if __name__ == "__main__":
    sys.exit(main())
