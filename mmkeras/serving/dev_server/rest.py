"""TF Serving's REST API (port 8501) over HTTP.

- `GET /v1/models/{name}[/versions/{v}|/labels/{l}]`: version status;
- `GET .../metadata`: the SignatureDefs;
- `POST .../{name}[...]:predict`: row or columnar JSON, see `rest_json`.

Errors answer `{"error": "..."}` with TF Serving's HTTP status for the
error's code. Bodies have a size limit (HTTP 413 beyond it). Connections are
served by a bounded pool of worker threads (`RestServer`).
"""

import http.server
import json
import logging
import queue
import re
import selectors
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

from google.protobuf import json_format

from mmkeras.serving.dev_server.request_errors import RequestError
from mmkeras.serving.dev_server.request_errors import invalid_argument
from mmkeras.serving.dev_server.rest_json import format_predictions
from mmkeras.serving.dev_server.rest_json import inputs_to_arrays
from mmkeras.serving.dev_server.rest_json import instances_to_arrays
from mmkeras.serving.dev_server.rest_json import parse_predict_body
from mmkeras.serving.dev_server.signatures import metadata_response
from mmkeras.serving.dev_server.signatures import run_signature
from mmkeras.serving.dev_server.signatures import signature_def_map
from mmkeras.serving.dev_server.signatures import signature_def_of

_LOG = logging.getLogger("mmkeras.serving")

_PREDICT_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
    r":(classify|regress|predict)",
    re.IGNORECASE,
)
_GET_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
# How long a worker waits on an idle keep-alive connection before it looks
# whether other connections wait for a worker (and then closes this one).
_IDLE_TICK_SECONDS = 0.2
_STOP_SECONDS = 10.0  # server_close waits this long for answers in progress


def _version_number(text):
    """A REST path's version as an int64, None when absent."""
    if not text:
        return None
    version = int(text)
    if version >= 2**63:
        raise invalid_argument(f"Version {text} is out of range: versions are int64.")
    return version



