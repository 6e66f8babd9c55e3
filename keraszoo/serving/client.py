"""A small client for TensorFlow Serving's REST API (keraszoo serve or the real TF Serving)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request


class ServingError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


class Client:
    def __init__(self, url: str = "http://127.0.0.1:8501", *, timeout_s: float = 60.0):
        self.url, self.timeout_s = url.rstrip("/"), timeout_s

    def _path(self, model: str, version: int | None) -> str:
        return f"{self.url}/v1/models/{model}" + (f"/versions/{version}" if version is not None else "")

    def _call(self, url: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            try:
                text = json.loads(text).get("error", text)
            except ValueError:
                pass
            raise ServingError(error.code, text) from None

    def status(self, model: str, version: int | None = None) -> dict:
        return self._call(self._path(model, version))

    def metadata(self, model: str, version: int | None = None) -> dict:
        return self._call(self._path(model, version) + "/metadata")

    def predict(self, model: str, instances=None, *, inputs=None, version: int | None = None,
                signature_name: str | None = None) -> dict:
        """Row format with ``instances`` ({"predictions"}), columnar with ``inputs`` ({"outputs"})."""
        if (instances is None) == (inputs is None):
            raise ValueError("give instances (row format) or inputs (columnar format).")
        body = {"instances": instances} if instances is not None else {"inputs": inputs}
        if signature_name:
            body["signature_name"] = signature_name
        return self._call(self._path(model, version) + ":predict", body)

    def predict_images(self, model: str, images: list[bytes], *, version: int | None = None) -> list[dict]:
        """PNG/JPEG files' bytes in, one {output: values} dict per image out."""
        instances = [{"b64": base64.b64encode(image).decode()} for image in images]
        return self.predict(model, instances, version=version)["predictions"]
