"""ONNX and LiteRT files of an exported SavedModel, verified on real images before they are kept.

Both are converted from the SavedModel's ``serving_default`` signature itself, the computation TF Serving
runs: raw uint8 images in (normalisation inside), ``logits`` and ``probabilities`` out, no training-only
layer. (Keras 3.15's ``export(format="onnx")`` traced the dropout layers' random ops of the course CNN
into a graph onnxruntime refuses; the signature holds ``training=False`` only.) The variables are frozen
into constants first: tf2onnx would otherwise turn the normalisation's captured statistics into inputs.

Every file is written under a temporary name, run on a slice of the model's test split under onnxruntime
or LiteRT's interpreter, compared with the SavedModel on the same images, and renamed into place only if
its logits are within ``logit_bound`` and it classifies every image the SavedModel classifies with a clear
margin the same way. The comparison is returned (and written beside the file as JSON).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from keraszoo.export.loading import SIGNATURE_NAME, SavedModelError, load_saved_model, quiet_loggers

FORMATS = ("savedmodel", "onnx", "litert", "litert-int8")
# litert-int8: post-training full-integer quantization, calibrated on training images; its check is the
# accuracy it keeps, not a float32 bound (its logits move by the quantization steps).
MAX_ACCURACY_DROP = 0.005
ONNX_OPSET = 17
OUTPUTS = ("logits", "probabilities")
# The longest dot product in the shipped models sums ~1,600 float32 terms (a 5x5x64 convolution); in any
# order of summation its relative error is at most n * 2**-24 ~ 1e-4 of the terms' magnitude, which the
# logits' scale bounds from above. Measured differences are ~1e-6 of it (ONNX 1.1e-5 on logits of 33).
RELATIVE_LOGIT_BOUND = 1e-4


class ExportFormatError(ValueError):
    """A conversion that failed, or a converted file that does not answer as the SavedModel does."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


def logit_bound(reference_logits: np.ndarray) -> float:
    """The largest |logit difference| a float32 reordering of the same computation may give."""
    return RELATIVE_LOGIT_BOUND * max(1.0, float(np.abs(reference_logits).max()))


def convert(version_dir: str | os.PathLike, fmt: str, out: str | os.PathLike,
            representative: np.ndarray | None = None) -> Path:
    """Writes ``version_dir``'s serving signature as ``fmt`` to ``out`` (unverified); ``litert-int8`` is
    calibrated on ``representative`` images (the training split's)."""
    out = Path(out)
    if fmt not in FORMATS[1:]:
        raise ExportFormatError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}.")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        if fmt == "onnx":
            content = _to_onnx(version_dir)
        else:
            content = _to_litert(version_dir, representative if fmt == "litert-int8" else None)
    except SavedModelError:
        raise
    except Exception as error:  # noqa: BLE001 - converters raise many types for an op they cannot express
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ExportFormatError(f"{fmt} cannot express {version_dir}'s serving signature ({type(error).__name__}: "
                                f"{first}); serve the SavedModel instead.") from None
    out.write_bytes(content)
    return out


