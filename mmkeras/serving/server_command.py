"""How to run TensorFlow Serving: the `tensorflow_model_server` and `docker run` lines.

Production serving is `tensorflow_model_server`, usually the
`tensorflow/serving` Docker image. The export root is mounted at `/models`
and the folder of `models.config` (and `batching_parameters.txt`) at
`/config`.
"""

from pathlib import Path

from mmkeras.savedmodel import latest_version_dir
from mmkeras.savedmodel import read_metadata
from mmkeras.serving.op_check import DEFAULT_SERVING_VERSION
from mmkeras.serving.op_check import SERVING_IMAGE_TAGS
from mmkeras.serving.op_check import serving_minor

IMAGE_REPOSITORY = "tensorflow/serving"
DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:{SERVING_IMAGE_TAGS[DEFAULT_SERVING_VERSION]}"
CONTAINER_MODELS = "/models"
CONTAINER_CONFIG = "/config"
MODEL_CONFIG_NAME = "models.config"
BATCHING_NAME = "batching_parameters.txt"



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

    >>> model_server_command("serving/models.config")[:3]
    ['tensorflow_model_server', '--port=8500', '--rest_api_port=8501']
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

    Example:

    >>> command = docker_command("savedmodels", "serving_config")
    >>> command[:7]
    ['docker', 'run', '--rm', '-p', '8500:8500', '-p', '8501:8501']
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



def serving_image(export_root, names):
    """The `tensorflow/serving` image that runs every named export.

    Each mmkeras export records the TF Serving release its ops were checked
    for (`serving_version` in `assets.extra/mmkeras.json`). A newer server
    runs what an older one does, so the newest target wins; a SavedModel
    without that record counts as needing the newest release.

    >>> import tempfile
    >>> version_dir = Path(tempfile.mkdtemp()) / "sentiment" / "1"
    >>> (version_dir / "assets.extra").mkdir(parents=True)
    >>> _ = (version_dir / "saved_model.pb").write_bytes(b"")
    >>> _ = (version_dir / "assets.extra" / "mmkeras.json").write_text('{"serving_version": "2.19"}')
    >>> serving_image(version_dir.parent.parent, ["sentiment"])
    'tensorflow/serving:2.19.0'
    """
    targets = []
    for name in names:
        metadata = read_metadata(latest_version_dir(Path(export_root) / name))
        recorded = metadata["serving_version"] if metadata is not None else None
        targets.append(serving_minor(recorded or DEFAULT_SERVING_VERSION))
    newest = max(targets or [DEFAULT_SERVING_VERSION], key=lambda version: tuple(int(part) for part in version.split(".")))
    return f"{IMAGE_REPOSITORY}:{SERVING_IMAGE_TAGS[newest]}"
