"""A local stand-in for TensorFlow Serving, for laptops and CI.

Production serving is `tensorflow_model_server` (TensorFlow Serving, usually
the `tensorflow/serving` Docker image; `mmkeras serving-config` writes its
configuration and command line). It cannot be installed everywhere, so this
module implements the part of its APIs that clients use, with the same
answers, on the same folder layout:

- REST (port 8501): `GET /v1/models/{name}[/versions/{v}|/labels/{l}]`
  (status), `GET .../metadata`, `POST .../{name}[...]:predict` with the row
  (`{"instances": [...]}`) or columnar (`{"inputs": {...}}`) form, binary
  values as `{"b64": "..."}`, answers `{"predictions": ...}` /
  `{"outputs": ...}` and errors `{"error": "..."}` with TF Serving's HTTP
  codes.
- gRPC (port 8500): `PredictionService.Predict`,
  `PredictionService.GetModelMetadata` and `ModelService.GetModelStatus`
  from tensorflow-serving-api.
- Models are `<base>/<model_name>/<version>/` SavedModels (or the models of a
  `models.config` file). Version folders are polled like TF Serving: the
  version policy (latest by default, or all / specific ones) picks among
  complete SavedModels whose folder name is an integer, so temporary folders
  of an export in progress are ignored. Version labels (`stable`, `canary`)
  come from `models.config`, which is re-read when it changes. Warmup
  requests in `assets.extra/tf_serving_warmup_requests` run before a version
  becomes available, and a failing one fails the load, as in TF Serving.

It is a development tool: no batching, no authentication, no TLS, and it binds
127.0.0.1 unless told otherwise. It imports only TensorFlow, TensorFlow Text
(for the TF Text ops of text models) and the protos of tensorflow-serving-api.
"""

import argparse
import base64
import binascii
import http.server
import json
import logging
import math
import re
import signal
import socket
import threading
import urllib.parse
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from google.protobuf import text_format
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

_LOG = logging.getLogger("mmkeras.serving")

DEFAULT_SIGNATURE = "serving_default"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
# TF Serving reads at most this many warmup records.
MAX_WARMUP_RECORDS = 1000

# TF Serving's mapping of canonical error codes to HTTP statuses
# (model_servers/http_server.cc).
_HTTP_STATUS = {
    "CANCELLED": 499,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "UNAUTHENTICATED": 401,
}
_PREDICT_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
    r":(classify|regress|predict)",
    re.IGNORECASE,
)
_GET_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
_VERSION_DIR = re.compile(r"[0-9]+")


class RequestError(Exception):
    """A request that fails, with TF Serving's canonical error code.

    Args:
        code: canonical code name, e.g. `"INVALID_ARGUMENT"`, `"NOT_FOUND"`.
        message: the message sent to the client.
    """

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self):
        return _HTTP_STATUS.get(self.code, 500)


def _invalid(message):
    return RequestError("INVALID_ARGUMENT", message)


def _version_number(text):
    """A REST path's version as an int64, None when absent."""
    if not text:
        return None
    version = int(text)
    if version >= 2**63:
        raise _invalid(f"Version {text} is out of range: versions are int64.")
    return version


# === Loading ===


class _Servable:
    """One loaded version of a model."""

    def __init__(self, name, version, path):
        self.name = name
        self.version = version
        self.path = path
        # Kept so the restored variables stay alive as long as the version.
        self.loaded = tf.saved_model.load(str(path), tags=["serve"])
        self.functions = dict(self.loaded.signatures)
        self.signature_defs = _read_signature_defs(path)


def _read_signature_defs(version_dir):
    """The `serve` meta graph's SignatureDefs, as TF Serving reports them."""
    saved_model = saved_model_pb2.SavedModel()
    pb_path = Path(version_dir) / "saved_model.pb"
    if pb_path.is_file():
        saved_model.ParseFromString(pb_path.read_bytes())
    else:
        text_format.Parse((Path(version_dir) / "saved_model.pbtxt").read_text(), saved_model)
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"{version_dir} has no meta graph tagged 'serve'.")


