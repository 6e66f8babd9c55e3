"""Serving exported SavedModels over TensorFlow Serving's REST API (server, batching, client)."""

from keraszoo.serving.client import Client, ServingError

__all__ = ["Client", "ServingError"]
