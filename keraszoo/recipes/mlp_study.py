"""The course's part-1 study: learning-rate sweep and batch / minibatch / online descent.

Runs keraszoo.recipes.mlp (hand-written implementation) over a grid on circles and MNIST,
each run in --runs/<dataset>-<study>-<value>-seed<seed>/ (resumable; finished runs are
skipped), copies the small records to --records, writes their summary.json, draws one
figure per sweep into --figures and prints the tables of docs/mlp.md as Markdown.

examples:
  python recipes/mlp_study.py                       # everything (about 25 minutes on 2 CPU cores)
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
]


def parse_args(argv=None):
    from keraszoo.training.study import study_parser

    # epochs=None: each study's own (20 on circles, 5 or 3 on MNIST) unless --epochs says otherwise.
    parser = study_parser(__doc__, runs="runs/mlp_study", records="docs/records/mlp_study", epochs=None, seeds=(0,))
    parser.add_argument("--only", choices=["circles", "mnist"], help="run one dataset's studies")
    return parser.parse_args(argv)


def group_name(dataset: str, study: str, value) -> str:
    return f"{dataset}-{study}-{value:g}" if study == "learning_rate" else f"{dataset}-{study}-{value}"


def grid(only: str | None = None) -> dict[str, dict]:
    return {group_name(dataset, study, value): {**fixed, study: value, "dataset": dataset}
            for dataset, study, values, fixed in STUDIES if only in (None, dataset) for value in values}


def to_target(history: list[dict], target: float):
    """(epochs, train seconds) until test accuracy first reaches ``target``, or (None, None)."""
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
                epochs, seconds = to_target(record.history, TARGET_ACCURACY)
                rows.append({"name": record.name, "dataset": dataset, "study": study, "value": value, "seed": record.seed,
                             **{k: record.metrics[k] for k in ("test_accuracy", "test_loss", "train_loss", "epochs",
                                                               "mean_train_time_per_epoch_s", "environment")},
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
        save_figure(fig, axes, [f"{dataset}: test loss (log scale; gaps = NaN, diverged)", f"{dataset}: test accuracy"],
                    folder / f"mlp_{dataset}_{study}.png")


def tables(rows) -> str:
    out = []
    for dataset in ("circles", "mnist"):
        for study in ("learning_rate", "descent"):
            chosen = [r for r in rows if r["dataset"] == dataset and r["study"] == study]
            if not chosen:
                continue
            out += [f"\n### {dataset}: {study.replace('_', ' ')}\n",
                    f"| {study.replace('_', ' ')} | batch size | seed | epochs | test accuracy | test loss | "
                    f"epochs to {TARGET_ACCURACY:.0%} | train s to {TARGET_ACCURACY:.0%} | train s/epoch |",
                    "|---|---|---|---|---|---|---|---|---|"]
            for r in chosen:
                loss = "NaN (diverged)" if isinstance(r["test_loss"], float) and math.isnan(r["test_loss"]) \
                    else f"{r['test_loss']:.4f}"
                out.append(f"| {r['value']} | {r['batch_size']} | {r['seed']} | {r['epochs']} | {r['test_accuracy']:.4f} | "
                           f"{loss} | {r['epochs_to_target'] or 'not reached'} | {r['train_seconds_to_target'] or '-'} | "
                           f"{r['mean_train_time_per_epoch_s']:.2f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    args = parse_args(argv)
    status = 0
    if not args.report_only:
        from keraszoo.recipes import mlp
        from keraszoo.training.study import run_study

        status = run_study(args, config_class=mlp.MLPConfig, main=mlp.main, grid=grid(args.only))
    rows = summarize(load_records(args.records))
    Path(args.records).mkdir(parents=True, exist_ok=True)
    summary = [{k: v for k, v in r.items() if k != "history"} for r in rows]
    (Path(args.records) / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    plot(rows, Path(args.figures))
    print(tables(rows))
    return status
