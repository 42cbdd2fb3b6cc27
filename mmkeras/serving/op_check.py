"""Which ops a SavedModel uses, and whether a stock TF Serving release runs them.

A `tensorflow_model_server` runs TensorFlow's core ops (those of the
TensorFlow it was built with) plus the TF Text ops it links:

| TF Serving  | TensorFlow core ops | TF Text ops linked |
|-------------|---------------------|--------------------|
| 2.20        | 2.20                | 2.20 (`tf_text_2.20_ops.txt`) |
| 2.17 - 2.19 | 2.17 and newer      | 2.12.1 (`tf_text_2.12.1_ops.txt`, no `RoundRobinTrim`) |

Both op lists sit beside this file. tensorflow-io ops (`IO>*`) are never
linked, random ops make serving answers non-deterministic, and XLA-compiled
functions need a JIT that stock builds may lack.

"Core" for 2.17 - 2.19 is TensorFlow 2.17's op list (`tf_2.17_core_ops.txt`,
the oldest of that range), so an op added by a newer TensorFlow is caught.
"""

import collections
import os
import re

from mmkeras.savedmodel import read_saved_model

HERE = os.path.dirname(__file__)
DEFAULT_SERVING_VERSION = "2.20"
# TF Serving minor release -> (core op list, or None for the running
# TensorFlow's; the TF Text op list it links).
SERVING_OPS = {
    "2.17": ("tf_2.17_core_ops.txt", "tf_text_2.12.1_ops.txt"),
    "2.18": ("tf_2.17_core_ops.txt", "tf_text_2.12.1_ops.txt"),
    "2.19": ("tf_2.17_core_ops.txt", "tf_text_2.12.1_ops.txt"),
    "2.20": (None, "tf_text_2.20_ops.txt"),
}
# tensorflow/serving Docker image tag of each target.
SERVING_IMAGE_TAGS = {"2.17": "2.17.0", "2.18": "2.18.0", "2.19": "2.19.0", "2.20": "2.20.0"}
RANDOM_OP = re.compile(r"^(Stateless|Stateful)?Random|^Stateful(?!PartitionedCall$)|^(Stateless)?Multinomial$|"
                       r"^(Stateless|Parameterized|StatelessParameterized)?TruncatedNormal$|"
                       r"^RngReadAndSkip$|^RngSkip$")


def serving_minor(serving_version):
    """`"2.20.0"` / `"2.20"` -> `"2.20"`, checked against the known releases.

    Example:
    >>> serving_minor("2.19.1")
    '2.19'
    """
    minor = ".".join(str(serving_version).strip().split(".")[:2])
    if minor not in SERVING_OPS:
        raise ValueError(f"Unknown TF Serving version {serving_version!r}: expected one of "
                         f"{', '.join(SERVING_OPS)} (a patch release such as 2.20.0 is fine).")
    return minor


def allowed_ops(serving_version=DEFAULT_SERVING_VERSION):
    """Op names that TF Serving `serving_version` registers."""
    core_file, text_file = SERVING_OPS[serving_minor(serving_version)]
    core = _read_ops(core_file) if core_file else core_ops()
    return core | _read_ops(text_file)


def core_ops():
    """Op names the running TensorFlow registers (those with a `tf.raw_ops` wrapper)."""
    import tensorflow as tf

    return {name for name in dir(tf.raw_ops) if not name.startswith("_")}


def saved_model_ops(export_dir):
    """`{op_name: [node names]}` over the graph and every function of a SavedModel."""
    proto = read_saved_model(export_dir)
    ops = collections.defaultdict(list)
    xla = []
    for meta_graph in proto.meta_graphs:
        for node in meta_graph.graph_def.node:
            ops[node.op].append(node.name)
        for function in meta_graph.graph_def.library.function:
            if function.attr.get("_XlaMustCompile") and function.attr["_XlaMustCompile"].b:
                xla.append(function.signature.name)
            for node in function.node_def:
                ops[node.op].append(f"{function.signature.name}/{node.name}")
    return dict(ops), xla


def check_serving_ops(export_dir, serving_version=DEFAULT_SERVING_VERSION):
    """Problems that keep a SavedModel from stock TF Serving `serving_version`; empty if none.

    Each problem names the op and the nodes (whose names carry the Keras
    layer that emitted them).

    Example:
    >>> check_serving_ops("savedmodels/sentiment/1", "2.20")  # doctest: +SKIP
    []
    """
    minor = serving_minor(serving_version)
    allowed = allowed_ops(minor)
    ops, xla = saved_model_ops(export_dir)
    problems = []
    for op, nodes in sorted(ops.items()):
        if op not in allowed:
            problems.append(f"op {op!r} is neither a core TensorFlow op nor a TF Text op that "
                            f"TF Serving {minor} links; emitted by {_layers(nodes)}")
        elif RANDOM_OP.search(op):
            problems.append(f"random op {op!r} in a serving graph; emitted by {_layers(nodes)}")
    for name in xla:
        problems.append(f"function {name!r} is XLA-compiled (jit_compile=True); export without it")
    return problems


def _read_ops(file_name):
    with open(os.path.join(HERE, file_name)) as f:
        return {line.strip() for line in f if line.strip() and not line.startswith("#")}


def _layers(nodes, limit=3):
    shown = ", ".join(repr(n) for n in nodes[:limit])
    return shown + (f" and {len(nodes) - limit} more" if len(nodes) > limit else "")
