"""``keraszoo serve / predict``: the REST server over saved_models/, and a client for it."""

from __future__ import annotations

import sys
from pathlib import Path


def add_commands(commands) -> None:
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


def _serve(args) -> int:
    import dataclasses

    from keraszoo.serving.config import ServingConfig, listen

    try:
        config = ServingConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ServingConfig)})
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    made = None  # the link folder made for a model's name, removed when the server stops
    if config.model_config_file:
        from keraszoo.serving.model_config import ModelConfigError, read_model_config

        try:
            read_model_config(config.model_config_file)  # a file that cannot be used: one line, before loading
        except ModelConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    elif not Path(config.model_root).is_dir():
        from keraszoo.export.trained import trained_models

        trained = trained_models()
        if config.model_root not in trained:
            print(f"error: {config.model_root} is neither a folder nor a trained model's name; export a model first "
                  "(./run.sh quickstart), pass the folder that holds <name>/<version>/, or one of: "
                  f"{', '.join(trained) or 'no trained model yet'}.", file=sys.stderr)
            return 2
        made = _root_of_one(trained[config.model_root].version_dir.parent)
        config = dataclasses.replace(config, model_root=made)
    try:
        try:
            sock = listen(config.host, config.port)  # a busy port is found before any model loads
            if config.grpc_port:
                listen(config.host, config.grpc_port).close()  # gRPC binds it again when the models are loaded
        except OSError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        from keraszoo.serving.app import serve  # TensorFlow loads here, after the options are checked

        serve(config, sock)
        return 0
    finally:
        if made is not None:  # the link (not what it points to) and its folder
            for link in Path(made).iterdir():
                link.unlink()
            Path(made).rmdir()


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


def _root_of_one(model_dir: Path) -> str:
    """A model root holding only ``model_dir`` (a link to it): `keraszoo serve NAME` serves that model alone,
    with every version of its folder, as TF Serving serves one --model_base_path."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="keraszoo-serve-"))
    (root / model_dir.name).symlink_to(model_dir.resolve(), target_is_directory=True)
    return str(root)
