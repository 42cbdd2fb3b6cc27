"""Configuration for TensorFlow Serving: models.config, batching, commands.

Production serving is `tensorflow_model_server` (TF Serving), usually the
`tensorflow/serving` Docker image. This module writes what it needs for
models exported as `<export_root>/<model_name>/<version>/`:

- `models.config`: a `ModelServerConfig` text proto listing the models, their
  version policy and version labels (`stable`, `canary`);
- `batching_parameters.txt`: server-side batching defaults;
- an example REST request per model, built from the model's warmup requests
  or its signature;
- the `tensorflow_model_server` and `docker run` command lines.

`mmkeras serve` (the dev server) reads the same `models.config`.
"""

import argparse
import json
import re
import shlex
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import numpy as np

from mmkeras.serving.client import rest_instances
from mmkeras.serving.op_check import DEFAULT_SERVING_VERSION, SERVING_IMAGE_TAGS, serving_minor

IMAGE_REPOSITORY = "tensorflow/serving"
DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:{SERVING_IMAGE_TAGS[DEFAULT_SERVING_VERSION]}"
CONTAINER_MODELS = "/models"
CONTAINER_CONFIG = "/config"
MODEL_CONFIG_NAME = "models.config"
BATCHING_NAME = "batching_parameters.txt"
_VERSION_DIR = re.compile(r"[0-9]+")


# === models.config ===


@dataclass
class ServedModel:
    """One model of a TF Serving `model_config_list`.

    Args:
        name: the name clients call (`/v1/models/<name>`).
        base_path: the folder holding the version folders, as the server
            sees it (e.g. `/models/<name>` in the Docker image).
        versions: `"latest"` (the newest `num_latest` versions), `"all"`, or
            a list of version numbers to serve.
        num_latest: how many of the newest versions `"latest"` serves.
        labels: version labels, e.g. `{"stable": 1, "canary": 2}`; each
            labelled version must be one that is served.

    Example:

    ```python
    ServedModel("sentiment", "/models/sentiment", versions=[1, 2],
                labels={"stable": 1, "canary": 2})
    ```
    """

    name: str
    base_path: str
    versions: object = "latest"
    num_latest: int = 1
    labels: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.name or "/" in self.name or ":" in self.name:
            raise ValueError(
                f"A model name must be non-empty without '/' or ':', received {self.name!r}."
            )
        if isinstance(self.versions, str):
            if self.versions not in ("latest", "all"):
                raise ValueError(
                    f"Model {self.name!r}: versions must be 'latest', 'all' or a list "
                    f"of version numbers, received {self.versions!r}."
                )
        else:
            self.versions = sorted({int(v) for v in self.versions})
            if not self.versions:
                raise ValueError(f"Model {self.name!r}: the list of versions is empty.")
            missing = {k: v for k, v in self.labels.items() if int(v) not in self.versions}
            if missing:
                raise ValueError(
                    f"Model {self.name!r}: labels {missing} point at versions that are "
                    f"not served ({self.versions}); TF Serving refuses such labels."
                )
        if self.num_latest < 1:
            raise ValueError(
                f"Model {self.name!r}: num_latest must be >= 1, received {self.num_latest}."
            )


def model_server_config(models):
    """Builds the `ModelServerConfig` proto for a list of `ServedModel`."""
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    names = set()
    for model in models:
        if model.name in names:
            raise ValueError(f"Model name {model.name!r} appears twice.")
        names.add(model.name)
        entry = config.model_config_list.config.add()
        entry.name = model.name
        entry.base_path = str(model.base_path)
        entry.model_platform = "tensorflow"
        policy = entry.model_version_policy
        if model.versions == "all":
            policy.all.SetInParent()
        elif model.versions == "latest":
            policy.latest.num_versions = model.num_latest
        else:
            policy.specific.versions.extend(model.versions)
        for label, version in sorted(model.labels.items()):
            entry.version_labels[label] = int(version)
    return config


