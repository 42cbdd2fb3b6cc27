"""A client for models served by TensorFlow Serving (or the dev server).

One `Client` speaks REST or gRPC and gives the same results either way:
a list of per-example dicts of Python values.

Inputs are given per example as a dict:
- `pathlib.Path`: the file's bytes, sent as binary (images, WAV audio);
- `bytes`: binary (`{"b64": ...}` over REST, DT_STRING over gRPC);
- `str`: text (`""` means the modality is missing);
- a number or a (nested) list of numbers: floats (`float("nan")` means
  missing).

The REST path needs only the standard library; gRPC imports TensorFlow and
tensorflow-serving-api when first used.
"""

import argparse
import base64
import json
import math
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

DEFAULT_SIGNATURE = "serving_default"


class ServingError(Exception):
    """An error answered by the model server.

    Attributes:
        message: the server's error message.
        code: the HTTP status (REST) or gRPC status name (gRPC), or None when
            the server could not be reached.
        protocol: `"rest"` or `"grpc"`.
    """

    def __init__(self, message, code=None, protocol="rest"):
        self.message = message
        self.code = code
        self.protocol = protocol
        where = f" ({'HTTP ' if protocol == 'rest' else 'gRPC '}{code})" if code else ""
        super().__init__(f"{message}{where}")


# === Inputs ===


def _encode_value(value, where):
    """One input value as bytes, str, or a float array."""
    if isinstance(value, Path):
        try:
            return value.read_bytes()
        except OSError as error:
            raise ValueError(f"{where}: cannot read file {value}: {error}") from None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, dict)):
        raise ValueError(
            f"{where}: expected a Path, bytes, str, number or list of numbers, "
            f'received {type(value).__name__}. A missing text is "", a missing '
            "number float('nan')."
        )
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{where}: expected a number or a rectangular list of numbers, received "
            f"{value!r:.80}."
        ) from None


def encode_examples(inputs):
    """Checks and encodes examples: one dict, or a list of dicts.

    Args:
        inputs: a dict (one example) or a list of dicts with the same keys.

    Returns:
        a list of dicts of input name to bytes, str, or float64 array.
    """
    examples = [inputs] if isinstance(inputs, dict) else list(inputs)
    if not examples:
        raise ValueError("Expected at least one example, received none.")
    names = None
    encoded = []
    for index, example in enumerate(examples):
        if not isinstance(example, dict):
            raise ValueError(
                f"Example {index}: expected a dict of input name to value, received "
                f"{type(example).__name__}."
            )
        if names is None:
            names = set(example)
        elif set(example) != names:
            raise ValueError(
                f"Example {index}: inputs {sorted(example)} differ from example 0's "
                f"{sorted(names)}; every example needs the same inputs."
            )
        encoded.append(
            {
                name: _encode_value(value, f"example {index}, input {name!r}")
                for name, value in example.items()
            }
        )
    return encoded


def _json_input(value):
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, str):
        return value
    return value.tolist()


def rest_instances(inputs):
    """Examples as the `instances` of a REST predict request (row form)."""
    return [
        {name: _json_input(value) for name, value in example.items()}
        for example in encode_examples(inputs)
    ]


def tensor_protos(inputs):
    """Examples batched into `{name: TensorProto}` for a gRPC PredictRequest."""
    import tensorflow as tf

    examples = encode_examples(inputs)
    protos = {}
    for name in examples[0]:
        values = [example[name] for example in examples]
        kinds = {type(value) for value in values}
        if kinds <= {bytes, str}:
            array = np.array(
                [v.encode("utf-8") if isinstance(v, str) else v for v in values], dtype=object
            )
        elif kinds == {np.ndarray}:
            shapes = {value.shape for value in values}
            if len(shapes) > 1:
                raise ValueError(
                    f"Input {name!r}: every example needs the same shape, received "
                    f"{sorted(shapes)}."
                )
            array = np.stack(values).astype(np.float32)
        else:
            raise ValueError(f"Input {name!r}: mixes text/binary and numbers across examples.")
        protos[name] = tf.make_tensor_proto(array)
    return protos


# === Outputs ===


def _plain_float(value):
    # Same value over REST and gRPC: float32 precision, shortest digits.
    return float(str(np.float32(value)))


