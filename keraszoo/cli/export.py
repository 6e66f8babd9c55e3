"""``keraszoo export``: a run, a SavedModel folder or a shipped model's name -> SavedModel, ONNX or LiteRT."""

from __future__ import annotations

import sys
from pathlib import Path

from keraszoo.config import DATA_DIR_HELP


def add_commands(commands) -> None:
    export = commands.add_parser(
        "export", help="export a run as a SavedModel, or a SavedModel as ONNX / LiteRT (verified on real images)",
        description="--format savedmodel (default): a finished run folder's model.keras (trained on any backend) "
        "to EXPORT_DIR/<name>/<version>/ with its run record, once per run. --format onnx or litert: SOURCE's "
        "serving signature (uint8 images in, logits and probabilities out) as one file at --out, kept only if it "
        "answers as the SavedModel on --verify-split; the comparison is written beside it (<out>.verification.json). "
        "SOURCE is then a run folder that exported, saved_models/<name>[/<version>], or a name under --export-dir. "
        "--format savedmodel-int8: SOURCE's Keras model quantized to int8 by Keras (weights per channel, activations "
        "per call), kept if it loses at most 0.5 point of accuracy on --verify-split, written as the next version of "
        "EXPORT_DIR/<name>_int8/ (or --export-name): a SavedModel served like the others.")
    export.add_argument("source", metavar="SOURCE", help="run folder; with --format onnx|litert also a SavedModel "
                        "folder or a model name (e.g. cifar10_cnn_batchnorm)")
    export.add_argument("--format", choices=("savedmodel", "savedmodel-int8", "onnx", "litert", "litert-int8"),
                        default="savedmodel",
                        help="what to write; litert-int8: post-training int8 quantization calibrated on training "
                        "images, kept if it loses at most 0.5 point of accuracy; savedmodel-int8: Keras's int8 "
                        "quantization as a servable SavedModel, under the same check (default: savedmodel)")
    export.add_argument("--out", help="the ONNX or LiteRT file to write (onnx, litert)")
    export.add_argument("--export-dir", default="saved_models", help="model root (default: saved_models)")
    export.add_argument("--export-name", help="model folder name (savedmodel: default the run's own; "
                        "savedmodel-int8: default the source's name + _int8)")
    export.add_argument("--verify-split",
                        help="images of the model's dataset the file is checked on (default: test[:1000]; "
                        "the int8 formats: test, whose 10,000 images resolve a fraction of a point)")
    export.add_argument("--representative-split", default="train[:500]",
                        help="training images litert-int8 is calibrated on (default: %(default)s)")
    export.add_argument("--tta", choices=("none", "flip"), default="none",
                        help="savedmodel: put flip test-time augmentation inside the SavedModel (each image and its "
                        "mirror, probabilities averaged; twice the cost; not for digits) (default: %(default)s)")
    export.add_argument("--data-dir", help=DATA_DIR_HELP)
    export.set_defaults(run=_export)


def _export(args) -> int:
    from keraszoo.training.command_line import guarded

    if args.format == "savedmodel":
        from keraszoo.training.runner import export_run

        # export_run says what it did: exported, or found the version this run exported before.
        return guarded(lambda: export_run(args.source, export_dir=args.export_dir, name=args.export_name,
                                          tta=None if args.tta == "none" else args.tta))
    if args.tta != "none":
        print("error: --tta goes with --format savedmodel (the other formats convert a SavedModel as it is).",
              file=sys.stderr)
        return 2
    if args.format == "savedmodel-int8":
        return guarded(lambda: _quantize(args))
    if not args.out:
        print(f"error: --format {args.format} writes one file: give it with --out (e.g. --out model."
              f"{'onnx' if args.format == 'onnx' else 'tflite'}).", file=sys.stderr)
        return 2
    return guarded(lambda: _convert(args))


