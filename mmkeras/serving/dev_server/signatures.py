"""Running a version's signatures, shared by the REST and gRPC APIs.

A request names a signature (empty means `serving_default`) and sends one
tensor per input. As in TF Serving, the names, dtypes and shapes are checked
against the SignatureDef before the signature runs, and errors carry TF
Serving's messages.
"""

import math

import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from mmkeras.savedmodel import DEFAULT_SIGNATURE
from mmkeras.serving.dev_server.request_errors import RequestError
from mmkeras.serving.dev_server.request_errors import clean_tf_message
from mmkeras.serving.dev_server.request_errors import invalid_argument


def _shape_of(info):
    if info.tensor_shape.unknown_rank:
        return None
    return [dim.size for dim in info.tensor_shape.dim]


def shape_text(shape):
    """A shape as TF Serving writes it in messages.

    >>> shape_text((2, 3))
    '[2,3]'
    """
    return "[" + ",".join(str(size) for size in shape) + "]"


def _check_input(name, array, info):
    expected = tf.dtypes.as_dtype(info.dtype)
    received = tf.dtypes.as_dtype(array.dtype) if array.dtype != object else tf.string
    if received != expected:
        raise invalid_argument(
            f"Input '{name}' expects dtype {expected.name} but {received.name} was sent."
        )
    shape = _shape_of(info)
    if shape is None:
        return
    compatible = len(shape) == array.ndim and all(
        want in (-1, got) for want, got in zip(shape, array.shape)
    )
    if not compatible:
        raise invalid_argument(
            f"Input '{name}' expects shape {shape_text(shape)} but received "
            f"{shape_text(array.shape)}."
        )


def _check_input_names(sent, signature_def):
    expected = set(signature_def.inputs)
    sent = set(sent)
    if len(sent) != len(expected):
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}})."
            f" Sent extra: {{{','.join(sorted(sent - expected))}}}."
            f" Missing but required: {{{','.join(sorted(expected - sent))}}}."
        )
    for name in sorted(sent - expected):
        raise invalid_argument(
            f"input tensor alias not found in signature: {name}. Inputs expected "
            f"to be in the set {{{','.join(sorted(expected))}}}."
        )


def signature_def_of(servable, signature_name):
    """`(name, SignatureDef)` of the signature a request names (empty means `serving_default`).

    >>> from types import SimpleNamespace
    >>> from tensorflow.core.protobuf import meta_graph_pb2
    >>> servable = SimpleNamespace(signature_defs={"serving_default": meta_graph_pb2.SignatureDef()},
    ...                            functions={"serving_default": None})
    >>> signature_def_of(servable, "")[0]
    'serving_default'
    >>> signature_def_of(servable, "serve_decoded")
    Traceback (most recent call last):
    ...
    mmkeras.serving.dev_server.request_errors.RequestError: Serving signature name: "serve_decoded" not found in signature def
    """
    name = signature_name or DEFAULT_SIGNATURE
    if name not in servable.signature_defs or name not in servable.functions:
        raise invalid_argument(f'Serving signature name: "{name}" not found in signature def')
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

    Example:

    >>> import tempfile
    >>> import numpy as np
    >>> from mmkeras.serving.dev_server.servable import Servable
    >>> class Double(tf.Module):
    ...     @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    ...     def serve(self, x):
    ...         return {"y": 2 * x}
    >>> module = Double()
    >>> version_dir = tempfile.mkdtemp()
    >>> tf.saved_model.save(module, version_dir, signatures=module.serve)
    >>> servable = Servable("double", 1, version_dir)
    >>> run_signature(servable, "", {"x": np.array([1.0, 2.5], np.float32)})
    ('serving_default', {'y': array([2., 5.], dtype=float32)})
    """
    name, signature_def = signature_def_of(servable, signature_name)
    _check_input_names(inputs, signature_def)
    for key, info in signature_def.inputs.items():
        _check_input(key, inputs[key], info)
    unknown = set(output_filter) - set(signature_def.outputs)
    if unknown:
        raise invalid_argument(
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
        raise RequestError(code, clean_tf_message(error.message))
    except (TypeError, ValueError) as error:
        raise invalid_argument(str(error))
    wanted = set(output_filter) or set(outputs)
    return name, {key: value.numpy() for key, value in outputs.items() if key in wanted}


def inputs_from_protos(tensor_protos):
    """`{name: TensorProto}` of a PredictRequest as `{name: numpy array}`.

    >>> inputs_from_protos({"x": tf.make_tensor_proto([1.0, 2.0])})
    {'x': array([1., 2.], dtype=float32)}
    """
    inputs = {}
    for name, proto in tensor_protos.items():
        _check_declared_size(name, proto)
        try:
            inputs[name] = tf.make_ndarray(proto)
        except (TypeError, ValueError) as error:
            raise invalid_argument(f"Input '{name}' is not a valid TensorProto: {error}")
    return inputs


def _check_declared_size(name, proto):
    """Refuses a TensorProto whose shape declares more elements than it carries.

    `make_ndarray` would allocate the declared shape (10^12 strings from a
    few bytes of request): TF Serving answers INVALID_ARGUMENT, so do we.
    """
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise invalid_argument(f"Input '{name}' has a negative dimension in its shape {dims}.")
    declared = math.prod(dims)
    if proto.tensor_content:
        itemsize = tf.dtypes.as_dtype(proto.dtype).size if proto.dtype != types_pb2.DT_STRING else 1
        carried = len(proto.tensor_content) // max(itemsize, 1)
    else:
        carried = max(len(getattr(proto, field)) for field in _VALUE_FIELDS)
    # One value may fill a whole tensor (TF's own rule), but only a small one.
    if declared != carried and not (carried == 1 and declared <= _MAX_FILLED_ELEMENTS):
        raise invalid_argument(f"Input '{name}' declares shape {dims} ({declared} elements) "
                       f"but carries {carried} value(s).")


_VALUE_FIELDS = ("half_val", "float_val", "double_val", "int_val", "string_val", "scomplex_val",
                 "int64_val", "bool_val", "dcomplex_val", "uint32_val", "uint64_val")
_MAX_FILLED_ELEMENTS = 1 << 20


# === Metadata (GetModelMetadata and GET .../metadata) ===


def metadata_response(servable):
    """The `GetModelMetadataResponse` of a loaded version (its SignatureDefs).

    >>> from types import SimpleNamespace
    >>> servable = SimpleNamespace(name="tiny", version=2, signature_defs={})
    >>> metadata_response(servable).model_spec.version.value
    2
    """
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.metadata["signature_def"].Pack(signature_def_map(servable))
    return response


def signature_def_map(servable):
    """A loaded version's SignatureDefs as the `SignatureDefMap` metadata carries.

    >>> from types import SimpleNamespace
    >>> from tensorflow.core.protobuf import meta_graph_pb2
    >>> servable = SimpleNamespace(signature_defs={"serving_default": meta_graph_pb2.SignatureDef()})
    >>> list(signature_def_map(servable).signature_def)
    ['serving_default']
    """
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature_def in servable.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(signature_def)
    return signature_map
