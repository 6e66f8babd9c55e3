"""Reading what ``saved_model`` wrote: version folders, their SavedModel, its signature, the Keras model.

TF Serving's layout: ``<root>/<name>/<version>/``, the highest complete numeric version served.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from pathlib import Path

import keras
import tensorflow as tf

SIGNATURE_NAME = "serving_default"
RUN_RECORD_DIR = "run_record"
# The Keras architecture, so analysis tools and fine-tuning can rebuild the model
# from an export (TF Serving ignores files it does not know).
KERAS_CONFIG_FILE = "keras_model.json"
_VERSION = re.compile(r"^[0-9]+$")


def existing_versions(model_dir: str | os.PathLike) -> list[int]:
    """Numeric version folders under ``model_dir``, ascending (what TF Serving would see)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and _VERSION.match(p.name))


def is_complete_version(path: str | os.PathLike) -> bool:
    """What every keraszoo command (show, evaluate, serve) takes for a loadable version: the graph and
    both halves of the variables. A version still being copied, or cut short, is skipped."""
    path, variables = Path(path), Path(path) / "variables"
    return (
        (path / "saved_model.pb").is_file()
        and (variables / "variables.index").is_file()
        and any(variables.glob("variables.data-*"))
    )


class SavedModelError(ValueError):
    """A SavedModel folder that cannot be loaded (damaged or incomplete files)."""


def resolve_version_dir(path: str | os.PathLike) -> Path:
    """A SavedModel version folder as is, or the newest complete version of a model folder (as served)."""
    path = Path(path)
    complete = [v for v in existing_versions(path) if is_complete_version(path / str(v))]
    resolved = path / str(complete[-1]) if complete else path
    if not is_complete_version(resolved):
        if (resolved / "saved_model.pb").is_file():
            raise SavedModelError(f"{resolved} is an incomplete SavedModel (no variables/variables.index and "
                                  "variables.data-* files): export it again.")
        raise FileNotFoundError(
            f"{path} is neither a SavedModel nor a folder of numbered versions: export a model first "
            "(e.g. python recipes/cifar10_cnn.py) or point at saved_models/<name>[/<version>]."
        )
    return resolved


def load_saved_model(version_dir: str | os.PathLike):
    """``tf.saved_model.load``, with a damaged folder reported in one line instead of TensorFlow's traceback."""
    try:
        return tf.saved_model.load(str(version_dir))
    except Exception as error:  # noqa: BLE001 - protobuf, OpError, ValueError ... all mean "damaged"
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise SavedModelError(f"cannot load the SavedModel in {version_dir} ({type(error).__name__}: "
                              f"{first[:200]}); it is damaged: export it again.") from None


def load_keras_model(version_dir: str | os.PathLike) -> keras.Model:
    """Rebuilds the exported Keras model: architecture from its JSON, weights from the SavedModel.

    The SavedModel keeps the model's variables in ``model.variables`` order; names
    and shapes are checked one by one so that a mismatch fails loudly.
    """
    version_dir = Path(version_dir)
    config_file = version_dir / KERAS_CONFIG_FILE
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{version_dir} has no {KERAS_CONFIG_FILE} (it was not exported by keraszoo's export_classifier), so its "
            "Keras architecture is unknown. Load it with tf.saved_model.load instead."
        )
    model = keras.models.model_from_json(config_file.read_text())
    restored = load_saved_model(version_dir).variables
    if len(restored) != len(model.variables):
        raise ValueError(f"{version_dir}: {len(restored)} saved variables, model has {len(model.variables)}.")
    for variable, saved in zip(model.variables, restored):
        saved_name = saved.name.split(":")[0]
        # Keras numbers unnamed objects per process ("seed_generator_13" when this process built others):
        # the names are compared without those counters.
        same_name = _unnumbered(variable.path).endswith(_unnumbered(saved_name))
        if not same_name or tuple(variable.shape) != tuple(saved.shape):
            raise ValueError(f"{version_dir}: saved {saved_name} {saved.shape} does not fit "
                             f"{variable.path} {variable.shape}.")
        variable.assign(saved)
    return model


def load_serving_fn(version_dir: str | os.PathLike):
    """The ``serving_default`` function of an exported model, as TF Serving would call it."""
    signatures = load_saved_model(version_dir).signatures
    if SIGNATURE_NAME not in signatures:
        raise SavedModelError(f"{version_dir} has no {SIGNATURE_NAME!r} signature (it has {sorted(signatures)}).")
    return signatures[SIGNATURE_NAME]


def _unnumbered(path: str) -> str:
    return re.sub(r"_\d+(?=/|$)", "", path)


@contextlib.contextmanager
def quiet_loggers(*names: str):
    """The named Python loggers silenced but for critical messages, for the duration."""
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def read_run_record(version_dir: str | os.PathLike) -> tuple[dict, dict]:
    """(metrics, config) of the run record an export carries; {} for a file that is missing or damaged
    (older exports say less: callers say what is missing instead of guessing)."""
    def read(name):
        try:
            value = json.loads((Path(version_dir) / RUN_RECORD_DIR / name).read_text())
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    return read("metrics.json"), read("config.json")


def recorded_dataset(metrics: dict, config: dict) -> str | None:
    """The TFDS dataset a run trained on ("mnist:3.0.1" -> "mnist"); records before 2026-11-28 name it in
    config.json only."""
    return str(metrics.get("dataset") or config.get("dataset") or "").split(":")[0] or None
