"""Load on the dev server (`mmkeras serve`): concurrent clients, latency, memory over the run.

Usage: python benchmarks/serving_load.py [--clients 32] [--requests 10] [--threads 8]
       [--ratio-clients 8] [--no-grpc] [--note TEXT] [--out FILE]

Exports a small untrained mmkeras model (32x32 PNG photo + review text + two sensor
readings, concat fusion; raw inputs from `mmkeras.export.synthetic_inputs`), starts
`python -m mmkeras.serving.dev_server` on loopback in a subprocess (so its RSS is the
server's alone and the clients do not share its interpreter), and runs a warm-up pass of
every setting. Then each setting runs once: `--clients` concurrent clients, each sending
`--requests` `:predict` requests over a keep-alive connection (REST; the server closes it
after an answer while other connections wait for a worker) or a channel (gRPC), at batch 1
and batch 32; and `--ratio-clients` REST clients at batch 32. The same
SavedModel's `serving_default`, loaded here and called directly at batch 32 (1 caller and
`--ratio-clients` callers), gives the in-process throughput.

Reported: requests, errors (must be 0), reconnects (a request retried once because the
server had closed its idle keep-alive connection, as HTTP clients do), requests/s,
examples/s, p50/p99 latency; the server's RSS after warm-up, at the end and its peak;
REST examples/s at batch 32 with `--ratio-clients` clients over the in-process figure
(target >= 0.7). Memory margin: growth from after warm-up to the end <= 10% of the RSS
after warm-up. Writes `runs/benchmarks/serving_load.json` (or `--out`); exits 1 on errors.
`measure()` gives `python -m benchmarks` the same figures (figure 4: `rest_ratio`).
"""

import argparse
import functools
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODEL = "load"
GROWTH_MARGIN = 0.10  # of the server's RSS after warm-up
RATIO_TARGET = 0.7
START_SECONDS = 300


def export_model(base):
    """A small mmkeras model exported to `base/load/1`; returns (version folder, raw examples)."""
    import mmkeras as mmk
    from mmkeras.export import synthetic_inputs

    specs = [mmk.ImageInput("photo", size=(32, 32)),
             mmk.TextInput("review", sequence_length=16, vocabulary_size=100),
             mmk.SensorInput("readings", features=["temperature", "current"])]
    adapt = {"review": ["great phone", "bad battery", "it is fine", "works well"] * 5,
             "readings": np.random.default_rng(0).normal(size=(20, 2))}
    model = mmk.build_model(specs, fusion="concat", projection_dim=16, adapt_data=adapt,
                            task=mmk.Classification(["negative", "neutral", "positive"]))
    examples = synthetic_inputs(specs, count=32)
    return mmk.export(model, Path(base) / MODEL, sample_inputs=examples[:4]), examples


# === The server, in its own process ===


