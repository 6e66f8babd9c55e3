"""Course Q.16 on the CIFAR-10 CNN: what the learning rate and the batch size change.

The course's baseline network and data (pixels in [0, 1], no augmentation, plain SGD without
momentum or decay), trained for the same number of epochs over a grid: learning rate
{0.01, 0.03, 0.1, 0.3} x batch size {32, 128, 512}, plus the linear-scaling rule (lr ∝ batch,
0.1 at 128: 0.025 at 32, 0.4 at 512) as a second series. Every number the study reports is on
the validation split (the last 5,000 training images); each run's test accuracy is measured
once at its end and listed apart, never used to rank anything.

Per cell: best validation accuracy and the epoch it was reached, the final validation loss, how
much validation accuracy moves from one epoch to the next (oscillation), wall time per epoch, and
whether training diverged (a non-finite loss stops a run: keraszoo exports
nothing then and the study records where it stopped). Figures: a heat map of the grid and the
validation curves of a few cells. Runs are resumable and finished ones are skipped, as in
every study (keraszoo.training.study).

examples:
  python recipes/cifar10_lr_batch.py --jobs 2                      # the grid, 2 seeds (2 CPU cores: 85 min)
  python recipes/cifar10_lr_batch.py --seeds 0 --epochs 1 --train-split 'train[:1000]'   # smoke
  python recipes/cifar10_lr_batch.py --report-only
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from keraszoo.training.study import by_group, load_failed, load_records, seeds_of, summary_table

LEARNING_RATES = (0.01, 0.03, 0.1, 0.3)
BATCH_SIZES = (32, 128, 512)
# Linear scaling (Goyal et al. 2017): lr = 0.1 * batch / 128, anchored at the course's baseline.
SCALING = {32: 0.025, 128: 0.1, 512: 0.4}
EPOCHS = 8
TRAIN_SPLIT = "train[:10000]"


def group_name(learning_rate: float, batch_size: int) -> str:
    return f"lr{learning_rate:g}-b{batch_size}"


def grid(series=("grid", "scaling")) -> dict[str, dict]:
    cells = set()
    if "grid" in series:
        cells |= {(lr, b) for lr in LEARNING_RATES for b in BATCH_SIZES}
    if "scaling" in series:
        cells |= {(lr, b) for b, lr in SCALING.items()}
    return {group_name(lr, b): {"learning_rate": lr, "batch_size": b}
            for lr, b in sorted(cells, key=lambda cell: (cell[1], cell[0]))}


def parse_args(argv=None):
    from keraszoo.training.study import study_parser

    parser = study_parser(__doc__, runs="runs/cifar10_lr_batch", records="docs/records/cifar10_lr_batch",
                          epochs=EPOCHS)
    parser.add_argument("--series", nargs="+", choices=["grid", "scaling"], default=["grid", "scaling"],
                        help="the lr x batch grid, the linear-scaling cells, or both (default: both)")
    parser.set_defaults(train_split=TRAIN_SPLIT)
    return parser.parse_args(argv)


def _median_epoch_seconds(run) -> float:
    times = [row["train_time_s"] for row in run.history]
    return statistics.median(times) if times else float("nan")


def cell_summary(runs) -> dict:
    """Over a cell's seeds: best validation accuracy (mean, std), its epoch, divergences, s/epoch."""
    best = [max((row["val_accuracy"] for row in r.history), default=float("nan")) for r in runs]
    epochs = [max(r.history, key=lambda row: row["val_accuracy"])["epoch"] if r.history else None for r in runs]
    finite = [v for v in best if not math.isnan(v)]
    return {
        "best_val": statistics.mean(finite) if finite else float("nan"),
        "best_val_std": statistics.stdev(finite) if len(finite) > 1 else 0.0,
        "best_epochs": epochs,
        "diverged": [r for r in runs if "error" in r.metrics],
        "seconds_per_epoch": statistics.mean(_median_epoch_seconds(r) for r in runs if r.history)
        if any(r.history for r in runs) else float("nan"),
        "final_val_loss": [r.history[-1]["val_loss"] if r.history else float("nan") for r in runs],
        # Oscillation: the mean absolute epoch-to-epoch change of validation accuracy, in points.
        "wobble": [100 * statistics.mean(abs(b["val_accuracy"] - a["val_accuracy"])
                                         for a, b in zip(r.history, r.history[1:]))
                   for r in runs if len(r.history) > 1],
        "test": [r.metrics["test_accuracy"] for r in runs if "test_accuracy" in r.metrics],
        # Generalisation: last epoch's training accuracy (running mean) minus validation accuracy, in points.
        "gap": [100 * (r.history[-1]["accuracy"] - r.history[-1]["val_accuracy"]) for r in runs if r.history],
        # Finite loss but at chance at the end (< 15 %): collapsed after learning, never learned (dead
        # ReLUs), or still crawling from chance at a tiny rate; the curves and the epoch of the best tell which.
        "at_chance": [r.seed for r in runs if r.history and "error" not in r.metrics
                      and r.history[-1]["val_accuracy"] < 0.15],
    }