def write_model_config(path, models):
    """Writes a TF Serving `models.config` (text proto) for `ServedModel`s.

    Args:
        path: file to write.
        models: list of `ServedModel`.

    Returns:
        the written path.

    Example:

    ```python
    write_model_config("serving/models.config", [
        ServedModel("sentiment", "/models/sentiment", versions=[1, 2],
                    labels={"stable": 1, "canary": 2}),
        ServedModel("inspection", "/models/inspection"),
    ])
    ```
    """
    from google.protobuf import text_format

    text = text_format.MessageToString(model_server_config(models))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def read_model_config(path):
    """Parses a `models.config` file into a `ModelServerConfig` proto."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(Path(path).read_text(), config)
    except text_format.ParseError as error:
        raise ValueError(f"{path}: not a ModelServerConfig text proto: {error}") from None
    return config


# === Batching ===


def _batching_parameters_class():
    """TF Serving's BatchingParameters message.

    Its .proto is not in the tensorflow-serving-api wheel, so the message is
    declared here (same names and types) in a private descriptor pool.
    """
    from google.protobuf import descriptor_pb2
    from google.protobuf import descriptor_pool
    from google.protobuf import message_factory
    from google.protobuf import wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(wrappers_pb2.DESCRIPTOR.serialized_pb))
    file = descriptor_pb2.FileDescriptorProto(
        name="mmkeras/batching_parameters.proto",
        package="tensorflow.serving",
        dependency=["google/protobuf/wrappers.proto"],
        syntax="proto3",
    )
    message = file.message_type.add(name="BatchingParameters")
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    wrapped = [
        ("max_batch_size", "Int64Value"),
        ("batch_timeout_micros", "Int64Value"),
        ("max_enqueued_batches", "Int64Value"),
        ("num_batch_threads", "Int64Value"),
        ("thread_pool_name", "StringValue"),
    ]
    for number, (name, type_name) in enumerate(wrapped, start=1):
        message.field.add(
            name=name,
            number=number,
            label=optional,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
            type_name=f".google.protobuf.{type_name}",
        )
    message.field.add(
        name="allowed_batch_sizes",
        number=6,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    )
    message.field.add(
        name="pad_variable_length_inputs",
        number=7,
        label=optional,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    )
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    )


def batching_parameters(
    *,
    max_batch_size=32,
    batch_timeout_micros=2000,
    max_enqueued_batches=100,
    num_batch_threads=4,
    allowed_batch_sizes=None,
    pad_variable_length_inputs=False,
):
    """TF Serving `BatchingParameters` (a proto message).

    The defaults suit a CPU server: up to 32 examples per batch, waiting at
    most 2 ms to fill one, and 4 threads running batches (set it to the
    number of cores serving the model).

    Args:
        max_batch_size: largest batch run at once.
        batch_timeout_micros: longest wait for a batch to fill.
        max_enqueued_batches: queue length before requests are refused.
        num_batch_threads: batches run concurrently.
        allowed_batch_sizes: optional increasing sizes that batches are padded
            to (fewer shapes to compile on GPUs); must end at max_batch_size.
        pad_variable_length_inputs: pad inputs of different lengths.
    """
    sizes = list(allowed_batch_sizes or [])
    if sizes and (sizes != sorted(set(sizes)) or sizes[-1] != max_batch_size):
        raise ValueError(
            f"allowed_batch_sizes must increase and end at max_batch_size "
            f"({max_batch_size}), received {sizes}."
        )
    for name, value in [
        ("max_batch_size", max_batch_size),
        ("num_batch_threads", num_batch_threads),
        ("max_enqueued_batches", max_enqueued_batches),
    ]:
        if value < 1:
            raise ValueError(f"{name} must be >= 1, received {value}.")
    params = _batching_parameters_class()()
    params.max_batch_size.value = max_batch_size
    params.batch_timeout_micros.value = batch_timeout_micros
    params.max_enqueued_batches.value = max_enqueued_batches
    params.num_batch_threads.value = num_batch_threads
    params.allowed_batch_sizes.extend(sizes)
    params.pad_variable_length_inputs = pad_variable_length_inputs
    return params


def write_batching_parameters(path, **kwargs):
    """Writes `batching_parameters.txt` for `--batching_parameters_file`.

    Args:
        path: file to write.
        **kwargs: see `batching_parameters`.

    Returns:
        the written path.

    Example:

    ```python
    write_batching_parameters("serving/batching_parameters.txt", max_batch_size=16)
    ```
    """
    from google.protobuf import text_format

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text_format.MessageToString(batching_parameters(**kwargs)))
    return path


def read_batching_parameters(path):
    """Parses a `batching_parameters.txt` file (checks its field names)."""
    from google.protobuf import text_format

    params = _batching_parameters_class()()
    text_format.Parse(Path(path).read_text(), params)
    return params


# === Example requests ===


def example_request(inputs, signature_name="serving_default"):
    """A REST predict body (row form) for one example or a list of them.

    Values as for `Client.predict`: `Path` (file bytes, sent as b64), `bytes`,
    `str`, numbers and lists of numbers.
    """
    return {"signature_name": signature_name, "instances": rest_instances(inputs)}


def write_example_request(path, inputs, signature_name="serving_default"):
    """Writes an example REST predict request, for `curl -d @path`.

    Args:
        path: JSON file to write.
        inputs: one example (dict) or a list of them.
        signature_name: the signature called.

    Returns:
        the written path.

    Example:

    ```python
    write_example_request("serving/sentiment.request.json",
                          {"photo": Path("cat.jpg"), "review": "Great!"})
    ```
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(example_request(inputs, signature_name), indent=1) + "\n")
    return path


