"""Shared test helper: a model's raw-input answers from every serving path.

`assert_serves_like_predict` exports a model, then checks that the
SavedModel loaded in a fresh process (TensorFlow and TF Text only), the dev
server over REST and gRPC, and `model.predict` on the same decoded inputs
all agree.
"""

import base64
import json
import subprocess
import sys

import numpy as np
import tensorflow as tf

import mmkeras as mmk
from mmkeras.data.decode import decode_batch
from mmkeras.export import synthetic_inputs
from mmkeras.serving import Client, DevServer

FRESH_LOAD = """
import base64, json, sys
import tensorflow as tf, tensorflow_text  # noqa: F401  (nothing else: no mmkeras, no keras_hub)
path, requests = sys.argv[1], json.load(open(sys.argv[2]))
inputs = {name: tf.constant([base64.b64decode(v["b64"]) for v in values])
          if values and isinstance(values[0], dict) else tf.constant(values)
          for name, values in requests.items()}
outputs = tf.saved_model.load(path).signatures["serving_default"](**inputs)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("mmkeras", "keras_hub", "keras_cv", "tensorflow_io"))
print(json.dumps({"probabilities": outputs["probabilities"].numpy().tolist(), "leaked": leaked}))
"""


def assert_serves_like_predict(model, specs, tmp_path, name="model", examples=None, grpc=True):
    """Exports `model` (default op check: TF Serving 2.20) and compares every path.

    Returns the export path.
    """
    examples = examples or synthetic_inputs(specs)
    export_path = mmk.export(model, tmp_path / "models" / name, sample_inputs=examples)
    expected = predict_decoded(model, examples, specs)
    served = fresh_process_probabilities(export_path, examples, specs, tmp_path)
    np.testing.assert_allclose(served, expected, atol=1e-4)
    with DevServer(str(tmp_path / "models"), rest_port=0, grpc_port=0, poll_seconds=0) as server:
        clients = [Client(server.rest_url, name)]
        if grpc:
            clients.append(Client(server.grpc_target, name, protocol="grpc"))
        for client in clients:
            with client:
                answers = client.predict(examples)
            np.testing.assert_allclose([a["probabilities"] for a in answers], expected, atol=1e-4)
    return export_path


def fresh_process_probabilities(export_path, examples, specs, tmp_path):
    """`serving_default` on raw examples in a process importing only TF and TF Text."""
    requests = {}
    for spec in specs:
        values = spec.raw_batch([example[spec.name] for example in examples])
        is_bytes = values.dtype == object and isinstance(values.flat[0], bytes)
        requests[spec.name] = [{"b64": base64.b64encode(v).decode()} for v in values] if is_bytes else values.tolist()
    (tmp_path / "requests.json").write_text(json.dumps(requests))
    (tmp_path / "load.py").write_text(FRESH_LOAD)
    result = subprocess.run([sys.executable, str(tmp_path / "load.py"), str(export_path),
                             str(tmp_path / "requests.json")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["leaked"] == []
    return answer["probabilities"]


def predict_decoded(model, examples, specs):
    """`model.predict` on raw examples decoded as the serving signature decodes them."""
    batch = {s.name: tf.constant(s.raw_batch([e[s.name] for e in examples])) for s in specs}
    decoded = decode_batch(batch, specs)
    outputs = model.predict(tf.data.Dataset.from_tensor_slices(decoded).batch(len(examples)), verbose=0)
    return outputs["label"] if isinstance(outputs, dict) else outputs  # auxiliary heads aside
