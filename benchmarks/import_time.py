"""Figure 7: time of importing mmkeras's API over time of `import tensorflow,
keras`; and the `mmkeras` command's start-up.

What: the wall time of each import statement in a fresh Python process (the
interpreter's own start-up is not in it). `import mmkeras` alone is light (the
API loads on first use), so the statement timed is `from mmkeras import api`,
what the first `mmk.<name>` loads. mmkeras needs TensorFlow and Keras, so the
ratio is what the package adds on top of them. Target: <= 1.2.
The command: `cli_help_s` and `cli_predict_help_s`, the whole wall time of
`mmkeras --help` and `mmkeras predict --help` (interpreter start-up included),
median of `runs`; target < 1 s. `cli_imports_tensorflow` says whether either
loaded TensorFlow (it should not).

How: each run is `python -c "t = perf_counter(); import X; print(perf_counter() - t)"`
in its own child process, the same interpreter and environment for both
(`TF_CPP_MIN_LOG_LEVEL=1`, which `import mmkeras` sets anyway), the repository
root as working folder. The two imports of a pair start at the same moment, so
whatever else loads the machine then loads both alike (run one after the
other on a busy 2-core machine, single imports varied 2x and the ratio from
0.65 to 1.5; side by side, pairs agreed within a few percent). `import_ratio`
is the median of the pairs' ratios, after one discarded pair that warms the
file cache. The seconds are medians too, each import sharing the machine with
the other, so they exceed a lone import's. `import_cpu_ratio` is the median
ratio of the two children's CPU time (user + system, all threads, interpreter
start-up included).
`--profile` also lists the modules `import mmkeras` loads beyond
`import tensorflow, keras`, by `python -X importtime` self time: what a lazy
import would save. `precision` and `jit` are not used.

One call of `measure()` is one repetition; `python -m benchmarks` repeats it.
Usage: python benchmarks/import_time.py [--quick] [--runs N] [--profile]
"""

import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATEMENTS = {"mmkeras": "from mmkeras import api", "tf_keras": "import tensorflow, keras"}
COMMANDS = {"cli_help_s": ["--help"], "cli_predict_help_s": ["predict", "--help"]}
# Runs the command as the console script does and says whether TensorFlow was loaded.
COMMAND = ("import sys; from mmkeras.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
           "print('tensorflow' in sys.modules)")
TIMER = "import time; t = time.perf_counter(); {}; print(time.perf_counter() - t)"


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "1")}


def timed_pair(first="mmkeras"):
    """Both statements started together, each in a fresh interpreter:
    `{name: (import wall seconds, the child's CPU seconds)}`."""
    names = sorted(STATEMENTS, key=lambda name: name != first)
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        logs = {name: open(os.path.join(tmp, name), "w+") for name in names}
        children = {name: subprocess.Popen([sys.executable, "-c", TIMER.format(STATEMENTS[name])], cwd=ROOT,
                                           env=_env(), stdout=logs[name], stderr=subprocess.STDOUT)
                    for name in names}
        for name, child in children.items():
            _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage
            child.returncode = os.waitstatus_to_exitcode(status)
            logs[name].seek(0)
            output = logs[name].read()
            logs[name].close()
            if child.returncode:
                raise RuntimeError(f"{STATEMENTS[name]!r} failed ({child.returncode}):\n{output[-3000:]}")
            times[name] = float(output.split()[-1]), usage.ru_utime + usage.ru_stime
    return times


def measure(quick=False, precision="float32", jit=False, runs=None):
    """One repetition of figure 7: `runs` simultaneous pairs (2 quick, else 5)."""
    runs = runs or (2 if quick else 5)
    timed_pair()  # warm the file cache
    pairs = [timed_pair(first=list(STATEMENTS)[i % 2]) for i in range(runs)]
    wall = [pair["mmkeras"][0] / pair["tf_keras"][0] for pair in pairs]
    cpu = [pair["mmkeras"][1] / pair["tf_keras"][1] for pair in pairs]
    return {"import_ratio": statistics.median(wall),
            "import_mmkeras_s": statistics.median(pair["mmkeras"][0] for pair in pairs),
            "import_tf_keras_s": statistics.median(pair["tf_keras"][0] for pair in pairs),
            "import_cpu_ratio": statistics.median(cpu),
            **command_start_up(runs)}


def command_start_up(runs):
    """`{figure: median seconds}` of each `COMMANDS` entry, whole processes,
    and `cli_imports_tensorflow`."""
    figures, imports_tensorflow = {}, False
    for figure, argv in COMMANDS.items():
        seconds = []
        for _ in range(runs):
            start = time.perf_counter()
            child = subprocess.run([sys.executable, "-c", COMMAND, *argv], cwd=ROOT, env=_env(),
                                   capture_output=True, text=True, check=True)
            seconds.append(time.perf_counter() - start)
            imports_tensorflow |= child.stdout.split()[-1] == "True"
        figures[figure] = statistics.median(seconds)
    return {**figures, "cli_imports_tensorflow": imports_tensorflow}


def _self_times(statement):
    """`{module: self microseconds}` from `python -X importtime -c statement`."""
    times = {}
    stderr = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], cwd=ROOT, env=_env(),
                            capture_output=True, text=True, check=True).stderr
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            times[match.group(2)] = int(match.group(1))
    return times


def extra_imports(top=15):
    """Modules `import mmkeras` loads that `import tensorflow, keras` does not:
    their summed self time per top-level package and the `top` slowest modules (seconds)."""
    base = _self_times(STATEMENTS["tf_keras"])
    extra = {m: t for m, t in _self_times(STATEMENTS["mmkeras"]).items() if m not in base}
    packages = collections.Counter()
    for module, micros in extra.items():
        packages[module.split(".")[0]] += micros
    return {"modules": len(extra), "seconds": sum(extra.values()) / 1e6,
            "by_package": {p: t / 1e6 for p, t in packages.most_common()},
            "slowest": {m: t / 1e6 for m, t in sorted(extra.items(), key=lambda kv: -kv[1])[:top]}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 pairs of runs instead of 5")
    parser.add_argument("--runs", type=int, help="interleaved pairs of runs")
    parser.add_argument("--profile", action="store_true",
                        help="also list what import mmkeras loads beyond tensorflow and keras")
    parser.add_argument("--precision", default="float32", help="not used")
    parser.add_argument("--jit", action="store_true", help="not used")
    args = parser.parse_args(argv)
    result = measure(args.quick, args.precision, args.jit, runs=args.runs)
    if args.profile:
        result["extra_imports"] = extra_imports()
    print(json.dumps(_rounded(result), indent=2))


def _rounded(value):
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(value, 4) if isinstance(value, float) else value


if __name__ == "__main__":
    main(sys.argv[1:])