class ServerProcess:
    """`python -m mmkeras.serving.dev_server` on free loopback ports, until `stop()`."""

    def __init__(self, base, threads, grpc):
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log")
        command = [sys.executable, "-m", "mmkeras.serving.dev_server", str(base), "--rest-port", "0",
                   "--poll-seconds", "0", "--threads", str(threads)]
        command += ["--grpc-port", "0"] if grpc else ["--no-grpc"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        self.rest, self.grpc = None, None
        watchdog = threading.Timer(START_SECONDS, self.process.kill)
        watchdog.start()
        try:
            for line in self.process.stdout:  # the banner `mmkeras serve` prints once serving
                if line.strip().startswith("REST"):
                    self.rest = line.split("//")[1].split("/")[0]
                elif line.startswith("gRPC"):
                    self.grpc = line.split()[1]
                elif line.startswith("Development server"):
                    return
        finally:
            watchdog.cancel()
        raise RuntimeError(f"The dev server did not start within {START_SECONDS} s:\n{self.log_tail()}")

    def rss_mib(self, field="VmRSS"):
        """Resident memory (VmRSS) or its peak so far (VmHWM), from /proc (Linux)."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            return None

    def log_tail(self):
        self.log.seek(0)
        return self.log.read()[-3000:]

    def stop(self):
        """SIGTERM, as `mmkeras serve` is stopped; returns (exit code, seconds to exit)."""
        start = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        return code, round(time.perf_counter() - start, 2)


# === Clients ===


def rest_client(address, body, batch):
    """A keep-alive REST client: `send()` answers (ok, reconnected)."""
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    path = f"/v1/models/{MODEL}:predict"

    def send():
        reused = connection.sock is not None
        try:
            return _rest_answer_ok(connection, path, body, batch), False
        except (ConnectionError, http.client.RemoteDisconnected) as error:
            connection.close()
            if not reused:
                raise error
            # The server closed the idle connection as this request went out:
            # retry once on a fresh one, as HTTP clients do.
            return _rest_answer_ok(connection, path, body, batch), True

    return send


def _rest_answer_ok(connection, path, body, batch):
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = response.read()
    return response.status == 200 and len(json.loads(answer)["predictions"]) == batch


def grpc_client(target, request, batch):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(target))

    def send():
        response = stub.Predict(request, timeout=60)
        return response.outputs["probabilities"].tensor_shape.dim[0].size == batch, False

    return send


def run_clients(make_client, clients, requests):
    """`clients` threads, `requests` calls each; returns the figures of the run."""
    latencies, errors, reconnects = [], [], [0]
    lock = threading.Lock()
    start_line = threading.Barrier(clients + 1)

    def client():
        try:
            send = make_client()
        except Exception as error:  # every request of this client fails with it
            send = functools.partial(_raise, error)
        start_line.wait()
        for _ in range(requests):
            began = time.perf_counter()
            try:
                ok, reconnected = send()
                problem = None if ok else "wrong answer"
            except Exception as error:  # an error is a figure here, not a crash
                problem, reconnected = f"{type(error).__name__}: {error}"[:200], False
            with lock:
                latencies.append(time.perf_counter() - began)
                reconnects[0] += reconnected
                if problem:
                    errors.append(problem)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start_line.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return _figures(latencies, time.perf_counter() - began, errors, reconnects[0])


def _raise(error):
    raise error


def _figures(latencies, seconds, errors=(), reconnects=0):
    milliseconds = 1000 * np.asarray(latencies)
    return {"requests": len(latencies), "errors": len(errors), "first_errors": sorted(set(errors))[:3],
            "reconnects": reconnects, "seconds": round(seconds, 2),
            "requests_per_s": round(len(latencies) / seconds, 1),
            "p50_ms": round(float(np.percentile(milliseconds, 50)), 1),
            "p99_ms": round(float(np.percentile(milliseconds, 99)), 1)}


def in_process(version_dir, examples, callers, calls):
    """`serving_default` called directly at batch len(examples), by `callers` threads."""
    import tensorflow as tf

    function = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    inputs = {name: tf.constant([e[name] for e in examples], tf.float32 if name == "readings" else tf.string)
              for name in examples[0]}

    def call():
        function(**inputs)
        return True, False

    call()  # the first call traces
    return run_clients(lambda: call, callers, calls)


# === The benchmark ===


def run_load(clients=32, requests=10, threads=8, ratio_clients=8, grpc=True):
    """Exports the model, serves it, runs every setting; returns the record (see the module doc)."""
    from tensorflow_serving.apis import predict_pb2

    from mmkeras.serving.payloads import rest_instances, tensor_protos

    with tempfile.TemporaryDirectory() as base:
        version_dir, examples = export_model(base)
        batches = {1: examples[:1], 32: examples}
        rest_bodies = {b: json.dumps({"instances": rest_instances(e)}).encode() for b, e in batches.items()}
        grpc_requests = {}
        for b, e in batches.items():
            grpc_requests[b] = predict_pb2.PredictRequest()
            grpc_requests[b].model_spec.name = MODEL
            for name, proto in tensor_protos(e).items():
                grpc_requests[b].inputs[name].CopyFrom(proto)
        settings = [("rest", clients, 1), ("rest", clients, 32), ("rest", ratio_clients, 32)]
        if grpc:
            settings += [("grpc", clients, 1), ("grpc", clients, 32)]

        server = ServerProcess(base, threads, grpc)
        try:
            def make(protocol, batch):
                if protocol == "rest":
                    return lambda: rest_client(server.rest, rest_bodies[batch], batch)
                return lambda: grpc_client(server.grpc, grpc_requests[batch], batch)

            for protocol, n, batch in settings:  # warm-up: every setting, fewer requests
                run_clients(make(protocol, batch), n, min(requests, 2))
            rss_start = server.rss_mib()
            runs = [{"protocol": protocol, "clients": n, "batch": batch,
                     **run_clients(make(protocol, batch), n, requests)}
                    for protocol, n, batch in settings]
            rss_end, rss_peak = server.rss_mib(), server.rss_mib("VmHWM")
        finally:
            exit_code, stop_seconds = server.stop()
        local = [{"callers": n, "batch": 32, **in_process(version_dir, examples, n, requests)}
                 for n in sorted({1, ratio_clients})]

    for run in [*runs, *local]:
        run["examples_per_s"] = round(run["requests_per_s"] * run["batch"], 1)
    rest_32 = runs[2]["examples_per_s"]  # ("rest", ratio_clients, 32)
    best_local = max(r["examples_per_s"] for r in local)  # the stricter denominator
    growth = None if rss_start is None else round(rss_end - rss_start, 1)
    ratio = round(rest_32 / best_local, 2)
    return {
        "settings": {"clients": clients, "requests": requests, "threads": threads,
                     "ratio_clients": ratio_clients, "grpc": grpc},
        "cpus": os.cpu_count(), "runs": runs, "in_process": local, "errors": sum(r["errors"] for r in runs),
        "server": {"rss_start_mib": rss_start, "rss_end_mib": rss_end, "rss_peak_mib": rss_peak,
                   "rss_growth_mib": growth,
                   "growth_margin": f"growth <= {GROWTH_MARGIN:.0%} of the RSS after warm-up",
                   "within_margin": None if growth is None else growth <= GROWTH_MARGIN * rss_start,
                   "exit_code": exit_code, "stop_seconds": stop_seconds},
        "ratio": {"rest_examples_per_s": rest_32, "in_process_examples_per_s": best_local,
                  "value": ratio, "target": RATIO_TARGET, "met": ratio >= RATIO_TARGET},
    }


def measure(quick=False, precision="float32", jit=False):
    """One repetition for `python -m benchmarks` (figure 4); the served model is float32 whatever
    `precision` and `jit` say, as a SavedModel signature never uses XLA."""
    record = run_load(clients=8 if quick else 32, requests=3 if quick else 10)
    rest_1 = record["runs"][0]
    return {"rest_ratio": record["ratio"]["value"],
            "rest_examples_per_s_batch_32": record["ratio"]["rest_examples_per_s"],
            "in_process_examples_per_s_batch_32": record["ratio"]["in_process_examples_per_s"],
            "rest_p50_ms_batch_1": rest_1["p50_ms"], "rest_p99_ms_batch_1": rest_1["p99_ms"],
            "load_errors": record["errors"], "server_rss_growth_mib": record["server"]["rss_growth_mib"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=10, help="requests per client and setting")
    parser.add_argument("--threads", type=int, default=8, help="the server's worker threads per API")
    parser.add_argument("--ratio-clients", type=int, default=8)
    parser.add_argument("--no-grpc", action="store_true")
    parser.add_argument("--note", default="", help="what else ran on the machine, kept in the JSON")
    parser.add_argument("--out", default="runs/benchmarks/serving_load.json")
    args = parser.parse_args(argv)
    record = run_load(args.clients, args.requests, args.threads, args.ratio_clients, grpc=not args.no_grpc)
    record["note"] = args.note
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(record, f, indent=2)
    print(markdown(record))
    if record["errors"]:
        print("errors:", [r["first_errors"] for r in record["runs"] if r["errors"]], file=sys.stderr)
    return 1 if record["errors"] else 0


def markdown(record):
    lines = ["| path | clients | batch | requests | errors | reconnects | requests/s | examples/s | p50 ms | p99 ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in record["runs"]:
        lines.append(f"| {r['protocol']} | {r['clients']} | {r['batch']} | {r['requests']} | {r['errors']} | "
                     f"{r['reconnects']} | {r['requests_per_s']} | {r['examples_per_s']} | {r['p50_ms']} | {r['p99_ms']} |")
    for r in record["in_process"]:
        lines.append(f"| in-process signature | {r['callers']} | 32 | {r['requests']} | {r['errors']} | | "
                     f"{r['requests_per_s']} | {r['examples_per_s']} | {r['p50_ms']} | {r['p99_ms']} |")
    s, ratio = record["server"], record["ratio"]
    lines += ["", f"server RSS (MiB): {s['rss_start_mib']} after warm-up, {s['rss_end_mib']} at the end, "
              f"peak {s['rss_peak_mib']}; growth {s['rss_growth_mib']} ({s['growth_margin']}: "
              f"{'within' if s['within_margin'] else 'OUTSIDE'}); stopped with exit code {s['exit_code']} "
              f"in {s['stop_seconds']} s",
              f"REST / in-process examples/s at batch 32, {record['settings']['ratio_clients']} clients: "
              f"{ratio['rest_examples_per_s']} / {ratio['in_process_examples_per_s']} = {ratio['value']} "
              f"(target >= {ratio['target']}: {'met' if ratio['met'] else 'NOT met'})"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
