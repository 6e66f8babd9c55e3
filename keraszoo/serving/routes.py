"""Which request a path is, matched as TensorFlow Serving matches it (``http_rest_api_util.cc``).

The path is the raw one, before percent-decoding: like TF Serving's RE2 patterns, the
version is ASCII ``[0-9]+`` (``%C2%B2``, a superscript two, is not a number), and only
the model name is decoded afterwards. The match ignores case (``/V1/MODELS/x:predict``
works) but the method after the colon and the ``metadata`` suffix are compared
exactly, as TF Serving's handler does. Any other path under ``/v1/`` is "Malformed
request" (400, also for a trailing slash); a path elsewhere is 404.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from keraszoo.serving.errors import BadRequest, NotFound

INT64_MAX = 2**63 - 1
_VERSION = r"(?:/versions/([0-9]+)|/labels/([^/:]+))?"
_PREDICT = re.compile(r"/v1/models/([^/:]+)" + _VERSION + r":(classify|regress|predict)", re.IGNORECASE)
_STATUS = re.compile(r"/v1/models(?:/([^/:]+))?" + _VERSION + r"(?:/(metadata))?", re.IGNORECASE)
_API = re.compile(r"/v1/", re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    kind: str  # "predict", "status" or "metadata"
    name: str
    version: int | None
    label: str | None = None  # /labels/<label>: the version a model config file names so


def parse_target(method: str, raw_path: str) -> Target:
    """The request a method and raw path make, or BadRequest/NotFound saying why there is none."""
    if not _API.match(raw_path):
        raise NotFound(f"Not Found: {method} {raw_path}")
    malformed = BadRequest(f"Malformed request: {method} {raw_path} (the API is POST /v1/models/<name>"
                           "[/versions/<number>]:predict and GET /v1/models/<name>[/versions/<number>][/metadata])")
    pattern = {"POST": _PREDICT, "GET": _STATUS}.get(method)
    match = pattern.fullmatch(raw_path) if pattern else None
    if match is None:
        raise malformed
    name, version, label, suffix = match.groups()
    if method == "POST" and suffix != "predict":
        if suffix in ("classify", "regress"):
            raise BadRequest(f"keraszoo serve answers :predict only; :{suffix} needs a tf.Example signature.")
        raise malformed  # ":PREDICT": TF Serving compares the method exactly
    if not name:
        raise BadRequest("Missing model name in request.")
    if version is not None and int(version) > INT64_MAX:
        raise BadRequest(f"Failed to convert version: {version} to numeric.")
    kind = "predict" if method == "POST" else ("metadata" if suffix == "metadata" else "status")
    return Target(kind, unquote(name), None if version is None else int(version),
                  None if label is None else unquote(label))