def _is_complete_savedmodel(path):
    """True for a SavedModel whose files are all written."""
    has_graph = (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()
    variables = path / "variables"
    # variables.index is written last by the checkpoint writer.
    return has_graph and (not variables.is_dir() or (variables / "variables.index").is_file())


def _version_dirs(base_path):
    """{version: folder} of the complete SavedModels under a model folder."""
    versions = {}
    try:
        children = list(Path(base_path).iterdir())
    except OSError:
        return versions
    for child in children:
        # Folders whose name is not an integer (temporary folders of an
        # export in progress, backups) are never versions, as in TF Serving.
        if _VERSION_DIR.fullmatch(child.name) and child.is_dir():
            if _is_complete_savedmodel(child):
                versions[int(child.name)] = child
    return versions


def _file_stamp(version_dir):
    """Changes when a version folder is rewritten, so a failed load retries."""
    stats = []
    for name in ("saved_model.pb", "saved_model.pbtxt", "variables/variables.index"):
        path = Path(version_dir) / name
        if path.is_file():
            stat = path.stat()
            stats.append((name, stat.st_mtime_ns, stat.st_size))
    return tuple(stats)


def _clean_tf_message(message):
    """Drops the Python-side framing TF adds around an op's error message."""
    lines = []
    in_stack = False
    for line in message.splitlines():
        if line.startswith("Graph execution error"):
            continue
        if line.startswith("Detected at node"):
            in_stack = True
            continue
        if in_stack and (not line.strip() or line[0] in " <"):
            continue
        in_stack = False
        lines.append(line)
    text = "\n".join(lines).strip()
    return re.sub(r"\s*\[Op:__inference_[^\]]*\]$", "", text)


# === Models and version policy ===


class _Model:
    """A served model: where its versions live, which to serve, its labels."""

    def __init__(self, name, base_path, policy=("latest", 1), labels=None):
        self.name = name
        self.base_path = Path(base_path)
        self.policy = policy
        self.labels = dict(labels or {})
        self.available = {}  # version -> _Servable
        self.states = {}  # version -> (state, error_code, error_message)
        self.failed = {}  # version -> file stamp of the failed load

    def wanted_versions(self, complete):
        """The versions the policy serves among the complete ones."""
        kind, value = self.policy
        if kind == "all":
            return set(complete)
        if kind == "specific":
            return set(complete) & set(value)
        return set(sorted(complete)[-value:])


def _policy_from_proto(config):
    choice = config.model_version_policy.WhichOneof("policy_choice")
    policy = config.model_version_policy
    if choice == "all":
        return ("all", None)
    if choice == "specific":
        return ("specific", frozenset(policy.specific.versions))
    num = policy.latest.num_versions if choice == "latest" else 0
    return ("latest", num or 1)


def _resolve_base_path(base_path, config_file, models_root):
    """Finds a config's base_path on this machine.

    The same models.config serves in a container (`/models/<name>`) and here:
    a path that does not exist is looked up relative to the config file, then
    as `<models_root>/<last component>`.
    """
    path = Path(base_path)
    candidates = [path]
    if not path.is_absolute():
        candidates.append(Path(config_file).parent / path)
    if models_root is not None:
        candidates.append(Path(models_root) / path.name)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[-1]


def read_model_configs(config_file, models_root=None):
    """Reads a TF Serving `models.config` into `{name: (base, policy, labels)}`.

    Args:
        config_file: text proto `ModelServerConfig` with a
            `model_config_list`.
        models_root: optional folder where a base_path that does not exist
            here is looked up by its last component.

    Returns:
        dict of model name to `(base_path, policy, labels)`.
    """
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(Path(config_file).read_text(), config)
    except text_format.ParseError as error:
        raise ValueError(f"{config_file}: not a ModelServerConfig text proto: {error}")
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError(
            f"{config_file}: expected a model_config_list, received "
            f"{config.WhichOneof('config') or 'an empty config'}."
        )
    models = {}
    for index, entry in enumerate(config.model_config_list.config):
        where = f"{config_file}: config #{index + 1}"
        if not entry.name or not entry.base_path:
            raise ValueError(f"{where}: name and base_path are required.")
        if entry.name in models:
            raise ValueError(f"{where}: model name {entry.name!r} appears twice.")
        if entry.model_platform not in ("", "tensorflow"):
            raise ValueError(
                f"{where}: model_platform must be 'tensorflow', received "
                f"{entry.model_platform!r}."
            )
        base = _resolve_base_path(entry.base_path, config_file, models_root)
        models[entry.name] = (base, _policy_from_proto(entry), dict(entry.version_labels))
    return models


class ModelRegistry:
    """The models served, their loaded versions, and the polling of folders.

    Args:
        base_path: folder of models, `<base>/<model_name>/<version>/`, or one
            model's folder (`<base>/<version>/`). Ignored for the models of
            `model_config_file`, except to find their base paths.
        model_config_file: optional TF Serving `models.config`.
    """

    def __init__(self, base_path=None, model_config_file=None):
        if base_path is None and model_config_file is None:
            raise ValueError("Give a base path, a model config file, or both.")
        self.base_path = Path(base_path) if base_path is not None else None
        self.model_config_file = model_config_file
        self._models = {}
        self._config_stamp = None
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()

    # --- Polling ---

    def refresh(self):
        """One poll: re-reads the config, loads new versions, unloads old ones."""
        with self._refresh_lock:
            self._update_models()
            for model in list(self._models.values()):
                self._update_versions(model)

    def _update_models(self):
        if self.model_config_file is not None:
            stamp = _file_stamp_of(self.model_config_file)
            if stamp == self._config_stamp:
                return
            try:
                configs = read_model_configs(self.model_config_file, self.base_path)
            except (OSError, ValueError) as error:
                if self._config_stamp is None:
                    raise
                _LOG.error("Keeping the previous model config: %s", error)
                return
            self._config_stamp = stamp
        else:
            configs = self._discover_models()
        with self._lock:
            for name, (base, policy, labels) in configs.items():
                model = self._models.get(name)
                if model is None:
                    self._models[name] = _Model(name, base, policy, labels)
                    _LOG.info("Serving model %s from %s", name, base)
                else:
                    model.base_path, model.policy, model.labels = base, policy, labels
            for name in set(self._models) - set(configs):
                # Versions of a model dropped from the config get unloaded.
                self._models[name].policy = ("specific", frozenset())

    def _discover_models(self):
        models = {
            name: (model.base_path, model.policy, model.labels)
            for name, model in self._models.items()
        }
        base = self.base_path
        # A folder of integer-named folders is one model's folder.
        if any(_VERSION_DIR.fullmatch(p.name) for p in _subdirs(base)):
            models.setdefault(base.resolve().name, (base, ("latest", 1), {}))
            return models
        for child in _subdirs(base):
            if not child.name.startswith(".") and ":" not in child.name:
                models.setdefault(child.name, (child, ("latest", 1), {}))
        return models

    def _update_versions(self, model):
        complete = _version_dirs(model.base_path)
        wanted = model.wanted_versions(complete)
        for version in sorted(wanted - set(model.available)):
            self._load(model, version, complete[version])
        # Availability first: old versions go only once a wanted one serves.
        if not wanted or wanted & set(model.available):
            for version in set(model.available) - wanted:
                with self._lock:
                    del model.available[version]
                    model.states[version] = ("END", "OK", "")
                _LOG.info("Unloaded model %s version %d", model.name, version)

    def _load(self, model, version, path):
        stamp = _file_stamp(path)
        if model.failed.get(version) == stamp:
            return
        with self._lock:
            model.states[version] = ("LOADING", "OK", "")
        try:
            servable = _Servable(model.name, version, path)
            _run_warmup(servable)
        except Exception as error:  # A bad version must not stop the server.
            code, message = _error_code_and_message(error)
            model.failed[version] = stamp
            with self._lock:
                model.states[version] = ("END", code, message)
            _LOG.error("Failed to load model %s version %d: %s", model.name, version, message)
            return
        model.failed.pop(version, None)
        with self._lock:
            model.available[version] = servable
            model.states[version] = ("AVAILABLE", "OK", "")
        _LOG.info("Loaded model %s version %d from %s", model.name, version, path)

    # --- Lookups ---

    def model_names(self):
        with self._lock:
            return sorted(self._models)

    def available_versions(self, name):
        with self._lock:
            model = self._models.get(name)
            return sorted(model.available) if model else []

    def servable(self, name, version=None, label=None):
        """The loaded version a request asks for, or a RequestError."""
        with self._lock:
            model = self._models.get(name)
            if label:
                if model is None or label not in model.labels:
                    raise _invalid(f"Unrecognized servable version label: {label}")
                version = model.labels[label]
            available = model.available if model else {}
            if version is None:
                if not available:
                    raise RequestError(
                        "NOT_FOUND", f"Servable not found for request: Latest({name})"
                    )
                return available[max(available)]
            if version not in available:
                raise RequestError(
                    "NOT_FOUND",
                    f"Servable not found for request: Specific({name}, {version})",
                )
            return available[version]

    def status(self, name, version=None, label=None):
        """A `GetModelStatusResponse` for a model, or one version of it."""
        with self._lock:
            model = self._models.get(name)
            states = dict(model.states) if model else {}
            if label:
                if model is None or label not in model.labels:
                    raise _invalid(f"Unrecognized servable version label: {label}")
                version = model.labels[label]
        if version is not None:
            if version not in states:
                raise RequestError("NOT_FOUND", f"Could not find version {version} of model {name}")
            states = {version: states[version]}
        if not states:
            raise RequestError("NOT_FOUND", f"Could not find any versions of model {name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for number in sorted(states, reverse=True):
            state, code, message = states[number]
            entry = response.model_version_status.add()
            entry.version = number
            entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
            entry.status.SetInParent()
            entry.status.error_code = error_codes_pb2.Code.Value(code)
            entry.status.error_message = message
        return response


def _subdirs(path):
    try:
        return [p for p in Path(path).iterdir() if p.is_dir()]
    except OSError:
        return []


def _file_stamp_of(path):
    stat = Path(path).stat()
    return (stat.st_mtime_ns, stat.st_size)


def _error_code_and_message(error):
    if isinstance(error, RequestError):
        return error.code, error.message
    if isinstance(error, tf.errors.OpError):
        return error_codes_pb2.Code.Name(error.error_code), _clean_tf_message(error.message)
    return "UNKNOWN", f"{type(error).__name__}: {error}"


def _run_warmup(servable):
    """Replays the version's warmup requests; any failure fails the load."""
    path = servable.path / WARMUP_FILE
    if not path.is_file():
        return
    records = tf.data.TFRecordDataset(str(path)).take(MAX_WARMUP_RECORDS + 1)
    for index, record in enumerate(records.as_numpy_iterator()):
        if index == MAX_WARMUP_RECORDS:
            raise _invalid(f"{path}: more than {MAX_WARMUP_RECORDS} warmup records.")
        log = prediction_log_pb2.PredictionLog.FromString(record)
        if log.WhichOneof("log_type") != "predict_log":
            _LOG.warning("%s: record %d is not a predict_log; skipped.", path, index)
            continue
        request = log.predict_log.request
        try:
            inputs = _inputs_from_protos(request.inputs)
            run_signature(
                servable, request.model_spec.signature_name, inputs, request.output_filter
            )
        except RequestError as error:
            raise RequestError(
                error.code, f"Warmup request {index} in {path} failed: {error.message}"
            )


# === Prediction, shared by REST and gRPC ===


def _shape_of(info):
    if info.tensor_shape.unknown_rank:
        return None
    return [dim.size for dim in info.tensor_shape.dim]


def _shape_text(shape):
    return "[" + ",".join(str(size) for size in shape) + "]"


def _check_input(name, array, info):
    expected = tf.dtypes.as_dtype(info.dtype)
    received = tf.dtypes.as_dtype(array.dtype) if array.dtype != object else tf.string
    if received != expected:
        raise _invalid(
            f"Input '{name}' expects dtype {expected.name} but {received.name} was sent."
        )
    shape = _shape_of(info)
    if shape is None:
        return
    compatible = len(shape) == array.ndim and all(
        want in (-1, got) for want, got in zip(shape, array.shape)
    )
    if not compatible:
        raise _invalid(
            f"Input '{name}' expects shape {_shape_text(shape)} but received "
            f"{_shape_text(array.shape)}."
        )


def _check_input_names(sent, signature_def):
    expected = set(signature_def.inputs)
    sent = set(sent)
    if len(sent) != len(expected):
        raise _invalid(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}})."
            f" Sent extra: {{{','.join(sorted(sent - expected))}}}."
            f" Missing but required: {{{','.join(sorted(expected - sent))}}}."
        )
    for name in sorted(sent - expected):
        raise _invalid(
            f"input tensor alias not found in signature: {name}. Inputs expected "
            f"to be in the set {{{','.join(sorted(expected))}}}."
        )


