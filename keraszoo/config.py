"""Typed recipe configs: frozen dataclasses, validated, overridable from the command line.

A leaf module: it imports nothing of keraszoo and no TensorFlow, so ``recipe.py --help``
answers at once and every other module may import it.

A recipe subclasses ``TrainConfig``, adds its own fields (each with a ``help`` in its
metadata) and changes inherited defaults in ``DEFAULTS`` without restating the field:

    @dataclass(frozen=True)
    class MnistViTConfig(TrainConfig):
        DEFAULTS = {"epochs": 15, "optimizer": "adamw"}
        patch_size: int = option(7, "patch side in pixels")

``parse_config(MyConfig)`` turns every field into a ``--field-name`` option; unknown or
misspelt options are rejected, and values that fail validation are command-line errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import ClassVar, Literal

# The one wording of --data-dir, wherever it is an option: the rule of keraszoo/data/folder.py.
DATA_DIR_HELP = ("prepared TFDS data folder (default: $TFDS_DATA_DIR, else ../shared/tensorflow_datasets beside the "
                 "checkout when it exists, else ~/tensorflow_datasets; `keraszoo data` says which)")

# A model folder under --export-dir: one path component, as TF Serving's model names.
EXPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def option(default, help: str, **kwargs):  # noqa: A002 - mirrors argparse's name
    """A dataclass field with the help text its command-line option shows. ``resumable=True``: a resumed run
    may be given another value (it changes where or how long the same computation runs, not what it is)."""
    return field(default=default, metadata={"help": help, **kwargs})


class _InheritedDefaults:
    """Applies a subclass's ``DEFAULTS`` to the inherited fields before ``@dataclass`` reads them.

    A value keeps the field's type and help; ``option(value, help)`` also changes the help.
    A default of None makes the field optional (a recipe that fills it in ``__post_init__``).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        defaults = cls.__dict__.get("DEFAULTS")
        if not defaults:
            return
        base = next(b for b in cls.__mro__[1:] if dataclasses.is_dataclass(b))
        inherited, hints = {f.name: f for f in dataclasses.fields(base)}, typing.get_type_hints(base)
        annotations = cls.__dict__.get("__annotations__", {})
        cls.__annotations__ = annotations
        for name, value in defaults.items():
            if name not in inherited:
                raise TypeError(f"{cls.__name__}.DEFAULTS names {name!r}, which is not an inherited field.")
            if name in annotations:
                raise TypeError(f"{cls.__name__} both declares {name!r} and changes its default in DEFAULTS.")
            help_text = inherited[name].metadata.get("help", "")
            if isinstance(value, dataclasses.Field):
                help_text, value = value.metadata.get("help", help_text), value.default
            annotation = hints[name]
            if value is None and type(None) not in typing.get_args(annotation):
                annotation = annotation | None
            annotations[name] = annotation
            kept = {k: v for k, v in inherited[name].metadata.items() if k != "help"}  # e.g. resumable
            setattr(cls, name, option(value, help_text, **kept))


@dataclass(frozen=True)
class DataOptions:
    """Where the examples come from and how they are split."""

    SECTION: ClassVar[str] = "data"

    data_dir: str | None = option(None, DATA_DIR_HELP)
    train_split: str = option(
        "train[:-5000]", "TFDS split to train on; slices work, e.g. 'train[:5000]' (the default leaves the last "
        "5,000 training images to --validation-split)")
    validation_split: str = option(
        "train[-5000:]", "split evaluated after every epoch: monitoring, early stopping and every choice of a "
        "setting use it; it must not overlap --train-split")
    test_split: str = option(
        "test", "split evaluated once, when training ends, and reported: never used to choose anything")
    data_pack: str | None = option(
        None, "read the splits from this compact pack (`keraszoo pack`) instead of TFDS: for machines "
        "without TensorFlow; the splits' slices apply to it"
    )


@dataclass(frozen=True)
class OptimizerOptions:
    """What is trained, for how long, with which optimizer."""

    SECTION: ClassVar[str] = "optimisation"

    epochs: int = option(30, "number of epochs (a resumed run may raise it)", resumable=True)
    batch_size: int = option(128, "examples per training batch")
    optimizer: Literal["sgd", "adam", "adamw"] = option("sgd", "optimizer")
    learning_rate: float = option(0.1, "initial learning rate")
    momentum: float = option(0.0, "SGD momentum (ignored by adam and adamw)")
    weight_decay: float = option(
        0.0, "weight decay: sgd's is PyTorch's (added to the gradient), adamw's decoupled; adam takes none")


