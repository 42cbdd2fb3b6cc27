"""The dev server's lifecycle (start, poll, stop) and `mmkeras serve`.

`DevServer` runs the REST and gRPC APIs over one `ModelRegistry` in threads
of the calling process, and polls the model folders (and `models.config`)
like TF Serving. `main` is the `mmkeras serve` command.
"""

import logging
import signal
import threading
from concurrent import futures

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

from mmkeras.serving.dev_server.grpc_api import ModelService
from mmkeras.serving.dev_server.grpc_api import PredictionService
from mmkeras.serving.dev_server.model_registry import ModelRegistry
from mmkeras.serving.dev_server.rest import RestApi
from mmkeras.serving.dev_server.rest import RestServer
# The arguments live apart so that `mmkeras serve --help` needs no TensorFlow.
from mmkeras.serving.dev_server_arguments import DEFAULT_MAX_BODY_BYTES
from mmkeras.serving.dev_server_arguments import DEFAULT_THREADS
from mmkeras.serving.dev_server_arguments import build_arg_parser

_LOG = logging.getLogger("mmkeras.serving")


class DevServer:
    """Serves SavedModels over TF Serving's REST and gRPC APIs, in-process.

    For development and tests only; production is `tensorflow_model_server`.

    Args:
        base_path: folder of exported models, `<base>/<model_name>/<version>/`
            (or one model's `<base>/<version>/`).
        model_config_file: optional TF Serving `models.config`; its models
            replace the discovered ones, and base paths that do not exist here
            are looked up under `base_path` by their last component.
        host: address to bind; `"127.0.0.1"` keeps it off the network.
        rest_port: REST port; 0 picks a free port, None disables REST.
        grpc_port: gRPC port; 0 picks a free port, None disables gRPC.
        poll_seconds: how often to look for new versions and config changes;
            0 or less turns polling off (call `refresh()` yourself).
        max_body_bytes: largest REST body (and gRPC message) accepted; larger
            REST bodies get HTTP 413.
        threads: worker threads of each API (REST and gRPC): the most
            requests each answers at once. A REST keep-alive connection holds
            a worker only while no other connection waits for one.

    Example:

    >>> import tempfile
    >>> with DevServer(tempfile.mkdtemp(), rest_port=0, grpc_port=0, poll_seconds=0) as server:
    ...     server.rest_url.startswith("http://127.0.0.1:"), server.grpc_port > 0
    (True, True)
    """

    def __init__(
        self,
        base_path=None,
        *,
        model_config_file=None,
        host="127.0.0.1",
        rest_port=8501,
        grpc_port=8500,
        poll_seconds=2.0,
        max_body_bytes=DEFAULT_MAX_BODY_BYTES,
        threads=DEFAULT_THREADS,
    ):
        self.registry = ModelRegistry(base_path, model_config_file)
        self.host = host
        self.poll_seconds = poll_seconds
        self.max_body_bytes = int(max_body_bytes)
        self.threads = int(threads)
        self._requested_ports = (rest_port, grpc_port)
        self.rest_port = None
        self.grpc_port = None
        self._rest = None
        self._rest_thread = None
        self._grpc = None
        self._poller = None
        self._stopping = threading.Event()

    @property
    def rest_url(self):
        """`http://host:port` of the REST API, or None."""
        return None if self.rest_port is None else f"http://{_url_host(self.host)}:{self.rest_port}"

    @property
    def grpc_target(self):
        """`host:port` of the gRPC API, or None."""
        return None if self.grpc_port is None else f"{_url_host(self.host)}:{self.grpc_port}"

    def start(self):
        """Loads the models and starts serving; returns self."""
        _import_tf_text_ops()
        self.registry.refresh()
        rest_port, grpc_port = self._requested_ports
        try:
            if rest_port is not None:
                self._start_rest(rest_port)
            if grpc_port is not None:
                self._start_grpc(grpc_port)
        except BaseException:
            self.stop()
            raise
        if self.poll_seconds and self.poll_seconds > 0:
            self._poller = threading.Thread(
                target=self._poll, name="mmkeras-dev-server-poll", daemon=True
            )
            self._poller.start()
        return self

    def refresh(self):
        """Polls the model folders (and config) now."""
        self.registry.refresh()

    def stop(self):
        """Stops serving and polling; safe to call twice."""
        self._stopping.set()
        if self._rest is not None:
            self._rest.shutdown()
            self._rest.server_close()
            self._rest_thread.join(timeout=10)
            self._rest = None
        if self._grpc is not None:
            self._grpc.stop(grace=None).wait(timeout=10)
            self._grpc = None
        if self._poller is not None:
            self._poller.join(timeout=60)
            self._poller = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def _start_rest(self, port):
        api = RestApi(self.registry)
        self._rest = RestServer((self.host, port), api, self.max_body_bytes, self.threads)
        self.rest_port = self._rest.server_address[1]
        self._rest_thread = threading.Thread(
            target=self._rest.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="mmkeras-dev-server-rest",
            daemon=True,
        )
        self._rest_thread.start()

    def _start_grpc(self, port):
        options = [
            ("grpc.max_receive_message_length", self.max_body_bytes),
            ("grpc.max_send_message_length", -1),
        ]
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.threads), options=options
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionService(self.registry), self._grpc
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelService(self.registry), self._grpc
        )
        bound = self._grpc.add_insecure_port(f"{_url_host(self.host)}:{port}")
        if not bound:
            raise OSError(f"Cannot bind gRPC to {self.host}:{port}.")
        self.grpc_port = bound
        self._grpc.start()

    def _poll(self):
        while not self._stopping.wait(self.poll_seconds):
            try:
                self.registry.refresh()
            except Exception:  # Polling goes on after a bad config or folder.
                _LOG.exception("Polling the model folders failed")


