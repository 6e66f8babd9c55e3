"""The client's mistakes, each with the HTTP status and the gRPC code TF Serving gives it. A leaf: no TensorFlow."""


class ServingRequestError(ValueError):
    status = 400
    code = "INVALID_ARGUMENT"  # the gRPC status code's name (grpc.StatusCode.<code>)


class BadRequest(ServingRequestError):
    """Malformed, or does not fit the signature: TF Serving's INVALID_ARGUMENT (HTTP 400)."""


class NotFound(ServingRequestError, LookupError):
    """Unknown model, version or label: TF Serving's NOT_FOUND (HTTP 404)."""

    status = 404
    code = "NOT_FOUND"


class PayloadTooLarge(ServingRequestError):
    """A body over ``--max-body-bytes`` (HTTP 413; TF Serving has no such limit; gRPC: RESOURCE_EXHAUSTED)."""

    status = 413
    code = "RESOURCE_EXHAUSTED"


class TooManyExamples(ServingRequestError):
    """More examples than ``--max-instances`` in one request (HTTP 400; gRPC: RESOURCE_EXHAUSTED)."""

    code = "RESOURCE_EXHAUSTED"


class DeadlineExceeded(ServingRequestError):
    """The request outlived ``--rest-api-timeout-ms`` or its gRPC deadline (HTTP 504, as TF Serving maps it)."""

    status = 504
    code = "DEADLINE_EXCEEDED"