def signature_def_of(servable, signature_name):
    """The SignatureDef a request names (empty means `serving_default`)."""
    name = signature_name or DEFAULT_SIGNATURE
    if name not in servable.signature_defs or name not in servable.functions:
        raise _invalid(f'Serving signature name: "{name}" not found in signature def')
    return name, servable.signature_defs[name]


def run_signature(servable, signature_name, inputs, output_filter=()):
    """Runs one signature of a loaded version on numpy inputs.

    Args:
        servable: the loaded version.
        signature_name: signature key; empty means `serving_default`.
        inputs: dict of input name to numpy array (strings as object arrays
            of bytes).
        output_filter: optional output names to return.

    Returns:
        `(signature_name, {output name: numpy array})`.
    """
    name, signature_def = signature_def_of(servable, signature_name)
    _check_input_names(inputs, signature_def)
    for key, info in signature_def.inputs.items():
        _check_input(key, inputs[key], info)
    unknown = set(output_filter) - set(signature_def.outputs)
    if unknown:
        raise _invalid(
            f"output tensor alias not found in signature: {','.join(sorted(unknown))}"
            f" Outputs expected to be in the set "
            f"{{{','.join(sorted(signature_def.outputs))}}}."
        )
    try:
        feeds = {
            key: tf.constant(inputs[key], dtype=tf.dtypes.as_dtype(info.dtype))
            for key, info in signature_def.inputs.items()
        }
        outputs = servable.functions[name](**feeds)
    except tf.errors.OpError as error:
        code = error_codes_pb2.Code.Name(error.error_code)
        raise RequestError(code, _clean_tf_message(error.message))
    except (TypeError, ValueError) as error:
        raise _invalid(str(error))
    wanted = set(output_filter) or set(outputs)
    return name, {key: value.numpy() for key, value in outputs.items() if key in wanted}


