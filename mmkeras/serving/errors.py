"""The error a client gets from a model server, over REST or gRPC.

Its own module so that the REST and gRPC halves of the client raise the one
class, even when `client.py` runs as `python -m mmkeras.serving.client`.
"""


class ServingError(Exception):
    """An error answered by the model server.

    Attributes:
        message: the server's error message.
        code: the HTTP status (REST) or gRPC status name (gRPC), or None when
            the server could not be reached.
        protocol: `"rest"` or `"grpc"`.

    >>> str(ServingError("Servable not found", 404))
    'Servable not found (HTTP 404)'
    """

    def __init__(self, message, code=None, protocol="rest"):
        self.message = message
        self.code = code
        self.protocol = protocol
        where = f" ({'HTTP ' if protocol == 'rest' else 'gRPC '}{code})" if code else ""
        super().__init__(f"{message}{where}")
