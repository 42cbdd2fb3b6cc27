"""Which ops a SavedModel uses, and whether stock TF Serving can run them.

TF Serving 2.12 to 2.19 link TensorFlow's core ops plus TF Text 2.12.1's ops
(listed in `tf_text_2.12.1_ops.txt` beside this file; it lacks
`TFText>RoundRobinTrim`). tensorflow-io ops (`IO>*`) are not linked, random
ops make serving answers non-deterministic, and XLA-compiled functions need
a JIT that stock builds may lack.

"Core" means registered by the TensorFlow this runs on (2.17); an op added
after TF Serving's own TensorFlow version would pass here, so serve with a TF
Serving release at least as new as the TensorFlow that exported.
"""

import collections
import os
import re

TF_TEXT_OPS_FILE = os.path.join(os.path.dirname(__file__), "tf_text_2.12.1_ops.txt")
RANDOM_OP = re.compile(r"^(Stateless|Stateful)?Random|^Stateful(?!PartitionedCall$)|^(Stateless)?Multinomial$|"
                       r"^(Stateless|Parameterized|StatelessParameterized)?TruncatedNormal$|"
                       r"^RngReadAndSkip$|^RngSkip$")


def tf_text_ops():
    with open(TF_TEXT_OPS_FILE) as f:
        return {line.strip() for line in f if line.strip() and not line.startswith("#")}


def core_ops():
    """Op names TensorFlow itself registers (those with a `tf.raw_ops` wrapper)."""
    import tensorflow as tf

    return set(dir(tf.raw_ops))


def saved_model_ops(export_dir):
    """`{op_name: [node names]}` over the graph and every function of a SavedModel."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
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


def check_serving_ops(export_dir):
    """Problems that keep a SavedModel from stock TF Serving; empty if none.

    Each problem names the op and the nodes (whose names carry the Keras
    layer that emitted them).

    Example:
    >>> check_serving_ops("savedmodels/sentiment/1")  # doctest: +SKIP
    []
    """
    allowed = core_ops() | tf_text_ops()
    ops, xla = saved_model_ops(export_dir)
    problems = []
    for op, nodes in sorted(ops.items()):
        if op not in allowed:
            problems.append(f"op {op!r} is neither a core TensorFlow op nor one of the TF Text ops "
                            f"TF Serving links; emitted by {_layers(nodes)}")
        elif RANDOM_OP.search(op):
            problems.append(f"random op {op!r} in a serving graph; emitted by {_layers(nodes)}")
    for name in xla:
        problems.append(f"function {name!r} is XLA-compiled (jit_compile=True); export without it")
    return problems


def _layers(nodes, limit=3):
    shown = ", ".join(repr(n) for n in nodes[:limit])
    return shown + (f" and {len(nodes) - limit} more" if len(nodes) > limit else "")