def _inputs_from_protos(tensor_protos):
    inputs = {}
    for name, proto in tensor_protos.items():
        _check_declared_size(name, proto)
        try:
            inputs[name] = tf.make_ndarray(proto)
        except (TypeError, ValueError) as error:
            raise _invalid(f"Input '{name}' is not a valid TensorProto: {error}")
    return inputs


def _check_declared_size(name, proto):
    """Refuses a TensorProto whose shape declares more elements than it carries.

    `make_ndarray` would allocate the declared shape (10^12 strings from a
    few bytes of request): TF Serving answers INVALID_ARGUMENT, so do we.
    """
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise _invalid(f"Input '{name}' has a negative dimension in its shape {dims}.")
    declared = math.prod(dims)
    if proto.tensor_content:
        itemsize = tf.dtypes.as_dtype(proto.dtype).size if proto.dtype != types_pb2.DT_STRING else 1
        carried = len(proto.tensor_content) // max(itemsize, 1)
    else:
        carried = max(len(getattr(proto, field)) for field in _VALUE_FIELDS)
    # One value may fill a whole tensor (TF's own rule), but only a small one.
    if declared != carried and not (carried == 1 and declared <= _MAX_FILLED_ELEMENTS):
        raise _invalid(f"Input '{name}' declares shape {dims} ({declared} elements) "
                       f"but carries {carried} value(s).")


_VALUE_FIELDS = ("half_val", "float_val", "double_val", "int_val", "string_val", "scomplex_val",
                 "int64_val", "bool_val", "dcomplex_val", "uint32_val", "uint64_val")
_MAX_FILLED_ELEMENTS = 1 << 20


# === REST: JSON <-> tensors, as TF Serving's json_tensor.cc ===


def _json_text(value, limit=200):
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _json_type(value):
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _decode_b64(value):
    if not _is_b64(value):
        raise _invalid(f"JSON Value: {_json_text(value)} not formatted correctly for base64 data")
    text = value["b64"]
    try:
        # TF Serving accepts base64 with or without padding.
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _invalid("Unable to base64 decode")


def _json_leaf(value, dtype):
    def type_error():
        return _invalid(
            f"JSON Value: {_json_text(value)} Type: {_json_type(value)} is not of "
            f"expected type: {dtype.name}"
        )

    if dtype == tf.string:
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, dict):
            return _decode_b64(value)
        raise type_error()
    if isinstance(value, dict):
        raise type_error()
    if dtype == tf.bool:
        if not isinstance(value, bool):
            raise type_error()
        return value
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if dtype.is_floating and number:
        return value
    if dtype.is_integer and number and isinstance(value, int):
        return value
    raise type_error()


