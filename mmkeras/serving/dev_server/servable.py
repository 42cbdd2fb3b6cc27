"""One loaded version of a model, and the replay of its warmup requests."""

import logging

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from mmkeras.savedmodel import signature_defs
from mmkeras.serving.dev_server.request_errors import RequestError
from mmkeras.serving.dev_server.request_errors import invalid_argument
from mmkeras.serving.dev_server.signatures import inputs_from_protos
from mmkeras.serving.dev_server.signatures import run_signature
from mmkeras.serving.warmup import MAX_WARMUP_RECORDS
from mmkeras.serving.warmup import warmup_path

_LOG = logging.getLogger("mmkeras.serving")


class Servable:
    """One loaded version of a model: its signatures' functions and SignatureDefs.

    Args:
        name: the model's name.
        version: the version number.
        path: the version folder.

    `run_signature` shows one loaded and run.
    """

    def __init__(self, name, version, path):
        self.name = name
        self.version = version
        self.path = path
        # Kept so the restored variables stay alive as long as the version.
        self.loaded = tf.saved_model.load(str(path), tags=["serve"])
        self.functions = dict(self.loaded.signatures)
        self.signature_defs = signature_defs(path)


def run_warmup(servable):
    """Replays a version's warmup requests, as TF Serving does before serving it.

    Any failure fails the load; a version without warmup requests loads as is.
    """
    path = warmup_path(servable.path)
    if not path.is_file():
        return
    records = tf.data.TFRecordDataset(str(path)).take(MAX_WARMUP_RECORDS + 1)
    for index, record in enumerate(records.as_numpy_iterator()):
        if index == MAX_WARMUP_RECORDS:
            raise invalid_argument(f"{path}: more than {MAX_WARMUP_RECORDS} warmup records.")
        log = prediction_log_pb2.PredictionLog.FromString(record)
        if log.WhichOneof("log_type") != "predict_log":
            _LOG.warning("%s: record %d is not a predict_log; skipped.", path, index)
            continue
        request = log.predict_log.request
        try:
            inputs = inputs_from_protos(request.inputs)
            run_signature(
                servable, request.model_spec.signature_name, inputs, request.output_filter
            )
        except RequestError as error:
            raise RequestError(
                error.code, f"Warmup request {index} in {path} failed: {error.message}"
            )

