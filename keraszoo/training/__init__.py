"""Training shared by every recipe: the fit loop with resume, the run record, the runner and studies.

The names below load their module on first use (PEP 562), so that importing the package
loads no backend: ``recipe.py --help`` answers at once, and a machine with JAX or PyTorch
but no TensorFlow trains from in-memory splits (``keraszoo.data.arrays``).
"""

import importlib

from keraszoo.config import TrainConfig, option, parse_config

_EXPORTS = {
    "keraszoo.training.trainer": ("TrainResult", "compile_classifier", "finish_run", "seed_everything", "train"),
    "keraszoo.training.runner": ("ClassificationData", "export_run", "load_data", "run_classification"),
    "keraszoo.training.optimizers": ("make_optimizer",),
    "keraszoo.errors": ("RunFolderConflict",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["TrainConfig", "option", "parse_config", *sorted(_MODULE_OF)]


def __getattr__(name):
    if name in _MODULE_OF:
        return getattr(importlib.import_module(_MODULE_OF[name]), name)
    raise AttributeError(f"module 'keraszoo.training' has no attribute {name!r}")
