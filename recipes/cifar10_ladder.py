#!/usr/bin/env python
"""Run the course's CIFAR-10 ladder (every variant x seeds) and tabulate it from the run records.

Each (variant, seed) trains with recipes/cifar10_cnn.py's main() into
--runs/<variant>-seed<seed>/ (resumable: rerun the same command after a kill), and
the small records (config, history, metrics, curves) are copied to --records. With
--report-only nothing is trained: the table and one curves figure per variant are
made from whatever records exist, and printed as Markdown for docs/cifar10_ladder.md.

examples:
  python recipes/cifar10_ladder.py --epochs 30 --seeds 0 1          # everything (hours on a CPU)
  python recipes/cifar10_ladder.py --variants batchnorm --epochs 20 --seeds 0
  python recipes/cifar10_ladder.py --report-only
  python recipes/cifar10_ladder.py --report-only --records docs/records/cifar10_ladder_gpu \
      --figure-prefix cifar10_ladder_gpu          # the runs of recipes/cifar10_ladder_arrays.py
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

from keraszoo.config import add_distribution_arguments, distribution_options, load_recipe_script

VARIANTS = ("baseline", "normalized", "augmented", "lr_decay", "dropout", "batchnorm")
RECORD_FILES = ("config.json", "history.csv", "metrics.json", "curves.png")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=30, help="epochs for every variant (default: %(default)s)")
    parser.add_argument("--data-dir", help="TFDS data_dir (default: $TFDS_DATA_DIR)")
    parser.add_argument("--runs", default="runs/ladder", help="run folders (default: %(default)s)")
    parser.add_argument("--records", default="docs/records/cifar10_ladder", help="records to commit")
    parser.add_argument("--figures", default="docs/images", help="figure folder (default: %(default)s)")
    parser.add_argument("--figure-prefix", default="cifar10_ladder",
                        help="figures are <prefix>_<variant>.png (default: %(default)s)")
    parser.add_argument("--export-dir", default="runs/ladder_models", help="SavedModels of every run")
    parser.add_argument("--report-only", action="store_true", help="train nothing, tabulate the records")
    add_distribution_arguments(parser)
    return parser.parse_args(argv)


def train_all(args) -> None:
    distribution = distribution_options(args)
    recipe = load_recipe_script(Path(__file__).with_name("cifar10_cnn.py"))
    for variant in args.variants:
        for seed in args.seeds:
            output = Path(args.runs) / f"{variant}-seed{seed}"
            print(f"== {variant}, seed {seed} -> {output}", flush=True)
            recipe.main(recipe.Cifar10CNNConfig(variant=variant, seed=seed, epochs=args.epochs, data_dir=args.data_dir,
                                                output=str(output), export_dir=args.export_dir, verbose="2",
                                                **distribution))
            copy_record(output, Path(args.records) / output.name)


def copy_record(run: Path, record: Path) -> None:
    record.mkdir(parents=True, exist_ok=True)
    for name in RECORD_FILES:
        shutil.copy(run / name, record / name)


def load_records(folder: Path) -> dict[str, list[dict]]:
    from keraszoo.training.run_record import read_history

    found: dict[str, list[dict]] = {}
    for record in sorted(folder.glob("*-seed*")):
        metrics = json.loads((record / "metrics.json").read_text())
        variant = metrics.get("variant", record.name.rsplit("-seed", 1)[0])
        found.setdefault(variant, []).append({"name": record.name, "metrics": metrics,
                                              "config": json.loads((record / "config.json").read_text()),
                                              "history": read_history(record / "history.csv")})
    return found


def _mean_std(values) -> str:
    values = list(values)
    if len(values) == 1:
        return f"{100 * values[0]:.2f} (1 seed)"
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


def _hardware(environment: dict) -> str:
    if environment["gpus"]:
        backend = environment.get("backend", "tensorflow")
        return environment["gpus"][0] + ("" if backend == "tensorflow" else f" (Keras on {backend})")
    return f"{environment['cpu']}, {environment['cpu_count']} cores"


def _seconds_per_epoch(run: dict) -> float:
    """Median training time of an epoch: the first one also compiles (90 s of 115 on the shared GPU)."""
    times = [row["train_time_s"] for row in run["history"] if row.get("train_time_s") is not None]
    return statistics.median(times) if times else run["metrics"]["mean_train_time_per_epoch_s"]


def report(records: dict[str, list[dict]], figures: Path, prefix: str = "cifar10_ladder") -> str:
    lines = ["| variant | SGD lr0, momentum, γ | epochs | seeds | test accuracy % (mean ± std) | final train accuracy % "
             "| train–test gap (points) | best epoch (test acc.) | train s/epoch (median) | hardware |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for variant in VARIANTS:
        runs = records.get(variant)
        if not runs:
            lines.append(f"| {variant} | | — | — | not run yet | | | | | |")
            continue
        optimizers = sorted({f"{r['config']['learning_rate']:g}, {r['config']['momentum']:g}, "
                             f"{r['metrics']['steps']['lr_decay'] if 'steps' in r['metrics'] else 1:g}" for r in runs})
        m = [r["metrics"] for r in runs]
        gaps = [x["train_accuracy"] - x["test_accuracy"] for x in m]
        best = ", ".join(f"{x['best_epoch']} ({100 * x['best_test_accuracy']:.1f})" for x in m)
        epochs = sorted({x["epochs"] for x in m})
        hardware = "; ".join(sorted({_hardware(x["environment"]) for x in m}))
        lines.append(
            f"| {variant} | {'; '.join(optimizers)} | {'/'.join(map(str, epochs))} | {', '.join(str(x['seed']) for x in m)} | "
            f"{_mean_std(x['test_accuracy'] for x in m)} | {_mean_std(x['train_accuracy'] for x in m).split(' (')[0]} | "
            f"{100 * statistics.mean(gaps):.1f} | {best} | "
            f"{statistics.mean(_seconds_per_epoch(r) for r in runs):.3g} | {hardware} |")
        plot_variant(variant, runs, figures / f"{prefix}_{variant}.png")
    return "\n".join(lines)


def plot_variant(variant: str, runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keraszoo.training.run_record import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for run, color in zip(runs, ("tab:blue", "tab:orange", "tab:green", "tab:red")):
        epochs = [row["epoch"] for row in run["history"]]
        seed = run["metrics"]["seed"]
        for ax, metric in zip(axes, ("loss", "accuracy")):
            ax.plot(epochs, [row[metric] for row in run["history"]], "--", color=color, label=f"train, seed {seed}")
            ax.plot(epochs, [row[f"val_{metric}"] for row in run["history"]], "-", color=color,
                    label=f"test, seed {seed}")
    save_figure(fig, axes, [f"{variant}: {metric}" for metric in ("loss", "accuracy")], path)


def claims_table(records: dict[str, list[dict]], *, settle_epochs: int = 5) -> str:
    """The numbers docs/cifar10_ladder.md checks the course's claims with, one column entry per seed.

    Oscillation is the mean absolute change of the test value from one epoch to the next,
    after the first ``settle_epochs`` epochs (the early climb is not oscillation).
    """
    def per_seed(runs, value):
        return " / ".join(value(run["history"]) for run in runs)

    def wobble(history, key):
        values = [row[key] for row in history][settle_epochs:]
        return statistics.mean(abs(b - a) for a, b in zip(values, values[1:]))

    lines = ["| variant | lowest test loss at epoch | final test loss | test acc. at epoch 10 (%) "
             f"| mean \\|Δ test acc.\\| after epoch {settle_epochs} (points) | mean \\|Δ test loss\\| |",
             "|---|---|---|---|---|---|"]
    for variant in VARIANTS:
        runs = records.get(variant)
        if not runs or min(len(run["history"]) for run in runs) < settle_epochs + 2:
            continue
        lines.append("| " + " | ".join([
            variant,
            per_seed(runs, lambda h: str(min(h, key=lambda row: row["val_loss"])["epoch"])),
            per_seed(runs, lambda h: f"{h[-1]['val_loss']:.2f}"),
            per_seed(runs, lambda h: f"{100 * h[9]['val_accuracy']:.1f}" if len(h) >= 10 else "—"),
            per_seed(runs, lambda h: f"{100 * wobble(h, 'val_accuracy'):.2f}"),
            per_seed(runs, lambda h: f"{wobble(h, 'val_loss'):.3f}"),
        ]) + " |")
    return "\n".join(lines)


def main(args) -> int:
    if not args.report_only:
        train_all(args)
    records = load_records(Path(args.records))
    print(report(records, Path(args.figures), args.figure_prefix))
    print()
    print(claims_table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
