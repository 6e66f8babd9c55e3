"""Which models and versions to serve: a model root's folders, or TF Serving's ``--model_config_file``.

Without a config file every folder under the model root is a model and every complete version of it is
served (the newest answers requests that name no version). With one, the file is TF Serving's text format
of ``ModelServerConfig`` (``g3doc/serving_config.md``), parsed by TF Serving's own proto::

    model_config_list {
      config {
        name: "cifar10_cnn"
        base_path: "/models/cifar10_cnn"          # absolute, or relative to the config file's folder
        model_platform: "tensorflow"
        model_version_policy { latest { num_versions: 2 } }   # or all {} / specific { versions: 1 versions: 3 }
        version_labels { key: "stable" value: 1 }
        version_labels { key: "canary" value: 3 }
      }
    }

TF Serving's default policy, with no ``model_version_policy``, is the latest version only. A label may
only name a version the policy serves (TF Serving refuses others unless told otherwise); a file that
breaks a rule is refused as a whole, in one line, and the configuration before it keeps serving.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from keraszoo.serving.errors import ServingRequestError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ModelConfigError(ServingRequestError):
    """A model config file (or a reload request) that cannot be applied: TF Serving's INVALID_ARGUMENT."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    base_path: Path
    policy: str = "all"  # "latest", "all" or "specific"
    num_versions: int = 1  # latest
    versions: tuple[int, ...] = ()  # specific
    labels: dict[str, int] = field(default_factory=dict, hash=False, compare=True)

    def select(self, available: list[int]) -> list[int]:
        """The versions this policy serves among the complete ones on disk (ascending)."""
        available = sorted(available)
        if self.policy == "latest":
            return available[-self.num_versions:]
        if self.policy == "specific":
            return [v for v in available if v in self.versions]
        return available


def specs_of_root(root: str | Path) -> list[ModelSpec]:
    """Every folder of ``root`` (hidden ones aside) as a model whose versions are all served."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [ModelSpec(p.name, p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def read_model_config(path: str | Path) -> list[ModelSpec]:
    """The models a config file asks for; ModelConfigError (one line) for a file that cannot be used."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ModelConfigError(f"cannot read the model config file {path}: {error}") from None
    return parse_model_config(text, base=path.parent, where=str(path))


def parse_model_config(text: str, *, base: Path, where: str = "the model config") -> list[ModelSpec]:
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    try:
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as error:
        raise ModelConfigError(f"{where} is not a ModelServerConfig in text format: {error}") from None
    return specs_of_proto(config, base=base, where=where)


def specs_of_proto(config, *, base: Path, where: str) -> list[ModelSpec]:
    """ModelSpecs of a ModelServerConfig message (from a file, or a gRPC reload request)."""
    if config.WhichOneof("config") != "model_config_list":
        raise ModelConfigError(f"{where}: give a model_config_list (custom_model_config is not supported).")
    specs, names = [], set()
    for entry in config.model_config_list.config:
        if not NAME.match(entry.name) or entry.name in names:
            raise ModelConfigError(f"{where}: model name {entry.name!r} is empty, repeated, or not letters, digits, "
                                   "'_', '-' and '.'.")
        if entry.model_platform not in ("", "tensorflow"):
            raise ModelConfigError(f"{where}: model {entry.name!r} has model_platform {entry.model_platform!r}; "
                                   "keraszoo serves SavedModels (\"tensorflow\").")
        if not entry.base_path:
            raise ModelConfigError(f"{where}: model {entry.name!r} has no base_path.")
        names.add(entry.name)
        specs.append(_spec(entry, base, where))
    return specs


def _spec(entry, base: Path, where: str) -> ModelSpec:
    policy = entry.model_version_policy
    choice = policy.WhichOneof("policy_choice") or "latest"  # TF Serving's default: the newest version only
    num_versions = policy.latest.num_versions or 1
    versions = tuple(sorted(policy.specific.versions))
    if choice == "specific" and not versions:
        raise ModelConfigError(f"{where}: model {entry.name!r} has a specific policy naming no version.")
    spec = ModelSpec(entry.name, base / entry.base_path, choice, num_versions, versions, dict(entry.version_labels))
    for label, version in spec.labels.items():
        if not NAME.match(label) or version < 0:
            raise ModelConfigError(f"{where}: model {entry.name!r}: label {label!r} -> {version} is not a name "
                                   "and a version number.")
        if choice == "specific" and version not in versions:
            raise ModelConfigError(f"{where}: model {entry.name!r}: label {label!r} names version {version}, which "
                                   f"its policy does not serve ({list(versions)}).")
    return spec
