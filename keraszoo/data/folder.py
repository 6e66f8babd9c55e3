"""Which TFDS data folder keraszoo reads, decided in one place for run.sh and every command.

In this order: ``--data-dir``; the ``TFDS_DATA_DIR`` environment variable; the
``shared/tensorflow_datasets`` folder beside this checkout (``../shared/tensorflow_datasets``
from the repository root) when it exists; TFDS's default, ``~/tensorflow_datasets``.
Standard library only: ``run.sh`` runs this file with the system Python before anything is
installed (``python3 keraszoo/data/folder.py`` prints the folder and where it came from).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CHECKOUT_DATA = Path(__file__).resolve().parents[3] / "shared" / "tensorflow_datasets"
TFDS_DEFAULT = Path("~/tensorflow_datasets")


def data_folder(data_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """The absolute data folder and a few words saying why it was chosen."""
    if data_dir:
        return str(Path(data_dir).expanduser().resolve()), "--data-dir"
    if os.environ.get("TFDS_DATA_DIR"):
        return str(Path(os.environ["TFDS_DATA_DIR"]).expanduser().resolve()), "$TFDS_DATA_DIR"
    if CHECKOUT_DATA.is_dir():  # resolved like the others: ../shared may be a link
        return str(CHECKOUT_DATA.resolve()), "the folder beside this checkout"
    return str(TFDS_DEFAULT.expanduser().resolve()), "TFDS's default"


def is_prepared(folder: str, dataset: str) -> bool:
    """Whether ``folder`` holds a prepared version of ``dataset`` (a ``dataset_info.json`` under it)."""
    root = Path(folder) / dataset
    return root.is_dir() and any(root.glob("*/dataset_info.json"))


if __name__ == "__main__":
    # python3 keraszoo/data/folder.py [DATASET ...]: the folder on the first line, its source on the
    # second, then the datasets asked for that are not prepared there (one per line).
    folder, source = data_folder()
    print(folder, source, *(name for name in sys.argv[1:] if not is_prepared(folder, name)), sep="\n")
