"""JSON <-> tensors for the REST API, as TF Serving's json_tensor.cc.

A predict body is the row form (`{"instances": [...]}`, one value or object
per example) or the columnar form (`{"inputs": ...}`, one batched value per
input); binary values are `{"b64": "..."}`. Answers are `{"predictions": ...}`
or `{"outputs": ...}` to match, with floats written as TF Serving writes them.
Error messages are TF Serving's, so clients see the same text from both.
"""

import base64
import binascii
import json
import math

import numpy as np
import tensorflow as tf

from mmkeras.serving.dev_server.request_errors import RequestError
from mmkeras.serving.dev_server.request_errors import invalid_argument
from mmkeras.serving.dev_server.signatures import shape_text


# === Requests ===


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
        raise invalid_argument(f"JSON Value: {_json_text(value)} not formatted correctly for base64 data")
    text = value["b64"]
    try:
        # TF Serving accepts base64 with or without padding.
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_argument("Unable to base64 decode")


def _json_leaf(value, dtype):
    def type_error():
        return invalid_argument(
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
            raise invalid_argument(
                f"JSON Value: {_json_text(value)} found at incorrect level: {level + 1}"
                f" in the JSON DOM. Expected at level: {len(shape)}"
            )
        flat.append(_json_leaf(value, dtype))
        return
    if level >= len(shape):
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
    if len(value) != shape[level]:
        raise invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level}"
            f" expected size: {shape[level]}"
        )
    for item in value:
        _fill(item, level + 1, shape, dtype, flat)


def json_to_array(value, dtype):
    """A JSON value (nested lists of leaves) as a numpy array of `dtype`.

    >>> json_to_array([[1, 2], [3, 4]], tf.float32)
    array([[1., 2.],
           [3., 4.]], dtype=float32)
    >>> json_to_array([{"b64": "aGk="}, "text"], tf.string)
    array([b'hi', b'text'], dtype=object)
    """
    dtype = tf.dtypes.as_dtype(dtype)
    shape = _dense_shape(value)
    flat = []
    try:
        _fill(value, 0, shape, dtype, flat)
    except RecursionError:
        raise invalid_argument(f"JSON Value nested {len(shape)} levels deep is too deep")
    numpy_dtype = object if dtype == tf.string else dtype.as_numpy_dtype
    array = np.empty(len(flat), dtype=numpy_dtype)
    array[:] = flat
    return array.reshape(shape)


def _is_instance_object(value):
    return isinstance(value, dict) and not _is_b64(value)


def instances_to_arrays(instances, input_infos):
    """The row form, one JSON value or object per example, as `{input: batched array}`.

    `input_infos` is the signature's `{input name: TensorInfo}`.

    >>> from tensorflow.core.protobuf import meta_graph_pb2
    >>> infos = {"x": meta_graph_pb2.TensorInfo(dtype=tf.float32.as_datatype_enum)}
    >>> instances_to_arrays([{"x": [1, 2]}, {"x": [3, 4]}], infos)["x"].shape
    (2, 2)
    """
    names = sorted(input_infos)
    if not _is_instance_object(instances[0]) and len(names) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple "
            "input tensors required as per tensorinfo_map"
        )
    objects = _is_instance_object(instances[0])
    columns = {}
    for index, element in enumerate(instances):
        if objects != _is_instance_object(element):
            got = "list" if objects else "object"
            want = "object" if objects else "value/list"
            raise invalid_argument(f"Expecting {want} but got {got} at item {index} of input list")
        items = element.items() if objects else [(names[0], element)]
        for name, value in items:
            if name not in input_infos:
                raise invalid_argument(
                    f"Failed to process element: {index} key: {name} of 'instances' list."
                    f" Error: INVALID_ARGUMENT: JSON object: does not have named input: {name}"
                )
            try:
                array = json_to_array(value, input_infos[name].dtype)
            except RequestError as error:
                raise invalid_argument(
                    f"Failed to process element: {index} key: {name} of 'instances' list."
                    f" Error: {error.code}: {error.message}"
                )
            previous = columns.setdefault(name, [])
            if previous and previous[0].shape != array.shape:
                raise invalid_argument(
                    f"Expecting shape {shape_text(previous[0].shape)} but got: "
                    f"{shape_text(array.shape)}"
                )
            previous.append(array)
        if objects and set(element) != set(names):
            raise invalid_argument(
                f"Failed to process element: {index} of 'instances' list. JSON object: "
                f"{_json_text(element)} keys must be equal to: {','.join(names)}"
            )
    return {name: np.stack(arrays) for name, arrays in columns.items()}


