"""Training shared by every recipe: typed configs, the fit loop with resume, the run record."""

from keraszoo.config import TrainConfig, option, parse_config
from keraszoo.training.trainer import (
    RunFolderConflict,
    TrainResult,
    compile_classifier,
    finish_run,
    make_optimizer,
    seed_everything,
    train,
)

__all__ = [
    "RunFolderConflict",
    "TrainConfig",
    "TrainResult",
    "compile_classifier",
    "finish_run",
    "make_optimizer",
    "option",
    "parse_config",
    "seed_everything",
    "train",
]
