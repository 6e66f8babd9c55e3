"""Run the course's CIFAR-10 ladder (every variant x seeds) and tabulate it from the run records.

Each (variant, seed) trains with keraszoo.recipes.cifar10_cnn into --runs/<variant>-seed<seed>/
(resumable: rerun the same command after a kill; finished runs are skipped), and its small
record (config, history, metrics, curves) is copied to --records. With --report-only nothing
is trained: the table and one curves figure per variant are made from whatever records
exist, and printed as Markdown for docs/cifar10_ladder.md. Any Keras backend: on a machine
with JAX but no TensorFlow, pass --data-pack (keraszoo pack) and KERAS_BACKEND=jax.

examples:
  python recipes/cifar10_ladder.py --epochs 30 --seeds 0 1          # everything (hours on a CPU)
  python recipes/cifar10_ladder.py --variants batchnorm --epochs 20 --seeds 0
  KERAS_BACKEND=jax python recipes/cifar10_ladder.py --data-pack pack/cifar10 --jobs 12 \\
      --records docs/records/cifar10_ladder_gpu --figure-prefix cifar10_ladder_gpu     # on a lent GPU
  keraszoo study cifar10_ladder --variants course_decay_no_augmentation course_dropout_unnormalized \
      course_batchnorm normalized baseline --records docs/records/cifar10_ladder_val   # the course's own runs
  python recipes/cifar10_ladder.py --report-only
"""

from __future__ import annotations

import statistics
from pathlib import Path

from keraszoo.recipes.cifar10_cnn import VARIANTS
from keraszoo.training.study import best_monitored, by_group, load_records, mean_std, plot_groups, seeds_of, summary_table


# The course's own experiments, as it ran them, beside the cumulative ladder (issue #37): its decay on
# normalised data without augmentation (against `normalized`), its dropout on unnormalised data (against
# `baseline`), and its batch-norm step with its own optimizer (plain SGD 0.1, γ 0.95, dropout 0.5).
EXPERIMENTS = {
    "course_decay_no_augmentation": {"variant": "normalized", "lr_decay": 0.95},
    "course_dropout_unnormalized": {"variant": "baseline", "dropout_rate": 0.5},
    "course_batchnorm": {"variant": "batchnorm", "learning_rate": 0.1, "momentum": 0.0, "lr_decay": 0.95,
                         "dropout_rate": 0.5},
    # Q.16's remark that adaptive optimizers mitigate the choice of rate: Adam at its usual 1e-3 on the
    # batchnorm step, everything else the step's own (against `batchnorm`'s SGD with momentum).
    "batchnorm_adam": {"variant": "batchnorm", "optimizer": "adam", "learning_rate": 1e-3, "momentum": 0.0},
}
GROUPS = (*VARIANTS, *EXPERIMENTS)


def parse_args(argv=None):
    from keraszoo.training.study import study_parser

    parser = study_parser(__doc__, runs="runs/ladder", records="docs/records/cifar10_ladder", epochs=30)
    parser.add_argument("--variants", nargs="+", choices=GROUPS, default=list(VARIANTS),
                        help="ladder steps, the course's own experiments (course_*) and batchnorm_adam to run "
                             "(default: the six ladder steps)")
    parser.add_argument("--figure-prefix", default="cifar10_ladder",
                        help="figures are <prefix>_<variant>.png (default: %(default)s)")
    return parser.parse_args(argv)


def _hardware(metrics: dict) -> str:
    """Where a run computed, and in which precision when not float32 (bfloat16 is the CNN's default on
    CPUs with bfloat16 units)."""
    environment = metrics["environment"]
    precision = {"mixed_bfloat16": ", bfloat16", "mixed_float16": ", float16"}.get(metrics.get("dtype_policy"), "")
    if environment["gpus"]:
        backend = environment["backend"]
        return environment["gpus"][0] + ("" if backend == "tensorflow" else f" (Keras on {backend})") + precision
    return f"{environment['cpu']}, {environment['cpu_count']} cores{precision}"


def _seconds_per_epoch(run) -> float:
    """Median training time of an epoch: the first one also compiles (90 s of 115 on the shared GPU)."""
    times = [row["train_time_s"] for row in run.history if row.get("train_time_s") is not None]
    return statistics.median(times) if times else run.metrics["mean_train_time_per_epoch_s"]


