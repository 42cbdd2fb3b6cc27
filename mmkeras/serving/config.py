"""`mmkeras serving-config`: writes what TensorFlow Serving needs, prints how to run it.

Production serving is `tensorflow_model_server` (TF Serving), usually the
`tensorflow/serving` Docker image. For models exported as
`<export_root>/<model_name>/<version>/` this command writes:

- `models.config`: the models, their version policy and version labels
  (`stable`, `canary`), see `mmkeras.serving.models_config`;
- `batching_parameters.txt`: server-side batching defaults, see
  `mmkeras.serving.batching`;
- an example REST request per model, built from the model's warmup requests
  or its signature, see `mmkeras.serving.example_requests`;

and prints the `docker run` and `tensorflow_model_server` command lines
(`mmkeras.serving.server_command`). `mmkeras serve` (the dev server) reads
the same `models.config`.

The public names of those modules stay importable from here.
"""

import argparse
import re
import shlex
from pathlib import Path

from mmkeras.savedmodel import latest_version_dir
from mmkeras.savedmodel import signature_inputs  # noqa: F401 (imported from here)
from mmkeras.serving.batching import batching_parameters  # noqa: F401
from mmkeras.serving.batching import read_batching_parameters  # noqa: F401
from mmkeras.serving.batching import write_batching_parameters
from mmkeras.serving.example_requests import example_request  # noqa: F401
from mmkeras.serving.example_requests import placeholder_inputs
from mmkeras.serving.example_requests import warmup_examples
from mmkeras.serving.example_requests import write_example_request
from mmkeras.serving.models_config import ServedModel
from mmkeras.serving.models_config import model_server_config  # noqa: F401
from mmkeras.serving.models_config import read_model_config  # noqa: F401
from mmkeras.serving.models_config import write_model_config
from mmkeras.serving.server_command import BATCHING_NAME
from mmkeras.serving.server_command import CONTAINER_CONFIG  # noqa: F401
from mmkeras.serving.server_command import CONTAINER_MODELS
from mmkeras.serving.server_command import DEFAULT_IMAGE  # noqa: F401
from mmkeras.serving.server_command import IMAGE_REPOSITORY  # noqa: F401
from mmkeras.serving.server_command import MODEL_CONFIG_NAME
from mmkeras.serving.server_command import docker_command
from mmkeras.serving.server_command import model_server_command
from mmkeras.serving.server_command import serving_image


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
    """Adds the `mmkeras serving-config` arguments to a parser (or a new one).

    >>> args = build_arg_parser().parse_args(["savedmodels", "--versions", "1,2"])
    >>> args.versions, args.base_path_root
    ([1, 2], '/models')
    """
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
    """Writes the files of `mmkeras serving-config`; returns the commands.

    Args:
        args: the parsed arguments (see `build_arg_parser`).

    Returns:
        a dict: `models` (names), `placeholders` (models whose example request
        holds placeholders), `docker` and `tensorflow_model_server` (command
        lines as lists), `out` (the folder written).

    Example:

    >>> args = build_arg_parser().parse_args(["savedmodels", "--out", "serving_config"])
    >>> write_serving_config(args)["docker"][:3]  # doctest: +SKIP
    ['docker', 'run', '--rm']
    """
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

    Example:

    >>> main(["savedmodels", "--out", "serving_config", "--label", "sentiment:stable=1"])  # doctest: +SKIP
    0
    """
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (OSError, ValueError) as error:
        parser.error(str(error))


def run(args):
    """Writes the config the parsed `args` (of `build_arg_parser`) ask for and
    prints the commands; `mmkeras serving-config` calls it."""
    result = write_serving_config(args)
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