@dataclass(frozen=True)
class RunOptions:
    """The run: seed, record folder, resume, what it prints."""

    SECTION: ClassVar[str] = "run"

    seed: int = option(0, "seed for weight initialisation, data order and augmentation")
    deterministic: bool = option(
        True, "make TensorFlow ops deterministic (same seed and data give the same metrics on CPU)"
    )
    evaluate_at_init: bool = option(
        True, "evaluate the untrained model first: the loss at chance level is ln(num_classes)"
    )
    output: str | None = option(
        None, "run folder for the record and the resume checkpoint (default: runs/<recipe>/seed<seed>)", resumable=True)
    restart: bool = option(
        False, "discard the run folder's checkpoint and record (files this run wrote) and start over, "
        "instead of resuming", resumable=True)
    verbose: Literal["auto", "0", "1", "2"] = option(
        "auto", "Keras verbosity: 1 progress bar, 2 one line per epoch, 0 silent", resumable=True)
    tensorboard: bool = option(
        False, "write TensorBoard logs (losses, accuracies, learning rate, graph) to <output>/tensorboard; "
        "view them with: tensorboard --logdir <output>/tensorboard", resumable=True)


@dataclass(frozen=True)
class ExecutionOptions:
    """Where and how the same computation runs: devices, precision, compilation, threads."""

    SECTION: ClassVar[str] = "execution"

    strategy: Literal["default", "mirrored", "multiworker"] = option(
        "default", "one device, every local GPU (mirrored: tf.distribute on TensorFlow, keras.distribution's "
        "DataParallel on JAX), or the TF_CONFIG cluster (multiworker, TensorFlow); --batch-size is the global "
        "batch (docs/distributed.md)", resumable=True)
    mixed_precision: bool | None = option(
        None, "compute in float16 on GPUs / bfloat16 on CPUs, keeping float32 weights and logits (exports "
        "compute in float32). Unset: bfloat16 where the recipe measured faster with it at equal accuracy (the "
        "course CNN: 1.3-1.6x) and TensorFlow runs on a CPU with bfloat16 units (AVX-512 BF16 or AMX), else "
        "float32 (docs/performance.md)"
    )
    jit_compile: Literal["auto", "on", "off"] = option(
        "auto", "XLA compilation; auto is off on CPUs (measured slower here) and Keras's auto on GPUs", resumable=True)
    steps_per_execution: int = option(
        1, "training steps per call into the backend; the same training, less per-call cost: 43-215 tripled the "
        "MLP's speed (docs/performance.md). Per-step schedules follow every step; the speedrun's clock is read "
        "once per call", resumable=True)
    intra_op_threads: int = option(
        0, "threads one TensorFlow op may use (0: TensorFlow's default, every core). 1 runs small ops side by side, "
        "one core each: the MNIST ViT's epochs took 5 and 12 %% less time on 2 cores; the CNN's large convolutions "
        "keep the default (docs/performance.md). TensorFlow only; set once per process", resumable=True)
    inter_op_threads: int = option(
        0, "TensorFlow ops run side by side (0: TensorFlow's default, one per core). TensorFlow only; set once "
        "per process", resumable=True)


@dataclass(frozen=True)
class ExportOptions:
    """The SavedModel written when training ends."""

    SECTION: ClassVar[str] = "export"

    export: bool = option(True, "export a SavedModel when training ends", resumable=True)
    export_dir: str = option("saved_models", "root of the TensorFlow Serving model folders", resumable=True)
    export_name: str | None = option(None, "model folder under --export-dir (default: the recipe's model name)")

