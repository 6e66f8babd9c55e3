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
  python recipes/mnist_vit_sweep.py --factors ablations --epochs 10 --train-split 'train[:10000]' \
      --records docs/records/mnist_vit_ablations --runs runs/vit_ablations      # no positions, mean pooling
  python recipes/mnist_vit_sweep.py --report-only
  # two embedding sizes trained to the default's 15 epochs (the course's "32 ~ 64" at convergence)
  python recipes/mnist_vit_sweep.py --factors hidden_dim --values 32 64 --epochs 15 \
      --runs runs/vit_long --records docs/records/mnist_vit_long --figure-prefix vit_long
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from keraszoo.training.study import best_monitored, by_group, check_values, load_records, mean_std, plot_groups, seeds_of, summary_table

FACTORS = {"hidden_dim": (8, 16, 32, 64), "patch_size": (4, 7, 11, 14), "num_layers": (2, 4, 6, 8)}
DEFAULT = {"hidden_dim": 64, "patch_size": 7, "num_layers": 6}
LABELS = {"hidden_dim": "embedding size", "patch_size": "patch size", "num_layers": "depth (blocks)"}
# The ablations (course: what the class token and the positional embedding are for), each against the default.
ABLATIONS = {"no-position": {"position_embedding": False}, "mean-pool": {"pooling": "mean"}}


def parse_args(argv=None):
    from keraszoo.training.study import study_parser

    parser = study_parser(__doc__, runs="runs/vit_sweep", records="docs/records/mnist_vit_sweep", epochs=3)
    parser.add_argument("--factors", nargs="+", choices=[*FACTORS, "ablations"], default=list(FACTORS),
                        help="factors to sweep; 'ablations' trains the default without positional embeddings "
                        "and with mean pooling instead of the class token (default: the three factors)")
    parser.add_argument("--values", type=int, nargs="+",
                        help="only these values of the one factor given, e.g. --factors hidden_dim --values 32 64 "
                        "(default: all of them)")
    parser.add_argument("--figure-prefix", default="vit_sweep",
                        help="figures are <figures>/<prefix>_<factor>.png (default: %(default)s)")
    parser.add_argument("--warmup-epochs", type=float, default=0.5, help="warmup of every run (default: %(default)s)")
    return parser.parse_args(argv)


def run_name(settings: dict) -> str:
    return f"h{settings['hidden_dim']}-p{settings['patch_size']}-l{settings['num_layers']}"


def grid(factors, values=None) -> dict[str, dict]:
    """Every factor's values around the default (``values``: only those, of a single factor); the default once."""
    check_values(factors, values, FACTORS)
    points = {}
    for factor in factors:
        if factor == "ablations":
            points[run_name(DEFAULT)] = dict(DEFAULT)
            points.update({f"{run_name(DEFAULT)}-{name}": {**DEFAULT, **options} for name, options in ABLATIONS.items()})
            continue
        for value in FACTORS[factor]:
            if values is not None and value not in values:
                continue
            settings = {**DEFAULT, factor: value}
            points[run_name(settings)] = settings
    return points


def seconds_per_step(record) -> float:
    steps = math.ceil(record.metrics["num_train_examples"] / record.config["batch_size"])
    return record.metrics["mean_train_time_per_epoch_s"] / steps


def _validation(key):
    """A validation column: records made before keraszoo had a validation split have none."""
    def column(runs):
        found = [r.metrics[key] for r in runs if key in r.metrics]
        return mean_std(found) if len(found) == len(runs) else "— (before validation)"
    return column


def report(records, figures: Path, prefix: str = "vit_sweep") -> str:
    from keraszoo.models.vit import num_tokens

    groups, sections = by_group(records), []
    for factor, values in FACTORS.items():
        names = {run_name({**DEFAULT, factor: value}): value for value in values}
        present = {name: groups[name] for name in names if name in groups}
        if len(present) < 2:  # the default alone (another factor's or the ablations' records) is not a sweep
            continue
        plot_groups(present, figures / f"{prefix}_{factor}.png", title=LABELS[factor],
                    label=lambda name: f"{factor} {names[name]}")
        m = lambda runs: [r.metrics for r in runs]  # noqa: E731
        # Records since issue #17 rank on validation data; the older ones (3 epochs) have none.
        validated = any("val_accuracy" in r.metrics for runs in present.values() for r in runs)
        table = summary_table(present, list(names), first=factor, columns={
            "parameters": lambda runs: f"{runs[0].metrics['num_params']:,}",
            "tokens": lambda runs: num_tokens((28, 28, 1), runs[0].config["patch_size"]),
            "seeds": seeds_of,
            **({"epochs": lambda runs: "/".join(map(str, sorted({x["epochs"] for x in m(runs)}))),
                "final val. acc. % (mean ± std)": _validation("val_accuracy"),
                "best val. acc. %": _validation("best_val_accuracy"),
                "test acc. % (once, at the end)": lambda runs: mean_std(x["test_accuracy"] for x in m(runs)),
                } if validated else {
                "test accuracy % (mean ± std)": lambda runs: mean_std(x["test_accuracy"] for x in m(runs))}),
            "final test loss": lambda runs: mean_std((x["test_loss"] for x in m(runs)), scale=1, digits=4),
            **({} if validated else {  # before #17 the monitored split was the test split
                "best monitored acc. %": lambda runs: mean_std(best_monitored(x) for x in m(runs)).split(" (")[0]}),
            "train s/epoch": lambda runs: f"{statistics.mean(x['mean_train_time_per_epoch_s'] for x in m(runs)):.0f}",
            "ms/step": lambda runs: f"{1000 * statistics.mean(seconds_per_step(r) for r in runs):.0f}",
        }, label=lambda name: f"{names[name]}{' (default)' if names[name] == DEFAULT[factor] else ''}")
        sections.append(f"### {LABELS[factor]}\n\n{table}")
    names = [run_name(DEFAULT), *(f"{run_name(DEFAULT)}-{name}" for name in ABLATIONS)]
    if any(name in groups for name in names[1:]):
        m = lambda runs: [r.metrics for r in runs]  # noqa: E731
        sections.append("### ablations\n\n" + summary_table(groups, names, first="model", columns={
            "parameters": lambda runs: f"{runs[0].metrics['num_params']:,}",
            "epochs, training split": lambda runs: f"{runs[0].metrics['epochs']}, {runs[0].metrics['train_split']}",
            "seeds": seeds_of,
            "final val. acc. % (mean ± std)": lambda runs: mean_std(x["val_accuracy"] for x in m(runs)),
            "best val. acc. %": lambda runs: mean_std(x["best_val_accuracy"] for x in m(runs)),
            "final val. loss": lambda runs: mean_std((x["val_loss"] for x in m(runs)), scale=1, digits=4),
            "test acc. % (once, at the end)": lambda runs: mean_std(x["test_accuracy"] for x in m(runs)),
        }, label=lambda name: {names[0]: "default (class token, learned positions)",
                               names[1]: "no positional embedding", names[2]: "mean of patch tokens, no class token"}[name]))
    return "\n\n".join(sections)


def main(argv=None) -> int:
    args = parse_args(argv)
    points = grid(args.factors, args.values)  # a bad --values is refused even with --report-only
    status = 0
    if not args.report_only:
        from keraszoo.training.study import run_study

        status = run_study(args, recipe="mnist_vit",
                           grid=points, fixed={"warmup_epochs": args.warmup_epochs})
    print(report(load_records(args.records, "h*-p*-l*-seed*"), Path(args.figures), args.figure_prefix))
    return status
