"""The run record left next to every trained model.

``config.json`` (what was asked), ``history.csv`` (one row per epoch),
``curves.png`` (train vs validation loss and accuracy per epoch, the test split's once at the end),
``metrics.json`` (final numbers, seed, wall time, library versions, hardware), and
``model.keras`` (the inference model, written when training ends).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.keras"  # the trained inference model, on any backend: `keraszoo export RUN_DIR` reads it
RECORD_FILES = (CONFIG_FILE, HISTORY_FILE, CURVES_FILE, METRICS_FILE, MODEL_FILE)
TENSORBOARD_DIR = "tensorboard"  # --tensorboard's event files


def write_json(path: Path, data: dict) -> None:
    """Written to a temporary file then renamed, so a kill never leaves half a JSON file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


# history.csv's leading and trailing columns; the others (extra metrics) sit between, sorted. A fixed
# order, not the dicts' own: a resumed run's rows come back from JSON with their keys sorted.
FIRST_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")
LAST_COLUMNS = ("train_time_s", "epoch_time_s")


def write_history(path: Path, rows: list[dict]) -> None:
    keys = {key for row in rows for key in row}
    columns = [c for c in FIRST_COLUMNS if c in keys] + sorted(keys - {*FIRST_COLUMNS, *LAST_COLUMNS}) + [
        c for c in LAST_COLUMNS if c in keys]
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def read_history(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(text: str):
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def plot_curves(path: Path, rows: list[dict], *, title: str, initial: dict | None = None,
                test: dict | None = None) -> None:
    """Loss and accuracy per epoch, train vs validation, side by side (the course's figures 1-9), and the
    test split's ``test_loss``/``test_accuracy`` as one point at the last epoch when ``test`` has them."""
    import matplotlib

    matplotlib.use("Agg")  # files only: works on machines without a display
    import matplotlib.pyplot as plt

    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        test_x, test_y = list(epochs), [row[f"val_{metric}"] for row in rows]
        # Keras reports train metrics as running means over each epoch's batches (the weights change as
        # it goes); validation metrics are computed once, at the end of the epoch.
        ax.plot(epochs, [row[metric] for row in rows], "o-", label="train (mean over the epoch)", markersize=3)
        ax.plot(test_x, test_y, "s-", label="validation (end of epoch)", markersize=3, color="C1")
        if initial and f"initial_val_{metric}" in initial:
            # Epoch 0 is the untrained model, evaluated on the validation split: the chance-level start
            # the course asks about. Untrained, train and validation data look alike to it.
            ax.plot([0, epochs[0]], [initial[f"initial_val_{metric}"], test_y[0]], "-", color="C1", linewidth=1)
            ax.plot([0], [initial[f"initial_val_{metric}"]], "*", color="black", markersize=9,
                    label="untrained (validation split)")
        if test and f"test_{metric}" in test:
            ax.plot([epochs[-1]], [test[f"test_{metric}"]], "D", color="C3", markersize=7,
                    label=f"test (once, at the end): {test[f'test_{metric}']:.4f}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("loss (cross-entropy)")
    axes[1].set_title("accuracy")
    fig.suptitle(title)
    fig.tight_layout()
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def save_figure(fig, axes, titles, path: Path) -> None:
    """Labels each axis (x: epoch, its title, grid, legend), lays the figure out and writes it."""
    import matplotlib.pyplot as plt

    for ax, title in zip(axes, titles):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