def _frozen_signature(version_dir):
    """The serving signature with its variables as constants, and the names of its outputs in order."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    loaded = load_saved_model(version_dir)  # kept alive while the function is used: it owns the variables
    signature = loaded.signatures[SIGNATURE_NAME]
    frozen = convert_variables_to_constants_v2(signature)
    names = list(tf.nest.flatten(sorted(signature.structured_outputs)))  # the flattening order: sorted keys
    return frozen, names


def _to_onnx(version_dir) -> bytes:
    import tf2onnx

    frozen, names = _frozen_signature(version_dir)
    (image_input,) = frozen.inputs
    # tf2onnx logs every op it leaves as is (Erfc, rewritten below) as an error, and TensorFlow the v1 graph
    # tools tf2onnx calls as deprecated; an op nothing rewrites makes onnxruntime refuse the file, and that
    # refusal, naming the op, is what the user sees.
    with quiet_loggers("tf2onnx", "tensorflow"):
        proto, _ = tf2onnx.convert.from_graph_def(
            frozen.graph.as_graph_def(), input_names=[image_input.name],
            output_names=[t.name for t in frozen.outputs], opset=ONNX_OPSET)
    # TensorFlow's tensor names ("images:0", "Identity:0") become the signature's ("images", "logits").
    renames = {image_input.name: image_input.name.split(":")[0], **dict(zip((t.name for t in frozen.outputs), names))}
    for value in (*proto.graph.input, *proto.graph.output):
        value.name = renames.get(value.name, value.name)
    for node in proto.graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]
    _erfc_as_one_minus_erf(proto)
    return proto.SerializeToString()


def _erfc_as_one_minus_erf(proto) -> None:
    """ONNX has Erf but no Erfc, which tf2onnx emits for the exact GELU (the ViTs'): erfc(x) = 1 - erf(x).
    In GELU, x * erfc(-x / sqrt 2), the cancellation for large x is multiplied by ~0: no visible loss."""
    from onnx import helper, numpy_helper

    nodes, one = [], None
    for node in proto.graph.node:
        if node.op_type != "Erfc":
            nodes.append(node)
            continue
        if one is None:
            one = "keraszoo_one"
            proto.graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), one))
        erf = f"{node.output[0]}_erf"
        nodes += [helper.make_node("Erf", [node.input[0]], [erf], name=f"{node.name}_erf"),
                  helper.make_node("Sub", [one, erf], [node.output[0]], name=node.name)]
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)


def _to_litert(version_dir, representative: np.ndarray | None = None) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(version_dir), signature_keys=[SIGNATURE_NAME])
    if representative is not None:  # weights and activations in int8, ranges from the training images
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.representative_dataset = lambda: ({"images": representative[i:i + 1]}
                                                    for i in range(len(representative)))
    return converter.convert()


def check_representative(version_dir, images: np.ndarray) -> None:
    """The calibration images must be what the model takes: one line otherwise."""
    from keraszoo.export.loading import load_serving_fn

    (spec,) = load_serving_fn(version_dir).structured_input_signature[1].values()
    if images.ndim != len(spec.shape) or tuple(images.shape[1:]) != tuple(spec.shape[1:]) \
            or images.dtype != spec.dtype.as_numpy_dtype or len(images) == 0:
        raise ExportFormatError(f"the representative images are {images.dtype} {list(images.shape)}; {version_dir} "
                                f"takes {spec.dtype.name} {[None, *spec.shape[1:]]}: draw them from the model's own "
                                "training split (--representative-split).")


def run(path: str | os.PathLike, fmt: str, images: np.ndarray) -> dict[str, np.ndarray]:
    """The converted file's outputs for ``images`` (uint8, a batch), by name."""
    path = Path(path)
    try:
        if fmt == "onnx":
            import onnxruntime

            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            (image_input,) = session.get_inputs()
            values = session.run(list(OUTPUTS), {image_input.name: images})
            return dict(zip(OUTPUTS, values))
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=str(path)).get_signature_runner(SIGNATURE_NAME)  # litert and litert-int8
        (input_name,) = runner.get_input_details()
        return {name: np.asarray(value) for name, value in runner(**{input_name: images}).items()}
    except Exception as error:  # noqa: BLE001 - a damaged or foreign file: one line, whatever the runtime says
        reason = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:300]}"
        raise ExportFormatError(f"{path} does not run as a keraszoo {fmt} model ({reason}): export it again.",
                                reason) from None


