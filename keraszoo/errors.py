"""Failures a user can fix, each reported by the command line as one line without a traceback.

``exit_code`` is what the recipe's process exits with: 2 for a problem with what was asked
(options, run folder, checkpoint), 1 for a run that failed on its way (diverged, data damaged).
This module imports nothing, so the configs and the command line can use it before TensorFlow.
"""


class KeraszooError(RuntimeError):
    exit_code = 2


class RunFolderConflict(KeraszooError):
    """The run folder cannot be used as asked: other options, files this run did not write, ..."""


class CheckpointError(KeraszooError):
    """A resume checkpoint is missing a file, fails its checksum, or cannot be read or written."""


class TrainingDiverged(KeraszooError):
    """The loss (or another logged metric) became NaN or infinite."""

    exit_code = 1


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is unknown, not prepared in the data_dir that was searched, or not in the pack."""
