"""Per-epoch resume checkpoints that a kill can never leave half-written, verified on resume.

Keras's ``BackupAndRestore`` writes the weights and then the epoch number as two
files, so a kill between the two resumes the wrong epoch with the wrong weights.
Here each epoch's state is written into a temporary folder that is renamed into
place, so a checkpoint folder either exists whole or not at all:

- ``model.weights.h5``: weights with the optimizer's variables (step count, momenta);
- ``state.json``: the epoch count, the history so far, and the state of every random
  layer's ``SeedGenerator`` (crop, flip, dropout), which Keras leaves out of weight
  files: without it a resumed run draws other crops and dropout masks than an
  uninterrupted one;
- ``checksums.json``, written last: the SHA-256 of the other two, checked before a
  resume loads anything, so a damaged file is reported instead of trained on.

A checkpoint folder only ever holds files it wrote: ``clear`` removes those and
nothing else.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import keras
import numpy as np

from keraszoo.errors import CheckpointError
from keraszoo.faults import pause_point
from keraszoo.training.run_record import write_json

WEIGHTS_FILE = "model.weights.h5"
STATE_FILE = "state.json"
CHECKSUMS_FILE = "checksums.json"
CHECKPOINT_FILES = (WEIGHTS_FILE, STATE_FILE, CHECKSUMS_FILE)
STATE_KEYS = ("epoch", "history", "initial", "resumed_at")
RESTART_HINT = "run the same command with --restart to discard it and start over"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def seed_states(model) -> list:
    """The state variables of the model's SeedGenerators, in the model's (stable) variable order."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _check_free_space(folder: Path, model) -> None:
    """Refuses to start a checkpoint that cannot fit: h5py failing mid-file prints its own tracebacks."""
    variables = [*model.variables, *getattr(model.optimizer, "variables", [])]
    needed = sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables) + (1 << 20)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"No space left on device ({free / 2**20:.1f} MiB free, the checkpoint needs "
                                    f"about {needed / 2**20:.1f} MiB)")


def _reason(error: OSError) -> str:
    """One line: h5py's messages run over several lines and bury the errno."""
    text = str(error)
    if "errno = 28" in text:
        return "No space left on device"
    return (error.strerror or text).strip().splitlines()[0][:200]


class EpochCheckpoint:
    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def _epoch_folders(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob("epoch-[0-9]*") if p.is_dir())

    def latest(self) -> Path | None:
        """The newest checkpoint folder (complete by construction: it is renamed into place whole)."""
        folders = self._epoch_folders()
        return folders[-1] if folders else None

    def save(self, model, state: dict) -> Path:
        """Saves ``model`` (weights, optimizer and random-layer state) with ``state``, which must hold 'epoch'."""
        epoch = int(state["epoch"])
        final = self.directory / f"epoch-{epoch:05d}"
        tmp = self.directory / f".tmp-{final.name}-{os.getpid()}"
        try:
            self._remove(tmp)
            tmp.mkdir(parents=True)
            _check_free_space(tmp, model)
            # A compiled model's weights file also holds its optimizer's variables
            # (iterations, momenta), which is what an exact resume needs.
            model.save_weights(tmp / WEIGHTS_FILE)
            seeds = [[int(x) for x in keras.ops.convert_to_numpy(variable).tolist()] for variable in seed_states(model)]
            write_json(tmp / STATE_FILE, {**state, "seed_states": seeds})
            write_json(tmp / CHECKSUMS_FILE, {name: sha256(tmp / name) for name in (WEIGHTS_FILE, STATE_FILE)})
            pause_point(f"checkpoint-{epoch}/written")
            self._remove(final)
            os.rename(tmp, final)
        except OSError as error:
            self._remove(tmp)
            raise CheckpointError(
                f"could not write the checkpoint of epoch {epoch} to {self.directory}: {_reason(error)}. Make room "
                "(or make the folder writable) and run the same command again: it resumes after the last saved epoch."
            ) from None
        pause_point(f"checkpoint-{epoch}/renamed")
        for old in self._epoch_folders() + sorted(self.directory.glob(".tmp-epoch-*")):
            if old != final:  # older epochs and leftovers of killed saves
                self._remove(old)
        return final

    def restore(self, model) -> dict | None:
        """Verifies the newest checkpoint, loads it into ``model`` and returns its state, or None."""
        latest = self.latest()
        if latest is None:
            return None
        state = self.verify(latest)
        if model.optimizer is not None and not model.optimizer.built:
            # The optimizer's variables must exist before their values can be loaded.
            model.optimizer.build(model.trainable_variables)
        try:
            model.load_weights(latest / WEIGHTS_FILE)
        except Exception as error:  # h5py and Keras raise many types for a file that does not fit
            raise CheckpointError(f"{latest / WEIGHTS_FILE} does not fit this model ({error}); {RESTART_HINT}.") from None
        variables, seeds = seed_states(model), state.pop("seed_states")
        if len(seeds) != len(variables):
            raise CheckpointError(f"{latest / STATE_FILE} holds {len(seeds)} random-layer states, the model has "
                                  f"{len(variables)}; {RESTART_HINT}.")
        for variable, value in zip(variables, seeds):
            variable.assign(value)
        return state

    def verify(self, folder: Path) -> dict:
        """The state of checkpoint ``folder`` after checking every file against its checksum."""
        try:
            expected = json.loads((folder / CHECKSUMS_FILE).read_text())
        except (OSError, ValueError):
            raise CheckpointError(f"{folder / CHECKSUMS_FILE} is missing or unreadable, so the checkpoint cannot be "
                                  f"verified; {RESTART_HINT}.") from None
        for name in (WEIGHTS_FILE, STATE_FILE):
            path = folder / name
            if not path.is_file():
                raise CheckpointError(f"{path} is missing; {RESTART_HINT}.")
            if not isinstance(expected, dict) or sha256(path) != expected.get(name):
                raise CheckpointError(f"{path} is damaged (its SHA-256 differs from the one recorded when it was "
                                      f"written); {RESTART_HINT}.")
        state = json.loads((folder / STATE_FILE).read_text())
        missing = [key for key in (*STATE_KEYS, "seed_states") if key not in state]
        if missing:
            raise CheckpointError(f"{folder / STATE_FILE} lacks {', '.join(missing)}; {RESTART_HINT}.")
        return state

    def clear(self) -> None:
        """Removes the checkpoints and temporary folders this class wrote, and the folder if it is then empty."""
        for folder in self._epoch_folders() + sorted(self.directory.glob(".tmp-epoch-*")):
            self._remove(folder)
        try:
            self.directory.rmdir()
        except OSError:
            pass  # absent, or holds files that are not ours: left alone

    @staticmethod
    def _remove(folder: Path) -> None:
        """Deletes a checkpoint folder's own files (and their temporary copies), then the folder if empty."""
        if not folder.is_dir():
            return
        for name in CHECKPOINT_FILES:
            for path in (folder / name, folder / f".{name}.tmp"):
                path.unlink(missing_ok=True)
        try:
            folder.rmdir()
        except OSError:
            pass  # someone else's files are in it: keep them
