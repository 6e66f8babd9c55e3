"""The ``keraszoo`` command: look at what the zoo holds.

    keraszoo models                 registered builders and their parameter counts
    keraszoo data [--data-dir DIR]  which datasets a TFDS data_dir has prepared
    keraszoo show PATH              an exported SavedModel: signature and run record
    keraszoo evaluate PATH          score an exported SavedModel on a dataset split, from disk

Training is done by the recipe scripts (``python recipes/<recipe>.py --help``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DATASETS = ("mnist", "cifar10")


def _models(args) -> int:
    from keraszoo.models import MODEL_BUILDERS

    for name, builder in sorted(MODEL_BUILDERS.items()):
        model = builder()
        print(f"{name:<24} {model.count_params():>12,} parameters  input {model.input_shape[1:]}")
    return 0


def _data(args) -> int:
    from keraszoo.data import DatasetNotFoundError, dataset_metadata, resolve_data_dir
    from keraszoo.data.tfds_data import _prepared_builder

    data_dir = resolve_data_dir(args.data_dir)
    print(f"TFDS data_dir: {data_dir}")
    missing = 0
    for name in args.datasets or DATASETS:
        try:
            metadata = dataset_metadata(name, data_dir=data_dir)
        except DatasetNotFoundError as error:
            missing += 1
            print(f"  {name:<10} missing: {error}")
            continue
        splits = _prepared_builder(name, data_dir).info.splits
        sizes = ", ".join(f"{split} {info.num_examples:,}" for split, info in sorted(splits.items()))
        print(f"  {name:<10} {metadata.version:<7} image {metadata.image_shape}  "
              f"{metadata.num_classes} classes  {sizes}")
    return 1 if missing else 0


def _show(args) -> int:
    from keraszoo.export import RUN_RECORD_DIR, SIGNATURE_NAME, load_serving_fn

    path = _serving_dir(Path(args.path))
    if path is None:
        print(f"error: {args.path} is neither a SavedModel nor a folder of numbered versions.",
              file=sys.stderr)
        return 2
    serve = load_serving_fn(path)
    print(f"{path}  (signature {SIGNATURE_NAME})")
    for name, spec in serve.structured_input_signature[1].items():
        print(f"  input  {name}: {spec.dtype.name} {spec.shape}")
    for name, spec in serve.structured_outputs.items():
        print(f"  output {name}: {spec.dtype.name} {spec.shape}")
    metrics_file = path / RUN_RECORD_DIR / "metrics.json"
    if metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        keys = ("recipe", "dataset", "epochs", "seed", "test_accuracy", "test_loss", "wall_time_s")
        print("  run record: " + ", ".join(f"{k}={metrics[k]}" for k in keys if k in metrics))
    return 0


def _serving_dir(path: Path) -> Path | None:
    """A SavedModel version folder, or the newest version of a model folder (as TF Serving picks)."""
    from keraszoo.export import existing_versions

    versions = existing_versions(path)
    path = path / str(versions[-1]) if versions else path
    return path if (path / "saved_model.pb").is_file() else None


def _evaluate(args) -> int:
    import numpy as np

    from keraszoo.data import DatasetNotFoundError, dataset_metadata, load_dataset
    from keraszoo.export import load_serving_fn

    path = _serving_dir(Path(args.path))
    if path is None:
        print(f"error: {args.path} is neither a SavedModel nor a folder of numbered versions.",
              file=sys.stderr)
        return 2
    try:
        metadata = dataset_metadata(args.dataset, data_dir=args.data_dir)
        dataset = load_dataset(args.dataset, args.split, batch_size=256, data_dir=args.data_dir)
    except (DatasetNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    serve = load_serving_fn(path)
    correct = total = 0
    shown = []
    for images, labels in dataset:
        predicted = np.argmax(serve(images=images)["probabilities"].numpy(), axis=1)
        correct += int((predicted == labels.numpy()).sum())
        total += len(predicted)
        shown.extend(zip(predicted[: args.show - len(shown)], labels.numpy()))
    names = metadata.class_names
    for predicted, label in shown:
        mark = "ok " if predicted == label else "BAD"
        print(f"  {mark} predicted {names[predicted]:<12} true {names[label]}")
    print(f"{path}: accuracy {correct / total:.4f} on {args.dataset} {args.split} ({total:,} images)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keraszoo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("models", help="list the registered model builders").set_defaults(run=_models)
    data = commands.add_parser("data", help="check which datasets a TFDS data_dir holds")
    data.add_argument("--data-dir", help="TFDS data_dir (default: $TFDS_DATA_DIR, else TFDS's default)")
    data.add_argument("datasets", nargs="*", help=f"dataset names (default: {' '.join(DATASETS)})")
    data.set_defaults(run=_data)
    show = commands.add_parser("show", help="describe an exported SavedModel")
    show.add_argument("path", help="saved_models/<name> or saved_models/<name>/<version>")
    show.set_defaults(run=_show)
    evaluate = commands.add_parser("evaluate", help="score an exported SavedModel on a split")
    evaluate.add_argument("path", help="saved_models/<name> or saved_models/<name>/<version>")
    evaluate.add_argument("--dataset", default="cifar10", help="TFDS dataset (default: cifar10)")
    evaluate.add_argument("--split", default="test", help="split or slice (default: test)")
    evaluate.add_argument("--data-dir", help="TFDS data_dir (default: $TFDS_DATA_DIR)")
    evaluate.add_argument("--show", type=int, default=8, help="predictions to print (default: 8)")
    evaluate.set_defaults(run=_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
