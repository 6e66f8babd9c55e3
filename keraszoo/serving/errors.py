"""The client's mistakes, each with the HTTP status TF Serving gives it. A leaf: no TensorFlow."""


class ServingRequestError(ValueError):
    status = 400


class BadRequest(ServingRequestError):
    """Malformed, or does not fit the signature: TF Serving's INVALID_ARGUMENT (HTTP 400)."""


class NotFound(ServingRequestError, LookupError):
    """Unknown model or version: TF Serving's NOT_FOUND (HTTP 404)."""

    status = 404


class PayloadTooLarge(ServingRequestError):
    """A body over ``--max-body-bytes`` (HTTP 413; TF Serving has no such limit)."""

    status = 413