def compare(reference: dict[str, np.ndarray], converted: dict[str, np.ndarray], labels: np.ndarray, *,
            quantized: bool = False) -> dict:
    """How the converted file answers against the SavedModel on the same images: within the float32 bound
    with the same clear predictions, or (``quantized``) within MAX_ACCURACY_DROP of its accuracy."""
    ref, got = reference["logits"], converted["logits"]
    bound = logit_bound(ref)
    difference = float(np.abs(ref - got).max())
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * bound  # images the bound cannot flip
    disagree = int(np.sum((ref.argmax(1) != got.argmax(1)) & clear))
    report = {"images": int(len(labels)), "max_abs_logit_difference": difference, "logit_bound": bound,
              "max_abs_logit": float(np.abs(ref).max()), "accuracy": float(np.mean(got.argmax(1) == labels)),
              "savedmodel_accuracy": float(np.mean(ref.argmax(1) == labels)),
              "agreement": float(np.mean(ref.argmax(1) == got.argmax(1))), "clear_margin_disagreements": disagree}
    if quantized:
        report["max_accuracy_drop"] = MAX_ACCURACY_DROP
        report["ok"] = report["savedmodel_accuracy"] - report["accuracy"] <= MAX_ACCURACY_DROP
    else:
        report["ok"] = difference <= bound and disagree == 0
    return report


def export_verified(version_dir: str | os.PathLike, fmt: str, out: str | os.PathLike, images: np.ndarray,
                    labels: np.ndarray, representative: np.ndarray | None = None) -> dict:
    """``convert``, then ``compare`` on ``images``; the file is kept (renamed to ``out``) only if it agrees.
    ``litert-int8`` is calibrated on ``representative`` (training images) and also timed against float32
    LiteRT. Returns the comparison, also written to ``<out>.verification.json``."""
    from keraszoo.export.loading import load_serving_fn

    quantized = fmt == "litert-int8"
    if quantized:
        if representative is None:
            raise ExportFormatError("litert-int8 is calibrated on training images: give them (--representative-split).")
        check_representative(version_dir, representative)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        convert(version_dir, fmt, tmp, representative)
        reference = {name: np.asarray(value) for name, value in load_serving_fn(version_dir)(images=images).items()}
        try:
            converted = run(tmp, fmt, images)
        except ExportFormatError as error:
            raise ExportFormatError(f"the {fmt} conversion of {version_dir} does not run: {error.reason}; "
                                    "nothing was written.") from None
        report = {"format": fmt, "source": str(version_dir),
                  **compare(reference, converted, labels, quantized=quantized)}
        if not report["ok"]:
            raise ExportFormatError(_refusal(fmt, report))
        report["bytes"] = tmp.stat().st_size
        if quantized:
            report.update(_against_float32(version_dir, tmp, images[:1]))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    Path(f"{out}.verification.json").write_text(json.dumps(report, indent=2) + "\n")
    from keraszoo.export.model_card import record_export

    record_export(version_dir, report)
    return report


def _refusal(fmt: str, report: dict) -> str:
    if fmt == "litert-int8":
        return (f"the int8 file loses {100 * (report['savedmodel_accuracy'] - report['accuracy']):.2f} points of "
                f"accuracy (at most {100 * MAX_ACCURACY_DROP:.1f} allowed); nothing was written.")
    return (f"the {fmt} file answers unlike the SavedModel: logits differ by up to "
            f"{report['max_abs_logit_difference']:.3g} (bound {report['logit_bound']:.3g}), "
            f"{report['clear_margin_disagreements']} images classified otherwise; nothing was written.")


def _against_float32(version_dir, int8_path: Path, image: np.ndarray) -> dict:
    """The float32 LiteRT file's size, and both files' single-image latency (median of 50 calls) here."""
    import statistics
    import tempfile
    import time

    from ai_edge_litert.interpreter import Interpreter

    from keraszoo.training.hardware import cpu_model

    with tempfile.TemporaryDirectory() as folder:
        float32_path = convert(version_dir, "litert", Path(folder) / "float32.tflite")
        size = float32_path.stat().st_size
        latency = {}
        for name, path in (("float32", float32_path), ("int8", int8_path)):
            runner = Interpreter(model_path=str(path)).get_signature_runner(SIGNATURE_NAME)
            runner(images=image)
            times = []
            for _ in range(50):
                start = time.perf_counter()
                runner(images=image)
                times.append(time.perf_counter() - start)
            latency[name] = 1000 * statistics.median(times)
    return {"float32_bytes": size, "single_image_ms": latency["int8"], "float32_single_image_ms": latency["float32"],
            "latency_cpu": cpu_model()}
