"""Tests of the dev server: TF Serving's REST and gRPC APIs on SavedModels.

The SavedModels are small `tf.Module`s with the project's serving signature
(image bytes, review text, sensor readings -> probabilities, classes, scores),
so these tests do not depend on the rest of mmkeras. The helpers at the top
are shared with the client and config tests.
"""

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from http.client import HTTPConnection
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from mmkeras.serving.dev_server import DevServer
from mmkeras.serving.warmup import read_warmup_requests
from mmkeras.serving.warmup import write_warmup_requests

LABELS = ["negative", "neutral", "positive"]


# === Test SavedModels (shared with the client and config tests) ===


class _TinyMultimodal(tf.Module):
    """image (encoded bytes) + review (text) + readings [B, 3] -> 3 classes."""

    def __init__(self, seed):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.labels = tf.constant(LABELS)
        self.kernel = tf.Variable(rng.normal(size=(8, len(LABELS))).astype("float32"))
        self.tokenizer = tf_text.WhitespaceTokenizer()

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="image"),
            tf.TensorSpec([None], tf.string, name="review"),
            tf.TensorSpec([None, 3], tf.float32, name="readings"),
        ]
    )
    def serve(self, image, review, readings):
        def mean_colour(data):
            pixels = tf.io.decode_image(data, channels=3, expand_animations=False)
            return tf.reduce_mean(tf.cast(pixels, tf.float32), axis=[0, 1]) / 255.0

        colour = tf.map_fn(mean_colour, image, fn_output_signature=tf.TensorSpec([3], tf.float32))
        tokens = tf.cast(self.tokenizer.tokenize(review).row_lengths(), tf.float32)[:, None]
        chars = tf.cast(tf.strings.length(review), tf.float32)[:, None] / 10.0
        features = tf.concat([colour, tokens, chars, readings], axis=1)
        probabilities = tf.nn.softmax(tf.matmul(features, self.kernel))
        top = tf.argmax(probabilities, axis=1)
        return {
            "probabilities": probabilities,
            "classes": tf.gather(self.labels, top),
            "scores": tf.reduce_max(probabilities, axis=1),
        }


class _TinySensor(tf.Module):
    """One input (readings [B, 3]) and one output (probabilities [B, 2])."""

    def __init__(self, seed):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.kernel = tf.Variable(rng.normal(size=(3, 2)).astype("float32"))

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="readings")])
    def serve(self, readings):
        return {"probabilities": tf.nn.softmax(tf.matmul(readings, self.kernel))}


def write_test_savedmodel(version_dir, seed=0, kind="multimodal"):
    """Saves a small SavedModel with a `serving_default` signature."""
    module = _TinyMultimodal(seed) if kind == "multimodal" else _TinySensor(seed)
    signatures = {"serving_default": module.serve.get_concrete_function()}
    tf.saved_model.save(module, str(version_dir), signatures=signatures)
    return Path(version_dir)


def png_bytes(value, size=4):
    """A small solid-colour PNG."""
    return tf.io.encode_png(np.full((size, size, 3), value, np.uint8)).numpy()


def example(value=200, review="great phone, works well", readings=(0.5, -1.0, 2.0)):
    return {"image": png_bytes(value), "review": review, "readings": list(readings)}


def local_predict(version_dir, examples):
    """Calls the signature in-process: the reference results."""
    function = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    feeds = {}
    for name in examples[0]:
        values = [e[name] for e in examples]
        dtype = tf.float32 if isinstance(values[0], list) else tf.string
        feeds[name] = tf.constant(values, dtype=dtype)
    return {key: value.numpy() for key, value in function(**feeds).items()}


def http(method, url, body=None, raw=None):
    """(status, JSON answer) of one REST call."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def b64(data):
    import base64

    return {"b64": base64.b64encode(data).decode()}


def wait_until(condition, seconds=30.0):
    """Polls `condition` (bounded); True once it holds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


# === Fixtures ===


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("savedmodels")
    write_test_savedmodel(base / "tiny" / "1", seed=1)
    write_test_savedmodel(base / "sensor" / "1", seed=2, kind="sensor")
    return base


@pytest.fixture(scope="module")
def server(models):
    with DevServer(
        models, rest_port=0, grpc_port=0, poll_seconds=0, max_body_bytes=64 * 1024
    ) as running:
        yield running


