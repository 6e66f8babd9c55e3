#!/usr/bin/env python
"""The course's ViT study on MNIST: one factor at a time around the default, several seeds.

Factors and values (the course's): embedding size (--hidden-dim) 8, 16, 32, 64; patch size
4, 7, 11, 14; depth (--num-layers) 2, 4, 6, 8. Every other setting is recipes/mnist_vit.py's
default, and every run gets the same --epochs. The default configuration (64, 7, 6) is shared
by the three factors and trained once per seed. Each run goes to --runs/<name>-seed<seed>/
(resumable: rerun the same command after a kill; finished runs are skipped), its small
record to --records. With --report-only nothing is trained: the Markdown tables and the
figures for docs/vit_mnist.md are made from the records.

examples:
  python recipes/mnist_vit_sweep.py --epochs 3 --seeds 0 1          # the whole study (CPU: ~2 h)
  python recipes/mnist_vit_sweep.py --factors patch_size --seeds 0 --epochs 1 --train-split 'train[:5000]'
  python recipes/mnist_vit_sweep.py --report-only
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
from pathlib import Path

from keraszoo.config import add_distribution_arguments, distribution_options, load_recipe_script

FACTORS = {"hidden_dim": (8, 16, 32, 64), "patch_size": (4, 7, 11, 14), "num_layers": (2, 4, 6, 8)}
DEFAULT = {"hidden_dim": 64, "patch_size": 7, "num_layers": 6}
LABELS = {"hidden_dim": "embedding size", "patch_size": "patch size", "num_layers": "depth (blocks)"}
RECORD_FILES = ("config.json", "history.csv", "metrics.json", "curves.png")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--factors", nargs="+", choices=list(FACTORS), default=list(FACTORS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=3, help="epochs for every run (default: %(default)s)")
    parser.add_argument("--warmup-epochs", type=float, default=0.5, help="warmup of every run (default: %(default)s)")
    parser.add_argument("--train-split", default="train", help="TFDS split to train on (default: %(default)s)")
    parser.add_argument("--data-dir", help="TFDS data_dir (default: $TFDS_DATA_DIR)")
    parser.add_argument("--runs", default="runs/vit_sweep", help="run folders (default: %(default)s)")
    parser.add_argument("--records", default="docs/records/mnist_vit_sweep", help="records to commit")
    parser.add_argument("--figures", default="docs/images", help="figure folder (default: %(default)s)")
    parser.add_argument("--report-only", action="store_true", help="train nothing, tabulate the records")
    add_distribution_arguments(parser)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be >= 1")
    return args


def run_name(settings: dict) -> str:
    return f"h{settings['hidden_dim']}-p{settings['patch_size']}-l{settings['num_layers']}"


def planned_runs(factors, seeds) -> list[tuple[dict, int]]:
    """(settings, seed), seed-major so that a partial study has every configuration once first."""
    configs: list[dict] = []
    for factor in factors:
        for value in FACTORS[factor]:
            settings = {**DEFAULT, factor: value}
            if settings not in configs:
                configs.append(settings)
    return [(settings, seed) for seed in seeds for settings in configs]


def load_vit_recipe():
    return load_recipe_script(Path(__file__).with_name("mnist_vit.py"))


def train_all(args) -> None:
    distribution = distribution_options(args)
    recipe = load_vit_recipe()
    plan = planned_runs(args.factors, args.seeds)
    for index, (settings, seed) in enumerate(plan, 1):
        name = f"{run_name(settings)}-seed{seed}"
        output, record = Path(args.runs) / name, Path(args.records) / name
        if (record / "metrics.json").exists() and \
                json.loads((record / "metrics.json").read_text())["epochs"] == args.epochs:
            print(f"== [{index}/{len(plan)}] {name}: already done, skipped", flush=True)
            continue
        print(f"== [{index}/{len(plan)}] {name} -> {output}", flush=True)
        recipe.main(recipe.MnistViTConfig(**settings, seed=seed, epochs=args.epochs, warmup_epochs=args.warmup_epochs,
                                          train_split=args.train_split, data_dir=args.data_dir, output=str(output),
                                          export=False, verbose="2", **distribution))
        record.mkdir(parents=True, exist_ok=True)
        for file in RECORD_FILES:
            shutil.copy(output / file, record / file)


def load_records(folder: Path) -> list[dict]:
    from keraszoo.training.run_record import read_history

    runs = []
    for record in sorted(folder.glob("h*-p*-l*-seed*")):
        config = json.loads((record / "config.json").read_text())
        config = config.get("config", config)
        runs.append({"settings": {k: config[k] for k in DEFAULT}, "seed": config["seed"],
                     "batch_size": config["batch_size"],
                     "metrics": json.loads((record / "metrics.json").read_text()),
                     "history": read_history(record / "history.csv")})
    return runs


def _mean_std(values, scale=100.0, digits=2) -> str:
    values = [scale * v for v in values]
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (1 seed)"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def seconds_per_step(run: dict) -> float:
    steps = math.ceil(run["metrics"]["num_train_examples"] / run["batch_size"])
    return run["metrics"]["mean_train_time_per_epoch_s"] / steps


def report(runs: list[dict], figures: Path) -> str:
    from keraszoo.models.vit import num_tokens

    sections = []
    for factor, values in FACTORS.items():
        lines = [f"### {LABELS[factor]}", "",
                 f"| {factor} | parameters | tokens | seeds | test accuracy % (mean ± std) | final test loss "
                 "| best test acc. % | train s/epoch | ms/step |", "|---|---|---|---|---|---|---|---|---|"]
        curves = {}
        for value in values:
            settings = {**DEFAULT, factor: value}
            group = [r for r in runs if r["settings"] == settings]
            if not group:
                lines.append(f"| {value} | | | | not run yet | | | | |")
                continue
            m = [r["metrics"] for r in group]
            curves[value] = group
            lines.append(
                f"| {value}{' (default)' if value == DEFAULT[factor] else ''} | {m[0]['num_params']:,} | "
                f"{num_tokens((28, 28, 1), settings['patch_size'])} | {', '.join(str(r['seed']) for r in group)} | "
                f"{_mean_std([x['test_accuracy'] for x in m])} | {_mean_std([x['test_loss'] for x in m], 1, 4)} | "
                f"{_mean_std([x['best_test_accuracy'] for x in m]).split(' (')[0]} | "
                f"{statistics.mean(x['mean_train_time_per_epoch_s'] for x in m):.0f} | "
                f"{1000 * statistics.mean(seconds_per_step(r) for r in group):.0f} |")
        if curves:
            plot_factor(factor, curves, figures / f"vit_sweep_{factor}.png")
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def plot_factor(factor: str, curves: dict, path: Path) -> None:
    """Test accuracy and test loss per epoch, one colour per value, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keraszoo.training.run_record import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    for (value, group), color in zip(sorted(curves.items()), colors):
        for i, run in enumerate(group):
            epochs = [row["epoch"] for row in run["history"]]
            for ax, metric in zip(axes, ("val_accuracy", "val_loss")):
                ax.plot(epochs, [row[metric] for row in run["history"]], "-o", ms=3, color=color, alpha=0.85,
                        label=f"{factor} {value}" if i == 0 else None)
    save_figure(fig, axes, [f"{LABELS[factor]}: {title} (one line per seed)"
                            for title in ("test accuracy", "test loss")], path)


def main(args) -> int:
    if not args.report_only:
        train_all(args)
    print(report(load_records(Path(args.records)), Path(args.figures)))
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
