"""A run folder: the files a run writes, and the rule that it only ever deletes those.

A run marks the folder it uses with ``.keraszoo-run`` (its run id and whether it
finished). A folder that is neither new, empty nor marked holds somebody else's
files: a run refuses it rather than overwrite them. Inside a marked folder a run
replaces only the record files it writes itself, and its checkpoint's own files.

Everything a run needs from the file system is checked here before the first
training step (``--output``, ``--export-dir``), so a bad option never costs a
training.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from keraszoo.errors import RunFolderConflict
from keraszoo.training import run_record
from keraszoo.training.run_record import write_json

MARKER_FILE = ".keraszoo-run"
CHECKPOINT_DIR = "checkpoint"


def read_marker(folder: Path) -> dict | None:
    """The folder's marker, or None when it is not a run folder. A damaged marker still marks it as ours."""
    path = Path(folder) / MARKER_FILE
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def write_marker(folder: Path, marker: dict) -> None:
    write_json(Path(folder) / MARKER_FILE, marker)


def new_marker(run_name: str) -> dict:
    return {"run_id": uuid.uuid4().hex, "recipe": run_name, "finished": False, "saved_model": None}


def claim(folder: Path, run_name: str) -> dict:
    """Makes ``folder`` a run folder (creating it) and returns its marker; refuses foreign folders."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RunFolderConflict(f"--output {folder} is a file, not a folder: choose another --output.")
    marker = read_marker(folder) if folder.is_dir() else None
    if marker is not None:
        return marker
    if folder.is_dir():
        foreign = [p.name for p in folder.iterdir() if read_marker(p) is None]  # multi-worker runs nest
        if foreign:
            raise RunFolderConflict(
                f"--output {folder} is not empty and is not a keraszoo run folder (no {MARKER_FILE}; it holds "
                f"{', '.join(sorted(foreign)[:3])}{', ...' if len(foreign) > 3 else ''}): choose a new or empty "
                "folder, so that no file of yours is overwritten."
            )
    marker = new_marker(run_name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_marker(folder, marker)
    except OSError as error:
        raise RunFolderConflict(f"cannot write the run folder --output {folder}: {error.strerror or error}. "
                                "Choose a writable --output.") from None
    return marker


def check_export_dir(export_dir: str | os.PathLike) -> None:
    """--export-dir must be a folder this process can write in (or create)."""
    path = Path(export_dir)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise RunFolderConflict(f"--export-dir {export_dir}: {existing} is a file, not a folder; choose another "
                                "--export-dir.")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise RunFolderConflict(f"--export-dir {export_dir}: {existing} is not writable; choose another "
                                "--export-dir.")


def start_fresh(folder: Path, run_name: str) -> dict:
    """Forgets the folder's previous run: removes the files runs write there, and marks a new run."""
    from keraszoo.training.checkpoint import EpochCheckpoint

    EpochCheckpoint(folder / CHECKPOINT_DIR).clear()
    for name in run_record.RECORD_FILES:  # a finished run's record is replaced, not mixed in
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / run_record.TENSORBOARD_DIR, ignore_errors=True)  # nor its TensorBoard curves
    marker = new_marker(run_name)
    write_marker(folder, marker)
    return marker


def mark_finished(folder: Path, marker: dict, saved_model: str | None) -> None:
    write_marker(folder, {**marker, "finished": True, "saved_model": saved_model})
