"""The served models: ``<root>/<name>/<version>/`` folders, loaded when complete, rescanned while serving.

Like TensorFlow Serving, a version is a numbered folder holding a SavedModel. A
version is only loaded once it is complete (``saved_model.pb`` and the variables'
index and data files are there) and has stopped changing for ``settle_s``
seconds, so a folder that is still being copied is never loaded half-written; a
version that fails to load is retried when its files change.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

from keraszoo.export import RUN_RECORD_DIR, existing_versions
from keraszoo.export import is_complete_version as is_complete
from keraszoo.serving.errors import NotFound


@dataclass
class TensorInfo:
    name: str
    dtype: tf.DType
    shape: tuple  # None for unknown dimensions, the batch one first

    def as_json(self) -> dict:
        return {
            "dtype": types_pb2.DataType.Name(self.dtype.as_datatype_enum),  # e.g. DT_FLOAT, DT_UINT8
            "tensor_shape": {"dim": [{"size": str(-1 if d is None else d)} for d in self.shape],
                             "unknown_rank": False},
            "name": self.name,
        }


@dataclass
class Signature:
    function: object  # the concrete function
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]


@dataclass
class ServedVersion:
    name: str
    version: int
    path: Path
    signatures: dict[str, Signature]
    class_names: list[str] | None = None
    loaded_at: float = field(default_factory=time.time)


def _tensor_infos(specs: dict, graph_names: dict[str, str]) -> dict[str, TensorInfo]:
    return {
        key: TensorInfo(name=graph_names.get(key, key), dtype=spec.dtype, shape=tuple(spec.shape.as_list()))
        for key, spec in specs.items()
    }


def _signature_tensor_names(path: Path) -> dict[str, tuple[dict, dict]]:
    """Each signature's input and output tensor names as the SavedModel stores them (``saved_model_cli``'s
    ``StatefulPartitionedCall:1``), which is what TF Serving's metadata reports."""
    saved_model = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    return {
        key: ({k: v.name for k, v in signature.inputs.items()}, {k: v.name for k, v in signature.outputs.items()})
        for key, signature in saved_model.meta_graphs[0].signature_def.items()
    }


def load_version(name: str, version: int, path: Path) -> ServedVersion:
    loaded = tf.saved_model.load(str(path))
    names = _signature_tensor_names(path)
    signatures = {}
    for signature_name, function in loaded.signatures.items():
        input_names, output_names = names.get(signature_name, ({}, {}))
        signatures[signature_name] = Signature(
            function=function,
            inputs=_tensor_infos(function.structured_input_signature[1], input_names),
            outputs=_tensor_infos(function.structured_outputs, output_names),
        )
    class_names = None
    metrics = path / RUN_RECORD_DIR / "metrics.json"
    if metrics.is_file():
        class_names = json.loads(metrics.read_text()).get("class_names")
    # Keep the loaded object alive: the signatures' variables belong to it.
    served = ServedVersion(name, version, path, signatures, class_names)
    served._saved_model = loaded
    return served


def _last_change(path: Path) -> float:
    return max((p.stat().st_mtime for p in path.rglob("*")), default=path.stat().st_mtime)


class ModelRepository:
    """Thread-safe view of the model root; ``refresh()`` loads new complete versions."""

    def __init__(self, root: str | Path, *, settle_s: float = 0.5):
        self.root = Path(root)
        self.settle_s = settle_s
        self._served: dict[str, dict[int, ServedVersion]] = {}
        self._failed: dict[tuple[str, int], float] = {}  # version -> last change when it failed
        self._lock = threading.Lock()

    def refresh(self) -> list[tuple[str, int]]:
        """Loads versions that appeared (complete and settled); returns the ones loaded."""
        loaded = []
        if not self.root.is_dir():
            return loaded
        for model_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for version in existing_versions(model_dir):
                if version in self._served.get(model_dir.name, {}):
                    continue
                path = model_dir / str(version)
                if not is_complete(path):
                    continue
                changed = _last_change(path)
                if time.time() - changed < self.settle_s or self._failed.get((model_dir.name, version)) == changed:
                    continue
                try:
                    served = load_version(model_dir.name, version, path)
                except Exception as error:  # noqa: BLE001 - a broken version must not stop the server
                    self._failed[(model_dir.name, version)] = changed
                    print(f"keraszoo serve: cannot load {path}: {error}", flush=True)
                    continue
                with self._lock:
                    self._served.setdefault(model_dir.name, {})[version] = served
                loaded.append((model_dir.name, version))
        return loaded

    def models(self) -> dict[str, list[int]]:
        with self._lock:
            return {name: sorted(versions) for name, versions in self._served.items()}

    def get(self, name: str, version: int | None = None) -> ServedVersion:
        """The requested version, or the newest one (TF Serving's default policy)."""
        with self._lock:
            versions = self._served.get(name)
            if not versions:
                known = ", ".join(sorted(self._served)) or "none"
                raise NotFound(f"Servable not found for request: model {name!r} (models served: {known})")
            if version is None:
                return versions[max(versions)]
            if version not in versions:
                raise NotFound(
                    f"Servable not found for request: Specific({name}, {version}); "
                    f"versions served: {sorted(versions)}"
                )
            return versions[version]


def run_signature(signature: Signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    outputs = signature.function(**{key: tf.constant(value) for key, value in inputs.items()})
    return {key: value.numpy() for key, value in outputs.items()}