def _verification_images(args, version_dir: Path):
    """(dataset, split name, images, labels) of the real images an export is checked on."""
    from keraszoo.data import read_split

    split_name = args.verify_split or ("test" if args.format.endswith("int8") else "test[:1000]")
    dataset = _dataset_of(version_dir)
    split = read_split(dataset, split_name, data_dir=args.data_dir)
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in split.batches(batch_size=500)))
    return dataset, split_name, _concatenate(images), _concatenate(labels)


def _quantize(args) -> None:
    from keraszoo.export.quantize import quantize_version

    source = _saved_model_of(args.source, args.export_dir)
    dataset, split_name, images, labels = _verification_images(args, source)
    version_dir, report = quantize_version(source, export_dir=args.export_dir, images=images, labels=labels,
                                           name=args.export_name)
    print(f"savedmodel-int8: {version_dir} (weights {report['bytes']:,} bytes; float32 {report['float32_bytes']:,}) "
          f"from {source}; on {dataset} "
          f"{split_name} ({report['images']} images): accuracy {report['accuracy']:.4f} (float32 "
          f"{report['savedmodel_accuracy']:.4f}), {100 * report['agreement']:.1f} % of predictions unchanged. "
          f"Serve it with the others: keraszoo serve {args.export_dir}")


def _convert(args) -> None:
    from keraszoo.data import read_split
    from keraszoo.export.formats import export_verified

    version_dir = _saved_model_of(args.source, args.export_dir)
    dataset, split_name, images, labels = _verification_images(args, version_dir)
    representative = None
    if args.format == "litert-int8":
        representative = _concatenate([x.numpy() for x, _ in read_split(
            dataset, args.representative_split, data_dir=args.data_dir).batches(batch_size=500)])
    report = export_verified(version_dir, args.format, args.out, images, labels, representative)
    if args.format == "litert-int8":
        closeness = (f"{100 * report['agreement']:.1f} % of its predictions the SavedModel's; "
                     f"{report['float32_bytes']:,} bytes and {report['float32_single_image_ms']:.2f} ms an image in "
                     f"float32, {report['single_image_ms']:.2f} ms in int8")
    else:
        closeness = (f"logits within {report['max_abs_logit_difference']:.2g} of the SavedModel's (bound "
                     f"{report['logit_bound']:.2g})")
    print(f"{args.format}: {args.out} ({report['bytes']:,} bytes) from {version_dir}; on {dataset} {split_name} "
          f"({report['images']} images): {closeness}; accuracy {report['accuracy']:.4f} (SavedModel "
          f"{report['savedmodel_accuracy']:.4f}). Comparison: {args.out}.verification.json")


def _saved_model_of(source: str, export_dir: str) -> Path:
    """The SavedModel version a source names: a run folder's export, a model or version folder, or a name."""
    from keraszoo.export import resolve_version_dir
    from keraszoo.export.trained import resolve_source
    from keraszoo.training import run_folder

    path = Path(source)
    marker = run_folder.read_marker(path) if path.is_dir() else None
    if marker is not None:
        if not marker.get("saved_model"):
            raise ValueError(f"{path} is a run folder that has not exported a SavedModel: run `keraszoo export "
                             f"{path}` first, then convert the version it writes.")
        return resolve_version_dir(marker["saved_model"])
    return resolve_source(source, export_dir if Path(export_dir).is_dir() else None)


def _dataset_of(version_dir: Path) -> str:
    """The TFDS dataset the model was trained on, from the run record in its version folder."""
    from keraszoo.export.loading import RUN_RECORD_DIR, read_run_record, recorded_dataset

    dataset = recorded_dataset(*read_run_record(version_dir))
    if dataset is None:
        raise ValueError(f"{version_dir} has no run record naming its dataset ({RUN_RECORD_DIR}/metrics.json), so "
                         "the file cannot be checked on real images: export it with keraszoo.")
    return dataset


def _concatenate(parts):
    import numpy as np

    return np.concatenate(parts)
