"""Version folders and SignatureDefs, read one way for export, config and server.

TF Serving serves `<model_base>/<version>/`, where `<version>` is a folder
named by a whole number that holds a complete SavedModel. Export,
`mmkeras serving-config`, the op check and the dev server all read those
folders through this module, so they agree on which versions exist and on
what each signature takes.

It imports TensorFlow's protos only when a function reads a SavedModel, so the
REST client can use its constants without loading TensorFlow.
"""

import json
import re
from pathlib import Path

DEFAULT_SIGNATURE = "serving_default"
# Beside serving_default in every export: the same inputs, plus each modality's contribution.
EXPLAIN_SIGNATURE = "explain"
SERVE_TAG = "serve"
# Written by export beside the SavedModel; TF Serving ignores assets.extra/.
METADATA_FILE = Path("assets.extra") / "mmkeras.json"
_VERSION_NAME = re.compile(r"[0-9]+")


# === Version folders ===


def is_version_name(name):
    """True for a folder name TF Serving takes as a version: ASCII digits only.

    Temporary folders of an export in progress (`.tmp-3-1a2b`) and backups
    are never versions.

    >>> is_version_name("12"), is_version_name(".tmp-3-1a2b"), is_version_name("²")
    (True, False, False)
    """
    return _VERSION_NAME.fullmatch(name) is not None


def is_complete(version_dir):
    """True for a folder holding a SavedModel whose files are all written.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> is_complete(folder)
    False
    >>> _ = (folder / "saved_model.pb").write_bytes(b"")
    >>> is_complete(folder)
    True
    """
    version_dir = Path(version_dir)
    has_graph = (version_dir / "saved_model.pb").is_file() or (
        version_dir / "saved_model.pbtxt"
    ).is_file()
    variables = version_dir / "variables"
    # variables.index is written last by the checkpoint writer.
    return has_graph and (not variables.is_dir() or (variables / "variables.index").is_file())


def version_dirs(model_dir):
    """`{version: folder}` of the complete SavedModels in a model's folder.

    A missing or unreadable folder has none.

    >>> import tempfile
    >>> model_dir = Path(tempfile.mkdtemp())
    >>> for name in ["1", "2", ".tmp-3-1a2b"]:
    ...     (model_dir / name).mkdir()
    ...     _ = (model_dir / name / "saved_model.pb").write_bytes(b"")
    >>> (model_dir / "4").mkdir()  # still being written: no saved_model.pb yet
    >>> sorted(version_dirs(model_dir))
    [1, 2]
    """
    try:
        children = list(Path(model_dir).iterdir())
    except OSError:
        return {}
    return {
        int(child.name): child
        for child in children
        if is_version_name(child.name) and child.is_dir() and is_complete(child)
    }


def latest_version_dir(model_dir):
    """The newest complete version folder of a model's folder, or None.

    >>> import tempfile
    >>> model_dir = Path(tempfile.mkdtemp())
    >>> latest_version_dir(model_dir) is None
    True
    >>> for name in ["2", "10"]:
    ...     (model_dir / name).mkdir()
    ...     _ = (model_dir / name / "saved_model.pb").write_bytes(b"")
    >>> latest_version_dir(model_dir).name
    '10'
    """
    versions = version_dirs(model_dir)
    return versions[max(versions)] if versions else None


def next_version(model_dir):
    """The number of a new version: one past every version-named entry.

    Incomplete versions count too, so a new export never takes the number of
    one still being written.

    >>> import tempfile
    >>> model_dir = Path(tempfile.mkdtemp())
    >>> next_version(model_dir / "missing")
    1
    >>> (model_dir / "7").mkdir()
    >>> next_version(model_dir)
    8
    """
    try:
        names = [child.name for child in Path(model_dir).iterdir()]
    except OSError:
        names = []
    return max((int(name) for name in names if is_version_name(name)), default=0) + 1


def read_metadata(version_dir):
    """The `assets.extra/mmkeras.json` an export wrote, or None for other SavedModels.

    >>> import tempfile
    >>> read_metadata(tempfile.mkdtemp()) is None
    True
    """
    path = Path(version_dir) / METADATA_FILE
    return json.loads(path.read_text()) if path.is_file() else None


# === SavedModel protos ===


def read_saved_model(version_dir):
    """The `SavedModel` proto of a version folder (`saved_model.pb` or `.pbtxt`).

    >>> import tempfile
    >>> from tensorflow.core.protobuf import saved_model_pb2
    >>> proto = saved_model_pb2.SavedModel()
    >>> proto.meta_graphs.add().meta_info_def.tags.append("serve")
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "saved_model.pb").write_bytes(proto.SerializeToString())
    >>> list(read_saved_model(folder).meta_graphs[0].meta_info_def.tags)
    ['serve']
    """
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    binary = Path(version_dir) / "saved_model.pb"
    if binary.is_file():
        saved_model.ParseFromString(binary.read_bytes())
    else:
        text_format.Parse((Path(version_dir) / "saved_model.pbtxt").read_text(), saved_model)
    return saved_model


def signature_defs(version_dir):
    """`{key: SignatureDef}` of the `serve` meta graph, as TF Serving reports them.

    >>> import tempfile
    >>> from tensorflow.core.protobuf import saved_model_pb2
    >>> proto = saved_model_pb2.SavedModel()
    >>> graph = proto.meta_graphs.add()
    >>> graph.meta_info_def.tags.append("serve")
    >>> graph.signature_def["serving_default"].method_name = "tensorflow/serving/predict"
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "saved_model.pb").write_bytes(proto.SerializeToString())
    >>> list(signature_defs(folder))
    ['serving_default']
    """
    for meta_graph in read_saved_model(version_dir).meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"{version_dir} has no meta graph tagged 'serve'.")


def signature_inputs(version_dir, signature_name=DEFAULT_SIGNATURE):
    """`{input name: (dtype name, shape)}` of one signature of a SavedModel.

    >>> import tempfile
    >>> from tensorflow.core.framework import types_pb2
    >>> from tensorflow.core.protobuf import saved_model_pb2
    >>> proto = saved_model_pb2.SavedModel()
    >>> graph = proto.meta_graphs.add()
    >>> graph.meta_info_def.tags.append("serve")
    >>> readings = graph.signature_def["serving_default"].inputs["readings"]
    >>> readings.dtype = types_pb2.DT_FLOAT
    >>> _ = readings.tensor_shape.dim.add(size=-1), readings.tensor_shape.dim.add(size=3)
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "saved_model.pb").write_bytes(proto.SerializeToString())
    >>> signature_inputs(folder)
    {'readings': ('float32', [-1, 3])}
    """
    import tensorflow as tf

    signatures = signature_defs(version_dir)
    if signature_name not in signatures:
        raise ValueError(
            f"{version_dir}: no signature {signature_name!r}; it has {sorted(signatures)}."
        )
    inputs = signatures[signature_name].inputs
    return {
        name: (tf.dtypes.as_dtype(info.dtype).name, [d.size for d in info.tensor_shape.dim])
        for name, info in sorted(inputs.items())
    }
