"""``keraszoo models / show / evaluate / describe``: builders, runs and exported models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from keraszoo.config import DATA_DIR_HELP

COURSE_NOTE = (
    "note: the course's table sums these to 1,191,000; the exact count is 1,190,000 weights "
    "+ 1,170 biases = 1,191,170 parameters."
)


def add_commands(commands) -> None:
    models = commands.add_parser("models", help="list the registered model builders, or the trained models by name")
    models.add_argument("--trained", action="store_true", help="the trained models shipped in saved_models/ "
                        "(or $KERASZOO_MODELS), with their numbers: names keraszoo.load_trained, evaluate and "
                        "export take")
    models.set_defaults(run=_models)
    card = commands.add_parser(
        "card", help="write MODEL_CARD.md into an exported version, from its run record",
        description="What the model is for, its data and splits, its results (the run record's numbers), "
        "parameters, FLOPs per image and its speed measured now on this CPU, limitations, provenance and licence. "
        "Exports write it themselves; this writes it for older versions, or again.")
    card.add_argument("path", help="saved_models/<name> (the newest version), saved_models/<name>/<version>, or a "
                      "trained model's name")
    card.add_argument("--no-measure", action="store_true", help="leave the speed out (no timing)")
    card.set_defaults(run=_card)
    show = commands.add_parser("show", help="describe an exported SavedModel")
    show.add_argument("path", help="saved_models/<name> or saved_models/<name>/<version>")
    show.set_defaults(run=_show)
    evaluate = commands.add_parser("evaluate", help="score an exported SavedModel on a split")
    evaluate.add_argument("path", help="saved_models/<name>[/<version>], or a trained model's name (keraszoo models "
                          "--trained)")
    evaluate.add_argument("--dataset", help="TFDS dataset (default: the one in the model's run record)")
    evaluate.add_argument("--split", default="test", help="split or slice (default: test)")
    evaluate.add_argument("--data-dir", help=DATA_DIR_HELP)
    evaluate.add_argument("--show", type=int, default=8, help="predictions to print (default: 8)")
    evaluate.add_argument("--tta", choices=("none", "flip"), default="none",
                          help="test-time augmentation: flip averages the probabilities of each image and its "
                          "mirror image (decide it on a validation split the model did not train on; "
                          "default: %(default)s)")
    evaluate.set_defaults(run=_evaluate)
    describe = commands.add_parser(
        "describe", help="per-layer table and receptive fields of a model",
        description="Per-layer output shapes, weights and biases (course Q.10/Q.11) and receptive "
        "fields (Q.7) of a registered builder, a .keras file or an exported SavedModel.",
    )
    describe.add_argument("model", help="registered name (see `keraszoo models`), .keras file or saved_models/<name>[/<version>]")
    describe.add_argument("--input-shape", help="H,W,C for a registered builder (default: its own)")
    describe.add_argument("--json", action="store_true", help="print the tables as JSON")
    describe.add_argument("--chance-level", action="store_true",
                          help="also evaluate an untrained copy on real data against ln(C) and 1/C")
    describe.add_argument("--dataset", default="cifar10", help="dataset for --chance-level (default: cifar10)")
    describe.add_argument("--split", default="test[:2000]", help="split for --chance-level (default: test[:2000])")
    describe.add_argument("--data-dir", help=DATA_DIR_HELP)
    describe.set_defaults(run=_describe)


def _models(args) -> int:
    if args.trained:
        return _trained_models()
    from keraszoo.models import MODEL_BUILDERS

    for name, builder in sorted(MODEL_BUILDERS.items()):
        model = builder()
        print(f"{name:<22} {model.count_params():>11,} parameters  input {model.input_shape[1:]}  ({model.name})")
    return 0


def _card(args) -> int:
    from keraszoo.export import SavedModelError
    from keraszoo.export.model_card import write_model_card
    from keraszoo.export.trained import UnknownTrainedModel, resolve_source

    try:
        path = write_model_card(resolve_source(args.path), measure=not args.no_measure)
    except (FileNotFoundError, SavedModelError, UnknownTrainedModel) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def _trained_models() -> int:
    from keraszoo.export.trained import models_root, trained_models

    percent = lambda value: f"{100 * value:.2f} %" if value is not None else "—"  # noqa: E731
    found = trained_models()
    print(f"trained models in {models_root()} (test accuracy evaluated once; validation: of the exported weights):")
    for model in found.values():
        print(f"  {model.name:<24} {model.dataset or '?':<8} test {percent(model.test_accuracy):>8}  validation "
              f"{percent(model.validation_accuracy):>8}  {f'{model.parameters:,}' if model.parameters else '—':>11} "
              f"parameters  {model.version_dir}")
    if not found:
        print("  none: export one (keraszoo train ...) or set KERASZOO_MODELS")
    return 0


def _show(args) -> int:
    from keraszoo.export import RUN_RECORD_DIR, SIGNATURE_NAME, load_serving_fn, resolve_version_dir

    try:
        path = resolve_version_dir(args.path)
        serve = load_serving_fn(path)
    except (FileNotFoundError, ValueError) as error:  # SavedModelError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{path}  (signature {SIGNATURE_NAME})")
    for name, spec in serve.structured_input_signature[1].items():
        print(f"  input  {name}: {spec.dtype.name} {spec.shape}")
    for name, spec in serve.structured_outputs.items():
        print(f"  output {name}: {spec.dtype.name} {spec.shape}")
    metrics_file = path / RUN_RECORD_DIR / "metrics.json"
    try:
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
    except (OSError, ValueError):
        print(f"  run record: {metrics_file} is unreadable")
        metrics = None
    if isinstance(metrics, dict):
        keys = ("recipe", "dataset", "epochs", "seed", "test_accuracy", "test_loss", "wall_time_s")
        print("  run record: " + ", ".join(f"{k}={metrics[k]}" for k in keys if k in metrics))
    return 0


def _trained_on(version_dir: Path) -> str:
    """The dataset in the exported run record ("mnist:3.0.1" -> "mnist"); a record naming none is one line."""
    from keraszoo.export.loading import read_run_record, recorded_dataset

    dataset = recorded_dataset(*read_run_record(version_dir))
    if dataset is None:
        raise ValueError(f"{version_dir}'s run record names no dataset: pass it with --dataset (mnist or cifar10).")
    return dataset


def _evaluate(args) -> int:
    import tensorflow as tf

    from keraszoo.data import DatasetNotFoundError, dataset_metadata, load_dataset
    from keraszoo.export import load_serving_fn
    from keraszoo.export.trained import UnknownTrainedModel, resolve_source

    try:
        path = resolve_source(args.path)
        name = args.dataset or _trained_on(path)
        metadata = dataset_metadata(name, data_dir=args.data_dir)
        dataset = load_dataset(name, args.split, batch_size=256, data_dir=args.data_dir)
        serve = load_serving_fn(path)
        expected = tuple(serve.structured_input_signature[1]["images"].shape[1:])
        if expected != tuple(metadata.input_shape):
            raise ValueError(f"{path} takes images of shape {expected}, {name} has {tuple(metadata.input_shape)}: "
                             "pass the dataset the model was trained on with --dataset.")
    except (DatasetNotFoundError, ValueError, FileNotFoundError, KeyError, UnknownTrainedModel) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        return _score(args, serve, dataset, metadata, name, path)
    except tf.errors.DataLossError as error:
        from keraszoo.data import describe_data_loss

        print(f"error: {describe_data_loss(error)}", file=sys.stderr)
        return 1


def _score(args, serve, dataset, metadata, name, path) -> int:
    import numpy as np

    args.dataset = name
    correct = total = 0
    shown = []
    for images, labels in dataset:
        probabilities = serve(images=images)["probabilities"].numpy()
        if args.tta == "flip":  # the mirror image's view too, averaged (images are (batch, height, width, C))
            probabilities = (probabilities + serve(images=images[:, :, ::-1])["probabilities"].numpy()) / 2
        predicted = np.argmax(probabilities, axis=1)
        correct += int((predicted == labels.numpy()).sum())
        total += len(predicted)
        shown.extend(zip(predicted[: args.show - len(shown)], labels.numpy()))
    names = metadata.class_names
    for predicted, label in shown:
        mark = "ok " if predicted == label else "BAD"
        print(f"  {mark} predicted {names[predicted]:<12} true {names[label]}")
    tta = ", flip test-time augmentation" if args.tta == "flip" else ""
    print(f"{path}: accuracy {correct / total:.4f} on {args.dataset} {args.split} ({total:,} images{tta})")
    return 0


def _load_for_analysis(spec: str, input_shape: tuple | None):
    """A registered builder name, a .keras file, or an exported SavedModel (folder or version)."""
    import keras

    from keraszoo.export import existing_versions, load_keras_model, resolve_version_dir
    from keraszoo.models import MODEL_BUILDERS, build_model

    if spec in MODEL_BUILDERS:
        if input_shape and spec != "cifar_cnn":
            raise ValueError("--input-shape applies to cifar_cnn only.")
        return build_model(spec, **({"image_shape": input_shape} if input_shape else {}))
    path = Path(spec)
    if path.suffix == ".keras" and path.is_file():
        return keras.models.load_model(path)
    if path.is_dir() and ((path / "saved_model.pb").is_file() or existing_versions(path)):
        return load_keras_model(resolve_version_dir(path))
    raise ValueError(
        f"{spec!r} is neither a registered model ({', '.join(sorted(MODEL_BUILDERS))}), "
        "a .keras file, nor an exported SavedModel folder."
    )


def _describe(args) -> int:
    from keraszoo.analysis import UnsupportedLayerError, format_fields, layer_table, receptive_fields

    input_shape = tuple(int(v) for v in args.input_shape.split(",")) if args.input_shape else None
    try:
        model = _load_for_analysis(args.model, input_shape)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    table = layer_table(model)
    try:
        fields, fields_error = receptive_fields(model), None
    except (UnsupportedLayerError, ValueError) as error:
        fields, fields_error = [], str(error)
    report = _chance_level(model, args) if args.chance_level else None
    if args.json:
        print(json.dumps({
            "model": model.name,
            "layers": table.as_dicts(),
            "totals": {"weights": table.weights, "biases": table.biases,
                       "non_trainable": table.non_trainable, "parameters": table.total},
            "receptive_fields": [
                {"layer": row.name, "size": row.field.size, "jump": row.field.jump, "start": row.field.start}
                for row in fields
            ],
            "receptive_fields_error": fields_error,
            "chance_level": report,
        }, indent=2))
        return 0
    print(f"{model.name}: input {model.input_shape[1:]}, output {model.output_shape[1:]}\n")
    print(table.format())
    if args.model == "cifar_cnn" and not input_shape:
        print(COURSE_NOTE)
    print("\nreceptive fields (size and jump in input pixels; start = centre of the first unit's field)")
    print(format_fields(fields) if fields else f"  not available: {fields_error}")
    if report:
        from keraszoo.analysis import format_report

        print(f"\nchance level on {args.dataset} {args.split}: {format_report(report)}")
    return 0


def _chance_level(model, args) -> dict:
    """Loss of a freshly initialised copy of ``model`` on real data, against ln(C)."""
    import keras
    import tensorflow as tf

    from keraszoo.analysis import evaluate_chance_level
    from keraszoo.data import load_dataset

    untrained = keras.models.clone_model(model)  # same architecture, new random weights
    dataset = load_dataset(args.dataset, args.split, batch_size=256, data_dir=args.data_dir)
    if untrained.inputs[0].dtype != "uint8":  # builders take float pixels in [0, 1]
        dataset = dataset.map(lambda x, y: (tf.cast(x, "float32") / 255.0, y))
    return evaluate_chance_level(untrained, dataset)
