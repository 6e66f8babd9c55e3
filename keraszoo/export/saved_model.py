"""SavedModel export in TensorFlow Serving's layout: ``<root>/<name>/<version>/``.

TF Serving loads the highest numeric version folder and ignores others, so a
version is written under a hidden temporary name and renamed into place: a crash
never leaves a half-written version that a server would try to load. The
``serving_default`` signature takes raw ``uint8`` images and returns named
outputs, ``probabilities`` and ``logits`` (vector models, such as the MLP on
2-D points, take ``features`` of their own dtype). The run record is copied into the
version folder (``run_record/``), so whoever serves a model can see how it was made, and warmup
requests are written to ``assets.extra/`` (``keraszoo.serving.warmup``).

Export an *inference* model: one that holds no training-only layer (random
crop, flip, ...). Keras 3.15's ``model.export`` has been seen to give outputs
that differ from ``model(x, training=False)`` for a model holding RandomCrop and
CenterCrop.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from keraszoo.export.loading import (  # noqa: F401 - also this module's names, as before
    KERAS_CONFIG_FILE,
    RUN_RECORD_DIR,
    SIGNATURE_NAME,
    SavedModelError,
    existing_versions,
    is_complete_version,
    load_keras_model,
    load_saved_model,
    load_serving_fn,
    resolve_version_dir,
)
from keraszoo.export.model_card import title_card, write_model_card
from keraszoo.faults import pause_point


def find_exported_run(export_dir: str | os.PathLike, name: str, run_id: str | None) -> Path | None:
    """The version of ``export_dir/name`` that the run ``run_id`` exported, if there is one."""
    if not run_id:
        return None
    model_dir = Path(export_dir) / name
    for version in reversed(existing_versions(model_dir)):
        metrics = model_dir / str(version) / RUN_RECORD_DIR / "metrics.json"
        try:
            if metrics.is_file() and json.loads(metrics.read_text()).get("run_id") == run_id:
                return model_dir / str(version)
        except (OSError, ValueError):
            continue
    return None


def _remove_stale_exports(model_dir: Path) -> None:
    """Temporary export folders of processes that died (killed mid-export) are ours to delete."""
    for tmp in model_dir.glob(".tmp-export-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # that exporter is still running
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            continue  # alive, somebody else's


def export_classifier(
    model: keras.Model,
    *,
    export_dir: str | os.PathLike,
    name: str,
    run_record_dir: str | os.PathLike | None = None,
    version: int | None = None,
    extra_record: dict[str, dict] | None = None,
) -> Path:
    """Exports ``model`` (uint8 images or feature vectors -> logits) to ``export_dir/name/<version>``.

    Without ``version`` the next free number is taken (1 for a new model). Returns
    the version folder. ``extra_record``: more JSON files for the copied run record (``{file name: value}``),
    such as what a quantization measured, written before the card that reads them.
    """
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name):
        raise ValueError(f"model name {name!r}: use letters, digits, '_', '-' and '.' only.")
    (model_input,) = model.inputs
    if len(model_input.shape) == 4 and model_input.dtype != "uint8":
        raise ValueError(
            f"{model.name} takes {model_input.dtype} images; export a model that takes raw uint8 "
            "images (see keraszoo.models.build_image_classifier), as clients send them."
        )
    model = float32_copy(model)
    model_dir = Path(export_dir) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_exports(model_dir)
    tmp = model_dir / f".tmp-export-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)

    archive = keras.export.ExportArchive()
    archive.track(model)
    # Keras tracks its own Variable objects while the endpoint captures the tf.Variables behind them, and
    # the SavedModel then stores every weight twice (an 8 MB folder for 4 MB of weights; keraszoo's
    # ViT: 1.7 MB for 0.8). Tracking the tf.Variables themselves stores each once; outputs and the
    # revived `variables` list (load_keras_model) are unchanged (tests/test_export.py).
    for kind in ("variables", "trainable_variables", "non_trainable_variables"):
        setattr(archive._tf_trackable, kind, [variable.value for variable in getattr(model, kind)])

    def serve(inputs):
        logits = model(inputs, training=False)
        return {"probabilities": tf.nn.softmax(logits, axis=-1), "logits": logits}

    input_name = model_input.name if model_input.name in ("images", "features") else "inputs"
    spec = tf.TensorSpec((None, *model_input.shape[1:]), model_input.dtype, name=input_name)
    archive.add_endpoint(name=SIGNATURE_NAME, fn=serve, input_signature=[spec])
    archive.write_out(str(tmp), verbose=False)
    _write_beside(tmp, model, spec, name=name, run_record_dir=run_record_dir, extra_record=extra_record)
    write_model_card(tmp)  # in the version before it is published: no version without its card
    pause_point("export/written")
    final = _publish(tmp, model_dir, version)
    pause_point("export/published")
    return final


def _write_beside(folder: Path, model, spec, *, name: str, run_record_dir, extra_record) -> None:
    """What a version holds beside the SavedModel: the Keras architecture, warmup requests (replayed by
    keraszoo serve and TF Serving before a client's first call) and the run record."""
    from keraszoo.export.warmup import write_warmup_requests

    (folder / KERAS_CONFIG_FILE).write_text(model.to_json())
    write_warmup_requests(folder, model_name=name, input_name=spec.name, dtype=spec.dtype,
                          example_shape=tuple(spec.shape[1:]))
    if run_record_dir is not None:
        shutil.copytree(run_record_dir, folder / RUN_RECORD_DIR, ignore=_not_record_files)
    for file_name, value in (extra_record or {}).items():
        (folder / RUN_RECORD_DIR).mkdir(exist_ok=True)
        (folder / RUN_RECORD_DIR / file_name).write_text(json.dumps(value, indent=2) + "\n")


def float32_copy(model: keras.Model) -> keras.Model:
    """``model`` itself, or, for a mixed-precision model (bfloat16 or float16 compute, float32 weights), a
    copy with the same weights computing in float32: an export serves at full speed on any CPU (bfloat16
    without the CPU's bfloat16 units is several times slower) and on float32 math."""
    if all(layer.dtype_policy.compute_dtype == "float32" for layer in _all_layers(model)):
        return model

    def float32(node):
        if isinstance(node, dict):
            policy = node.get("config", {}).get("name", "") if node.get("class_name") == "DTypePolicy" else ""
            if str(policy).startswith("mixed"):
                return {**node, "config": {**node["config"], "name": "float32"}}
            return {key: float32(value) for key, value in node.items()}
        return [float32(value) for value in node] if isinstance(node, list) else node

    try:
        copy = keras.saving.deserialize_keras_object(float32(keras.saving.serialize_keras_object(model)))
        copy.set_weights(model.get_weights())
    except Exception as error:  # noqa: BLE001 - a model Keras cannot rebuild from its config still exports
        print(f"note: {model.name} could not be rebuilt in float32 ({type(error).__name__}: "
              f"{str(error).splitlines()[0][:200] if str(error) else ''}); exporting it in its training precision.")
        return model
    return copy


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _not_record_files(directory, names):
    # Resume checkpoints (weights + optimizer state) and temporary files are not shipped; the run's
    # model.keras holds the weights the SavedModel holds already, and a console log repeats history.csv.
    return [n for n in names if n in ("checkpoint", "log.txt") or n.startswith(".") or n.endswith((".weights.h5", ".keras"))]


def _publish(tmp: Path, model_dir: Path, version: int | None) -> Path:
    """Renames ``tmp`` to the next free version; a concurrent export just takes the one after."""
    wanted = version
    for _ in range(100):
        number = wanted if wanted is not None else max(existing_versions(model_dir), default=0) + 1
        final = model_dir / str(number)
        title_card(tmp, number)  # before the rename: a published version's card names it, even after a kill
        try:
            os.rename(tmp, final)  # atomic; fails if another export took this number
            return final
        except OSError:
            if wanted is not None or not final.exists():
                shutil.rmtree(tmp, ignore_errors=True)
                raise FileExistsError(f"{final} exists already: pick another version.") from None
    raise RuntimeError(f"could not find a free version under {model_dir}")