def _describe(summary: dict) -> str:
    parts = []
    if summary["diverged"]:
        parts.append("diverged (" + ", ".join(f"seed {r.seed} at epoch {len(r.history) + 1}"
                                             for r in summary["diverged"]) + ")")
    if summary["at_chance"]:
        parts.append("ended at chance (seed " + ", ".join(map(str, summary["at_chance"])) + ")")
    return "; ".join(parts) or "no"


def table(groups: dict, order) -> str:
    def s(runs):
        return cell_summary(runs)
    return summary_table(groups, order, first="lr, batch", columns={
        "seeds": seeds_of,
        "best val. acc. % (mean ± std)": lambda runs: (
            f"{100 * s(runs)['best_val']:.1f} ± {100 * s(runs)['best_val_std']:.1f}"),
        "epoch of best (per seed)": lambda runs: ", ".join(str(e) for e in s(runs)["best_epochs"]),
        "final val. loss": lambda runs: " / ".join(f"{v:.2f}" for v in s(runs)["final_val_loss"]),
        "mean \\|Δ val. acc.\\| per epoch (points)":
            lambda runs: " / ".join(f"{v:.1f}" for v in s(runs)["wobble"]) or "—",
        "train − val. gap at the end (points)": lambda runs: " / ".join(f"{v:.1f}" for v in s(runs)["gap"]) or "—",
        "diverged / at chance": lambda runs: _describe(s(runs)),
        "train s/epoch": lambda runs: f"{s(runs)['seconds_per_epoch']:.1f}",
        "test acc. % (once, at the end)": lambda runs: " / ".join(f"{100 * v:.1f}" for v in s(runs)["test"]) or "—",
    }, label=lambda name: name.replace("lr", "").replace("-b", ", "))


def heat_map(groups: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = np.full((len(BATCH_SIZES), len(LEARNING_RATES)), np.nan)
    notes = {}
    for i, batch in enumerate(BATCH_SIZES):
        for j, lr in enumerate(LEARNING_RATES):
            runs = groups.get(group_name(lr, batch))
            if runs:
                summary = cell_summary(runs)
                values[i, j] = 100 * summary["best_val"]
                notes[i, j] = ("diverged" if summary["diverged"] else
                               f"{values[i, j]:.1f}\n± {100 * summary['best_val_std']:.1f}")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    image = ax.imshow(values, cmap="viridis", vmin=np.nanmin(values) if notes else 0,
                      vmax=np.nanmax(values) if notes else 100)
    for (i, j), text in notes.items():
        ax.text(j, i, text, ha="center", va="center", color="white" if values[i, j] < np.nanmean(values) else "black",
                fontsize=9)
    ax.set_xticks(range(len(LEARNING_RATES)), [f"{lr:g}" for lr in LEARNING_RATES])
    ax.set_yticks(range(len(BATCH_SIZES)), [str(b) for b in BATCH_SIZES])
    ax.set_xlabel("learning rate (plain SGD)")
    ax.set_ylabel("batch size")
    ax.set_title("best validation accuracy % (mean ± std over seeds)")
    fig.colorbar(image, ax=ax, label="%")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def curves(groups: dict, path: Path) -> None:
    """Validation accuracy and loss per epoch for the cells the page discusses."""
    from keraszoo.training.study import plot_groups

    chosen = [group_name(*cell) for cell in ((0.01, 512), (0.1, 128), (0.3, 32), (0.3, 128), (0.03, 32), (0.4, 512))]
    present = {name: groups[name] for name in chosen if name in groups}
    if present:
        plot_groups(present, path, title="lr, batch",
                    label=lambda name: name.replace("lr", "lr ").replace("-b", ", batch "))


def report(folder: str | Path, figures: Path) -> str:
    records = load_records(folder, "lr*-b*-seed*") + load_failed(folder, "lr*-b*-seed*")
    groups = by_group(records)
    heat_map(groups, figures / "cifar10_lr_batch_heatmap.png")
    curves(groups, figures / "cifar10_lr_batch_curves.png")
    sections = ["### Grid (plain SGD)\n\n" + table(groups, list(grid(("grid",)))),
                "### Linear scaling (lr = 0.1 × batch / 128)\n\n" + table(groups, list(grid(("scaling",))))]
    return "\n\n".join(sections)


def main(argv=None) -> int:
    args = parse_args(argv)
    status = 0
    if not args.report_only:
        from keraszoo.training.study import run_study

        status = run_study(args, recipe="cifar10_cnn",
                           grid=grid(args.series), fixed={"variant": "baseline", "evaluate_at_init": False})
    print(report(args.records, Path(args.figures)))
    return status
