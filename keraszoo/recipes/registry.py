"""Recipes by name: what ``keraszoo recipes`` lists and ``keraszoo train / study / report NAME`` runs.

Three kinds, one entry shape each:

- ``train``: a typed config and ``main(config) -> metrics`` (one run: record, checkpoint, export);
- ``study``: ``main(argv) -> status``, a grid of one training recipe x seeds through
  ``keraszoo.training.study``, then its tables and figures; ``--report-only`` only reports;
- ``tool``: ``main(argv) -> status``, something made from a trained model (a figure).

``recipes/<name>.py`` is ``run(name)`` and nothing else, so an installed package runs every
recipe without the repository's scripts. Importing this module loads no Keras.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from dataclasses import dataclass
from typing import Literal

from keraszoo.errors import KeraszooError


class UnknownRecipe(KeraszooError):
    exit_code = 2


@dataclass(frozen=True)
class Recipe:
    name: str  # also its module, keraszoo.recipes.<name>
    kind: Literal["train", "study", "tool"]
    part: int  # the course part it belongs to
    summary: str
    config: str | None = None  # train: the config class in the module
    trains: str | None = None  # study: the training recipe its runs are

    @property
    def module(self):
        return importlib.import_module(f"keraszoo.recipes.{self.name}")

    def config_class(self) -> type:
        if self.config is None:
            raise UnknownRecipe(f"{self.name} is a {self.kind}, not a training recipe: "
                                f"run it with `keraszoo {self.kind} {self.name}`.")
        return getattr(self.module, self.config)

    def run(self, argv: list[str] | None = None, *, prog: str | None = None) -> int:
        """The recipe's command line on ``argv``: its exit status (2 for bad options, one line each)."""
        with _program_name(prog or f"recipes/{self.name}.py"):
            if self.kind == "train":
                from keraszoo.training.command_line import cli_main

                return cli_main(self.module.main, self.config_class(), self.module.__doc__, argv)
            return self.module.main(argv)


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("mlp", "train", 1, "the 2-layer MLP (tanh, softmax, cross-entropy): hand-written backprop or autodiff, "
           "circles or MNIST", config="MLPConfig"),
    Recipe("mlp_study", "study", 1, "part 1's questions: learning rate, descent, linear vs tanh, loss, examples",
           trains="mlp"),
    Recipe("cifar10_cnn", "train", 2, "the course's CIFAR-10 CNN; --variant climbs the ladder baseline ... batchnorm",
           config="Cifar10CNNConfig"),
    Recipe("cifar10_ladder", "study", 2, "every ladder variant x seeds, its table and curves", trains="cifar10_cnn"),
    Recipe("cifar10_lr_batch", "study", 2, "Q.16: learning rate x batch size and the linear-scaling rule",
           trains="cifar10_cnn"),
    Recipe("cifar10_sweeps", "study", 2, "the batchnorm variant's gamma and dropout, accuracy against N",
           trains="cifar10_cnn"),
    Recipe("cifar10_speedrun", "train", 2, "a batch-norm CNN trained for a wall-clock budget (airbench-style)",
           config="SpeedrunConfig"),
    Recipe("cifar10_airbench", "train", 2, "airbench94 ported to Keras: 94 % in ~10 epochs (whitening, lookahead, "
           "alternating flip, TTA)", config="AirbenchConfig"),
    Recipe("fully_convolutional_demo", "tool", 2, "a trained CNN's dense layers as convolutions, slid over a canvas"),
    Recipe("mnist_vit", "train", 3, "a Vision Transformer from scratch on MNIST (AdamW, warmup + cosine)",
           config="MnistViTConfig"),
    Recipe("mnist_vit_sweep", "study", 3, "the ViT's embedding size, patch size and depth x seeds; ablations",
           trains="mnist_vit"),
    Recipe("vit_attention_maps", "tool", 3, "where a trained ViT's class token looks, per block and rolled out"),
    Recipe("mnist_vit_b16", "train", 3, "ViT-B/16 (or Ti/S) from keras-hub weights, fine-tuned or probed on MNIST",
           config="MnistViTB16Config"),
    Recipe("mnist_dinov2", "train", 3, "pretrained DINOv2 ViT-S/14 on MNIST: linear probe or fine-tuning",
           config="DinoTransferConfig"),
    Recipe("mnist_dinov2_study", "study", 3, "test accuracy against the number of labels: pretrained vs scratch",
           trains="mnist_dinov2"),
)}