def latest_version_dir(model_dir):
    """The newest complete version folder of a model folder, or None."""
    versions = (
        [
            p
            for p in Path(model_dir).iterdir()
            if p.is_dir() and _VERSION_DIR.fullmatch(p.name) and (p / "saved_model.pb").is_file()
        ]
        if Path(model_dir).is_dir()
        else []
    )
    return max(versions, key=lambda p: int(p.name)) if versions else None


def signature_inputs(version_dir, signature_name="serving_default"):
    """`{input name: (dtype name, shape)}` of a SavedModel's signature."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(version_dir) / "saved_model.pb").read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            if signature_name not in meta_graph.signature_def:
                raise ValueError(
                    f"{version_dir}: no signature {signature_name!r}; it has "
                    f"{sorted(meta_graph.signature_def)}."
                )
            inputs = meta_graph.signature_def[signature_name].inputs
            return {
                name: (tf.dtypes.as_dtype(info.dtype).name, [d.size for d in info.tensor_shape.dim])
                for name, info in sorted(inputs.items())
            }
    raise ValueError(f"{version_dir}: no meta graph tagged 'serve'.")


def placeholder_inputs(version_dir, signature_name="serving_default"):
    """One example with a placeholder per input, from the signature.

    Strings get `""` (replace binary inputs such as images with real file
    bytes), numbers get zeros of the right width.
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
    """The examples of a version's first warmup request, or None."""
    import tensorflow as tf

    from mmkeras.serving.warmup import read_warmup_requests

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


# === Command lines ===


def _server_flags(config_file, batching_file, poll_seconds, config_poll_seconds):
    flags = [
        f"--model_config_file={config_file}",
        f"--model_config_file_poll_wait_seconds={config_poll_seconds}",
        f"--file_system_poll_wait_seconds={poll_seconds}",
    ]
    if batching_file is not None:
        flags += ["--enable_batching=true", f"--batching_parameters_file={batching_file}"]
    return flags


def model_server_command(
    model_config_file,
    *,
    batching_parameters_file=None,
    rest_port=8501,
    grpc_port=8500,
    poll_seconds=2,
    config_poll_seconds=60,
    executable="tensorflow_model_server",
):
    """The `tensorflow_model_server` command line, as a list of arguments.

    Args:
        model_config_file: path of models.config as the server sees it.
        batching_parameters_file: optional batching file; turns batching on.
        rest_port: REST port (`--rest_api_port`).
        grpc_port: gRPC port (`--port`).
        poll_seconds: how often version folders are polled.
        config_poll_seconds: how often models.config is re-read (labels move
            without a restart).
        executable: the server binary.

    Example:

    ```python
    print(shlex.join(model_server_command("serving/models.config")))
    ```
    """
    return [executable, f"--port={grpc_port}", f"--rest_api_port={rest_port}"] + _server_flags(
        model_config_file, batching_parameters_file, poll_seconds, config_poll_seconds
    )


