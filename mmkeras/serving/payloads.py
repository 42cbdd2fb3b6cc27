"""What a client sends and gets back: example values <-> REST JSON and TensorProtos.

Inputs are given per example as a dict:
- `pathlib.Path`: the file's bytes, sent as binary (images, WAV audio);
- `bytes`: binary (`{"b64": ...}` over REST, DT_STRING over gRPC);
- `str`: text (`""` means the modality is missing);
  numpy string scalars (`np.str_`, `np.bytes_`, a 0-d string array, an
  element of a string array) count as `str` and `bytes`;
- a number or a (nested) list of numbers: floats (`float("nan")` means
  missing). Series (`[steps, features]`) of different lengths in one
  request are padded at the end with NaN steps, which a time-series input
  drops (`TimeSeriesInput`); a shorter list of single values is an error.

Outputs come back as a list of per-example dicts of Python values, the same
over REST and gRPC. The client, warmup records and example requests all
encode through here.
"""

import base64
from pathlib import Path

import numpy as np


# === Inputs ===


def _encode_value(value, where):
    """One input value as plain bytes, str, or a float array."""
    if isinstance(value, Path):
        try:
            return value.read_bytes()
        except OSError as error:
            raise ValueError(f"{where}: cannot read file {value}: {error}") from None
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "SU":
        value = value.item()  # a 0-d string array holds one text
    # Plain types from here on: np.str_ / np.bytes_ subclass str / bytes, but
    # the gRPC path (`tensor_protos`) checks exact types.
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return str(value)
    if value is None or isinstance(value, (bool, np.bool_, dict)):
        raise ValueError(
            f"{where}: expected a Path, bytes, str, number or list of numbers, "
            f'received {type(value).__name__}. A missing text is "", a missing '
            "number float('nan'); `Client.predict` also takes None or a left-out input."
        )
    return _float_array(value, where)


def _float_array(value, where):
    """Numbers as a float64 array (None is NaN). Text, even text of digits, is
    refused: numpy would parse "1.5" as a number and hide a mix-up of inputs."""
    try:
        array = np.asarray(value)
        if array.dtype.kind in "SUb" or (array.dtype.kind == "O" and any(
                isinstance(v, (str, bytes, bool, np.bool_)) for v in array.ravel())):
            raise TypeError
        return np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{where}: expected a str, bytes, number or rectangular list of numbers (one "
            f"text per example), received {value!r:.80}."
        ) from None


def encode_examples(inputs):
    """Checks and encodes examples: one dict, or a list of dicts.

    Args:
        inputs: a dict (one example) or a list of dicts with the same keys.

    Returns:
        a list of dicts of input name to bytes, str, or float64 array.

    >>> encode_examples({"review": "Great!", "readings": [1, 2]})
    [{'review': 'Great!', 'readings': array([1., 2.])}]
    """
    examples = [inputs] if isinstance(inputs, dict) else list(inputs)
    if not examples:
        raise ValueError("Expected at least one example, received none.")
    names = None
    encoded = []
    for index, example in enumerate(examples):
        if not isinstance(example, dict):
            raise ValueError(
                f"Example {index}: expected a dict of input name to value, received "
                f"{type(example).__name__}."
            )
        if names is None:
            names = set(example)
        elif set(example) != names:
            raise ValueError(
                f"Example {index}: inputs {sorted(example)} differ from example 0's "
                f"{sorted(names)}; every example needs the same inputs."
            )
        encoded.append(
            {
                name: _encode_value(value, f"example {index}, input {name!r}")
                for name, value in example.items()
            }
        )
    return _padded_series(encoded)


def _json_input(value):
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, str):
        return value
    return value.tolist()


def _padded_series(examples):
    """Examples whose series of one input differ in length only, padded at the
    end with NaN steps to the longest (a tensor must be rectangular)."""
    for name, value in examples[0].items():
        arrays = [example[name] for example in examples]
        if not all(isinstance(a, np.ndarray) and a.ndim >= 2 for a in arrays):
            continue
        if len({a.shape[1:] for a in arrays}) == 1 and len({len(a) for a in arrays}) > 1:
            longest = max(len(a) for a in arrays)
            for example, array in zip(examples, arrays):
                padding = [(0, longest - len(array))] + [(0, 0)] * (array.ndim - 1)
                example[name] = np.pad(array, padding, constant_values=np.nan)
    return examples


def rest_instances(inputs):
    """Examples as the `instances` of a REST predict request (row form).

    >>> rest_instances([{"photo": b"\\x89PNG", "readings": [0.5]}])
    [{'photo': {'b64': 'iVBORw=='}, 'readings': [0.5]}]
    """
    return [
        {name: _json_input(value) for name, value in example.items()}
        for example in encode_examples(inputs)
    ]


def tensor_protos(inputs):
    """Examples batched into `{name: TensorProto}` for a gRPC PredictRequest.

    >>> protos = tensor_protos([{"review": "Great!"}, {"review": "Bad."}])
    >>> protos["review"].string_val
    [b'Great!', b'Bad.']
    """
    import tensorflow as tf

    examples = encode_examples(inputs)
    protos = {}
    for name in examples[0]:
        values = [example[name] for example in examples]
        kinds = {type(value) for value in values}
        if kinds <= {bytes, str}:
            array = np.array(
                [v.encode("utf-8") if isinstance(v, str) else v for v in values], dtype=object
            )
        elif kinds == {np.ndarray}:
            shapes = {value.shape for value in values}
            if len(shapes) > 1:
                raise ValueError(
                    f"Input {name!r}: every example needs the same shape, received "
                    f"{sorted(shapes)}."
                )
            array = np.stack(values).astype(np.float32)
        else:
            received = ", ".join("numbers" if isinstance(v, np.ndarray) else type(v).__name__
                                 for v in values)
            raise ValueError(f"Input {name!r}: every example needs text/binary, or every example "
                             f"numbers; received {received}.")
        protos[name] = tf.make_tensor_proto(array)
    return protos


# === Outputs ===


def _plain_float(value):
    # Same value over REST and gRPC: float32 precision, shortest digits.
    return float(str(np.float32(value)))


def python_value(value, name):
    """One output value of a REST answer as the client returns it.

    Binary (`{"b64": ...}`, or bytes from gRPC) stays bytes only for outputs
    named `*_bytes`; other strings are text.

    >>> python_value([0.1, 0.9], "probabilities"), python_value(b"positive", "classes")
    ([0.1, 0.9], 'positive')
    """
    if isinstance(value, list):
        return [python_value(item, name) for item in value]
    if isinstance(value, dict) and "b64" in value:
        return base64.b64decode(value["b64"])
    if isinstance(value, bytes):
        return value if name.endswith("_bytes") else value.decode("utf-8", errors="replace")
    if isinstance(value, float):
        return _plain_float(value)
    return value


def _item(value):
    # Numpy rows and scalars become Python values; bytes already are.
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value


def rows_from_arrays(arrays):
    """Batched output arrays (from gRPC) as one dict of Python values per example.

    >>> rows_from_arrays({"classes": np.array([b"negative", b"positive"], dtype=object),
    ...                   "scores": np.array([0.75, 0.5], dtype=np.float32)})
    [{'classes': 'negative', 'scores': 0.75}, {'classes': 'positive', 'scores': 0.5}]
    """
    names = sorted(arrays)
    batch = len(arrays[names[0]])
    return [
        {name: python_value(_item(arrays[name][i]), name) for name in names} for i in range(batch)
    ]
