"""Per-epoch resume checkpoints that a kill can never leave half-written.

Keras's ``BackupAndRestore`` writes the weights and then the epoch number as two
files, so a kill between the two resumes the wrong epoch with the wrong weights.
Here each epoch's state (weights with optimizer variables, plus a JSON state with
the epoch count and the history so far) is written into a temporary folder that
is renamed into place: a checkpoint folder either exists whole or not at all.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from keraszoo.training.run_record import read_json, write_json

WEIGHTS_FILE = "model.weights.h5"
STATE_FILE = "state.json"


class EpochCheckpoint:
    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def _complete(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(
            p for p in self.directory.glob("epoch-*") if (p / STATE_FILE).is_file() and p.is_dir()
        )

    def latest(self) -> Path | None:
        complete = self._complete()
        return complete[-1] if complete else None

    def save(self, model, state: dict) -> Path:
        """Saves ``model`` (weights and optimizer state) with ``state``, which must hold 'epoch'."""
        final = self.directory / f"epoch-{int(state['epoch']):05d}"
        tmp = self.directory / f".tmp-{final.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        # A compiled model's weights file also holds its optimizer's variables
        # (iterations, momenta), which is what an exact resume needs.
        model.save_weights(tmp / WEIGHTS_FILE)
        write_json(tmp / STATE_FILE, state)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        for old in self.directory.iterdir():  # older epochs and leftovers of killed saves
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
        return final

    def restore(self, model) -> dict | None:
        """Loads the newest complete checkpoint into ``model`` and returns its state, or None."""
        latest = self.latest()
        if latest is None:
            return None
        if model.optimizer is not None and not model.optimizer.built:
            # The optimizer's variables must exist before their values can be loaded.
            model.optimizer.build(model.trainable_variables)
        model.load_weights(latest / WEIGHTS_FILE)
        return read_json(latest / STATE_FILE)

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