def report(records, figures: Path, prefix: str = "cifar10_ladder") -> str:
    groups = by_group(records)
    for variant, runs in groups.items():
        plot_groups({f"seed {r.seed}": [r] for r in runs}, figures / f"{prefix}_{variant}.png", title=variant,
                    metrics=("loss", "accuracy"), with_train=True)
    m = lambda runs: [r.metrics for r in runs]  # noqa: E731
    order = [*VARIANTS, *(name for name in EXPERIMENTS if name in groups)]
    validated = all(r.config.get("validation_split") for runs in groups.values() for r in runs)
    columns = {
        "optimizer lr0, momentum, γ": lambda runs: "; ".join(sorted(
            {f"{'Adam' if r.config.get('optimizer') == 'adam' else 'SGD'} {r.config['learning_rate']:g}, "
             f"{r.config['momentum']:g}, {r.metrics['steps']['lr_decay']:g}" for r in runs})),
        "epochs": lambda runs: "/".join(map(str, sorted({x["epochs"] for x in m(runs)}))),
        "seeds": seeds_of,
        "test accuracy % (mean ± std)": lambda runs: mean_std(x["test_accuracy"] for x in m(runs)),
        "final train accuracy %": lambda runs: mean_std(x["train_accuracy"] for x in m(runs)).split(" (")[0],
        "train–test gap (points)": lambda runs: f"{100 * statistics.mean(x['train_accuracy'] - x['test_accuracy'] for x in m(runs)):.1f}",
        "best epoch (its monitored acc.)": lambda runs: ", ".join(f"{x['best_epoch']} ({100 * best_monitored(x):.1f})" for x in m(runs)),
        "train s/epoch (median)": lambda runs: f"{statistics.mean(_seconds_per_epoch(r) for r in runs):.3g}",
        "hardware": lambda runs: "; ".join(sorted({_hardware(x) for x in m(runs)})),
    }
    if validated:  # the final epoch's validation accuracy, the number every choice is made on (since #37)
        columns = {"final validation accuracy % (mean ± std)": lambda runs: mean_std(x["val_accuracy"] for x in m(runs)),
                   **columns}
    return summary_table(groups, order, first="variant", columns=columns)


def claims_table(groups: dict, *, settle_epochs: int = 5) -> str:
    """The numbers docs/cifar10_ladder.md checks the course's claims with, one entry per seed.

    Oscillation is the mean absolute change of the test value from one epoch to the next,
    after the first ``settle_epochs`` epochs (the early climb is not oscillation).
    """
    def wobble(history, key):
        values = [row[key] for row in history][settle_epochs:]
        return statistics.mean(abs(b - a) for a, b in zip(values, values[1:]))

    long_enough = {v: runs for v, runs in groups.items() if min(len(r.history) for r in runs) >= settle_epochs + 2}
    per_seed = lambda value: lambda runs: " / ".join(value(r.history) for r in runs)  # noqa: E731
    # What the history's val_* columns watched: the validation split, or the test split in records made before it.
    split = "validation" if all(r.config.get("validation_split") for runs in long_enough.values() for r in runs) \
        else "test"
    return summary_table(long_enough, [v for v in GROUPS if v in long_enough], first="variant", columns={
        f"lowest {split} loss at epoch": per_seed(lambda h: str(min(h, key=lambda row: row["val_loss"])["epoch"])),
        f"final {split} loss": per_seed(lambda h: f"{h[-1]['val_loss']:.2f}"),
        f"{split} acc. at epoch 10 (%)": per_seed(lambda h: f"{100 * h[9]['val_accuracy']:.1f}" if len(h) >= 10 else "—"),
        f"mean \\|Δ {split} acc.\\| after epoch {settle_epochs} (points)":
            per_seed(lambda h: f"{100 * wobble(h, 'val_accuracy'):.2f}"),
        f"mean \\|Δ {split} loss\\|": per_seed(lambda h: f"{wobble(h, 'val_loss'):.3f}"),
    })


def main(argv=None) -> int:
    args = parse_args(argv)
    status = 0
    if not args.report_only:
        from keraszoo.training.study import run_study

        status = run_study(args, recipe="cifar10_cnn",
                           grid={name: EXPERIMENTS.get(name, {"variant": name}) for name in args.variants})
    records = load_records(args.records)
    print(report(records, Path(args.figures), args.figure_prefix))
    print()
    print(claims_table(by_group(records)))
    return status