@pytest.fixture(scope="module")
def grpc_stubs(server):
    channel = grpc.insecure_channel(server.grpc_target)
    yield (
        prediction_service_pb2_grpc.PredictionServiceStub(channel),
        model_service_pb2_grpc.ModelServiceStub(channel),
    )
    channel.close()


# === Status and metadata ===


def test_status_has_tf_serving_shape(server):
    status, answer = http("GET", f"{server.rest_url}/v1/models/tiny")
    assert status == 200
    assert answer == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    status, answer = http("GET", f"{server.rest_url}/v1/models/tiny/versions/1")
    assert status == 200 and answer["model_version_status"][0]["version"] == "1"


def test_metadata_has_tf_serving_shape(server):
    status, answer = http("GET", f"{server.rest_url}/v1/models/tiny/metadata")
    assert status == 200
    assert answer["model_spec"] == {"name": "tiny", "signature_name": "", "version": "1"}
    signature = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"]["image"]["dtype"] == "DT_STRING"
    readings = signature["inputs"]["readings"]
    assert readings["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in readings["tensor_shape"]["dim"]] == ["-1", "3"]
    assert set(signature["outputs"]) == {"probabilities", "classes", "scores"}


# === Predict ===


def test_rest_row_form_matches_in_process(server, models):
    examples = [example(200), example(30, review="bad", readings=(3.0, 0.0, -2.0))]
    instances = [{**e, "image": b64(e["image"])} for e in examples]
    status, answer = http(
        "POST", f"{server.rest_url}/v1/models/tiny:predict", {"instances": instances}
    )
    assert status == 200, answer
    expected = local_predict(models / "tiny" / "1", examples)
    rows = answer["predictions"]
    assert len(rows) == 2
    np.testing.assert_allclose(
        [r["probabilities"] for r in rows], expected["probabilities"], rtol=1e-6
    )
    np.testing.assert_allclose([r["scores"] for r in rows], expected["scores"], rtol=1e-6)
    assert [r["classes"] for r in rows] == [c.decode() for c in expected["classes"]]


def test_rest_columnar_form_matches_in_process(server, models):
    examples = [example(120), example(10, review="")]
    inputs = {
        "image": [b64(e["image"]) for e in examples],
        "review": [e["review"] for e in examples],
        "readings": [e["readings"] for e in examples],
    }
    status, answer = http(
        "POST",
        f"{server.rest_url}/v1/models/tiny/versions/1:predict",
        {"signature_name": "serving_default", "inputs": inputs},
    )
    assert status == 200, answer
    expected = local_predict(models / "tiny" / "1", examples)
    outputs = answer["outputs"]
    np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], rtol=1e-6)
    assert outputs["classes"] == [c.decode() for c in expected["classes"]]


def test_single_input_and_output_use_bare_values(server, models):
    readings = [[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]]
    expected = local_predict(models / "sensor" / "1", [{"readings": r} for r in readings])
    url = f"{server.rest_url}/v1/models/sensor:predict"
    status, answer = http("POST", url, {"instances": readings})
    assert status == 200, answer
    np.testing.assert_allclose(answer["predictions"], expected["probabilities"], rtol=1e-6)
    status, answer = http("POST", url, {"inputs": readings})
    assert status == 200, answer
    np.testing.assert_allclose(answer["outputs"], expected["probabilities"], rtol=1e-6)


def test_grpc_predict_metadata_and_status(server, models, grpc_stubs):
    prediction, model_service = grpc_stubs
    examples = [example(90)]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    for name, dtype in [("image", tf.string), ("review", tf.string), ("readings", tf.float32)]:
        values = [e[name] for e in examples]
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values, dtype=dtype))
    response = prediction.Predict(request, timeout=30)
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    expected = local_predict(models / "tiny" / "1", examples)
    np.testing.assert_allclose(
        tf.make_ndarray(response.outputs["probabilities"]), expected["probabilities"], rtol=1e-6
    )
    request.output_filter.append("classes")
    filtered = prediction.Predict(request, timeout=30)
    assert set(filtered.outputs) == {"classes"}

    metadata_request = get_model_metadata_pb2.GetModelMetadataRequest(
        metadata_field=["signature_def"]
    )
    metadata_request.model_spec.name = "tiny"
    metadata = prediction.GetModelMetadata(metadata_request, timeout=30)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    metadata.metadata["signature_def"].Unpack(signature_map)
    assert set(signature_map.signature_def["serving_default"].inputs) == {
        "image",
        "review",
        "readings",
    }

    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "tiny"
    status = model_service.GetModelStatus(status_request, timeout=30)
    assert [(s.version, s.state) for s in status.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    ]


