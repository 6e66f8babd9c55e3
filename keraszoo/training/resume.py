"""Resuming a run: which options may change, and the checks before a checkpoint is loaded."""

from __future__ import annotations

import json
from pathlib import Path

from keraszoo.config import TrainConfig, resumable_fields
from keraszoo.errors import CheckpointError, RunFolderConflict
from keraszoo.training import run_folder, run_record
from keraszoo.training.checkpoint import RESTART_HINT, EpochCheckpoint

# The fields a resumed run may change: those that say so (keraszoo.config.option(..., resumable=True)).
RESUMABLE_FIELDS = resumable_fields(TrainConfig)


def settle_precision(config: TrainConfig, output_dir: Path) -> bool:
    """Whether the run computes in mixed precision, so that config.json records what ran: --mixed-precision as
    given; unset, the choice of the run already in ``output_dir`` (resumed, or found finished, as it started,
    whatever this machine would choose), else ``resolve_mixed_precision``'s for this machine and recipe."""
    from keraszoo.training.distribute import resolve_mixed_precision

    if config.mixed_precision is not None:
        return config.mixed_precision
    saved = None
    if not config.restart:
        try:
            saved = run_record.read_json(output_dir / run_record.CONFIG_FILE).get("mixed_precision")
        except (OSError, ValueError, AttributeError):
            saved = None  # no run there, or a damaged record: resuming reports it
    return saved if isinstance(saved, bool) else resolve_mixed_precision(config)


def changed_fields(saved: dict, current: dict, *, ignore=RESUMABLE_FIELDS) -> dict:
    """``{name: (saved, current)}`` for the fields that differ, ignoring ``ignore``."""
    names = (set(saved) | set(current)) - set(ignore)
    return {
        name: (saved.get(name), current.get(name))
        for name in sorted(names)
        if json.dumps(saved.get(name)) != json.dumps(current.get(name))
    }


def comparable(config_class: type, saved: dict) -> dict:
    """A run's recorded config.json as ``config_class`` would record it today: options it left unset then
    (``None``, a variant's default) take the values they stand for, so a record written before those values
    were recorded still matches the same command. Keys the class does not know are kept as they are."""
    try:
        return {**saved, **config_class.from_dict(saved).to_dict()}
    except (TypeError, ValueError):  # not this class's record: compared as written
        return saved


def format_changes(changes: dict) -> str:
    """``changed_fields``'s result as "name: old -> new, ..." for an error message."""
    return ", ".join(f"{name}: {old!r} -> {new!r}" for name, (old, new) in changes.items())


def start_or_resume(model, config: TrainConfig, output_dir: Path, checkpoint: EpochCheckpoint, schedule,
                    run_name: str | None, marker: dict):
    """The state to train from: a verified checkpoint's (see ``resume``), or a fresh start that forgets
    the folder's earlier run (always with ``--restart``). ``schedule``: the run's learning-rate schedule,
    which fixes --epochs when it ``depends_on_epochs``; ``marker``: the folder's, as ``run_folder.claim``
    returned it. Returns (state, run marker)."""
    config_path = output_dir / run_record.CONFIG_FILE
    if config.restart and (checkpoint.latest() is not None or config_path.is_file()):
        print(f"Starting over in {output_dir} (--restart): discarding its checkpoint and record files.")
    elif checkpoint.latest() is not None:
        return resume(model, config, output_dir, checkpoint, schedule), marker
    marker = run_folder.start_fresh(output_dir, run_name)
    run_record.write_json(config_path, config.to_dict())
    return {"epoch": 0, "history": [], "initial": {}, "resumed_at": []}, marker


def resume(model, config: TrainConfig, output_dir: Path, checkpoint: EpochCheckpoint, schedule) -> dict:
    """Loads the newest checkpoint into ``model`` after checking that the options allow it: the same
    as the run's config.json except RESUMABLE_FIELDS, and --epochs kept where a schedule needs it."""
    config_path = output_dir / run_record.CONFIG_FILE
    try:
        saved = run_record.read_json(config_path)
    except (OSError, ValueError):
        raise CheckpointError(f"{config_path} is missing or unreadable, so the checkpoint in {checkpoint.directory} "
                              f"cannot be matched with its options; {RESTART_HINT}.") from None
    diffs = changed_fields(comparable(type(config), saved), config.to_dict())
    if diffs:
        raise RunFolderConflict(
            f"{output_dir} holds an unfinished run started with other options ({format_changes(diffs)}). Resume it with the "
            "same options (only --epochs may change), choose another --output, or pass --restart to start over."
        )
    if getattr(schedule, "depends_on_epochs", False) and saved.get("epochs") != config.epochs:
        raise RunFolderConflict(
            f"{output_dir} was started with --epochs {saved.get('epochs')}, and its learning-rate schedule "
            f"({type(schedule).__name__}) is laid out over that many epochs: resuming with --epochs {config.epochs} would "
            "match neither run. Resume with the same --epochs, or pass --restart."
        )
    state = checkpoint.restore(model)
    if state["epoch"] > config.epochs:
        raise RunFolderConflict(
            f"{output_dir} has already trained {state['epoch']} epochs, more than --epochs {config.epochs}. "
            f"Ask for at least {state['epoch']} epochs, choose another --output, or pass --restart."
        )
    state["resumed_at"].append(state["epoch"])
    run_record.write_json(config_path, config.to_dict())
    print(f"Resuming the run in {output_dir} after epoch {state['epoch']} of {config.epochs}.")
    return state
