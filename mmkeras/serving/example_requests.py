"""Example REST predict requests, for `curl -d @<model>.request.json`.

`mmkeras serving-config` writes one per model: the examples of the version's
first warmup request when it has one, else a placeholder per signature input.
"""

import json
from pathlib import Path

import numpy as np

from mmkeras.savedmodel import DEFAULT_SIGNATURE
from mmkeras.savedmodel import signature_inputs
from mmkeras.serving.payloads import rest_instances
from mmkeras.serving.warmup import read_warmup_requests


def example_request(inputs, signature_name=DEFAULT_SIGNATURE):
    """A REST predict body (row form) for one example or a list of them.

    Values as for `Client.predict`: `Path` (file bytes, sent as b64), `bytes`,
    `str`, numbers and lists of numbers.

    >>> example_request({"review": "Great!", "photo": b"\\x89PNG"})["instances"]
    [{'review': 'Great!', 'photo': {'b64': 'iVBORw=='}}]
    """
    return {"signature_name": signature_name, "instances": rest_instances(inputs)}


def write_example_request(path, inputs, signature_name=DEFAULT_SIGNATURE):
    """Writes an example REST predict request, for `curl -d @path`.

    Args:
        path: JSON file to write.
        inputs: one example (dict) or a list of them.
        signature_name: the signature called.

    Returns:
        the written path.

    Example:

    >>> import tempfile
    >>> path = write_example_request(Path(tempfile.mkdtemp()) / "sentiment.request.json",
    ...                              {"review": "Great!", "readings": [0.5, 1.0]})
    >>> json.loads(path.read_text())["instances"]
    [{'review': 'Great!', 'readings': [0.5, 1.0]}]
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(example_request(inputs, signature_name), indent=1) + "\n")
    return path


def placeholder_inputs(version_dir, signature_name=DEFAULT_SIGNATURE):
    """One example with a placeholder per input, from the signature.

    Strings get `""` (replace binary inputs such as images with real file
    bytes), numbers get zeros of the right width.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "saved_model.pbtxt").write_text(
    ...     'meta_graphs { meta_info_def { tags: "serve" } signature_def { key: "serving_default" '
    ...     'value { inputs { key: "review" value { dtype: DT_STRING } } '
    ...     'inputs { key: "readings" value { dtype: DT_FLOAT '
    ...     'tensor_shape { dim { size: -1 } dim { size: 2 } } } } } } }')
    >>> placeholder_inputs(folder)
    {'readings': [0.0, 0.0], 'review': ''}
    """
    example = {}
    for name, (dtype, shape) in signature_inputs(version_dir, signature_name).items():
        if dtype == "string":
            example[name] = ""
        else:
            # Unknown sizes (-1) after the batch dimension become 1.
            example[name] = np.zeros([max(size, 1) for size in shape[1:]]).tolist()
    return example


def warmup_examples(version_dir):
    """The examples of a version's first warmup request, or None.

    >>> import tempfile
    >>> from mmkeras.serving.warmup import write_warmup_requests
    >>> folder = tempfile.mkdtemp()
    >>> warmup_examples(folder) is None
    True
    >>> _ = write_warmup_requests(folder, "sentiment", [[{"review": "Great!"}, {"review": "Bad."}]])
    >>> warmup_examples(folder)
    [{'review': 'Great!'}, {'review': 'Bad.'}]
    """
    import tensorflow as tf

    logs = [log for log in read_warmup_requests(version_dir) if log.HasField("predict_log")]
    if not logs:
        return None
    request = logs[0].predict_log.request
    arrays = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
    batch = len(next(iter(arrays.values())))
    return [
        {name: _example_value(array[i]) for name, array in arrays.items()} for i in range(batch)
    ]


def _example_value(value):
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value.tolist()