@dataclass(frozen=True)
class TrainConfig(ExportOptions, ExecutionOptions, RunOptions, OptimizerOptions, DataOptions, _InheritedDefaults):
    """What every recipe shares, as sections (data, optimisation, run, execution, export), each its own
    group of options; a recipe adds its own fields (its model's) and changes defaults in ``DEFAULTS``."""

    DEFAULTS: ClassVar[dict] = {}
    # Named settings of the config, chosen by the field PRESET_FIELD names (cifar10_cnn's --variant): each a
    # {field: value}; a field left unset (None) takes the chosen preset's value, an explicit one wins.
    PRESETS: ClassVar[dict[str, dict]] = {}
    PRESET_FIELD: ClassVar[str] = "variant"
    # What an unset --mixed-precision becomes on a CPU with bfloat16 units: bfloat16 only for recipes
    # measured faster with it at equal accuracy (docs/performance.md); small-op models lose to the casts.
    AUTO_BFLOAT16: ClassVar[bool] = False

    def __post_init__(self):
        # The preset's values first, so that config.json records every value that ran and the checks see them.
        for name, value in self.PRESETS.get(getattr(self, self.PRESET_FIELD, None), {}).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        for f in dataclasses.fields(self):  # nan and inf pass every range check below
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name}={value!r}: give a finite number.")
        if self.export_name is not None and not EXPORT_NAME.match(self.export_name):
            raise ValueError(f"export_name={self.export_name!r}: use letters, digits, '_', '-' and '.' only "
                             "(one folder name under --export-dir, not a path).")
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "steps_per_execution": self.steps_per_execution >= 1,
            "learning_rate": self.learning_rate > 0,
            "momentum": 0 <= self.momentum < 1,
            "seed": self.seed >= 0,
            "weight_decay": self.weight_decay >= 0,
            "intra_op_threads": self.intra_op_threads >= 0,
            "inter_op_threads": self.inter_op_threads >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is out of range: epochs, batch_size and steps_per_execution "
                    "must be >= 1, learning_rate > 0, 0 <= momentum < 1, seed, weight_decay and the thread counts >= 0."
                )
        _check_literals(self)
        if self.optimizer == "adam" and self.weight_decay:
            raise ValueError(f"weight_decay={self.weight_decay:g} with adam: Adam has no weight decay here; "
                             "use --optimizer adamw (decoupled decay) or --weight-decay 0.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        """The config of a run record's config.json (keys it does not know are left out)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def keras_verbose(self):
        return self.verbose if self.verbose == "auto" else int(self.verbose)


SECTIONS = (DataOptions, OptimizerOptions, RunOptions, ExecutionOptions, ExportOptions)


def section_of(name: str) -> str | None:
    """The section (``SECTION``) a shared field belongs to; None for a recipe's own field."""
    return next((section.SECTION for section in SECTIONS if name in section.__dataclass_fields__), None)


def resumable_fields(config_class=None) -> frozenset:
    """The fields a resumed run may change, as the fields themselves say (``option(..., resumable=True)``)."""
    return frozenset(f.name for f in dataclasses.fields(config_class or TrainConfig) if f.metadata.get("resumable"))


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


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the recipe docstring's layout and shows defaults that are set."""

    def _get_help_string(self, action):
        if action.default not in (None, argparse.SUPPRESS) and action.option_strings:
            return f"{action.help} (default: {action.default})"
        return action.help


def add_config_arguments(parser: argparse.ArgumentParser, config_class, *, unset_defaults: bool = False) -> None:
    """A ``--field-name`` option per field of ``config_class`` (a positional argument where the field's
    metadata says ``positional=True``), with its type, choices, default and help. A recipe's own fields come
    first; the shared ones follow in one group per section (data, optimisation, run, execution, export).
    ``unset_defaults``: every default is None, "the recipe's" (a study passes on only what was given)."""
    hints = typing.get_type_hints(config_class)
    groups = {}
    for f in dataclasses.fields(config_class):
        section = section_of(f.name) if issubclass(config_class, TrainConfig) or config_class in SECTIONS else None
        if section is not None and section not in groups:
            groups[section] = parser.add_argument_group(f"{section} options")
        target = groups[section] if section is not None else parser
        kwargs = {"default": None if unset_defaults else f.default, "help": f.metadata.get("help", "")}
        if unset_defaults:
            kwargs["help"] += " (default: the recipe's)"
        annotation = hints[f.name]
        if f.metadata.get("positional"):
            target.add_argument(f.name, nargs="?", type=_option_type(annotation), **kwargs)
            continue
        flag, kwargs["dest"] = "--" + f.name.replace("_", "-"), f.name
        if _option_type(annotation) is bool:
            target.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        choices = _literal_choices(annotation)
        if choices:
            kwargs["choices"] = choices
        target.add_argument(flag, type=_option_type(annotation), **kwargs)


def build_parser(config_class, description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description or (config_class.__doc__ or "").strip(),
        formatter_class=HelpFormatter,
        allow_abbrev=False,  # '--epoch 3' is an error, not a silent '--epochs 3'
    )
    add_config_arguments(parser, config_class)
    return parser


def parse_config(config_class, argv: list[str] | None = None, description: str | None = None):
    """The config that the command line asks for; exits with a usage error on bad input."""
    parser = build_parser(config_class, description)
    namespace = parser.parse_args(argv)
    try:
        return config_class(**vars(namespace))
    except ValueError as error:
        parser.error(str(error))
