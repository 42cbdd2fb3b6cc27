"""Figure 6: peak resident memory (RSS) of training and of export, per app's default model.

What: for each app (sentiment, medical, inspection), the two commands a user
runs, each in a fresh process so that peaks do not mix:
- `mmkeras train apps/<app> --examples N --epochs E`: demo data generated and
  validated, the default fused model built, trained (decoded examples cached in
  memory, checkpoints, TensorBoard), evaluated on the test split (report and
  plots) and saved as `.keras`;
- `mmkeras export <run>/model.keras <dir>`: the model loaded, then exported
  (signature tracing, op check, parity check, warmup requests).
Target: each peak <= 3 GiB.

How: each command runs through `mmkeras.cli.main` in a child Python process
(`sys.executable`, the repository root as working folder, everything written
under a temporary folder); the parent reaps it with `os.wait4`, whose rusage
is that child's own (`ru_maxrss`, KiB on Linux), not the running maximum over
all children that `RUSAGE_CHILDREN` gives. RSS is per process, so the apps run
side by side (each app's export starts when its training ends): the peaks are
the same as one at a time, and the wall time is shorter on 2 cores, since much
of a run (tracing, data generation, the report) is single-threaded Python.
`train_s_*` / `export_s_*` are wall times under that sharing.
Sizes: the app's `demo_examples` (1,500) and 2 epochs; `quick=True`: the
sentiment app alone, 40 examples, 1 epoch. On a 2-core CPU that other jobs loaded about 5x, the three
apps took 2.2 CPU-minutes and 3.3 minutes of wall time quick, 4.4 CPU-minutes
and 5.4 minutes by default. `precision` and `jit` are not used.

One call of `measure()` is one repetition; `python -m benchmarks` repeats it.
Usage: python benchmarks/memory.py [--quick] [--apps sentiment medical]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

APPS = ("sentiment", "medical", "inspection")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = "import sys; from mmkeras.cli import main; sys.exit(main())"


def run_child(args, log_path, started):
    """Runs `mmkeras <args>` in a fresh process; returns (its peak RSS in GiB, seconds).
    `started` collects the process, so that `measure` can stop it on failure."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    start = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    started.append(process)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        with open(log_path) as log:
            tail = log.read()[-3000:]
        raise RuntimeError(f"mmkeras {' '.join(args)} exited with {process.returncode}:\n{tail}")
    return usage.ru_maxrss / 2 ** 20, time.perf_counter() - start


def measure_app(app, work_dir, examples, epochs, started):
    """`mmkeras train` then `mmkeras export` of one app: its four figures."""
    run_dir = os.path.join(work_dir, app)
    train = ["train", os.path.join("apps", app), "--work-dir", run_dir, "--epochs", str(epochs)]
    train += ["--examples", str(examples)] if examples else []
    train_gib, train_s = run_child(train, os.path.join(work_dir, f"{app}_train.log"), started)
    export = ["export", os.path.join(run_dir, "model.keras"), os.path.join(work_dir, "savedmodels", app)]
    export_gib, export_s = run_child(export, os.path.join(work_dir, f"{app}_export.log"), started)
    return {f"train_peak_rss_gib_{app}": train_gib, f"export_peak_rss_gib_{app}": export_gib,
            f"train_s_{app}": train_s, f"export_s_{app}": export_s}


def measure(quick=False, precision="float32", jit=False, apps=None):
    """One repetition of figure 6: a flat dict of numbers (GiB and seconds).
    `quick` (the test suite's smoke run) measures one app on 40 examples."""
    apps = apps or (("sentiment",) if quick else APPS)
    examples, epochs = (40, 1) if quick else (None, 2)
    started = []
    with tempfile.TemporaryDirectory() as work_dir, ThreadPoolExecutor(len(apps)) as pool:
        futures = [pool.submit(measure_app, app, work_dir, examples, epochs, started) for app in apps]
        try:
            return {key: value for future in futures for key, value in future.result().items()}
        finally:
            for process in started:  # after a failure, the other apps' children
                if process.returncode is None:
                    process.kill()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sentiment only, 40 examples, 1 epoch")
    parser.add_argument("--apps", nargs="+", choices=APPS)
    parser.add_argument("--precision", default="float32", help="not used")
    parser.add_argument("--jit", action="store_true", help="not used")
    args = parser.parse_args(argv)
    result = measure(args.quick, args.precision, args.jit, apps=args.apps)
    print(json.dumps({k: round(v, 4) for k, v in result.items()}, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
