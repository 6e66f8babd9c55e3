"""The command line of recipes and study runners: options in, one-line errors and exit statuses out.

Imports nothing heavy at the top, so that ``recipe.py --help`` answers before Keras loads.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from keraszoo.config import TrainConfig, parse_config
from keraszoo.errors import CheckpointError, DatasetNotFoundError, KeraszooError

def cli_main(main: Callable, config_class: type, description: str, argv=None) -> int:
    """Runs a recipe's ``main(config)`` from the command line.

    Bad options exit with argparse's usage error (status 2). The failures a user can fix
    print one line without a traceback: a problem with what was asked (dataset not prepared,
    run folder conflict, damaged checkpoint, invalid value) returns 2, a run that failed on
    its way (loss diverged, damaged data, disk full) returns 1.
    """
    config = parse_config(config_class, argv, description=description)
    return guarded(lambda: main(config), strategy=getattr(config, "strategy", "default"), threads=threads_of(config))


def tool_main(run: Callable[[], object]) -> int:
    """A tool recipe's ``run()`` (a figure from a trained model): a missing model or data folder, or a bad
    value, is one line and status 2, not a traceback."""
    from keraszoo.errors import DatasetNotFoundError

    try:
        run()
    except (ValueError, FileNotFoundError, DatasetNotFoundError, KeraszooError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def threads_of(config) -> tuple[int, int] | None:
    """(intra-op, inter-op) TensorFlow threads a recipe's config asks for: ``guarded``'s ``threads``
    (None, TensorFlow's own, for a config without them)."""
    if not isinstance(config, TrainConfig):
        return None
    return config.intra_op_threads, config.inter_op_threads


def guarded(run: Callable, *, strategy: str = "default", threads: tuple[int, int] | None = None) -> int:
    """``run()`` with keraszoo's one-line errors and exit statuses (see ``cli_main``). ``threads``:
    TensorFlow's (intra-op, inter-op) thread counts for the process (None: its own)."""
    from keraszoo.training.distribute import configure_threads, placement

    try:
        if threads is not None:
            configure_threads(*threads)  # before TensorFlow's runtime starts, which reads them once
        placement(strategy)  # before any other TensorFlow op, as tf.distribute requires
        try:
            run()
        except Exception as error:
            if not _is_data_loss(error):
                raise
            from keraszoo.data.tfds_data import describe_data_loss

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


def _is_data_loss(error: Exception) -> bool:
    """A damaged TFDS record file (tf.errors.DataLossError), without importing TensorFlow to ask."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(error, tf.errors.DataLossError)
