"""Why pretraining matters: MNIST test accuracy against the number of labelled training images.

(a) the pretrained DINOv2 ViT-S/14 linear probe (``mnist_dinov2``, frozen features cached once, L2 and
early stopping chosen on ``train[55000:]``), N examples drawn per seed from ``train[:55000]``;
(c) keraszoo's ViT from scratch with its default recipe (``mnist_vit``: 15 epochs, AdamW, warmup +
cosine, final epoch reported: nothing chosen), on ``train[:N]``, one process per run.
(b), fine-tuning, is ``mnist_dinov2 --mode finetune``: a GPU job, not run here on 2 CPU cores.
Records go to ``--records`` (one folder per run), then a Markdown table and a figure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from keraszoo.training.study import mean_std

RECORDS = Path("docs/records/mnist_dinov2")
FIGURE_NAME = "mnist_dinov2_sizes.png"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000, 55000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds for sizes below --one-seed-from")
    parser.add_argument("--one-seed-from", type=int, default=10000, help="sizes from this one run seed 0 only")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--parts", nargs="+", choices=["probe", "scratch"], default=["probe", "scratch"],
                        help="which series to run (default: both)")
    parser.add_argument("--scratch-max-size", type=int, default=10000,
                        help="largest N trained from scratch (the full-data run is docs/records/mnist_vit_default)")
    parser.add_argument("--report-only", action="store_true", help="table and figure from --records only")
    parser.add_argument("--records", default=str(RECORDS), help="one folder per run (default: %(default)s)")
    parser.add_argument("--scratch-full-record", default="docs/records/mnist_vit_default",
                        help="the from-scratch recipe's full-data run, the table's last row (default: %(default)s)")
    parser.add_argument("--figures", default="docs/images", help=f"where {FIGURE_NAME} goes (default: %(default)s)")
    parser.add_argument("--data-dir")
    return parser.parse_args(argv)


def _seeds(args, size):
    return args.seeds if size < args.one_seed_from else args.seeds[:1]


def run_probes(args) -> None:
    from keraszoo.recipes.mnist_dinov2 import DinoTransferConfig, main

    for size in args.sizes:
        for seed in _seeds(args, size):
            folder = Path(args.records) / f"probe-n{size}-seed{seed}"
            if (folder / "metrics.json").is_file():
                continue
            main(DinoTransferConfig(train_size=size, seed=seed, image_size=args.image_size, data_dir=args.data_dir,
                                    output=str(folder)))


def run_scratch(args) -> None:
    for size in (s for s in args.sizes if s <= args.scratch_max_size):
        for seed in _seeds(args, size):
            folder = Path(args.records) / f"scratch-n{size}-seed{seed}"
            if (folder / "metrics.json").is_file():
                continue
            run = Path("runs") / "mnist_dinov2_study" / folder.name
            command = [sys.executable, "-m", "keraszoo", "train", "mnist_vit", "--train-split", f"train[:{size}]", "--seed", str(seed),
                       "--output", str(run), "--no-export", "--verbose", "2"]
            if args.data_dir:
                command += ["--data-dir", args.data_dir]
            print(" ".join(command), flush=True)
            subprocess.run(command, check=True)
            folder.mkdir(parents=True, exist_ok=True)
            for name in ("config.json", "metrics.json", "history.csv", "curves.png"):
                shutil.copy(run / name, folder / name)


def _load(records: Path, full_record: Path) -> dict:
    """{(kind, N): {seed: test accuracy}} from the records' folder names (``probe-n100-seed0``)."""
    rows = {}
    for metrics_file in sorted(records.glob("*/metrics.json")):
        kind, size, seed = metrics_file.parent.name.split("-")
        metrics = json.loads(metrics_file.read_text())
        rows.setdefault((kind, int(size[1:])), {})[int(seed[4:])] = metrics["test_accuracy"]
    if (full_record / "metrics.json").is_file():  # the from-scratch recipe on the whole training split
        metrics = json.loads((full_record / "metrics.json").read_text())
        rows[("scratch", 60000)] = {metrics.get("seed", 0): metrics["test_accuracy"]}
    return rows


def report(args) -> str:
    """The table of docs/vit_pretrained.md (mean ± sample std over seeds) and its figure."""
    rows = _load(Path(args.records), Path(args.scratch_full_record))
    sizes = sorted({size for _, size in rows})
    lines = ["| labelled training images | pretrained DINOv2 probe (112 px) | ViT from scratch (default recipe) |",
             "|---|---|---|"]

    def cell(kind, size):
        by_seed = rows.get((kind, size))
        if not by_seed:
            return "not run"
        seeds = ", ".join(map(str, sorted(by_seed)))
        return f"{mean_std(by_seed.values()).split(' (')[0]} % (seed{'s' if len(by_seed) > 1 else ''} {seeds})"

    for size in sizes:
        lines.append(f"| {size:,} | {cell('probe', size)} | {cell('scratch', size)} |")
    _figure(rows, Path(args.figures) / FIGURE_NAME)
    return "\n".join(lines)


def _figure(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for kind, label, marker in (("probe", "pretrained DINOv2 ViT-S/14, linear probe (frozen)", "o"),
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
    if not args.report_only:
        if "probe" in args.parts:
            run_probes(args)
        if "scratch" in args.parts:
            run_scratch(args)
    print(report(args))
    print(f"figure: {Path(args.figures) / FIGURE_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