# === Errors ===


def _row(**changes):
    instance = {**example(), "image": b64(png_bytes(200))}
    instance.update(changes)
    return {"instances": [instance]}


MALFORMED = [
    ("bad base64", "tiny:predict", _row(image={"b64": "%%%not base64"}), 400, "base64"),
    ("wrong input name", "tiny:predict", _row(photo="x"), 400, "does not have named input: photo"),
    (
        "wrong dtype",
        "tiny:predict",
        _row(readings=["a", "b", "c"]),
        400,
        "is not of expected type: float32",
    ),
    (
        "undecodable image",
        "tiny:predict",
        _row(image=b64(b"not an image")),
        400,
        "Unknown image file format",
    ),
    ("wrong shape", "tiny:predict", _row(readings=[1.0, 2.0]), 400, "expects shape [-1,3]"),
    (
        "missing input",
        "tiny:predict",
        {"inputs": {"image": [], "review": []}},
        400,
        "Missing named input: readings",
    ),
    (
        "no instances",
        "tiny:predict",
        {"signature_name": "serving_default"},
        400,
        "Missing 'inputs' or 'instances'",
    ),
    (
        "unknown signature",
        "tiny:predict",
        {**_row(), "signature_name": "nope"},
        400,
        '"nope" not found',
    ),
    ("unknown model", "nope:predict", _row(), 404, "Servable not found for request: Latest(nope)"),
    ("unknown version", "tiny/versions/7:predict", _row(), 404, "Specific(tiny, 7)"),
    (
        "unknown label",
        "tiny/labels/canary:predict",
        _row(),
        400,
        "Unrecognized servable version label: canary",
    ),
]


@pytest.mark.parametrize("case", MALFORMED, ids=[case[0] for case in MALFORMED])
def test_malformed_request_gets_error_and_server_keeps_serving(server, case):
    _, path, body, want_status, want_message = case
    status, answer = http("POST", f"{server.rest_url}/v1/models/{path}", body)
    assert status == want_status, answer
    assert want_message in answer["error"]
    status, answer = http("POST", f"{server.rest_url}/v1/models/tiny:predict", _row())
    assert status == 200 and answer["predictions"][0]["classes"] in LABELS


def test_bad_json_oversize_body_and_unknown_status(server):
    url = f"{server.rest_url}/v1/models/tiny:predict"
    status, answer = http("POST", url, raw=b"{not json")
    assert status == 400 and "JSON Parse error" in answer["error"]
    status, answer = http("POST", url, raw=b"x" * (64 * 1024 + 1))
    assert status == 413 and "exceeds the limit of 65536 bytes" in answer["error"]
    status, answer = http("GET", f"{server.rest_url}/v1/models/nope")
    assert status == 404 and "Could not find any versions of model nope" in answer["error"]
    status, answer = http("POST", url, _row())
    assert status == 200


def _raw_http(server, request_bytes):
    """Status line and JSON body of a hand-written HTTP request (bounded wait)."""
    host, port = server.rest_url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request_bytes)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, body = answer.split(b"\r\n\r\n", 1)
    return int(head.split()[1]), json.loads(body)


def _length(answer):
    match = re.search(rb"(?i)content-length: *(\d+)", answer)
    return int(match.group(1)) if match else 0


def test_negative_content_length_chunked_bodies_other_methods_and_huge_versions(server):
    request = (b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}")
    status, answer = _raw_http(server, request)  # answered at once, not after the client gives up
    assert status == 400 and "Invalid Content-Length: -1" in answer["error"]
    for method in ("PUT", "DELETE", "PATCH"):
        status, answer = http(method, f"{server.rest_url}/v1/models/tiny:predict", _row())
        assert status == 400 and f"Unsupported HTTP method {method}" in answer["error"]
    body = json.dumps(_row()).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 50]), body[i:i + 50]) for i in range(0, len(body), 50))
    status, answer = _raw_http(server, b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n"
                                       b"Transfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n")
    assert status == 200 and answer["predictions"][0]["classes"] in LABELS  # as TF Serving accepts
    status, answer = http("POST", f"{server.rest_url}/v1/models/tiny/versions/{2**63}:predict", _row())
    assert status == 400 and "out of range" in answer["error"]
    status, answer = http("POST", f"{server.rest_url}/v1/models/tiny:predict", _row())
    assert status == 200


