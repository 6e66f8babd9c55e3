"""keraszoo's answers to the course's part-1 questions, measured: learning rate (Q.11), batch / minibatch /
online descent (Q.10), a linear vs a tanh hidden layer (Q.3), cross-entropy vs squared error (Q.8-Q.9)
the number of training examples N (Q.2, MNIST: the first N of train[:55000]; every N sees at least
5 epochs of 55,000 examples' worth of steps, at most 100 epochs), and the hidden layer's size (MNIST).

Runs keraszoo.recipes.mlp (hand-written implementation) over a grid on circles and MNIST,
each run in --runs/<dataset>-<study>-<value>-seed<seed>/ (resumable; finished runs are
skipped), copies the small records to --records, writes their summary.json, draws one
figure per sweep into --figures and prints the tables of docs/mlp.md as Markdown.

examples:
  python recipes/mlp_study.py --seeds 0 1 --jobs 2  # everything (about an hour on 2 shared CPU cores)
  python recipes/mlp_study.py --only circles        # the circles part (about 3 minutes)
  python recipes/mlp_study.py --report-only
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from keraszoo.training.study import load_records

TARGET_ACCURACY = 0.95
# (dataset, study, varied field, values, fixed options)
STUDIES = [
    ("circles", "learning_rate", [0.001, 0.01, 0.1, 1.0, 10.0, 100.0], {"descent": "minibatch", "epochs": 20}),
    ("circles", "descent", ["batch", "minibatch", "online"], {"learning_rate": 0.1, "epochs": 20}),
    ("mnist", "learning_rate", [0.001, 0.01, 0.1, 1.0, 10.0], {"descent": "minibatch", "epochs": 5}),
    ("mnist", "descent", ["batch", "minibatch", "online"], {"learning_rate": 0.1, "epochs": 3}),
    ("circles", "activation", ["tanh", "linear"], {"descent": "minibatch", "learning_rate": 0.1, "epochs": 20}),
    ("mnist", "activation", ["tanh", "linear"], {"descent": "minibatch", "learning_rate": 0.1, "epochs": 5}),
    ("circles", "loss", ["cross_entropy", "squared_error"], {"descent": "minibatch", "learning_rate": 0.1, "epochs": 20}),
    ("mnist", "loss", ["cross_entropy", "squared_error"], {"descent": "minibatch", "learning_rate": 0.1, "epochs": 5}),
    ("mnist", "train_size", [1000, 5000, 15000, 55000], {"descent": "minibatch", "learning_rate": 0.1}),
    # Part 1's hidden size (issue #37): the default 100 was never compared on validation data.
    ("mnist", "hidden_dim", [10, 30, 100, 300, 1000], {"descent": "minibatch", "learning_rate": 0.1, "epochs": 5}),
]
MNIST_TRAIN = 55000  # train[:55000]; the last 5,000 are the validation split


def train_size_options(size: int) -> dict:
    """The first ``size`` training digits, trained for at least 5 epochs of 55,000 digits' worth of steps."""
    return {"train_split": f"train[:{size}]", "epochs": min(100, round(5 * MNIST_TRAIN / size))}


def parse_args(argv=None):
    from keraszoo.training.study import study_parser

    # epochs=None: each study's own (20 on circles, 5 or 3 on MNIST) unless --epochs says otherwise.
    parser = study_parser(__doc__, runs="runs/mlp_study", records="docs/records/mlp_study", epochs=None, seeds=(0,))
    parser.add_argument("--only", choices=["circles", "mnist"], help="run one dataset's studies")
    parser.add_argument("--studies", nargs="+", choices=sorted({study for _, study, _, _ in STUDIES}),
                        help="run these studies only (default: all)")
    return parser.parse_args(argv)


def group_name(dataset: str, study: str, value) -> str:
    return f"{dataset}-{study}-{value:g}" if study == "learning_rate" else f"{dataset}-{study}-{value}"


def grid(only: str | None = None, studies=None) -> dict[str, dict]:
    def options(study, value):
        return train_size_options(value) if study == "train_size" else {study: value}

    return {group_name(dataset, study, value): {**fixed, **options(study, value), "dataset": dataset}
            for dataset, study, values, fixed in STUDIES if only in (None, dataset)
            if studies is None or study in studies for value in values}