def get_recipe(name: str, kind: str | None = None) -> Recipe:
    """The recipe called ``name`` (of ``kind`` when given); one line listing the names otherwise."""
    recipe = RECIPES.get(name)
    names = [r.name for r in RECIPES.values() if kind is None or r.kind == kind]
    if recipe is None or (kind is not None and recipe.kind != kind):
        what = f"{kind} recipe" if kind else "recipe"
        hint = f" ({name} is a {recipe.kind}: `keraszoo {recipe.kind} {name}`)" if recipe else ""
        raise UnknownRecipe(f"no {what} called {name!r}{hint}; choose one of: {', '.join(names)} "
                            "(`keraszoo recipes` says what each does).")
    return recipe


def run(name: str, argv: list[str] | None = None) -> int:
    """``recipes/<name>.py``'s whole body: the recipe's command line on ``sys.argv[1:]``."""
    return get_recipe(name).run(sys.argv[1:] if argv is None else argv)


# Where a run wrote and how it talked, not what it computed: left out of the command that reproduces it.
NOT_REPRODUCED = frozenset({"output", "export_dir", "export_name", "data_dir", "verbose", "restart", "tensorboard",
                            "data_pack", "export"})


def reproduce_command(metrics: dict, config: dict) -> str | None:
    """The ``keraszoo train`` command line that reruns a recorded run (its metrics.json and config.json):
    the recipe its name starts with, and every recorded option that differs from what the recipe (with the
    recorded preset, such as ``--variant``) would choose. A record made before validation splits gets the
    closest run of today (its own splits left out). None where the record names no recipe or holds options
    this version of the recipe no longer takes (an older keraszoo's)."""
    import dataclasses
    import shlex

    run_name = str(metrics.get("recipe") or "")
    trains = [r for r in RECIPES.values() if r.kind == "train" and run_name.startswith(r.name)]
    if not trains:
        return None
    recipe = max(trains, key=lambda r: len(r.name))
    config_class = recipe.config_class()
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    recorded = {k: v for k, v in config.items() if k in fields and v is not None}
    if "validation_split" not in config:  # made before validation splits, which no option turns off today:
        recorded.pop("train_split", None)  # the closest run trains on the default train[:-5000]
    preset = {config_class.PRESET_FIELD: recorded[config_class.PRESET_FIELD]} \
        if config_class.PRESET_FIELD in recorded else {}
    try:
        config_class(**recorded)
        chosen = config_class(**preset)
    except (TypeError, ValueError):
        return None
    words = ["keraszoo", "train", recipe.name]
    for name, value in recorded.items():
        if name in NOT_REPRODUCED or (value == getattr(chosen, name) and name not in preset):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else f"--no-{flag[2:]}")
        elif fields[name].metadata.get("positional"):
            words.append(str(value))
        else:
            words += [flag, str(value)]
    backend = (metrics.get("environment") or {}).get("backend") if isinstance(metrics.get("environment"), dict) else None
    prefix = f"KERAS_BACKEND={backend} " if backend and backend != "tensorflow" else ""
    return prefix + shlex.join(words)


@contextlib.contextmanager
def _program_name(prog: str):
    """argparse names the program after ``sys.argv[0]``: say ``keraszoo train NAME`` in usage lines when
    that is what was typed."""
    saved = sys.argv[0] if sys.argv else ""
    if sys.argv:
        sys.argv[0] = prog
    else:
        sys.argv.append(prog)
    try:
        yield
    finally:
        sys.argv[0] = saved
