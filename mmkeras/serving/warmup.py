"""TF Serving warmup requests for an exported SavedModel.

TF Serving replays `<version>/assets.extra/tf_serving_warmup_requests` (a
TFRecord file of `PredictionLog` protos) after loading a version and before
sending it traffic, so the first real requests do not pay for graph
initialisation. A request that fails makes the load fail, which also catches
an export whose signature does not accept what clients send. The dev server
(`mmkeras serve`) replays the file the same way.
"""

from pathlib import Path

from mmkeras.savedmodel import DEFAULT_SIGNATURE
from mmkeras.serving.payloads import tensor_protos

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
# TF Serving reads at most this many records.
MAX_WARMUP_RECORDS = 1000


def warmup_path(version_dir):
    """Where TF Serving looks for warmup requests in a version folder.

    >>> warmup_path("savedmodels/sentiment/3").as_posix()
    'savedmodels/sentiment/3/assets.extra/tf_serving_warmup_requests'
    """
    return Path(version_dir) / WARMUP_FILE


def write_warmup_requests(version_dir, model_name, examples, signature_name=DEFAULT_SIGNATURE):
    """Writes the warmup file of a version folder.

    Write it before the version folder becomes visible to the server (in the
    temporary export folder, before the rename): TF Serving reads it once,
    when it loads the version.

    Args:
        version_dir: the SavedModel folder `<base>/<model_name>/<version>/`.
        model_name: the served model's name (recorded in each request).
        examples: a list whose items are each one request: a dict (one
            example) or a list of dicts (a batch). Values as for
            `Client.predict`: `Path` (file bytes), `bytes`, `str`, numbers.
        signature_name: the signature the requests call.

    Returns:
        the path of the written file.

    Example:

    >>> import tempfile
    >>> version_dir = tempfile.mkdtemp()
    >>> path = write_warmup_requests(
    ...     version_dir, "sentiment", [{"photo": b"\\x89PNG", "review": "Great!"}])
    >>> len(read_warmup_requests(version_dir))
    1
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_log_pb2

    examples = list(examples)
    if not examples:
        raise ValueError("Expected at least one warmup request, received none.")
    if len(examples) > MAX_WARMUP_RECORDS:
        raise ValueError(
            f"TF Serving reads at most {MAX_WARMUP_RECORDS} warmup records, "
            f"received {len(examples)}."
        )
    path = warmup_path(version_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for index, example in enumerate(examples):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature_name
            try:
                protos = tensor_protos(example)
            except ValueError as error:
                raise ValueError(f"Warmup request {index}: {error}") from None
            for name, proto in protos.items():
                request.inputs[name].CopyFrom(proto)
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(version_dir):
    """Reads the warmup file of a version folder.

    Args:
        version_dir: the SavedModel folder.

    Returns:
        the list of `PredictionLog` protos (empty when there is no file).

    >>> import tempfile
    >>> read_warmup_requests(tempfile.mkdtemp())
    []
    """
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = warmup_path(version_dir)
    if not path.is_file():
        return []
    records = tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
    return [prediction_log_pb2.PredictionLog.FromString(record) for record in records]