def inputs_to_arrays(inputs, input_infos):
    """The columnar form, one batched JSON value per input, as `{input: array}`.

    Keys that are not inputs of the signature (`input_infos`) are ignored.

    >>> from tensorflow.core.protobuf import meta_graph_pb2
    >>> infos = {"x": meta_graph_pb2.TensorInfo(dtype=tf.float32.as_datatype_enum)}
    >>> inputs_to_arrays({"x": [[1, 2], [3, 4]]}, infos)["x"].shape
    (2, 2)
    """
    if not _is_instance_object(inputs):
        if len(input_infos) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple "
                "input tensors required as per tensorinfo_map"
            )
        name, info = next(iter(input_infos.items()))
        return {name: json_to_array(inputs, info.dtype)}
    arrays = {}
    # Like TF Serving, keys that are not inputs of the signature are ignored.
    for name, info in sorted(input_infos.items()):
        if name not in inputs:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = json_to_array(inputs[name], info.dtype)
    return arrays


def parse_predict_body(body):
    """Parses a REST predict body into `(signature_name, form, payload)`.

    `form` is `"row"` (payload: the instances list) or `"columnar"` (payload:
    the inputs value).

    >>> parse_predict_body(b'{"instances": [{"x": [1, 2]}]}')
    ('', 'row', [{'x': [1, 2]}])
    >>> parse_predict_body(b'{"signature_name": "serve_decoded", "inputs": {"x": [[1, 2]]}}')
    ('serve_decoded', 'columnar', {'x': [[1, 2]]})
    """
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        document = json.loads(body)
    except RecursionError:
        raise invalid_argument("JSON Parse error: the document is nested too deeply")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        where = f" at offset: {error.pos}" if hasattr(error, "pos") else ""
        reason = error.msg if hasattr(error, "msg") else str(error)
        raise invalid_argument(f"JSON Parse error: {reason}{where}")
    if not isinstance(document, dict):
        raise invalid_argument(f"JSON Value: {_json_text(document)} Is not object")
    signature_name = document.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise invalid_argument(
            f"JSON Value: {_json_text(document)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    if "instances" in document and "inputs" in document:
        raise invalid_argument(
            f"JSON Value: {_json_text(document)} Not formatted correctly expecting "
            "only one of 'inputs' or 'instances' keys to exist"
        )
    if "instances" in document:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise invalid_argument("Expecting 'instances' to be an list/array")
        if not instances:
            raise invalid_argument("No values in 'instances' array")
        return signature_name, "row", instances
    if "inputs" in document:
        return signature_name, "columnar", document["inputs"]
    raise invalid_argument("Missing 'inputs' or 'instances' key")


# === Answers ===


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
    """Formats output arrays as TF Serving's `predictions` or `outputs`.

    One output gives bare values, several give one object per example (row
    form) or per output (columnar form).

    >>> outputs = {"classes": np.array([b"positive"], dtype=object),
    ...            "scores": np.array([0.93], dtype=np.float32)}
    >>> format_predictions(outputs, "row")
    {'predictions': [{'classes': 'positive', 'scores': 0.93}]}
    >>> format_predictions({"scores": outputs["scores"]}, "columnar")
    {'outputs': [0.93]}
    """
    names = sorted(outputs)
    if form == "columnar":
        columns = {name: _json_values(outputs[name], name) for name in names}
        return {"outputs": columns if len(names) > 1 else columns[names[0]]}
    batch = None
    for name in names:
        if outputs[name].ndim == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        size = outputs[name].shape[0]
        if batch is not None and size != batch:
            raise invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {size} expecting: {batch}"
            )
        batch = size
    columns = {name: _json_values(outputs[name], name) for name in names}
    if len(names) == 1:
        return {"predictions": columns[names[0]]}
    rows = [{name: columns[name][i] for name in names} for i in range(batch)]
    return {"predictions": rows}
