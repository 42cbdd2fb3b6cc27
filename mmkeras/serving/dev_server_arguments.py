"""The `mmkeras serve` arguments, in a module without TensorFlow: the `mmkeras`
command builds every subcommand's parser for `--help`, and only `serve`
itself loads the dev server (`mmkeras.serving.dev_server`)."""

import argparse

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_THREADS = 8


def build_arg_parser(parser=None):
    """Adds the `mmkeras serve` arguments to a parser (or a new one).

    >>> args = build_arg_parser().parse_args(["savedmodels", "--no-grpc"])
    >>> args.base, args.rest_port, args.no_grpc
    ('savedmodels', 8501, True)
    """
    parser = parser or argparse.ArgumentParser(
        prog="mmkeras serve",
        description=(
            "Development stand-in for TensorFlow Serving (REST + gRPC). "
            "Production: tensorflow_model_server; see `mmkeras serving-config`."
        ),
    )
    parser.add_argument("base", nargs="?", help="export root: BASE/<model_name>/<version>/")
    parser.add_argument("--rest-port", type=int, default=8501)
    parser.add_argument("--grpc-port", type=int, default=8500)
    parser.add_argument("--no-grpc", action="store_true", help="serve REST only")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--poll-seconds", type=float, default=2.0)
    parser.add_argument("--model-config-file", help="TF Serving models.config")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="worker threads of each API: the most requests each answers at once")
    return parser
