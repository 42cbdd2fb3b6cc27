"""A client for models served by TensorFlow Serving (or the dev server).

One `Client` speaks REST or gRPC and gives the same results either way:
a list of per-example dicts of Python values. Inputs are given per example
as a dict of `Path` (file bytes), `bytes`, `str` (numpy's string scalars
too) or numbers; see `mmkeras.serving.payloads`.

The REST path needs only the standard library and numpy; gRPC
(`mmkeras.serving.grpc_client`) imports TensorFlow and tensorflow-serving-api
when first used.
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

from mmkeras.savedmodel import DEFAULT_SIGNATURE, EXPLAIN_SIGNATURE
from mmkeras.serving.errors import ServingError
from mmkeras.serving.payloads import encode_examples  # noqa: F401 (imported from here)
from mmkeras.serving.payloads import python_value
from mmkeras.serving.payloads import rest_instances
from mmkeras.serving.payloads import tensor_protos  # noqa: F401 (imported from here)


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

    >>> client = Client("localhost:8501", "sentiment", label="stable")
    >>> client.url
    'http://localhost:8501'
    >>> client.predict({"photo": Path("cat.jpg"), "review": "Great!"})  # doctest: +SKIP
    [{'classes': 'positive', 'probabilities': [0.02, 0.05, 0.93], 'scores': 0.93}]
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
        self._missing = {}  # signature name -> {input: missing value}
        self._grpc_model = None  # a GrpcModel, made on the first gRPC call
        if protocol == "rest":
            self.url = target if "://" in target else f"http://{target}"
            self.url = self.url.rstrip("/")
        else:
            self.target = target.split("://", 1)[-1]

    # --- Public API ---

    def predict(self, inputs, signature_name=DEFAULT_SIGNATURE):
        """Runs the model on one example (a dict) or a batch (list of dicts).

        An input left out of an example, or given as `None`, is sent as the
        model's missing value for it (`""` for text and files, NaN for
        numbers), read from the signature; one line on stderr says so. TF
        Serving itself requires every input.

        Returns:
            a list with one dict of outputs per example: labels as `str`,
            probabilities as lists of floats, scores as floats (outputs whose
            name ends in `_bytes` as `bytes`).
        """
        inputs = self._with_missing_filled(inputs, signature_name)
        if self.protocol == "rest":
            return self._rest_predict(inputs, signature_name)
        return self._grpc().predict(inputs, signature_name)

    def metadata(self):
        """The model's metadata, as TF Serving's REST API gives it."""
        if self.protocol == "rest":
            return self._rest_call("GET", self._model_path() + "/metadata")
        return self._grpc().metadata()

    def status(self):
        """The model's version states, as TF Serving's REST API gives them."""
        if self.protocol == "rest":
            return self._rest_call("GET", self._model_path())
        return self._grpc().status()

    def close(self):
        """Closes the gRPC channel, if any."""
        if self._grpc_model is not None:
            self._grpc_model.close()
            self._grpc_model = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _with_missing_filled(self, inputs, signature_name):
        examples = [inputs] if isinstance(inputs, dict) else list(inputs)
        if not examples or not all(isinstance(example, dict) for example in examples):
            return inputs  # encode_examples says what is wrong
        missing_values = self._missing_values(signature_name)
        filled, left_out = [], set()
        for example in examples:
            example = {name: value for name, value in example.items() if value is not None}
            for name, value in missing_values.items():
                if name not in example:
                    example[name] = value
                    left_out.add(name)
            filled.append(example)
        if left_out:
            print(f"mmkeras: sent {', '.join(sorted(left_out))} as missing (not given)", file=sys.stderr)
        return filled

    def _missing_values(self, signature_name):
        """`{input name: its missing value}` of a signature, from the model's metadata."""
        if signature_name not in self._missing:
            signatures = self.metadata()["metadata"]["signature_def"]["signature_def"]
            if signature_name not in signatures:
                raise ServingError(f"Signature {signature_name!r} not in the model's metadata.")
            self._missing[signature_name] = {
                name: missing_value(spec["dtype"], spec.get("tensor_shape", {}).get("dim", []))
                for name, spec in signatures[signature_name]["inputs"].items()}
        return self._missing[signature_name]

    def _grpc(self):
        if self._grpc_model is None:
            from mmkeras.serving.grpc_client import GrpcModel

            self._grpc_model = GrpcModel(
                self.target,
                self.model_name,
                version=self.version,
                label=self.label,
                timeout=self.timeout,
            )
        return self._grpc_model

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
            {name: python_value(value, name) for name, value in sorted(row.items())}
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


def missing_value(dtype, dims):
    """How a client leaves an input out of one example, from the input's dtype and
    batched shape in a signature's metadata: `""` for strings (text, file bytes),
    NaN for floats, an unknown length (a series' steps) as one step.

    >>> missing_value("DT_STRING", [{"size": "-1"}])
    ''
    >>> missing_value("DT_FLOAT", [{"size": "-1"}, {"size": "-1"}, {"size": "2"}])
    [[nan, nan]]
    """
    if dtype == "DT_STRING":
        return ""
    shape = [int(dim["size"]) for dim in dims[1:]]
    value = float("nan")
    for size in reversed(shape):
        value = [value] * (1 if size < 0 else size)
    return value


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

    >>> parse_input_arg("photo=@cat.jpg") == ("photo", Path("cat.jpg"))
    True
    >>> parse_input_arg("readings=[1, 2.5]")
    ('readings', [1, 2.5])
    >>> parse_input_arg("review=great phone")
    ('review', 'great phone')
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
    parser.add_argument("--explain", action="store_true",
                        help=f"call the {EXPLAIN_SIGNATURE!r} signature: the prediction and each input's "
                             "contribution to it (the predicted class's probability with it minus without it)")
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
    return run(args, example)


def run(args, example=None):
    """Sends one example as the parsed `args` (of `build_arg_parser`) say;
    `mmkeras predict` calls it. Returns 0, or 1 when the server answered an error."""
    if example is None:
        example = dict(parse_input_arg(text) for text in args.inputs)
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
            signature = EXPLAIN_SIGNATURE if args.explain else args.signature
            results = client.predict(example, signature_name=signature)
    except (ServingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(_printable(results), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
