"""An int8 SavedModel of an exported version: Keras's post-training ``quantize("int8")``, served like the others.

Keras 3.15 quantizes the weights of its Dense and EinsumDense layers to int8 with a scale per output
channel, and their inputs dynamically (per call, from their absolute maximum): no calibration set. It
leaves convolutions in float32 (the course CNN: its two fully connected layers, 79 % of the weights; the
ViTs: every projection). On TensorFlow's CPU kernels the int8 model is smaller, not faster (the cards
time both). The quantized model is checked before it is written: on real images of its dataset it must keep the
float model's accuracy within ``MAX_ACCURACY_DROP`` (the bound the LiteRT int8 file answers to). It is then
exported by ``export_classifier`` into ``<export-dir>/<name>_int8/<version>/``: the same uint8 signature,
the source's run record and a ``quantization.json`` beside it, a card that says what was quantized.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from keraszoo.export.formats import MAX_ACCURACY_DROP, ExportFormatError, compare
from keraszoo.export.loading import RUN_RECORD_DIR, load_keras_model, load_serving_fn
from keraszoo.export.model_card import measure_speed, record_export

QUANTIZATION_FILE = "quantization.json"
SUFFIX = "_int8"


def quantize_version(version_dir: str | os.PathLike, *, export_dir: str | os.PathLike, images: np.ndarray,
                     labels: np.ndarray, name: str | None = None) -> tuple[Path, dict]:
    """Quantizes ``version_dir``'s Keras model to int8, checks it on ``images``, exports it as a new version of
    ``name`` (default: the source's name + ``_int8``). Returns the version folder and the comparison."""
    from keraszoo.export.saved_model import export_classifier

    version_dir = Path(version_dir)
    model = load_registered(version_dir)
    reference = {"logits": model.predict(images, batch_size=500, verbose=0)}
    float32_bytes = _weight_bytes(model)
    try:
        model.quantize("int8")
    except (NotImplementedError, ValueError) as error:
        raise ExportFormatError(f"Keras cannot quantize {version_dir} to int8 ({type(error).__name__}: "
                                f"{(str(error).splitlines() or [''])[0][:200]}); serve the float SavedModel.") from None
    # Keras has no public walk over nested layers (attention's projections are not in `.layers`).
    quantized_layers = sorted(layer.name for layer in model._flatten_layers() if _is_int8(layer))
    if not quantized_layers:
        raise ExportFormatError(f"{version_dir} holds no layer Keras quantizes (Dense, EinsumDense): "
                                "an int8 copy would be the float model.")
    converted = {"logits": model.predict(images, batch_size=500, verbose=0)}
    report = {"format": "savedmodel-int8", "source": str(version_dir), "method": "keras quantize('int8')",
              "quantized_layers": quantized_layers, **compare(reference, converted, labels, quantized=True)}
    if not report["ok"]:
        raise ExportFormatError(
            f"the int8 model loses {100 * (report['savedmodel_accuracy'] - report['accuracy']):.2f} points of "
            f"accuracy (at most {100 * MAX_ACCURACY_DROP:.1f} allowed); nothing was written.")
    final = export_classifier(model, export_dir=export_dir, name=name or version_dir.parent.name + SUFFIX,
                              run_record_dir=version_dir / RUN_RECORD_DIR,
                              extra_record={QUANTIZATION_FILE: report})
    report.update(version=str(final), bytes=_weight_bytes(model), float32_bytes=float32_bytes,
                  speed={"float32": measure_speed(load_serving_fn(version_dir)), "int8": measure_speed(load_serving_fn(final))})
    # Sizes and speeds measured on the published SavedModels, back to back: the record keeps them too.
    (final / RUN_RECORD_DIR / QUANTIZATION_FILE).write_text(json.dumps(report, indent=2) + "\n")
    record_export(version_dir, report)  # the source's card lists it with its other formats
    return final, report


def _weight_bytes(model) -> int:
    """The bytes of the model's weights as its variables hold them (older SavedModels stored each twice)."""
    return int(sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in model.weights))


def load_registered(version_dir: Path):
    """``load_keras_model`` with keraszoo's (and keras-hub's, when installed) layers registered."""
    import importlib.util

    import keraszoo.models  # noqa: F401 - registers keraszoo's layers for deserialisation
    import keraszoo.models.preprocessing  # noqa: F401 - and its preprocessing layers

    if importlib.util.find_spec("keras_hub") is not None:
        import keras_hub  # noqa: F401 - the DINOv2 transfer model's backbone is keras-hub's
    return load_keras_model(version_dir)


def _is_int8(layer) -> bool:
    return getattr(layer, "quantization_mode", None) == "int8"