def metadata_json(servable):
    """GET .../metadata, in TF Serving's JSON shape.

    >>> from types import SimpleNamespace
    >>> servable = SimpleNamespace(name="tiny", version=2, signature_defs={})
    >>> metadata_json(servable)["model_spec"]["version"]
    '2'
    """
    response = metadata_response(servable)
    signature_map = signature_def_map(servable)
    options = dict(preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return {
        "model_spec": json_format.MessageToDict(response.model_spec, **options),
        "metadata": {"signature_def": json_format.MessageToDict(signature_map, **options)},
    }


class RestApi:
    """TF Serving's REST API over a ModelRegistry, independent of HTTP.

    Example:

    >>> import tempfile
    >>> from mmkeras.serving.dev_server.model_registry import ModelRegistry
    >>> api = RestApi(ModelRegistry(tempfile.mkdtemp()))
    >>> api.handle("GET", "/v1/models/sentiment", b"")
    Traceback (most recent call last):
    ...
    mmkeras.serving.dev_server.request_errors.RequestError: Could not find any versions of model sentiment
    """

    def __init__(self, registry):
        self.registry = registry

    def handle(self, method, path, body):
        """Answers one request.

        Returns:
            `(http_status, json_payload)`; errors raise `RequestError`.
        """
        if method == "POST":
            match = _PREDICT_PATH.fullmatch(path)
            if match:
                name, version, label, verb = match.groups()
                servable = self._servable(name, version, label)
                if verb.lower() != "predict":
                    raise RequestError(
                        "UNIMPLEMENTED",
                        f"The mmkeras dev server implements :predict only, not :{verb}; "
                        "use tensorflow_model_server for it.",
                    )
                return 200, self._predict(servable, body)
        elif method == "GET":
            match = _GET_PATH.fullmatch(path)
            if match:
                return 200, self._get(*match.groups())
        raise invalid_argument(f"Malformed request: {method} {path}")

    def _servable(self, name, version, label):
        name = urllib.parse.unquote(name)
        label = urllib.parse.unquote(label) if label else None
        return self.registry.servable(name, _version_number(version), label)

    def _predict(self, servable, body):
        signature_name, form, payload = parse_predict_body(body)
        _, signature_def = signature_def_of(servable, signature_name)
        if not signature_def.inputs:
            raise invalid_argument(f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
        if form == "row":
            inputs = instances_to_arrays(payload, signature_def.inputs)
        else:
            inputs = inputs_to_arrays(payload, signature_def.inputs)
        _, outputs = run_signature(servable, signature_name, inputs)
        return format_predictions(outputs, form)

    def _get(self, name, version, label, subresource):
        if not name:
            raise invalid_argument("Missing model name in request.")
        if subresource:
            return metadata_json(self._servable(name, version, label))
        name = urllib.parse.unquote(name)
        label = urllib.parse.unquote(label) if label else None
        response = self.registry.status(name, _version_number(version), label)
        return json_format.MessageToDict(response, always_print_fields_with_no_presence=True)


class _RestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mmkeras-dev-server"
    # Each read of a request (a header line, the body) must arrive within
    # this many seconds: a stalled client must not hold a worker for ever.
    timeout = 30
    # Headers and body go out as two writes; with Nagle's algorithm the
    # second waits for the client's delayed ACK (about 40 ms per keep-alive answer).
    disable_nagle_algorithm = True

    def handle(self):
        # BaseHTTPRequestHandler.handle, with a fair wait between requests.
        self.close_connection = False
        while not self.close_connection and self._next_request_arrives():
            self.handle_one_request()

    def _next_request_arrives(self):
        """Waits for the connection's next request; False to close it instead.

        With a bounded pool, a worker waiting on an idle keep-alive connection
        would starve connections queued for a worker: it gives the idle one up
        (closes it, as HTTP/1.1 lets a server do) once another waits, or the
        server stops.
        """
        if self._request_buffered():
            return True
        # A selector, not select(): that fails on descriptors past 1024.
        with selectors.DefaultSelector() as selector:
            selector.register(self.connection, selectors.EVENT_READ)
            while not selector.select(_IDLE_TICK_SECONDS):
                if self.server.busy():
                    return False
        return True

    def _request_buffered(self):
        # A pipelined request may already sit in rfile's buffer, where the
        # selector cannot see it: peek without blocking.
        try:
            self.connection.setblocking(False)
            return bool(self.rfile.peek(1))
        except OSError:
            return False
        finally:
            self.connection.settimeout(self.timeout)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def _refuse_method(self):
        self._send(400, {"error": f"Unsupported HTTP method {self.command}: the API takes GET and POST."},
                   close=True)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    def log_message(self, format, *args):
        _LOG.debug("%s %s", self.address_string(), format % args)

    def _handle(self, method):
        path = urllib.parse.urlsplit(self.path).path
        try:
            body = self._read_body() if method == "POST" else b""
        except TimeoutError:
            self._send(408, {"error": f"The request body stalled for {self.timeout} s."}, close=True)
            return
        if body is None:
            return
        try:
            if not re.match(r"(?i)/v1/", path):
                self._send(404, {"error": f"Not found: {method} {path}"})
                return
            status, payload = self.server.api.handle(method, path, body)
        except RequestError as error:
            status, payload = error.http_status, {"error": error.message}
        except Exception as error:  # The server keeps serving whatever happens.
            _LOG.exception("Internal error on %s %s", method, path)
            status, payload = 500, {"error": f"Internal: {type(error).__name__}: {error}"}
        self._send(status, payload)

    def handle_expect_100(self):
        # curl sends "Expect: 100-continue" for larger bodies: refuse an
        # oversize one before the client sends it.
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.server.max_body_bytes:
            self._send_too_large(int(length))
            return False
        return super().handle_expect_100()

    def _send_too_large(self, length):
        limit = self.server.max_body_bytes
        message = f"Request body of {length} bytes exceeds the limit of {limit} bytes."
        self._send(413, {"error": message}, close=True)

    def _read_body(self):
        """The request body, or None once an error was answered."""
        length = self.headers.get("Content-Length")
        if length is None and self.headers.get("Transfer-Encoding", "").strip().lower() == "chunked":
            return self._read_chunked_body()
        if length is None:
            self._send(411, {"error": "A Content-Length header (or a chunked body) is required."},
                       close=True)
            return None
        try:
            length = int(length)
            if length < 0:
                raise ValueError(length)
        except ValueError:
            self._send(400, {"error": f"Invalid Content-Length: {length!r}"}, close=True)
            return None
        if length > self.server.max_body_bytes:
            self._send_too_large(length)
            self._discard(length)
            return None
        return self.rfile.read(length)

    def _read_chunked_body(self):
        """A `Transfer-Encoding: chunked` body, within the body limit; None once answered."""
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
                if size < 0:
                    raise ValueError(size)
            except ValueError:
                self._send(400, {"error": f"Invalid chunk size line: {line[:40]!r}"}, close=True)
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields
                return b"".join(parts)
            total += size
            if total > self.server.max_body_bytes:
                self._send_too_large(total)
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)  # the CRLF after the chunk

    def _discard(self, length):
        # Reading a bounded part of the refused body lets most clients read
        # the 413 answer instead of seeing a reset connection.
        remaining = min(length, 16 * 1024 * 1024)
        self.connection.settimeout(1.0)
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass

    def _send(self, status, payload, close=False):
        data = json.dumps(payload, indent=1).encode("utf-8") + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        # A keep-alive connection gives its worker up to connections waiting for one.
        if close or self.server.busy():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)