def _dense_shape(value):
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value, level, shape, dtype, flat):
    if not isinstance(value, list):
        if level != len(shape):
            raise _invalid(
                f"JSON Value: {_json_text(value)} found at incorrect level: {level + 1}"
                f" in the JSON DOM. Expected at level: {len(shape)}"
            )
        flat.append(_json_leaf(value, dtype))
        return
    if level >= len(shape):
        raise _invalid(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
    if len(value) != shape[level]:
        raise _invalid(
            f"Encountered list at unexpected size: {len(value)} at level: {level}"
            f" expected size: {shape[level]}"
        )
    for item in value:
        _fill(item, level + 1, shape, dtype, flat)


def json_to_array(value, dtype):
    """A JSON value (nested lists of leaves) as a numpy array of `dtype`."""
    dtype = tf.dtypes.as_dtype(dtype)
    shape = _dense_shape(value)
    flat = []
    try:
        _fill(value, 0, shape, dtype, flat)
    except RecursionError:
        raise _invalid(f"JSON Value nested {len(shape)} levels deep is too deep")
    numpy_dtype = object if dtype == tf.string else dtype.as_numpy_dtype
    array = np.empty(len(flat), dtype=numpy_dtype)
    array[:] = flat
    return array.reshape(shape)


def _is_instance_object(value):
    return isinstance(value, dict) and not _is_b64(value)


def _instances_to_arrays(instances, input_infos):
    """The row form: one JSON value or object per example, batched."""
    names = sorted(input_infos)
    if not _is_instance_object(instances[0]) and len(names) > 1:
        raise _invalid(
            "instances is a plain list, but expecting list of objects as multiple "
            "input tensors required as per tensorinfo_map"
        )
    objects = _is_instance_object(instances[0])
    columns = {}
    for index, element in enumerate(instances):
        if objects != _is_instance_object(element):
            got = "list" if objects else "object"
            want = "object" if objects else "value/list"
            raise _invalid(f"Expecting {want} but got {got} at item {index} of input list")
        items = element.items() if objects else [(names[0], element)]
        for name, value in items:
            if name not in input_infos:
                raise _invalid(
                    f"Failed to process element: {index} key: {name} of 'instances' list."
                    f" Error: INVALID_ARGUMENT: JSON object: does not have named input: {name}"
                )
            try:
                array = json_to_array(value, input_infos[name].dtype)
            except RequestError as error:
                raise _invalid(
                    f"Failed to process element: {index} key: {name} of 'instances' list."
                    f" Error: {error.code}: {error.message}"
                )
            previous = columns.setdefault(name, [])
            if previous and previous[0].shape != array.shape:
                raise _invalid(
                    f"Expecting shape {_shape_text(previous[0].shape)} but got: "
                    f"{_shape_text(array.shape)}"
                )
            previous.append(array)
        if objects and set(element) != set(names):
            raise _invalid(
                f"Failed to process element: {index} of 'instances' list. JSON object: "
                f"{_json_text(element)} keys must be equal to: {','.join(names)}"
            )
    return {name: np.stack(arrays) for name, arrays in columns.items()}


def _inputs_to_arrays(inputs, input_infos):
    """The columnar form: one batched JSON value per input."""
    if not _is_instance_object(inputs):
        if len(input_infos) > 1:
            raise _invalid(
                "inputs is a plain value/list, but expecting an object as multiple "
                "input tensors required as per tensorinfo_map"
            )
        name, info = next(iter(input_infos.items()))
        return {name: json_to_array(inputs, info.dtype)}
    arrays = {}
    # Like TF Serving, keys that are not inputs of the signature are ignored.
    for name, info in sorted(input_infos.items()):
        if name not in inputs:
            raise _invalid(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = json_to_array(inputs[name], info.dtype)
    return arrays


def parse_predict_body(body):
    """Parses a REST predict body into `(signature_name, form, payload)`.

    `form` is `"row"` (payload: the instances list) or `"columnar"` (payload:
    the inputs value).
    """
    if not body:
        raise _invalid("JSON Parse error: The document is empty")
    try:
        document = json.loads(body)
    except RecursionError:
        raise _invalid("JSON Parse error: the document is nested too deeply")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        where = f" at offset: {error.pos}" if hasattr(error, "pos") else ""
        reason = error.msg if hasattr(error, "msg") else str(error)
        raise _invalid(f"JSON Parse error: {reason}{where}")
    if not isinstance(document, dict):
        raise _invalid(f"JSON Value: {_json_text(document)} Is not object")
    signature_name = document.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise _invalid(
            f"JSON Value: {_json_text(document)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    if "instances" in document and "inputs" in document:
        raise _invalid(
            f"JSON Value: {_json_text(document)} Not formatted correctly expecting "
            "only one of 'inputs' or 'instances' keys to exist"
        )
    if "instances" in document:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise _invalid("Expecting 'instances' to be an list/array")
        if not instances:
            raise _invalid("No values in 'instances' array")
        return signature_name, "row", instances
    if "inputs" in document:
        return signature_name, "columnar", document["inputs"]
    raise _invalid("Missing 'inputs' or 'instances' key")


def _decimal(value, float32):
    """A float as TF Serving writes it: 6 digits, or full precision if needed."""
    if not math.isfinite(value):
        return value  # json.dumps writes NaN / Infinity, as TF Serving does.
    text = "%g" % value
    same = (np.float32(float(text)) == np.float32(value)) if float32 else float(text) == value
    if not same:
        text = "%.9g" % value if float32 else "%.17g" % value
    return float(text)


def _json_values(array, name):
    """A numpy array as nested JSON-ready Python values, as TF Serving writes."""
    if array.dtype == object or array.dtype.kind in "SU":
        as_bytes = name.endswith("_bytes")

        def leaf(value):
            if isinstance(value, str):
                value = value.encode("utf-8")
            if as_bytes:
                return {"b64": base64.b64encode(value).decode("ascii")}
            return value.decode("utf-8", errors="replace")

    elif array.dtype.kind == "f":
        float32 = array.dtype.itemsize <= 4

        def leaf(value):
            return _decimal(value, float32)

    else:
        leaf = None
    values = array.tolist()
    return values if leaf is None else _map_leaves(values, leaf)


def _map_leaves(values, leaf):
    if isinstance(values, list):
        return [_map_leaves(value, leaf) for value in values]
    return leaf(values)


def format_predictions(outputs, form):
    """Formats output arrays as TF Serving's `predictions` or `outputs`."""
    names = sorted(outputs)
    if form == "columnar":
        columns = {name: _json_values(outputs[name], name) for name in names}
        return {"outputs": columns if len(names) > 1 else columns[names[0]]}
    batch = None
    for name in names:
        if outputs[name].ndim == 0:
            raise _invalid(f"Tensor name: {name} has no shape information ")
        size = outputs[name].shape[0]
        if batch is not None and size != batch:
            raise _invalid(
                f"Tensor name: {name} has inconsistent batch size: {size} expecting: {batch}"
            )
        batch = size
    columns = {name: _json_values(outputs[name], name) for name in names}
    if len(names) == 1:
        return {"predictions": columns[names[0]]}
    rows = [{name: columns[name][i] for name in names} for i in range(batch)]
    return {"predictions": rows}


# === REST API ===


def metadata_json(servable):
    """GET .../metadata, in TF Serving's JSON shape."""
    response = _metadata_response(servable)
    signature_map = _signature_def_map(servable)
    options = dict(preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return {
        "model_spec": json_format.MessageToDict(response.model_spec, **options),
        "metadata": {"signature_def": json_format.MessageToDict(signature_map, **options)},
    }


def _metadata_response(servable):
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.metadata["signature_def"].Pack(_signature_def_map(servable))
    return response


def _signature_def_map(servable):
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature_def in servable.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(signature_def)
    return signature_map


class RestApi:
    """TF Serving's REST API over a ModelRegistry, independent of HTTP."""

    def __init__(self, registry):
        self.registry = registry

    def handle(self, method, path, body):
        """Answers one request.

        Returns:
            `(http_status, json_payload)`; errors raise `RequestError`.
        """
        if method == "POST":
            match = _PREDICT_PATH.fullmatch(path)
            if match:
                name, version, label, verb = match.groups()
                servable = self._servable(name, version, label)
                if verb.lower() != "predict":
                    raise RequestError(
                        "UNIMPLEMENTED",
                        f"The mmkeras dev server implements :predict only, not :{verb}; "
                        "use tensorflow_model_server for it.",
                    )
                return 200, self._predict(servable, body)
        elif method == "GET":
            match = _GET_PATH.fullmatch(path)
            if match:
                return 200, self._get(*match.groups())
        raise _invalid(f"Malformed request: {method} {path}")

    def _servable(self, name, version, label):
        name = urllib.parse.unquote(name)
        label = urllib.parse.unquote(label) if label else None
        return self.registry.servable(name, _version_number(version), label)

    def _predict(self, servable, body):
        signature_name, form, payload = parse_predict_body(body)
        _, signature_def = signature_def_of(servable, signature_name)
        if not signature_def.inputs:
            raise _invalid(f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
        if form == "row":
            inputs = _instances_to_arrays(payload, signature_def.inputs)
        else:
            inputs = _inputs_to_arrays(payload, signature_def.inputs)
        _, outputs = run_signature(servable, signature_name, inputs)
        return format_predictions(outputs, form)

    def _get(self, name, version, label, subresource):
        if not name:
            raise _invalid("Missing model name in request.")
        if subresource:
            return metadata_json(self._servable(name, version, label))
        name = urllib.parse.unquote(name)
        label = urllib.parse.unquote(label) if label else None
        response = self.registry.status(name, _version_number(version), label)
        return json_format.MessageToDict(response, always_print_fields_with_no_presence=True)


class _RestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mmkeras-dev-server"

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def _refuse_method(self):
        self._send(400, {"error": f"Unsupported HTTP method {self.command}: the API takes GET and POST."},
                   close=True)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    def log_message(self, format, *args):
        _LOG.debug("%s %s", self.address_string(), format % args)

    def _handle(self, method):
        path = urllib.parse.urlsplit(self.path).path
        try:
            body = self._read_body() if method == "POST" else b""
            if body is None:
                return
            if not re.match(r"(?i)/v1/", path):
                self._send(404, {"error": f"Not found: {method} {path}"})
                return
            status, payload = self.server.api.handle(method, path, body)
        except RequestError as error:
            status, payload = error.http_status, {"error": error.message}
        except Exception as error:  # The server keeps serving whatever happens.
            _LOG.exception("Internal error on %s %s", method, path)
            status, payload = 500, {"error": f"Internal: {type(error).__name__}: {error}"}
        self._send(status, payload)

    def handle_expect_100(self):
        # curl sends "Expect: 100-continue" for larger bodies: refuse an
        # oversize one before the client sends it.
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.server.max_body_bytes:
            self._send_too_large(int(length))
            return False
        return super().handle_expect_100()

    def _send_too_large(self, length):
        limit = self.server.max_body_bytes
        message = f"Request body of {length} bytes exceeds the limit of {limit} bytes."
        self._send(413, {"error": message}, close=True)

    def _read_body(self):
        """The request body, or None once an error was answered."""
        length = self.headers.get("Content-Length")
        if length is None and self.headers.get("Transfer-Encoding", "").strip().lower() == "chunked":
            return self._read_chunked_body()
        if length is None:
            self._send(411, {"error": "A Content-Length header (or a chunked body) is required."},
                       close=True)
            return None
        try:
            length = int(length)
            if length < 0:
                raise ValueError(length)
        except ValueError:
            self._send(400, {"error": f"Invalid Content-Length: {length!r}"}, close=True)
            return None
        if length > self.server.max_body_bytes:
            self._send_too_large(length)
            self._discard(length)
            return None
        return self.rfile.read(length)

    def _read_chunked_body(self):
        """A `Transfer-Encoding: chunked` body, within the body limit; None once answered."""
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
                if size < 0:
                    raise ValueError(size)
            except ValueError:
                self._send(400, {"error": f"Invalid chunk size line: {line[:40]!r}"}, close=True)
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields
                return b"".join(parts)
            total += size
            if total > self.server.max_body_bytes:
                self._send_too_large(total)
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)  # the CRLF after the chunk

    def _discard(self, length):
        # Reading a bounded part of the refused body lets most clients read
        # the 413 answer instead of seeing a reset connection.
        remaining = min(length, 16 * 1024 * 1024)
        self.connection.settimeout(1.0)
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass

    def _send(self, status, payload, close=False):
        data = json.dumps(payload, indent=1).encode("utf-8") + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)


class _RestServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, api, max_body_bytes):
        self.api = api
        self.max_body_bytes = max_body_bytes
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, _RestHandler)


# === gRPC API ===


def _servable_for_spec(registry, model_spec):
    version = model_spec.version.value if model_spec.HasField("version") else None
    label = model_spec.version_label or None
    return registry.servable(model_spec.name, version, label)


def _grpc_call(context, function, *args):
    try:
        return function(*args)
    except RequestError as error:
        failure = error
    except Exception as error:  # The server keeps serving whatever happens.
        _LOG.exception("Internal error in a gRPC call")
        failure = RequestError("INTERNAL", f"{type(error).__name__}: {error}")
    context.abort(getattr(grpc.StatusCode, failure.code, grpc.StatusCode.UNKNOWN), failure.message)


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, registry):
        self.registry = registry

    def Predict(self, request, context):
        return _grpc_call(context, self._predict, request)

    def GetModelMetadata(self, request, context):
        return _grpc_call(context, self._metadata, request)

    def _predict(self, request):
        servable = _servable_for_spec(self.registry, request.model_spec)
        inputs = _inputs_from_protos(request.inputs)
        signature_name, outputs = run_signature(
            servable, request.model_spec.signature_name, inputs, request.output_filter
        )
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature_name
        for name, array in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(array))
        return response

    def _metadata(self, request):
        fields = list(request.metadata_field)
        if not fields:
            raise _invalid("GetModelMetadataRequest must specify at least one metadata_field")
        for field in fields:
            if field != "signature_def":
                raise _invalid(f"Metadata field {field} is not supported")
        servable = _servable_for_spec(self.registry, request.model_spec)
        return _metadata_response(servable)


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, registry):
        self.registry = registry

    def GetModelStatus(self, request, context):
        return _grpc_call(context, self._status, request)

    def _status(self, request):
        spec = request.model_spec
        if not spec.name:
            raise _invalid("Missing ModelSpec")
        version = spec.version.value if spec.HasField("version") else None
        return self.registry.status(spec.name, version, spec.version_label or None)


