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

Each API answers from a bounded pool of worker threads (`--threads`, default
8); a REST keep-alive connection gives its worker up while others wait for one.
It is a development tool: no batching, no authentication, no TLS, and it binds
127.0.0.1 unless told otherwise. It imports only TensorFlow, TensorFlow Text
(for the TF Text ops of text models) and the protos of tensorflow-serving-api.

Modules: `registry` (models, version policy, polling), `servable` (one loaded
version, its warmup), `signatures` (running a signature, shared by both
APIs), `rest_json` (JSON <-> tensors), `rest` (HTTP), `grpc_api` (gRPC),
`server` (`DevServer` and `mmkeras serve`), `errors` (TF Serving's codes).
"""

# The names code and tests import from `mmkeras.serving.dev_server`.
from mmkeras.savedmodel import DEFAULT_SIGNATURE  # noqa: F401
from mmkeras.serving.dev_server.request_errors import RequestError  # noqa: F401
from mmkeras.serving.dev_server.model_registry import ModelRegistry  # noqa: F401
from mmkeras.serving.dev_server.model_registry import read_model_configs  # noqa: F401
from mmkeras.serving.dev_server.rest import RestApi  # noqa: F401
from mmkeras.serving.dev_server.rest import metadata_json  # noqa: F401
from mmkeras.serving.dev_server.rest_json import format_predictions  # noqa: F401
from mmkeras.serving.dev_server.rest_json import json_to_array  # noqa: F401
from mmkeras.serving.dev_server.rest_json import parse_predict_body  # noqa: F401
from mmkeras.serving.dev_server.server import DEFAULT_MAX_BODY_BYTES  # noqa: F401
from mmkeras.serving.dev_server.server import DevServer  # noqa: F401
from mmkeras.serving.dev_server.server import build_arg_parser  # noqa: F401
from mmkeras.serving.dev_server.server import main, run  # noqa: F401
from mmkeras.serving.dev_server.signatures import run_signature  # noqa: F401
from mmkeras.serving.dev_server.signatures import signature_def_of  # noqa: F401
from mmkeras.serving.warmup import MAX_WARMUP_RECORDS  # noqa: F401
from mmkeras.serving.warmup import WARMUP_FILE  # noqa: F401