def docker_command(
    export_root,
    config_dir,
    *,
    batching=True,
    rest_port=8501,
    grpc_port=8500,
    poll_seconds=2,
    config_poll_seconds=60,
    image=DEFAULT_IMAGE,
):
    """The `docker run` command serving an export root with TF Serving.

    The export root is mounted read-only at `/models` and the config folder
    (holding models.config and batching_parameters.txt) at `/config`, so the
    config's base paths must be `/models/<name>` (`mmkeras serving-config`
    writes them so).

    Args:
        export_root: local folder of `<model_name>/<version>/` exports.
        config_dir: local folder with models.config (and the batching file).
        batching: turn batching on with `config_dir/batching_parameters.txt`.
        rest_port: host port for REST.
        grpc_port: host port for gRPC.
        poll_seconds: how often version folders are polled.
        config_poll_seconds: how often models.config is re-read.
        image: TF Serving image (`-gpu` variants for GPUs).
    """
    mounts = []
    for source, target in [(export_root, CONTAINER_MODELS), (config_dir, CONTAINER_CONFIG)]:
        mounts += ["--mount", f"type=bind,source={Path(source).resolve()},target={target},readonly"]
    batching_file = f"{CONTAINER_CONFIG}/{BATCHING_NAME}" if batching else None
    flags = _server_flags(
        f"{CONTAINER_CONFIG}/{MODEL_CONFIG_NAME}", batching_file, poll_seconds, config_poll_seconds
    )
    # The image's entrypoint already passes --port=8500 --rest_api_port=8501.
    ports = ["-p", f"{grpc_port}:8500", "-p", f"{rest_port}:8501"]
    return ["docker", "run", "--rm"] + ports + mounts + [image] + flags


# === mmkeras serving-config ===


def serving_image(export_root, names):
    """The `tensorflow/serving` image that runs every named export.

    Each mmkeras export records the TF Serving release its ops were checked
    for (`serving_version` in `assets.extra/mmkeras.json`). A newer server
    runs what an older one does, so the newest target wins; a SavedModel
    without that record counts as needing the newest release.
    """
    targets = []
    for name in names:
        metadata = Path(latest_version_dir(Path(export_root) / name)) / "assets.extra" / "mmkeras.json"
        recorded = json.loads(metadata.read_text())["serving_version"] if metadata.exists() else None
        targets.append(serving_minor(recorded or DEFAULT_SERVING_VERSION))
    newest = max(targets or [DEFAULT_SERVING_VERSION], key=lambda version: tuple(int(part) for part in version.split(".")))
    return f"{IMAGE_REPOSITORY}:{SERVING_IMAGE_TAGS[newest]}"


def _exported_models(export_root, names):
    found = sorted(p.name for p in Path(export_root).iterdir() if latest_version_dir(p))
    if names:
        missing = sorted(set(names) - set(found))
        if missing:
            raise ValueError(
                f"No exported versions for {missing} under {export_root}; found {found}."
            )
        return sorted(names)
    if not found:
        raise ValueError(f"No exported models under {export_root} (expected <name>/<version>/).")
    return found


def _parse_labels(texts):
    """`MODEL:LABEL=VERSION` arguments as `{model: {label: version}}`."""
    labels = {}
    for text in texts:
        match = re.fullmatch(r"([^:=]+):([^:=]+)=([0-9]+)", text)
        if not match:
            raise ValueError(f"Expected --label MODEL:LABEL=VERSION, received {text!r}.")
        model, label, version = match.groups()
        labels.setdefault(model, {})[label] = int(version)
    return labels


def _versions_arg(text):
    if text in ("latest", "all"):
        return text
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'latest', 'all' or version numbers like 1,2; received {text!r}"
        ) from None