def _rest_workers():
    return {t for t in threading.enumerate() if t.name.startswith("mmkeras-dev-server-rest-")}


def test_rest_pool_is_bounded_and_idle_keep_alive_connections_give_way(models):
    others = _rest_workers()  # other servers' (the module's `server`)
    with DevServer(models, rest_port=0, grpc_port=None, poll_seconds=0, threads=2) as server:
        host, port = server.rest_url.split("//")[1].split(":")
        idle = [HTTPConnection(host, int(port), timeout=10) for _ in range(2)]
        for connection in idle:
            connection.request("GET", "/v1/models/tiny")
            response = connection.getresponse()
            assert response.status == 200 and response.getheader("Connection") != "close"
            response.read()
        # Both workers now hold idle keep-alive connections: newcomers are still answered.
        for _ in range(3):
            status, answer = http("POST", f"{server.rest_url}/v1/models/tiny:predict", _row())
            assert status == 200 and answer["predictions"][0]["classes"] in LABELS
        # The worker answering them gave its idle connection up (the other may still hold one).
        assert 1 <= sum(_closed_by_server(connection) for connection in idle) <= 2
        assert len(_rest_workers() - others) == 2  # 2 idle + 3 more connections, 2 threads

        # Pipelined requests (the second already read into the handler's buffer) are all answered.
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(b"GET /v1/models/tiny HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
            answer = b""
            while answer.count(b"AVAILABLE") < 2:
                chunk = connection.recv(65536)
                assert chunk, answer
                answer += chunk
        # Stopping with an idle keep-alive connection open ends every worker.
        idle = HTTPConnection(host, int(port), timeout=10)
        idle.request("GET", "/v1/models/tiny")
        idle.getresponse().read()
    assert _rest_workers() - others == set()
    assert _closed_by_server(idle)


def _closed_by_server(connection):
    connection.sock.settimeout(1.0)
    try:
        return connection.sock.recv(1) == b""
    except TimeoutError:
        return False
    finally:
        connection.close()


def test_stalled_request_body_gets_408(server, monkeypatch):
    from mmkeras.serving.dev_server import rest

    monkeypatch.setattr(rest._RestHandler, "timeout", 0.5)
    request = b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"ins"
    status, answer = _raw_http(server, request)
    assert status == 408 and "stalled" in answer["error"]


def test_grpc_tensor_declaring_more_elements_than_it_carries_is_invalid(server, grpc_stubs):
    """A few bytes declaring 10^12 strings: INVALID_ARGUMENT, nothing allocated."""
    prediction, _ = grpc_stubs
    request = _grpc_request(readings=[[1.0, 2.0, 3.0]])
    huge = request.inputs["review"]
    huge.ClearField("string_val")
    huge.tensor_shape.dim[0].size = 10**12
    with pytest.raises(grpc.RpcError) as error:
        prediction.Predict(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "declares shape [1000000000000]" in error.value.details() and "carries 0" in error.value.details()
    huge.string_val.append(b"ok")
    huge.tensor_shape.dim[0].size = 1
    assert prediction.Predict(request, timeout=30).outputs["classes"].string_val[0].decode() in LABELS


def _grpc_request(readings):
    """A PredictRequest for the tiny model, with the given readings."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.inputs["image"].CopyFrom(tf.make_tensor_proto([png_bytes(9)]))
    request.inputs["review"].CopyFrom(tf.make_tensor_proto(["ok"]))
    request.inputs["readings"].CopyFrom(tf.make_tensor_proto(readings))
    return request


def test_grpc_errors_carry_codes_and_messages(server, grpc_stubs):
    prediction, _ = grpc_stubs
    request = _grpc_request(readings=["a"])
    with pytest.raises(grpc.RpcError) as error:
        prediction.Predict(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "readings" in error.value.details()
    request.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as error:
        prediction.Predict(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


# === Versions, labels, warmup ===


def _status_versions(server, name):
    _, answer = http("GET", f"{server.rest_url}/v1/models/{name}")
    return {int(s["version"]): s["state"] for s in answer.get("model_version_status", [])}


def _rest_probabilities(server, path, examples):
    instances = [{**e, "image": b64(e["image"])} for e in examples]
    status, answer = http(
        "POST", f"{server.rest_url}/v1/models/{path}:predict", {"instances": instances}
    )
    assert status == 200, answer
    return np.array([row["probabilities"] for row in answer["predictions"]])


def test_new_version_is_picked_up_and_temporary_folders_ignored(tmp_path):
    write_test_savedmodel(tmp_path / "live" / "1", seed=1)
    with DevServer(tmp_path, rest_port=0, grpc_port=None, poll_seconds=0.2) as server:
        # An export in progress: a temporary folder (not an integer) holding
        # a complete SavedModel, and an integer folder still being written.
        write_test_savedmodel(tmp_path / "live" / "5.tmp-export", seed=5)
        (tmp_path / "live" / "4" / "variables").mkdir(parents=True)
        server.refresh()
        assert _status_versions(server, "live") == {1: "AVAILABLE"}

        staging = write_test_savedmodel(tmp_path / "staging-2", seed=2)
        staging.rename(tmp_path / "live" / "2")  # atomic, as exports do
        assert wait_until(lambda: _status_versions(server, "live").get(2) == "AVAILABLE")
        assert wait_until(lambda: _status_versions(server, "live").get(1) == "END")
        assert set(_status_versions(server, "live")) == {1, 2}
        examples = [example(60)]
        expected = local_predict(tmp_path / "live" / "2", examples)["probabilities"]
        np.testing.assert_allclose(
            _rest_probabilities(server, "live", examples), expected, rtol=1e-6
        )


def test_labels_route_to_versions_and_follow_config_changes(tmp_path):
    for version in (1, 2, 3):
        write_test_savedmodel(tmp_path / "models" / "shop" / str(version), seed=version)
    config = tmp_path / "models.config"

    def write_config(stable, canary):
        config.write_text(
            f"# stable {stable}, canary {canary}\n"
            'model_config_list { config { name: "shop" base_path: "/models/shop" '
            'model_platform: "tensorflow" '
            "model_version_policy { specific { versions: 1 versions: 2 } } "
            f'version_labels {{ key: "stable" value: {stable} }} '
            f'version_labels {{ key: "canary" value: {canary} }} }} }}'
        )

    write_config(stable=1, canary=2)
    examples = [example(150)]
    expected = {
        v: local_predict(tmp_path / "models" / "shop" / str(v), examples)["probabilities"]
        for v in (1, 2)
    }
    # "/models/shop" does not exist here: it is found under the base folder.
    with DevServer(
        tmp_path / "models", model_config_file=config, rest_port=0, grpc_port=0, poll_seconds=0
    ) as server:
        assert _status_versions(server, "shop") == {2: "AVAILABLE", 1: "AVAILABLE"}
        np.testing.assert_allclose(
            _rest_probabilities(server, "shop/labels/stable", examples), expected[1], rtol=1e-6
        )
        np.testing.assert_allclose(
            _rest_probabilities(server, "shop/labels/canary", examples), expected[2], rtol=1e-6
        )
        np.testing.assert_allclose(
            _rest_probabilities(server, "shop", examples), expected[2], rtol=1e-6
        )

        channel = grpc.insecure_channel(server.grpc_target)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "shop"
        request.model_spec.version_label = "stable"
        for name in ("image", "review", "readings"):
            request.inputs[name].CopyFrom(tf.make_tensor_proto([examples[0][name]]))
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=30
        )
        channel.close()
        assert response.model_spec.version.value == 1

        write_config(stable=2, canary=2)
        server.refresh()
        np.testing.assert_allclose(
            _rest_probabilities(server, "shop/labels/stable", examples), expected[2], rtol=1e-6
        )


def test_warmup_file_parses_and_its_requests_are_answered(tmp_path):
    version_dir = write_test_savedmodel(tmp_path / "warm" / "1", seed=3)
    examples = [example(40), [example(80), example(160, review="ok")]]
    path = write_warmup_requests(version_dir, "warm", examples)
    assert path == version_dir / "assets.extra" / "tf_serving_warmup_requests"
    logs = read_warmup_requests(version_dir)
    assert len(logs) == 2
    assert [log.predict_log.request.model_spec.name for log in logs] == ["warm", "warm"]
    assert logs[1].predict_log.request.inputs["readings"].tensor_shape.dim[0].size == 2

    # A version whose warmup request fails is not loaded, as in TF Serving.
    bad_dir = write_test_savedmodel(tmp_path / "cold" / "1", seed=4)
    write_warmup_requests(bad_dir, "cold", [{**example(), "image": b"not an image"}])
    with DevServer(tmp_path, rest_port=0, grpc_port=0, poll_seconds=0) as server:
        _, answer = http("GET", f"{server.rest_url}/v1/models/cold")
        state = answer["model_version_status"][0]
        assert state["state"] == "END" and "Warmup request 0" in state["status"]["error_message"]
        channel = grpc.insecure_channel(server.grpc_target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for log, sent in zip(logs, [[examples[0]], examples[1]]):
            request = log.predict_log.request
            request.model_spec.version.value = 1
            response = stub.Predict(request, timeout=30)
            expected = local_predict(version_dir, sent)["probabilities"]
            np.testing.assert_allclose(
                tf.make_ndarray(response.outputs["probabilities"]), expected, rtol=1e-6
            )
        channel.close()



# === Corrupt versions next to a good one ===


def test_corrupt_versions_are_logged_and_the_good_one_keeps_serving(tmp_path, caplog):
    """As TF Serving: a version that fails to load ends with its error, the serving one stays."""
    live = tmp_path / "live"
    write_test_savedmodel(live / "1", seed=1)
    examples = [example(70)]
    expected = local_predict(live / "1", examples)["probabilities"]

    def still_serving_version_1():
        np.testing.assert_allclose(_rest_probabilities(server, "live", examples), expected, rtol=1e-6)
        status, answer = http("GET", f"{server.rest_url}/v1/models/live/versions/1")
        assert status == 200 and answer["model_version_status"][0]["state"] == "AVAILABLE"

    def logged(level, text):
        return [r.getMessage() for r in caplog.records if r.levelname == level and text in r.getMessage()]

    with DevServer(tmp_path, rest_port=0, grpc_port=None, poll_seconds=0.2) as server:
        # Version 2: a graph file that is not a SavedModel proto.
        (live / "2").mkdir()
        (live / "2" / "saved_model.pb").write_bytes(b"\x08garbage, not a SavedModel proto")
        # Version 3, once 2 has failed: a real graph whose variables were cut to nothing.
        assert wait_until(lambda: _status_versions(server, "live").get(2) == "END")
        # Cut outside the watched folder, then moved in whole: a poll between two
        # cuts would see a different broken version and rightly retry it.
        write_test_savedmodel(tmp_path / "staging", seed=3)
        for path in (tmp_path / "staging" / "variables").iterdir():
            path.write_bytes(b"")
        (tmp_path / "staging").rename(live / "3")
        assert wait_until(lambda: _status_versions(server, "live").get(3) == "END")

        _, answer = http("GET", f"{server.rest_url}/v1/models/live")
        states = {int(s["version"]): s for s in answer["model_version_status"]}
        assert states[1]["state"] == "AVAILABLE"
        for version in (2, 3):
            assert states[version]["status"]["error_code"] != "OK"
            assert len(logged("ERROR", f"model live version {version}:")) == 1
        assert "Cannot parse file" in states[2]["status"]["error_message"]
        assert "sstable" in states[3]["status"]["error_message"]  # TensorFlow's DataLoss
        still_serving_version_1()
        status, answer = http("POST", f"{server.rest_url}/v1/models/live/versions/3:predict", _row())
        assert status == 404 and "Specific(live, 3)" in answer["error"]

        # Version 4: a variables folder with nothing in it, which is also what a copy
        # in progress looks like: not loaded, said once, version 1 serves on.
        (live / "4" / "variables").mkdir(parents=True)
        (live / "4" / "saved_model.pb").write_bytes((live / "1" / "saved_model.pb").read_bytes())
        assert wait_until(lambda: logged("WARNING", "Model live version 4"))
        time.sleep(0.5)  # more polls: neither failed version is retried, nothing said twice
        still_serving_version_1()
        assert 4 not in _status_versions(server, "live")
        assert len(logged("WARNING", "Model live version 4")) == 1
        assert len(logged("ERROR", "model live version")) == 2