def _url_host(host):
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _import_tf_text_ops():
    # Text models use TF Text ops; importing the package registers them.
    try:
        import tensorflow_text  # noqa: F401
    except ImportError:
        _LOG.warning("tensorflow_text is not installed; text models will not load.")


# === mmkeras serve ===


def main(argv=None):
    """`mmkeras serve BASE [...]`: serves until Ctrl-C or SIGTERM.

    Returns:
        the process exit code.

    Example:

    >>> main(["savedmodels", "--rest-port", "8501", "--no-grpc"])  # doctest: +SKIP
    model sentiment: versions [1]
      REST  http://127.0.0.1:8501/v1/models/sentiment:predict
    Development server: for production run TensorFlow Serving (tensorflow_model_server; ...).
    """
    parser = build_arg_parser()
    try:
        return run(parser.parse_args(argv))
    except ValueError as error:
        parser.error(str(error))


def run(args):
    """Serves as the parsed `args` (of `build_arg_parser`) say; `mmkeras serve` calls it."""
    if args.base is None and args.model_config_file is None:
        raise ValueError("give BASE, --model-config-file, or both")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        _LOG.warning("Binding %s: the dev server has no authentication.", args.host)
    server = DevServer(
        args.base,
        model_config_file=args.model_config_file,
        host=args.host,
        rest_port=args.rest_port,
        grpc_port=None if args.no_grpc else args.grpc_port,
        poll_seconds=args.poll_seconds,
        max_body_bytes=args.max_body_bytes,
        threads=args.threads,
    )
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    _print_banner(server)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _print_banner(server):
    for name in server.registry.model_names():
        versions = server.registry.available_versions(name)
        print(f"model {name}: versions {versions or 'none yet'}")
        if server.rest_url:
            print(f"  REST  {server.rest_url}/v1/models/{name}:predict")
    if server.grpc_target:
        print(f"gRPC  {server.grpc_target}")
    print(
        "Development server: for production run TensorFlow Serving "
        "(tensorflow_model_server; `mmkeras serving-config` writes its config).",
        flush=True,
    )