def to_target(history: list[dict], target: float):
    """(epochs, train seconds) until validation accuracy first reaches ``target``, or (None, None)."""
    seconds = 0.0
    for row in history:
        seconds += row["train_time_s"]
        if row["val_accuracy"] >= target:
            return row["epoch"], round(seconds, 2)
    return None, None


def summarize(records) -> list[dict]:
    """One row per run of the studies, in STUDIES order."""
    found = {r.name: r for r in records}
    rows = []
    for dataset, study, values, _ in STUDIES:
        for value in values:
            for record in [r for name, r in sorted(found.items()) if name.startswith(group_name(dataset, study, value) + "-seed")]:
                if "val_accuracy" not in record.metrics:
                    continue  # made before keraszoo had a validation split (monitored on test): docs/mlp.md keeps those tables
                epochs, seconds = to_target(record.history, TARGET_ACCURACY)
                rows.append({"name": record.name, "dataset": dataset, "study": study, "value": value, "seed": record.seed,
                             **{k: record.metrics[k] for k in ("val_accuracy", "val_loss", "best_val_accuracy",
                                                               "test_accuracy", "test_loss", "train_accuracy",
                                                               "train_loss", "epochs", "mean_train_time_per_epoch_s",
                                                               "environment")},
                             "batch_size": record.config["batch_size"], "epochs_to_target": epochs,
                             "train_seconds_to_target": seconds, "history": record.history})
    return rows


def plot(rows, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keraszoo.training.run_record import save_figure

    groups = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["study"]), []).append(row)
    for (dataset, study), group in groups.items():
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for row in (r for r in group if r["seed"] == group[0]["seed"]):
            epochs = [h["epoch"] for h in row["history"]]
            label = f"{study.replace('_', ' ')} = {row['value']}"
            axes[0].plot(epochs, [h["val_loss"] for h in row["history"]], "o-", markersize=3, label=label)
            axes[1].plot(epochs, [h["val_accuracy"] for h in row["history"]], "o-", markersize=3, label=label)
        axes[0].set_yscale("log")
        axes[1].axhline(TARGET_ACCURACY, color="grey", linestyle=":", linewidth=1)
        save_figure(fig, axes, [f"{dataset}: validation loss (log scale; gaps = NaN, diverged)",
                                f"{dataset}: validation accuracy"],
                    folder / f"mlp_{dataset}_{study}.png")


def tables(rows) -> str:
    out = []
    def loss(value):
        return "NaN (diverged)" if isinstance(value, float) and math.isnan(value) else f"{value:.4f}"

    for dataset in ("circles", "mnist"):
        for study in dict.fromkeys(study for _, study, _, _ in STUDIES):
            chosen = [r for r in rows if r["dataset"] == dataset and r["study"] == study]
            if not chosen:
                continue
            out += [f"\n### {dataset}: {study.replace('_', ' ')}\n",
                    f"| {study.replace('_', ' ')} | batch size | seed | epochs | train accuracy | validation accuracy "
                    f"| validation loss | epochs to {TARGET_ACCURACY:.0%} (val.) | train s to {TARGET_ACCURACY:.0%} "
                    "| train s/epoch | test accuracy (once) |",
                    "|---|---|---|---|---|---|---|---|---|---|---|"]
            for r in chosen:
                out.append(f"| {r['value']} | {r['batch_size']} | {r['seed']} | {r['epochs']} | {r['train_accuracy']:.4f} "
                           f"| {r['val_accuracy']:.4f} | {loss(r['val_loss'])} | {r['epochs_to_target'] or 'not reached'} "
                           f"| {r['train_seconds_to_target'] or '-'} | {r['mean_train_time_per_epoch_s']:.2f} "
                           f"| {r['test_accuracy']:.4f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    args = parse_args(argv)
    status = 0
    if not args.report_only:
        from keraszoo.training.study import run_study

        status = run_study(args, recipe="mlp", grid=grid(args.only, args.studies))
    rows = summarize(load_records(args.records))
    if not args.report_only:  # a report reads the records folder, never writes into it
        Path(args.records).mkdir(parents=True, exist_ok=True)
        summary = [{k: v for k, v in r.items() if k != "history"} for r in rows]
        (Path(args.records) / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    plot(rows, Path(args.figures))
    print(tables(rows))
    return status
