"""The served models: ``<root>/<name>/<version>/`` folders, loaded when complete, rescanned while serving.

Like TensorFlow Serving, a version is a numbered folder holding a SavedModel. Which
models and versions are served is said by ``keraszoo.serving.model_config``. A
version is only loaded once it is complete (``saved_model.pb`` and the variables'
index and data files are there) and has stopped changing for ``settle_s``
seconds, so a folder that is still being copied is never loaded half-written; a
version that fails to load is retried when its files change.
"""

from __future__ import annotations

import logging
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

from keraszoo.export import RUN_RECORD_DIR, existing_versions
from keraszoo.export import is_complete_version as is_complete
from keraszoo.serving.errors import BadRequest, NotFound
from keraszoo.serving.model_config import ModelSpec, specs_of_root

log = logging.getLogger("keraszoo.serve")  # keraszoo serve prints it on stdout


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
    signature_defs: dict = field(default_factory=dict)  # name -> SignatureDef proto (gRPC metadata)
    loaded_at: float = field(default_factory=time.time)


def _tensor_infos(specs: dict, graph_names: dict[str, str]) -> dict[str, TensorInfo]:
    return {
        key: TensorInfo(name=graph_names.get(key, key), dtype=spec.dtype, shape=tuple(spec.shape.as_list()))
        for key, spec in specs.items()
    }


def _signature_defs(path: Path) -> dict:
    """The SavedModel's SignatureDef protos, as TF Serving's metadata reports them (tensor names such as
    ``saved_model_cli``'s ``StatefulPartitionedCall:1``)."""
    saved_model = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    return dict(saved_model.meta_graphs[0].signature_def)


def load_version(name: str, version: int, path: Path) -> ServedVersion:
    loaded = tf.saved_model.load(str(path))
    signature_defs = _signature_defs(path)
    names = {key: ({k: v.name for k, v in d.inputs.items()}, {k: v.name for k, v in d.outputs.items()})
             for key, d in signature_defs.items()}
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
    served = ServedVersion(name, version, path, signatures, class_names,
                           signature_defs={k: v for k, v in signature_defs.items() if k in signatures})
    served._saved_model = loaded
    return served


def _last_change(path: Path) -> float:
    return max((p.stat().st_mtime for p in path.rglob("*")), default=path.stat().st_mtime)


class ModelRepository:
    """Thread-safe view of the served versions; ``refresh()`` loads and unloads them as the specs say.

    The specs are the model root's folders (every version served), or what ``configure`` was last given
    (a model config file: version policies and labels). A version leaves when its model leaves the specs or
    its policy drops it; requests already holding it finish on it. Its state then reads END, as TF Serving's.
    """

    def __init__(self, root: str | Path | None = None, *, settle_s: float = 0.5, specs: list[ModelSpec] | None = None,
                 load: Callable[[str, int, Path], ServedVersion] | None = None):
        self.root = Path(root) if root is not None else None
        self.settle_s = settle_s
        self._specs = None if specs is None else {spec.name: spec for spec in specs}
        self._load = load or load_version
        self._served: dict[str, dict[int, ServedVersion]] = {}
        self._ended: dict[str, set[int]] = {}
        self._failed: dict[tuple[str, int], float] = {}  # version -> last change when it failed
        self._lock = threading.Lock()

    def configure(self, specs: list[ModelSpec]) -> None:
        """Serve these models from now on (applied by the next ``refresh``)."""
        with self._lock:
            self._specs = {spec.name: spec for spec in specs}

    def specs(self) -> dict[str, ModelSpec]:
        with self._lock:
            if self._specs is not None:
                return dict(self._specs)
        return {spec.name: spec for spec in specs_of_root(self.root)} if self.root is not None else {}

    def refresh(self) -> list[tuple[str, str, int]]:
        """Loads the versions the specs want that are complete and settled, unloads the ones they no longer
        want; returns what changed, as ("loaded" | "unloaded", name, version)."""
        specs, changes = self.specs(), []
        for spec in specs.values():
            wanted = spec.select(self._ready_versions(spec))
            for version in wanted:
                if version not in self._served.get(spec.name, {}) and self._try_load(spec, version):
                    changes.append(("loaded", spec.name, version))
            changes += self._unload(spec.name, [v for v in self._served.get(spec.name, {}) if v not in wanted])
        for name in [n for n in self._served if n not in specs]:
            changes += self._unload(name, list(self._served[name]))
        return changes

    def _ready_versions(self, spec: ModelSpec) -> list[int]:
        """Complete versions whose files stopped changing, and that did not fail to load as they are."""
        ready = []
        for version in existing_versions(spec.base_path) if spec.base_path.is_dir() else []:
            path = spec.base_path / str(version)
            if version in self._served.get(spec.name, {}):
                ready.append(version)
                continue
            if not is_complete(path):
                continue
            changed = _last_change(path)
            if time.time() - changed >= self.settle_s and self._failed.get((spec.name, version)) != changed:
                ready.append(version)
        return ready

    def _try_load(self, spec: ModelSpec, version: int) -> bool:
        path = spec.base_path / str(version)
        try:
            served = self._load(spec.name, version, path)
        except Exception as error:  # noqa: BLE001 - a broken version must not stop the server
            self._failed[(spec.name, version)] = _last_change(path)
            log.warning(f"keraszoo serve: cannot load {path}: {error}")
            return False
        with self._lock:
            self._served.setdefault(spec.name, {})[version] = served
            self._ended.get(spec.name, set()).discard(version)
        return True

    def _unload(self, name: str, versions: list[int]) -> list[tuple[str, str, int]]:
        with self._lock:
            for version in versions:
                del self._served[name][version]
                self._ended.setdefault(name, set()).add(version)
            if not self._served.get(name):
                self._served.pop(name, None)
        return [("unloaded", name, version) for version in versions]

    def models(self) -> dict[str, list[int]]:
        with self._lock:
            return {name: sorted(versions) for name, versions in self._served.items()}

    def states(self, name: str) -> dict[int, str]:
        """Every version of ``name`` this server served: AVAILABLE, or END once unloaded (TF Serving's)."""
        with self._lock:
            states = {v: "END" for v in self._ended.get(name, ())}
            states.update({v: "AVAILABLE" for v in self._served.get(name, {})})
        if not states:
            raise NotFound(f"Could not find any versions of model {name}")
        return states

    def get(self, name: str, version: int | None = None, label: str | None = None) -> ServedVersion:
        """The requested version (by number or label), or the newest one (TF Serving's default)."""
        if label is not None:
            spec = self.specs().get(name)
            if spec is None or label not in spec.labels:
                raise BadRequest(f"Unrecognized servable version label: {label} (model {name!r} has labels "
                                 f"{sorted(spec.labels) if spec else []})")
            version = spec.labels[label]
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
