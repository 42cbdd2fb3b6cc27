"""Running a LiteRT file with the pip runtime (`ai-edge-litert`): predictions,
its comparison with the Keras model, and which ops an int8 file left in float.

Example:
>>> import mmkeras as mmk
>>> from mmkeras.litert import convert
>>> model = mmk.build_unimodal(mmk.SensorInput("readings", ["a", "b"], mean=[0, 0], variance=[1, 1]),
...                            mmk.Classification(["ok", "bad"]), projection_dim=8)
>>> predict(convert(model), {"readings": np.array([[0.5, 1.0], [np.nan, 2.0]], "float32")}).shape
(2, 2)
"""

import collections
import re

import numpy as np
import tensorflow as tf

from mmkeras.savedmodel import DEFAULT_SIGNATURE
from mmkeras.tasks import label_output


def interpreter(content, delegates=True, num_threads=None):
    """A LiteRT interpreter of `.tflite` bytes (`pip install -e ".[edge]"`);
    `delegates=False` runs the file's own ops (no XNNPACK); `num_threads`
    None is the runtime's default (one)."""
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError:
        raise ImportError('Running a LiteRT model needs the LiteRT runtime: pip install -e ".[edge]" '
                          '(ai-edge-litert)') from None
    resolver = (litert.OpResolverType.AUTO if delegates
                else litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return litert.Interpreter(model_content=content, experimental_op_resolver_type=resolver,
                              num_threads=num_threads)


def predict(content, inputs):
    """`{name: array [N, ...]}` -> probabilities `[N, C]`, one example at a time (the signature's batch is 1)."""
    runner = interpreter(content).get_signature_runner(DEFAULT_SIGNATURE)
    count = len(next(iter(inputs.values())))
    rows = [runner(**{name: np.asarray(value[i:i + 1]) for name, value in inputs.items()})["probabilities"]
            for i in range(count)]
    return np.concatenate(rows)


def keras_probabilities(model, inputs):
    """The Keras model's label probabilities `[N, C]` on decoded inputs."""
    dataset = tf.data.Dataset.from_tensor_slices(inputs).batch(64)  # strings need tf.data
    return np.asarray(label_output(model.predict(dataset, verbose=0)))


def compare(model, content, inputs):
    """The file against the Keras model on the same decoded inputs: the largest
    probability difference and the share of examples given the same label(s)."""
    expected = keras_probabilities(model, inputs)
    served = predict(content, inputs)
    task = model.task
    if task.multi_label:
        same = np.all((served >= task.threshold) == (expected >= task.threshold), axis=-1)
    else:
        same = served.argmax(-1) == expected.argmax(-1)
    return {"examples": len(served), "max_abs_difference": float(np.max(np.abs(served - expected))),
            "label_agreement": float(np.mean(same))}


def float_ops(content):
    """`{op name: count}` of the ops that compute in float32 in a quantized file
    (an input tensor is float32): where int8 fell back to float."""
    runtime = interpreter(content, delegates=False)  # XNNPACK would hide ops in DELEGATE nodes
    runtime.allocate_tensors()
    dtypes = {tensor["index"]: tensor["dtype"] for tensor in runtime.get_tensor_details()}
    counts = collections.Counter(
        op["op_name"] for op in runtime._get_ops_details()
        if op["op_name"] != "QUANTIZE" and any(dtypes.get(i) == np.float32 for i in op["inputs"] if i >= 0))
    return dict(sorted(counts.items()))


def output_names(content, layers):
    """Output tensor names of the ops that compute the Keras layers named `layers`
    (their names hold `<model>/<layer>_<n>/...`)."""
    pattern = re.compile("/(" + "|".join(map(re.escape, layers)) + r")(_\d+)?/")
    runtime = interpreter(content, delegates=False)
    names = {tensor["index"]: tensor["name"] for tensor in runtime.get_tensor_details()}
    return [names[i] for op in runtime._get_ops_details() for i in op["outputs"]
            if i in names and pattern.search(names[i])]