class RestServer(socketserver.TCPServer):
    """The REST API over HTTP/1.1, served by a bounded pool of worker threads.

    One thread (`serve_forever`) accepts connections and queues them;
    `threads` workers each serve one connection at a time, request after
    request while the client keeps it alive. A worker hands its connection
    back when others wait for a worker: the answer says `Connection: close`,
    and an idle connection is closed after a short wait, so a few idle
    keep-alive clients cannot starve the rest. `server_close` lets answers in
    progress finish and closes queued and idle connections.

    Args:
        address: `(host, port)` to bind; port 0 picks a free one.
        api: the `RestApi` answering requests.
        max_body_bytes: largest request body accepted.
        threads: worker threads, the most requests answered at once.

    Example:

    >>> import tempfile
    >>> from mmkeras.serving.dev_server.model_registry import ModelRegistry
    >>> server = RestServer(("127.0.0.1", 0), RestApi(ModelRegistry(tempfile.mkdtemp())), 1024)
    >>> server.server_address[1] > 0
    True
    >>> server.server_close()
    """

    allow_reuse_address = True
    request_queue_size = 128  # listen backlog: many clients may connect at once

    def __init__(self, address, api, max_body_bytes, threads=8):
        if threads < 1:
            raise ValueError(f"threads must be at least 1, received {threads}.")
        self.api = api
        self.max_body_bytes = max_body_bytes
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._connections = queue.Queue()  # accepted, waiting for a worker; None stops one
        self._stopping = threading.Event()
        self._workers = []
        super().__init__(address, _RestHandler)
        for index in range(threads):
            worker = threading.Thread(
                target=self._work, name=f"mmkeras-dev-server-rest-{index}", daemon=True
            )
            worker.start()
            self._workers.append(worker)

    def busy(self):
        """True when connections wait for a worker, or the server stops."""
        return self._stopping.is_set() or not self._connections.empty()

    def process_request(self, request, client_address):
        # serve_forever's thread only queues: the workers answer.
        self._connections.put((request, client_address))

    def _work(self):
        while (item := self._connections.get()) is not None:
            request, client_address = item
            try:
                if not self._stopping.is_set():
                    self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)

    def handle_error(self, request, client_address):
        # A client hanging up mid-answer is routine, not a server error.
        if isinstance(sys.exc_info()[1], ConnectionError):
            _LOG.debug("Connection from %s lost", client_address, exc_info=True)
        else:
            _LOG.exception("Error serving a connection from %s", client_address)

    def server_close(self):
        """Closes the socket and stops the workers (after `shutdown()`, if serving)."""
        super().server_close()
        self._stopping.set()
        for _ in self._workers:
            self._connections.put(None)  # after the queued connections, which get closed
        deadline = time.monotonic() + _STOP_SECONDS
        for worker in self._workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