# === The server ===


class DevServer:
    """Serves SavedModels over TF Serving's REST and gRPC APIs, in-process.

    For development and tests only; production is `tensorflow_model_server`.

    Args:
        base_path: folder of exported models, `<base>/<model_name>/<version>/`
            (or one model's `<base>/<version>/`).
        model_config_file: optional TF Serving `models.config`; its models
            replace the discovered ones, and base paths that do not exist here
            are looked up under `base_path` by their last component.
        host: address to bind; `"127.0.0.1"` keeps it off the network.
        rest_port: REST port; 0 picks a free port, None disables REST.
        grpc_port: gRPC port; 0 picks a free port, None disables gRPC.
        poll_seconds: how often to look for new versions and config changes;
            0 or less turns polling off (call `refresh()` yourself).
        max_body_bytes: largest REST body (and gRPC message) accepted; larger
            REST bodies get HTTP 413.
        threads: worker threads for gRPC (REST uses a thread per connection).

    Example:

    ```python
    with DevServer("savedmodels", rest_port=0, grpc_port=0) as server:
        print(server.rest_url, server.grpc_target)
    ```
    """

    def __init__(
        self,
        base_path=None,
        *,
        model_config_file=None,
        host="127.0.0.1",
        rest_port=8501,
        grpc_port=8500,
        poll_seconds=2.0,
        max_body_bytes=DEFAULT_MAX_BODY_BYTES,
        threads=8,
    ):
        self.registry = ModelRegistry(base_path, model_config_file)
        self.host = host
        self.poll_seconds = poll_seconds
        self.max_body_bytes = int(max_body_bytes)
        self.threads = threads
        self._requested_ports = (rest_port, grpc_port)
        self.rest_port = None
        self.grpc_port = None
        self._rest = None
        self._rest_thread = None
        self._grpc = None
        self._poller = None
        self._stopping = threading.Event()

    @property
    def rest_url(self):
        """`http://host:port` of the REST API, or None."""
        return None if self.rest_port is None else f"http://{_url_host(self.host)}:{self.rest_port}"

    @property
    def grpc_target(self):
        """`host:port` of the gRPC API, or None."""
        return None if self.grpc_port is None else f"{_url_host(self.host)}:{self.grpc_port}"

    def start(self):
        """Loads the models and starts serving; returns self."""
        _import_tf_text_ops()
        self.registry.refresh()
        rest_port, grpc_port = self._requested_ports
        try:
            if rest_port is not None:
                self._start_rest(rest_port)
            if grpc_port is not None:
                self._start_grpc(grpc_port)
        except BaseException:
            self.stop()
            raise
        if self.poll_seconds and self.poll_seconds > 0:
            self._poller = threading.Thread(
                target=self._poll, name="mmkeras-dev-server-poll", daemon=True
            )
            self._poller.start()
        return self

    def refresh(self):
        """Polls the model folders (and config) now."""
        self.registry.refresh()

    def stop(self):
        """Stops serving and polling; safe to call twice."""
        self._stopping.set()
        if self._rest is not None:
            self._rest.shutdown()
            self._rest.server_close()
            self._rest_thread.join(timeout=10)
            self._rest = None
        if self._grpc is not None:
            self._grpc.stop(grace=None).wait(timeout=10)
            self._grpc = None
        if self._poller is not None:
            self._poller.join(timeout=60)
            self._poller = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def _start_rest(self, port):
        api = RestApi(self.registry)
        self._rest = _RestServer((self.host, port), api, self.max_body_bytes)
        self.rest_port = self._rest.server_address[1]
        self._rest_thread = threading.Thread(
            target=self._rest.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="mmkeras-dev-server-rest",
            daemon=True,
        )
        self._rest_thread.start()

    def _start_grpc(self, port):
        options = [
            ("grpc.max_receive_message_length", self.max_body_bytes),
            ("grpc.max_send_message_length", -1),
        ]
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.threads), options=options
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self.registry), self._grpc
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            _ModelService(self.registry), self._grpc
        )
        bound = self._grpc.add_insecure_port(f"{_url_host(self.host)}:{port}")
        if not bound:
            raise OSError(f"Cannot bind gRPC to {self.host}:{port}.")
        self.grpc_port = bound
        self._grpc.start()

    def _poll(self):
        while not self._stopping.wait(self.poll_seconds):
            try:
                self.registry.refresh()
            except Exception:  # Polling goes on after a bad config or folder.
                _LOG.exception("Polling the model folders failed")


