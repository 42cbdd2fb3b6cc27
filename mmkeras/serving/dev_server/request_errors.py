"""Failed requests, with TF Serving's canonical error codes and HTTP statuses.

Both APIs answer a `RequestError` as TF Serving does: REST with the code's
HTTP status and `{"error": message}`, gRPC with the code as its status.
"""

import re

import tensorflow as tf
from tensorflow.core.protobuf import error_codes_pb2

# TF Serving's mapping of canonical error codes to HTTP statuses
# (model_servers/http_server.cc).
_HTTP_STATUS = {
    "CANCELLED": 499,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "UNAUTHENTICATED": 401,
}


class RequestError(Exception):
    """A request that fails, with TF Serving's canonical error code.

    Args:
        code: canonical code name, e.g. `"INVALID_ARGUMENT"`, `"NOT_FOUND"`.
        message: the message sent to the client.
    """

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self):
        return _HTTP_STATUS.get(self.code, 500)


def invalid_argument(message):
    """The error of a request that is malformed or does not fit the signature.

    >>> invalid_argument("Missing 'inputs' or 'instances' key").http_status
    400
    """
    return RequestError("INVALID_ARGUMENT", message)


def clean_tf_message(message):
    """Drops the Python-side framing TF adds around an op's error message.

    >>> clean_tf_message("Graph execution error:\\n\\nindices[0] = 5 is not in [0, 3) [Op:__inference_f_1]")
    'indices[0] = 5 is not in [0, 3)'
    """
    lines = []
    in_stack = False
    for line in message.splitlines():
        if line.startswith("Graph execution error"):
            continue
        if line.startswith("Detected at node"):
            in_stack = True
            continue
        if in_stack and (not line.strip() or line[0] in " <"):
            continue
        in_stack = False
        lines.append(line)
    text = "\n".join(lines).strip()
    return re.sub(r"\s*\[Op:__inference_[^\]]*\]$", "", text)



def error_code_and_message(error):
    """`(canonical code name, message)` of any error, for a version's load status.

    >>> error_code_and_message(ValueError("bad"))
    ('UNKNOWN', 'ValueError: bad')
    """
    if isinstance(error, RequestError):
        return error.code, error.message
    if isinstance(error, tf.errors.OpError):
        return error_codes_pb2.Code.Name(error.error_code), clean_tf_message(error.message)
    return "UNKNOWN", f"{type(error).__name__}: {error}"

