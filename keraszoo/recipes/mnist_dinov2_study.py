"""Why pretraining matters: MNIST test accuracy against the number of labelled training images.

(a) the pretrained DINOv2 ViT-S/14 linear probe (``mnist_dinov2 --mode probe``: frozen class tokens
cached once), N examples drawn per seed from ``train[:55000]``, one run per ``--l2`` strength: the
report keeps, per N and seed, the strength with the best final accuracy on ``train[55000:]``;
(c) keraszoo's ViT from scratch with its default recipe (``mnist_vit``: 15 epochs, AdamW, warmup +
cosine, final epoch reported: nothing chosen), on ``train[:N]``.
(b) fine-tuning the last k blocks on cached tokens (``mnist_dinov2 --mode tokens``), one run per (k, learning
rate) of ``--finetune-blocks`` x ``--learning-rates``, ``--tokens-epochs`` epochs (``--tokens-schedule``: the rate
constant, or warmup + cosine): per N and seed, the run with
the best final validation accuracy is reported (ties: fewer blocks, then the smaller rate).
Both series run through the study runner (resumable, ``--jobs``); records go to ``--records`` (one
folder per run), then a Markdown table and a figure. Records made before 2026-12-03 (``probe-nN-seedS``)
chose the strength inside one run, with early stopping; they are read as they are.

examples:
  keraszoo study mnist_dinov2_study --parts probe --sizes 100 1000
  keraszoo study mnist_dinov2_study --parts tokens --sizes 55000 --seeds 0 --finetune-blocks 1 2 4 \
      --learning-rates 3e-5 1e-4 3e-4            # the search for all labels (~25 min a run of 3 epochs here)
  keraszoo report mnist_dinov2_study --records docs/records/mnist_dinov2 --out /tmp/report
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np

from keraszoo.training.study import mean_std, run_study, study_parser

RECORDS = Path("docs/records/mnist_dinov2")
FIGURE_NAME = "mnist_dinov2_sizes.png"


def parse_args(argv=None):
    parser = study_parser(__doc__, runs="runs/mnist_dinov2_study", records=str(RECORDS), epochs=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000, 55000])
    parser.add_argument("--one-seed-from", type=int, default=10000, help="sizes from this one run the first seed only")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--l2", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2, 1e-1],
                        help="the probe's strengths, one run each (default: %(default)s)")
    parser.add_argument("--parts", nargs="+", choices=["probe", "scratch", "tokens"], default=["probe", "scratch"],
                        help="which series to run (default: probe and scratch)")
    parser.add_argument("--finetune-blocks", type=int, nargs="+", default=[2],
                        help="tokens: the k last blocks fine-tuned, one run each (default: %(default)s)")
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[1e-4],
                        help="tokens: Adam's rate, one run each (default: %(default)s)")
    parser.add_argument("--tokens-epochs", type=int, default=3, help="tokens: epochs of a run (default: %(default)s)")
    parser.add_argument("--tokens-schedule", choices=["constant", "cosine"], default="constant",
                        help="tokens: the rate constant, or warmup + cosine decay over the run; cosine runs are named "
                             "...-cosine-eE (default: %(default)s)")
    parser.add_argument("--scratch-max-size", type=int, default=10000,
                        help="largest N trained from scratch (the full-data run is --scratch-full-record)")
    parser.add_argument("--scratch-full-record", default="docs/records/mnist_vit_default",
                        help="the from-scratch recipe's full-data run, the table's last row (default: %(default)s)")
    return parser.parse_args(argv)


def _with_seeds(args: argparse.Namespace, size: int) -> argparse.Namespace:
    chosen = copy.copy(args)
    chosen.seeds = args.seeds if size < args.one_seed_from else args.seeds[:1]
    return chosen


def run_probes(args) -> int:
    status = 0
    for size in args.sizes:
        grid = {f"probe-n{size}-l2_{l2:g}": {"mode": "probe", "train_size": size, "l2": l2, "image_size": args.image_size}
                for l2 in args.l2}
        status |= run_study(_with_seeds(args, size), recipe="mnist_dinov2", grid=grid)
    return status


def run_tokens(args) -> int:
    status = 0
    for size in args.sizes:
        # 55,000 is all of the default training split: the run without a draw (its record is the first one).
        cosine = f"-cosine-e{args.tokens_epochs}" if args.tokens_schedule == "cosine" else ""
        grid = {f"tokens-n{size}-k{k}-lr{lr:g}{cosine}": {
                    "mode": "tokens", "train_size": None if size == 55000 else size, "finetune_blocks": k,
                    "learning_rate": lr, "image_size": args.image_size, "epochs": args.tokens_epochs,
                    "schedule": args.tokens_schedule}
                for k in args.finetune_blocks for lr in args.learning_rates}
        status |= run_study(_with_seeds(args, size), recipe="mnist_dinov2", grid=grid)
    return status


def run_scratch(args) -> int:
    status = 0
    for size in (s for s in args.sizes if s <= args.scratch_max_size):
        status |= run_study(_with_seeds(args, size), recipe="mnist_vit",
                            grid={f"scratch-n{size}": {"train_split": f"train[:{size}]"}})
    return status


def _load(records: Path, full_record: Path) -> dict:
    """{(kind, N): {seed: test accuracy}} from the records' folder names: ``scratch-nN-seedS``,
    ``probe-nN-l2_X-seedS`` (one strength a run: per N and seed, the best validation accuracy wins, a tie
    going to the weaker strength), or ``probe-nN-seedS`` (made before: the strength chosen inside the run)."""
    candidates = {}
    for metrics_file in sorted(records.glob("*/metrics.json")):
        name, seed = metrics_file.parent.name.rsplit("-seed", 1)
        kind, size = name.split("-")[:2]
        metrics = json.loads(metrics_file.read_text())
        key = (kind, int(size[1:]), int(seed))
        # Records of the scratch series made before keraszoo had a validation split have none: one run each.
        # Chosen on validation only; ties go to the weaker strength, fewer blocks, the smaller rate.
        found = (metrics.get("val_accuracy", 0.0), -metrics.get("l2", 0.0), -(metrics.get("finetune_blocks") or 0),
                 -_recorded_rate(metrics_file.parent), metrics["test_accuracy"])
        candidates.setdefault(key, []).append(found)
    rows = {}
    for (kind, size, seed), found in candidates.items():
        rows.setdefault((kind, size), {})[seed] = max(found, key=lambda f: f[:4])[4]
    if (full_record / "metrics.json").is_file():  # the from-scratch recipe on the whole training split
        metrics = json.loads((full_record / "metrics.json").read_text())
        rows[("scratch", 60000)] = {metrics.get("seed", 0): metrics["test_accuracy"]}
    return rows


def _recorded_rate(record: Path) -> float:
    config = record / "config.json"
    return json.loads(config.read_text()).get("learning_rate", 0.0) if config.is_file() else 0.0


def report(args) -> str:
    """The table of docs/vit_pretrained.md (mean ± sample std over seeds) and its figure."""
    rows = _load(Path(args.records), Path(args.scratch_full_record))
    sizes = sorted({size for _, size in rows})
    lines = ["| labelled training images | pretrained DINOv2 probe (112 px) | DINOv2, last blocks fine-tuned (tokens) | "
             "ViT from scratch (default recipe) |", "|---|---|---|---|"]

    def cell(kind, size):
        by_seed = rows.get((kind, size))
        if not by_seed:
            return "not run"
        seeds = ", ".join(map(str, sorted(by_seed)))
        return f"{mean_std(by_seed.values()).split(' (')[0]} % (seed{'s' if len(by_seed) > 1 else ''} {seeds})"

    for size in sizes:
        lines.append(f"| {size:,} | {cell('probe', size)} | {cell('tokens', size)} | {cell('scratch', size)} |")
    _figure(rows, Path(args.figures) / FIGURE_NAME)
    return "\n".join(lines)


def _figure(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for kind, label, marker in (("probe", "pretrained DINOv2 ViT-S/14, linear probe (frozen)", "o"),
                                ("tokens", "pretrained DINOv2 ViT-S/14, last blocks fine-tuned", "^"),
                                ("scratch", "keraszoo ViT from scratch (default recipe)", "s")):
        sizes = sorted(size for k, size in rows if k == kind)
        if not sizes:
            continue
        means = [100 * np.mean(list(rows[(kind, s)].values())) for s in sizes]
        stds = [100 * np.std(list(rows[(kind, s)].values()), ddof=1) if len(rows[(kind, s)]) > 1 else 0 for s in sizes]
        ax.errorbar(sizes, means, yerr=stds, marker=marker, capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("labelled training images (log scale)")
    ax.set_ylabel("MNIST test accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Pretraining and the number of labels")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    status = 0
    if not args.report_only:
        if "probe" in args.parts:
            status |= run_probes(args)
        if "scratch" in args.parts:
            status |= run_scratch(args)
        if "tokens" in args.parts:
            status |= run_tokens(args)
    print(report(args))
    print(f"figure: {Path(args.figures) / FIGURE_NAME}")
    return status