def _url_host(host):
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _import_tf_text_ops():
    # Text models use TF Text ops; importing the package registers them.
    try:
        import tensorflow_text  # noqa: F401
    except ImportError:
        _LOG.warning("tensorflow_text is not installed; text models will not load.")


# === Command line ===


def build_arg_parser(parser=None):
    """Adds the `mmkeras serve` arguments to a parser (or a new one)."""
    parser = parser or argparse.ArgumentParser(
        prog="mmkeras serve",
        description=(
            "Development stand-in for TensorFlow Serving (REST + gRPC). "
            "Production: tensorflow_model_server; see `mmkeras serving-config`."
        ),
    )
    parser.add_argument("base", nargs="?", help="export root: BASE/<model_name>/<version>/")
    parser.add_argument("--rest-port", type=int, default=8501)
    parser.add_argument("--grpc-port", type=int, default=8500)
    parser.add_argument("--no-grpc", action="store_true", help="serve REST only")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--poll-seconds", type=float, default=2.0)
    parser.add_argument("--model-config-file", help="TF Serving models.config")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    return parser


def main(argv=None):
    """`mmkeras serve BASE [...]`: serves until Ctrl-C or SIGTERM.

    Returns:
        the process exit code.
    """
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    if args.base is None and args.model_config_file is None:
        parser.error("give BASE, --model-config-file, or both")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        _LOG.warning("Binding %s: the dev server has no authentication.", args.host)
    server = DevServer(
        args.base,
        model_config_file=args.model_config_file,
        host=args.host,
        rest_port=args.rest_port,
        grpc_port=None if args.no_grpc else args.grpc_port,
        poll_seconds=args.poll_seconds,
        max_body_bytes=args.max_body_bytes,
    )
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    _print_banner(server)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _print_banner(server):
    for name in server.registry.model_names():
        versions = server.registry.available_versions(name)
        print(f"model {name}: versions {versions or 'none yet'}")
        if server.rest_url:
            print(f"  REST  {server.rest_url}/v1/models/{name}:predict")
    if server.grpc_target:
        print(f"gRPC  {server.grpc_target}")
    print(
        "Development server: for production run TensorFlow Serving "
        "(tensorflow_model_server; `mmkeras serving-config` writes its config).",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