def build_arg_parser(parser=None):
    """Adds the `mmkeras serving-config` arguments to a parser (or a new one)."""
    parser = parser or argparse.ArgumentParser(
        prog="mmkeras serving-config",
        description="Write TF Serving config (models.config, batching, example requests).",
    )
    parser.add_argument("export_root", help="folder of <model_name>/<version>/ exports")
    parser.add_argument("--out", default="serving_config", help="folder to write into")
    parser.add_argument(
        "--model", action="append", default=[], help="model to include (repeatable)"
    )
    parser.add_argument(
        "--versions",
        type=_versions_arg,
        default="latest",
        help="latest | all | 1,2 (default: latest, or the labelled versions)",
    )
    parser.add_argument("--label", action="append", default=[], metavar="MODEL:LABEL=VERSION")
    parser.add_argument(
        "--base-path-root",
        default=CONTAINER_MODELS,
        help="where the server sees the export root (default /models, Docker)",
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="write local absolute base paths (bare tensorflow_model_server)",
    )
    parser.add_argument("--rest-port", type=int, default=8501)
    parser.add_argument("--grpc-port", type=int, default=8500)
    parser.add_argument("--image", default=None,
                        help="TF Serving image (default: the release the exports were checked for)")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-micros", type=int, default=2000)
    parser.add_argument("--num-batch-threads", type=int, default=4)
    parser.add_argument("--no-batching", action="store_true")
    return parser


def write_serving_config(args):
    """Writes the files of `mmkeras serving-config`; returns the commands."""
    export_root = Path(args.export_root)
    out = Path(args.out)
    names = _exported_models(export_root, args.model)
    labels = _parse_labels(args.label)
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise ValueError(f"--label names models {unknown} that are not served ({names}).")
    root = str(export_root.resolve()) if args.local else args.base_path_root.rstrip("/")
    models = []
    for name in names:
        versions = args.versions
        if versions == "latest" and labels.get(name):
            # A label must point at a served version: serve the labelled ones.
            versions = sorted(set(labels[name].values()))
        models.append(
            ServedModel(name, f"{root}/{name}", versions=versions, labels=labels.get(name, {}))
        )
    config_file = write_model_config(out / MODEL_CONFIG_NAME, models)
    batching_file = None
    if not args.no_batching:
        batching_file = write_batching_parameters(
            out / BATCHING_NAME,
            max_batch_size=args.max_batch_size,
            batch_timeout_micros=args.batch_timeout_micros,
            num_batch_threads=args.num_batch_threads,
        )
    placeholders = []
    for name in names:
        version_dir = latest_version_dir(export_root / name)
        examples = warmup_examples(version_dir)
        if examples is None:
            examples = placeholder_inputs(version_dir)
            placeholders.append(name)
        write_example_request(out / f"{name}.request.json", examples)
    docker = docker_command(
        export_root,
        out,
        batching=not args.no_batching,
        rest_port=args.rest_port,
        grpc_port=args.grpc_port,
        image=args.image or serving_image(export_root, names),
    )
    local = model_server_command(
        config_file.resolve(),
        batching_parameters_file=batching_file.resolve() if batching_file else None,
        rest_port=args.rest_port,
        grpc_port=args.grpc_port,
    )
    return {
        "models": names,
        "placeholders": placeholders,
        "docker": docker,
        "tensorflow_model_server": local,
        "out": out,
    }


def main(argv=None):
    """`mmkeras serving-config EXPORT_ROOT [...]`: writes config, prints commands.

    Returns:
        the process exit code.
    """
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    try:
        result = write_serving_config(args)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    out = result["out"]
    print(
        f"Wrote {out / MODEL_CONFIG_NAME}"
        + ("" if args.no_batching else f", {out / BATCHING_NAME}")
    )
    print("\nServe with TensorFlow Serving (Docker):")
    print("  " + shlex.join(result["docker"]))
    if args.local:
        print("\nor with a local tensorflow_model_server:")
        print("  " + shlex.join(result["tensorflow_model_server"]))
    print("\nTry it:")
    for name in result["models"]:
        request = out / f"{name}.request.json"
        print(f"  curl -d @{request} http://localhost:{args.rest_port}/v1/models/{name}:predict")
    if result["placeholders"]:
        print(
            f"  ({', '.join(result['placeholders'])}: no warmup requests, so the example "
            'holds placeholders; put real file bytes as {"b64": ...} in binary inputs.)'
        )
    print(
        "\nDevelopment without Docker: "
        + shlex.join(
            [
                "mmkeras",
                "serve",
                str(args.export_root),
                "--model-config-file",
                str(out / MODEL_CONFIG_NAME),
            ]
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
