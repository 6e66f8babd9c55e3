"""Typed recipe configs: frozen dataclasses, validated, overridable from the command line.

This module does not import TensorFlow, so ``recipe.py --help`` answers at once.

A recipe subclasses ``TrainConfig``, adds its own fields (each with a ``help``
in its metadata) and calls ``parse_config(MyConfig)``: every field becomes a
``--field-name`` option, unknown or misspelt options are rejected, and values
that fail validation are reported as command-line errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
import types
import typing
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

# Fields that may change between a run and its resumption: they do not change what is trained.
# The strategy and XLA change where and how the same computation runs, not what it computes.
RESUMABLE_FIELDS = frozenset({"epochs", "output", "export", "export_dir", "verbose", "strategy", "jit_compile",
                              "steps_per_execution", "restart"})
# A model folder under --export-dir: one path component, as TF Serving's model names.
EXPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DISTRIBUTION_FIELDS = ("strategy", "mixed_precision", "jit_compile")


def option(default, help: str, **kwargs):  # noqa: A002 - mirrors argparse's name
    """A dataclass field with the help text its command-line option shows."""
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass(frozen=True)
class TrainConfig:
    """What every recipe shares: data, optimisation, seed, where records and exports go."""

    data_dir: str | None = option(
        None, "prepared TFDS data_dir (default: $TFDS_DATA_DIR, else TFDS's default)"
    )
    train_split: str = option("train", "TFDS split to train on; slices work, e.g. 'train[:5000]'")
    test_split: str = option("test", "TFDS split evaluated after every epoch")
    epochs: int = option(30, "number of epochs (a resumed run may raise it)")
    batch_size: int = option(128, "examples per training batch")
    optimizer: Literal["sgd", "adam", "adamw"] = option("sgd", "optimizer")
    learning_rate: float = option(0.1, "initial learning rate")
    momentum: float = option(0.0, "SGD momentum (ignored by adam and adamw)")
    weight_decay: float = option(0.0, "decoupled weight decay (adamw only)")
    seed: int = option(0, "seed for weight initialisation, data order and augmentation")
    deterministic: bool = option(
        True, "make TensorFlow ops deterministic (same seed and data give the same metrics on CPU)"
    )
    evaluate_at_init: bool = option(
        True, "evaluate the untrained model first: the loss at chance level is ln(num_classes)"
    )
    output: str | None = option(
        None, "run folder for the record and the resume checkpoint (default: runs/<recipe>/seed<seed>)"
    )
    strategy: Literal["default", "mirrored", "multiworker"] = option(
        "default", "tf.distribute strategy: one device, all local GPUs (mirrored), or the TF_CONFIG cluster "
        "(multiworker); --batch-size is the global batch (docs/distributed.md)"
    )
    mixed_precision: bool = option(
        False, "compute in float16 on GPUs / bfloat16 on CPUs, keeping float32 weights and logits"
    )
    jit_compile: Literal["auto", "on", "off"] = option(
        "auto", "XLA compilation; auto is off on CPUs (measured slower here) and Keras's auto on GPUs"
    )
    steps_per_execution: int = option(
        1, "training steps per call into TensorFlow; 10 doubled the MLP's speed (docs/performance.md), "
        "but per-step learning-rate schedules (the ViT recipes, the speedrun) need 1"
    )
    restart: bool = option(
        False, "discard the run folder's checkpoint and record (files this run wrote) and start over, "
        "instead of resuming"
    )
    export: bool = option(True, "export a SavedModel when training ends")
    export_dir: str = option("saved_models", "root of the TensorFlow Serving model folders")
    verbose: Literal["auto", "0", "1", "2"] = option(
        "auto", "Keras verbosity: 1 progress bar, 2 one line per epoch, 0 silent"
    )

    def __post_init__(self):
        for f in dataclasses.fields(self):  # nan and inf pass every range check below
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name}={value!r}: give a finite number.")
        export_name = getattr(self, "export_name", None)
        if export_name is not None and not EXPORT_NAME.match(export_name):
            raise ValueError(f"export_name={export_name!r}: use letters, digits, '_', '-' and '.' only "
                             "(one folder name under --export-dir, not a path).")
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "steps_per_execution": self.steps_per_execution >= 1,
            "learning_rate": self.learning_rate > 0,
            "momentum": 0 <= self.momentum < 1,
            "seed": self.seed >= 0,
            "weight_decay": self.weight_decay >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is out of range: epochs, batch_size and steps_per_execution "
                    "must be >= 1, learning_rate > 0, 0 <= momentum < 1, seed >= 0 and weight_decay >= 0."
                )
        _check_literals(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def keras_verbose(self):
        return self.verbose if self.verbose == "auto" else int(self.verbose)


def _check_literals(config) -> None:
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        choices = _literal_choices(hints[f.name])
        value = getattr(config, f.name)
        if choices and value not in choices:
            raise ValueError(f"{f.name}={value!r} is not one of {list(choices)}.")


def _literal_choices(annotation) -> tuple | None:
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    return None


def _option_type(annotation):
    """int, float, str or bool behind an annotation such as ``str | None``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _option_type(args[0])
    if annotation in (int, float, str, bool):
        return annotation
    if _literal_choices(annotation):
        return type(_literal_choices(annotation)[0])
    raise TypeError(f"config fields must be int, float, str, bool or a Literal, not {annotation}")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the recipe docstring's layout and shows defaults that are set."""

    def _get_help_string(self, action):
        if action.default not in (None, argparse.SUPPRESS) and action.option_strings:
            return f"{action.help} (default: {action.default})"
        return action.help