def _python_value(value, name):
    if isinstance(value, list):
        return [_python_value(item, name) for item in value]
    if isinstance(value, dict) and "b64" in value:
        return base64.b64decode(value["b64"])
    if isinstance(value, bytes):
        return value if name.endswith("_bytes") else value.decode("utf-8", errors="replace")
    if isinstance(value, float):
        return _plain_float(value)
    return value


def _item(value):
    # Numpy rows and scalars become Python values; bytes already are.
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value


def _rows_from_arrays(arrays):
    names = sorted(arrays)
    batch = len(arrays[names[0]])
    return [
        {name: _python_value(_item(arrays[name][i]), name) for name in names} for i in range(batch)
    ]


# === Client ===


class Client:
    """Calls one model on TF Serving (or `mmkeras serve`), over REST or gRPC.

    Args:
        target: server address: `"http://host:8501"` or `"host:8501"` for
            REST, `"host:8500"` (or `"grpc://host:8500"`) for gRPC.
        model_name: the served model's name.
        protocol: `"rest"` or `"grpc"`.
        version: optional model version to call (default: the latest).
        label: optional version label (e.g. `"stable"`, `"canary"`).
        timeout: seconds to wait for each call.

    Example:

    ```python
    client = Client("localhost:8501", "sentiment")
    client.predict({"photo": Path("cat.jpg"), "review": "Great!"})
    # [{"classes": "positive", "probabilities": [...], "scores": 0.93}]
    ```
    """

    def __init__(
        self, target, model_name, *, protocol="rest", version=None, label=None, timeout=30.0
    ):
        if protocol not in ("rest", "grpc"):
            raise ValueError(f"protocol must be 'rest' or 'grpc', received {protocol!r}.")
        if version is not None and label is not None:
            raise ValueError(
                f"Give a version or a label, not both (received {version}, {label!r})."
            )
        self.model_name = model_name
        self.protocol = protocol
        self.version = None if version is None else int(version)
        self.label = label
        self.timeout = timeout
        self._output_names = {}
        if protocol == "rest":
            self.url = target if "://" in target else f"http://{target}"
            self.url = self.url.rstrip("/")
            self._channel = None
        else:
            self.target = target.split("://", 1)[-1]
            self._channel = None

    # --- Public API ---

    def predict(self, inputs, signature_name=DEFAULT_SIGNATURE):
        """Runs the model on one example (a dict) or a batch (list of dicts).

        Returns:
            a list with one dict of outputs per example: labels as `str`,
            probabilities as lists of floats, scores as floats (outputs whose
            name ends in `_bytes` as `bytes`).
        """
        if self.protocol == "rest":
            return self._rest_predict(inputs, signature_name)
        return self._grpc_predict(inputs, signature_name)

    def metadata(self):
        """The model's metadata, as TF Serving's REST API gives it."""
        if self.protocol == "rest":
            return self._rest_call("GET", self._model_path() + "/metadata")
        return self._grpc_metadata()

    def status(self):
        """The model's version states, as TF Serving's REST API gives them."""
        if self.protocol == "rest":
            return self._rest_call("GET", self._model_path())
        return self._grpc_status()

    def close(self):
        """Closes the gRPC channel, if any."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # --- REST ---

    def _model_path(self):
        path = f"/v1/models/{urllib.parse.quote(self.model_name, safe='')}"
        if self.version is not None:
            path += f"/versions/{self.version}"
        elif self.label is not None:
            path += f"/labels/{urllib.parse.quote(self.label, safe='')}"
        return path

    def _rest_predict(self, inputs, signature_name):
        body = {"signature_name": signature_name, "instances": rest_instances(inputs)}
        answer = self._rest_call("POST", self._model_path() + ":predict", body)
        predictions = answer.get("predictions")
        if not isinstance(predictions, list):
            raise ServingError(f"Expected 'predictions' in the answer, received {answer!r:.200}")
        if predictions and not isinstance(predictions[0], dict):
            # A single-output model answers bare values: name them.
            (name,) = self._output_names_for(signature_name)
            predictions = [{name: value} for value in predictions]
        return [
            {name: _python_value(value, name) for name, value in sorted(row.items())}
            for row in predictions
        ]

    def _output_names_for(self, signature_name):
        if signature_name not in self._output_names:
            signatures = self.metadata()["metadata"]["signature_def"]["signature_def"]
            if signature_name not in signatures:
                raise ServingError(f"Signature {signature_name!r} not in the model's metadata.")
            self._output_names[signature_name] = sorted(signatures[signature_name]["outputs"])
        return self._output_names[signature_name]

    def _rest_call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise ServingError(_error_message(error), error.code, "rest") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ServingError(f"Cannot reach {self.url}: {reason}", None, "rest") from None

    # --- gRPC ---

    def _stubs(self):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        if self._channel is None:
            options = [
                ("grpc.max_send_message_length", -1),
                ("grpc.max_receive_message_length", -1),
            ]
            self._channel = grpc.insecure_channel(self.target, options=options)
        return (
            prediction_service_pb2_grpc.PredictionServiceStub(self._channel),
            model_service_pb2_grpc.ModelServiceStub(self._channel),
        )

    def _fill_spec(self, spec, signature_name=None):
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = self.version
        elif self.label is not None:
            spec.version_label = self.label
        if signature_name is not None:
            spec.signature_name = signature_name

    def _grpc(self, method, request):
        import grpc

        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingError(error.details(), error.code().name, "grpc") from None

    def _grpc_predict(self, inputs, signature_name):
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._fill_spec(request.model_spec, signature_name)
        for name, proto in tensor_protos(inputs).items():
            request.inputs[name].CopyFrom(proto)
        prediction, _ = self._stubs()
        response = self._grpc(prediction.Predict, request)
        arrays = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
        return _rows_from_arrays(arrays)

    def _grpc_metadata(self):
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._fill_spec(request.model_spec)
        prediction, _ = self._stubs()
        response = self._grpc(prediction.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        options = dict(preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        return {
            "model_spec": json_format.MessageToDict(response.model_spec, **options),
            "metadata": {"signature_def": json_format.MessageToDict(signature_map, **options)},
        }

    def _grpc_status(self):
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._fill_spec(request.model_spec)
        _, models = self._stubs()
        response = self._grpc(models.GetModelStatus, request)
        return json_format.MessageToDict(response, always_print_fields_with_no_presence=True)


def _error_message(http_error):
    body = http_error.read()
    try:
        return json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", errors="replace") or http_error.reason


# === Command line ===


def parse_input_arg(text):
    """Parses `name=value` from the command line.

    `@path` is a file sent as binary; a JSON number or list is numeric; a JSON
    string (quoted) or anything else is text.
    """
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"Expected name=value, received {text!r}.")
    if value.startswith("@"):
        return name, Path(value[1:])
    try:
        parsed = json.loads(value)
    except ValueError:
        return name, value
    if isinstance(parsed, (int, float, list)) and not isinstance(parsed, bool):
        return name, parsed
    if isinstance(parsed, str):
        return name, parsed
    return name, value


def _printable(value):
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return [_printable(v) for v in value]
    if isinstance(value, dict):
        return {k: _printable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def build_arg_parser(parser=None):
    """Adds the `mmkeras predict` arguments to a parser (or a new one)."""
    parser = parser or argparse.ArgumentParser(
        prog="mmkeras predict", description="Send one example to a served model."
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="name=value",
        help="input values; name=@path sends a file's bytes",
    )
    parser.add_argument(
        "--server", default="localhost:8501", help="host:port (REST), or grpc://host:port"
    )
    parser.add_argument("--model", required=True, help="served model name")
    parser.add_argument("--protocol", choices=["rest", "grpc"])
    parser.add_argument("--version", type=int)
    parser.add_argument("--label")
    parser.add_argument("--signature", default=DEFAULT_SIGNATURE)
    parser.add_argument("--timeout", type=float, default=30.0)
    return parser


def main(argv=None):
    """`mmkeras predict --server URL --model NAME name=value ...`; prints JSON.

    Returns:
        the process exit code: 0, or 1 when the server answered an error.
    """
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    try:
        example = dict(parse_input_arg(text) for text in args.inputs)
    except ValueError as error:
        parser.error(str(error))
    protocol = args.protocol or ("grpc" if args.server.startswith("grpc://") else "rest")
    try:
        with Client(
            args.server,
            args.model,
            protocol=protocol,
            version=args.version,
            label=args.label,
            timeout=args.timeout,
        ) as client:
            results = client.predict(example, signature_name=args.signature)
    except (ServingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(_printable(results), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
