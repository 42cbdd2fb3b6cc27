"""TF Serving's gRPC API (port 8500): the services of tensorflow-serving-api.

`PredictionService.Predict`, `PredictionService.GetModelMetadata` and
`ModelService.GetModelStatus`, answering as TF Serving does: a failed call
aborts with the error's canonical code as its gRPC status.
"""

import logging

import grpc
import tensorflow as tf
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from mmkeras.serving.dev_server.request_errors import RequestError
from mmkeras.serving.dev_server.request_errors import invalid_argument
from mmkeras.serving.dev_server.signatures import inputs_from_protos
from mmkeras.serving.dev_server.signatures import metadata_response
from mmkeras.serving.dev_server.signatures import run_signature

_LOG = logging.getLogger("mmkeras.serving")


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


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """`Predict` and `GetModelMetadata` over a `ModelRegistry`."""

    def __init__(self, registry):
        self.registry = registry

    def Predict(self, request, context):
        return _grpc_call(context, self._predict, request)

    def GetModelMetadata(self, request, context):
        return _grpc_call(context, self._metadata, request)

    def _predict(self, request):
        servable = _servable_for_spec(self.registry, request.model_spec)
        inputs = inputs_from_protos(request.inputs)
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
            raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
        for field in fields:
            if field != "signature_def":
                raise invalid_argument(f"Metadata field {field} is not supported")
        servable = _servable_for_spec(self.registry, request.model_spec)
        return metadata_response(servable)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """`GetModelStatus` over a `ModelRegistry`."""

    def __init__(self, registry):
        self.registry = registry

    def GetModelStatus(self, request, context):
        return _grpc_call(context, self._status, request)

    def _status(self, request):
        spec = request.model_spec
        if not spec.name:
            raise invalid_argument("Missing ModelSpec")
        version = spec.version.value if spec.HasField("version") else None
        return self.registry.status(spec.name, version, spec.version_label or None)
