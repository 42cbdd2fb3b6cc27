"""The gRPC half of `Client`: TF Serving's PredictionService and ModelService.

`Client(..., protocol="grpc")` loads this module on its first call, so the
REST client never imports gRPC, TensorFlow or tensorflow-serving-api.
Answers have the shape of the REST API's, so both protocols give the same
results.
"""

import grpc
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from mmkeras.serving.errors import ServingError
from mmkeras.serving.payloads import rows_from_arrays
from mmkeras.serving.payloads import tensor_protos


class GrpcModel:
    """One served model over gRPC.

    Args:
        target: `host:port` of the gRPC API.
        model_name: the served model's name.
        version: optional model version to call (default: the latest).
        label: optional version label; ignored when a version is given.
        timeout: seconds to wait for each call.

    Example:

    >>> model = GrpcModel("localhost:8500", "sentiment", timeout=5.0)
    >>> model.close()
    """

    def __init__(self, target, model_name, *, version=None, label=None, timeout=30.0):
        self.model_name = model_name
        self.version = version
        self.label = label
        self.timeout = timeout
        # Requests carry whole images and audio: no 4 MiB gRPC default limit.
        options = [
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", -1),
        ]
        self._channel = grpc.insecure_channel(target, options=options)
        self._prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def predict(self, inputs, signature_name):
        """`Client.predict` over gRPC: one dict of Python values per example."""
        request = predict_pb2.PredictRequest()
        self._fill_spec(request.model_spec, signature_name)
        for name, proto in tensor_protos(inputs).items():
            request.inputs[name].CopyFrom(proto)
        response = self._call(self._prediction.Predict, request)
        arrays = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
        return rows_from_arrays(arrays)

    def metadata(self):
        """The model's metadata, in the REST API's JSON shape."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._fill_spec(request.model_spec)
        response = self._call(self._prediction.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        options = dict(preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        return {
            "model_spec": json_format.MessageToDict(response.model_spec, **options),
            "metadata": {"signature_def": json_format.MessageToDict(signature_map, **options)},
        }

    def status(self):
        """The model's version states, in the REST API's JSON shape."""
        request = get_model_status_pb2.GetModelStatusRequest()
        self._fill_spec(request.model_spec)
        response = self._call(self._models.GetModelStatus, request)
        return json_format.MessageToDict(response, always_print_fields_with_no_presence=True)

    def close(self):
        self._channel.close()

    def _fill_spec(self, spec, signature_name=None):
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = self.version
        elif self.label is not None:
            spec.version_label = self.label
        if signature_name is not None:
            spec.signature_name = signature_name

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingError(error.details(), error.code().name, "grpc") from None
