"""Trained models by name: the versions shipped in ``saved_models/``, each with its run record and card.

``keraszoo.load_trained("cifar10_cnn_batchnorm")`` returns the Keras model (to fine-tune, or to take
features from); ``keraszoo models --trained`` lists the names with their numbers; ``keraszoo evaluate`` and
``keraszoo export`` take a name where they take a folder. The root is ``$KERASZOO_MODELS``, else the
``saved_models/`` folder of this checkout (an editable install, as ``run.sh`` makes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from keraszoo.errors import KeraszooError
from keraszoo.export.loading import (
    existing_versions,
    is_complete_version,
    read_run_record,
    recorded_dataset,
    resolve_version_dir,
)

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "saved_models"


class UnknownTrainedModel(KeraszooError):
    exit_code = 2


@dataclass(frozen=True)
class TrainedModel:
    name: str
    version_dir: Path
    dataset: str | None
    test_accuracy: float | None
    validation_accuracy: float | None  # None: made before keraszoo had a validation split
    parameters: int | None
    recipe: str | None


def models_root(root: str | os.PathLike | None = None) -> Path:
    return Path(root or os.environ.get("KERASZOO_MODELS") or DEFAULT_ROOT)


def trained_models(root: str | os.PathLike | None = None) -> dict[str, TrainedModel]:
    """Every model folder under the root with a complete version: its newest one, described by its record."""
    root = models_root(root)
    found = {}
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        complete = [v for v in existing_versions(folder) if is_complete_version(folder / str(v))]
        if not complete:
            continue
        version_dir = folder / str(complete[-1])
        metrics, config = read_run_record(version_dir)
        dataset = recorded_dataset(metrics, config)
        found[folder.name] = TrainedModel(
            name=folder.name, version_dir=version_dir, dataset=dataset, test_accuracy=metrics.get("test_accuracy"),
            validation_accuracy=metrics.get("val_accuracy"),
            parameters=metrics.get("num_params"), recipe=metrics.get("recipe"))
    return found


def find_trained(name: str, root: str | os.PathLike | None = None) -> TrainedModel:
    """The trained model called ``name``; one line listing the names otherwise."""
    models = trained_models(root)
    if name not in models:
        raise UnknownTrainedModel(f"no trained model called {name!r} in {models_root(root)}; the names are: "
                                  f"{', '.join(models) or 'none (export one first)'} (`keraszoo models --trained`).")
    return models[name]


def load_trained(name: str, root: str | os.PathLike | None = None):
    """The trained Keras model called ``name`` (uint8 images in, logits out), rebuilt from its SavedModel."""
    from keraszoo.export.quantize import load_registered

    return load_registered(find_trained(name, root).version_dir)


def resolve_source(source: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """A version folder from a path (a version, or a model folder: its newest) or a trained model's name."""
    path = Path(source)
    if path.exists() or os.sep in str(source):
        return resolve_version_dir(path)
    return find_trained(str(source), root).version_dir