def build_parser(config_class, description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description or (config_class.__doc__ or "").strip(),
        formatter_class=_HelpFormatter,
        allow_abbrev=False,  # '--epoch 3' is an error, not a silent '--epochs 3'
    )
    hints = typing.get_type_hints(config_class)
    for f in dataclasses.fields(config_class):
        flag = "--" + f.name.replace("_", "-")
        kwargs = {"default": f.default, "help": f.metadata.get("help", ""), "dest": f.name}
        annotation = hints[f.name]
        if _option_type(annotation) is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        choices = _literal_choices(annotation)
        if choices:
            kwargs["choices"] = choices
        parser.add_argument(flag, type=_option_type(annotation), **kwargs)
    return parser


def parse_config(config_class, argv: list[str] | None = None, description: str | None = None):
    """The config that the command line asks for; exits with a usage error on bad input."""
    parser = build_parser(config_class, description)
    namespace = parser.parse_args(argv)
    try:
        return config_class(**vars(namespace))
    except ValueError as error:
        parser.error(str(error))


def changed_fields(saved: dict, current: dict, *, ignore=RESUMABLE_FIELDS) -> dict:
    """``{name: (saved, current)}`` for the fields that differ, ignoring ``ignore``."""
    names = (set(saved) | set(current)) - set(ignore)
    return {
        name: (saved.get(name), current.get(name))
        for name in sorted(names)
        if json.dumps(saved.get(name)) != json.dumps(current.get(name))
    }


def format_changes(changes: dict) -> str:
    """``changed_fields``'s result as "name: old -> new, ..." for an error message."""
    return ", ".join(f"{name}: {old!r} -> {new!r}" for name, (old, new) in changes.items())


def cli_main(main: Callable, config_class: type, description: str, argv=None) -> int:
    """Runs a recipe's ``main(config)`` from the command line.

    Bad options exit with argparse's usage error (status 2). The failures a user can fix
    print one line without a traceback: a problem with what was asked (dataset not prepared,
    run folder conflict, damaged checkpoint, invalid value) returns 2, a run that failed on
    its way (loss diverged, damaged data, disk full) returns 1.
    """
    config = parse_config(config_class, argv, description=description)
    import tensorflow as tf

    from keraszoo.data import DatasetNotFoundError, describe_data_loss
    from keraszoo.errors import CheckpointError, KeraszooError
    from keraszoo.training.distribute import make_strategy

    try:
        make_strategy(config.strategy)  # before any other TensorFlow op, as tf.distribute requires
        try:
            main(config)
        except tf.errors.DataLossError as error:
            print(f"error: {describe_data_loss(error)}", file=sys.stderr)
            return 1
    except KeraszooError as error:
        print(f"error: {error}", file=sys.stderr)
        if isinstance(error, CheckpointError):
            # A failed HDF5 write leaves h5py objects whose teardown at exit can crash the interpreter
            # (rc 139 after a disk-full error); every file the run keeps is already written whole.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(error.exit_code)
        return error.exit_code
    except (DatasetNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # disk full, read-only folder, ...: what failed and where
        where = f" ({error.filename})" if error.filename else ""
        print(f"error: {error.strerror or error}{where}. Fix that and run the same command again: the run resumes "
              "after its last finished epoch.", file=sys.stderr)
        return 1
    return 0


def add_distribution_arguments(parser: argparse.ArgumentParser) -> None:
    """--strategy, --mixed-precision and --jit-compile for runners that call recipes' main()."""
    for f in dataclasses.fields(TrainConfig):
        if f.name in DISTRIBUTION_FIELDS:
            flag = "--" + f.name.replace("_", "-")
            choices = _literal_choices(typing.get_type_hints(TrainConfig)[f.name])
            if choices:
                parser.add_argument(flag, choices=choices, default=f.default, help=f.metadata["help"])
            else:
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default,
                                    help=f.metadata["help"])


def distribution_options(args: argparse.Namespace) -> dict:
    """The runner's distribution options as TrainConfig keyword arguments; creates the strategy first."""
    from keraszoo.training.distribute import make_strategy

    make_strategy(args.strategy)  # before any other TensorFlow op, as tf.distribute requires
    return {name: getattr(args, name) for name in DISTRIBUTION_FIELDS}


def load_recipe_script(path: str | Path):
    """Imports a recipe script (e.g. recipes/cifar10_cnn.py) as a module, for runners that call its main()."""
    import importlib.util

    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"{path.stem}_recipe", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module
