#!/usr/bin/env python
"""The course's part-1 study: learning-rate sweep and batch / minibatch / online descent.

Runs recipes/mlp.py's main() over a grid on circles and MNIST (hand-written
implementation), keeps each run's record under --runs, copies the small records
(history.csv, metrics.json, config.json) to --records, and draws one figure per
sweep into --figures. Tables for docs/mlp.md are printed as Markdown.

examples:
  python recipes/mlp_study.py                       # everything (about 25 minutes on 2 CPU cores)
  python recipes/mlp_study.py --only circles        # the circles part (about 3 minutes)
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

from keraszoo.config import add_distribution_arguments, distribution_options, load_recipe_script

TARGET_ACCURACY = 0.95
# (dataset, study, varied field, values, fixed options)
STUDIES = [
    ("circles", "learning_rate", [0.001, 0.01, 0.1, 1.0, 10.0, 100.0], {"descent": "minibatch", "epochs": 20}),
    ("circles", "descent", ["batch", "minibatch", "online"], {"learning_rate": 0.1, "epochs": 20}),
    ("mnist", "learning_rate", [0.001, 0.01, 0.1, 1.0, 10.0], {"descent": "minibatch", "epochs": 5}),
    ("mnist", "descent", ["batch", "minibatch", "online"], {"learning_rate": 0.1, "epochs": 3}),
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--only", choices=["circles", "mnist"], help="run one dataset's studies")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default: 0)")
    parser.add_argument("--data-dir", help="TFDS data_dir (default: $TFDS_DATA_DIR)")
    parser.add_argument("--runs", default="runs/mlp_study", help="run folders (default: %(default)s)")
    parser.add_argument("--records", default="docs/records/mlp_study", help="small records to commit")
    parser.add_argument("--figures", default="docs/images", help="figure folder (default: %(default)s)")
    add_distribution_arguments(parser)
    return parser.parse_args(argv)


def to_target(history: list[dict], target: float):
    """(epochs, train seconds) until test accuracy first reaches ``target``, or (None, None)."""
    seconds = 0.0
    for row in history:
        seconds += row["train_time_s"]
        if row["val_accuracy"] >= target:
            return row["epoch"], round(seconds, 2)
    return None, None


def main(args) -> int:
    from keraszoo.training.run_record import read_history

    distribution = distribution_options(args)
    recipe = load_recipe_script(Path(__file__).with_name("mlp.py"))

    results = []
    for dataset, study, values, fixed in STUDIES:
        if args.only and dataset != args.only:
            continue
        for value in values:
            for seed in args.seeds:
                name = f"{dataset}-{study}-{value:g}-seed{seed}" if study == "learning_rate" else \
                    f"{dataset}-{study}-{value}-seed{seed}"
                options = {**fixed, study: value, "dataset": dataset, "seed": seed, "export": False,
                           "verbose": "0", "output": str(Path(args.runs) / name), "data_dir": args.data_dir,
                           **distribution}
                print(f"== {name}", flush=True)
                metrics = recipe.main(recipe.MLPConfig(**options))
                history = read_history(Path(options["output"]) / "history.csv")
                epochs, seconds = to_target(history, TARGET_ACCURACY)
                results.append({
                    "name": name, "dataset": dataset, "study": study, "value": value, "seed": seed,
                    "test_accuracy": metrics["test_accuracy"], "test_loss": metrics["test_loss"],
                    "train_loss": metrics["train_loss"], "epochs": metrics["epochs"],
                    "batch_size": json.loads((Path(options["output"]) / "config.json").read_text())["batch_size"],
                    "mean_train_time_per_epoch_s": metrics["mean_train_time_per_epoch_s"],
                    "epochs_to_target": epochs, "train_seconds_to_target": seconds,
                    "history": history, "environment": metrics["environment"],
                })
                record = Path(args.records) / name
                record.mkdir(parents=True, exist_ok=True)
                for file in ("history.csv", "metrics.json", "config.json"):
                    shutil.copy(Path(options["output"]) / file, record / file)
    Path(args.records).mkdir(parents=True, exist_ok=True)
    summary = [{k: v for k, v in r.items() if k != "history"} for r in results]
    (Path(args.records) / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    plot(results, Path(args.figures))
    print_tables(results)
    return 0


def plot(results, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    groups = {}
    for result in results:
        groups.setdefault((result["dataset"], result["study"]), []).append(result)
    for (dataset, study), group in groups.items():
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for result in group:
            if result["seed"] != group[0]["seed"]:
                continue
            epochs = [row["epoch"] for row in result["history"]]
            label = f"{study.replace('_', ' ')} = {result['value']}"
            axes[0].plot(epochs, [row["val_loss"] for row in result["history"]], "o-", markersize=3, label=label)
            axes[1].plot(epochs, [row["val_accuracy"] for row in result["history"]], "o-", markersize=3, label=label)
        axes[0].set_yscale("log")
        axes[0].set_title(f"{dataset}: test loss (log scale; gaps = NaN, diverged)")
        axes[1].set_title(f"{dataset}: test accuracy")
        axes[1].axhline(TARGET_ACCURACY, color="grey", linestyle=":", linewidth=1)
        for ax in axes:
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / f"mlp_{dataset}_{study}.png", dpi=100)
        plt.close(fig)


def print_tables(results) -> None:
    for dataset in ("circles", "mnist"):
        for study in ("learning_rate", "descent"):
            rows = [r for r in results if r["dataset"] == dataset and r["study"] == study]
            if not rows:
                continue
            print(f"\n### {dataset}: {study.replace('_', ' ')}\n")
            print(f"| {study.replace('_', ' ')} | batch size | seed | epochs | test accuracy | test loss | "
                  f"epochs to {TARGET_ACCURACY:.0%} | train s to {TARGET_ACCURACY:.0%} | train s/epoch |")
            print("|---|---|---|---|---|---|---|---|---|")
            for r in rows:
                loss = "NaN (diverged)" if isinstance(r["test_loss"], float) and math.isnan(r["test_loss"]) \
                    else f"{r['test_loss']:.4f}"
                print(f"| {r['value']} | {r['batch_size']} | {r['seed']} | {r['epochs']} | {r['test_accuracy']:.4f} | "
                      f"{loss} | {r['epochs_to_target'] or 'not reached'} | {r['train_seconds_to_target'] or '-'} | "
                      f"{r['mean_train_time_per_epoch_s']:.2f} |")


if __name__ == "__main__":
    sys.exit(main(parse_args()))
