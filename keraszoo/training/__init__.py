"""Training shared by every recipe: typed configs, the fit loop with resume, the run record.

The names below load their module on first use (PEP 562), so that TensorFlow-free parts,
such as ``keraszoo.training.callbacks``, import on machines without TensorFlow (the lent
GPU machines have JAX and PyTorch only; see recipes/cifar10_ladder_arrays.py).
"""

import importlib

from keraszoo.config import TrainConfig, option, parse_config

_TRAINER_NAMES = ("RunFolderConflict", "TrainResult", "compile_classifier", "finish_run", "seed_everything", "train")

__all__ = ["TrainConfig", "make_optimizer", "option", "parse_config", *_TRAINER_NAMES]


def __getattr__(name):
    if name in _TRAINER_NAMES:
        return getattr(importlib.import_module("keraszoo.training.trainer"), name)
    if name == "make_optimizer":
        return importlib.import_module("keraszoo.training.optimizers").make_optimizer
    raise AttributeError(f"module 'keraszoo.training' has no attribute {name!r}")
