"""One results table for the zoo: a CSV row per trained configuration, made from every run record under a
records folder (``keraszoo results --records docs/records --out docs/results.csv``).

A configuration is a record folder without its seed or repetition suffix (``cifar10_ladder_val/batchnorm``
for ``batchnorm-seed0`` and ``batchnorm-seed1``); accuracies are the mean and the sample standard deviation
over its runs (over seeds; over repetitions where a seed repeats). ``monitor`` says which split was
evaluated after every epoch: ``validation``, or ``test`` for runs made before keraszoo had a validation
split (their test accuracy is not an untouched estimate). Timing-only folders (no accuracy) are left out.
"""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
from pathlib import Path

COLUMNS = ("record", "model", "dataset", "parameters", "epochs", "runs", "seeds", "monitor",
           "val_accuracy_mean", "val_accuracy_std", "test_accuracy_mean", "test_accuracy_std",
           "hardware", "backend", "precision",
           # flip test-time augmentation, where the runs measured it (the course CNN since issue #37)
           "val_flip_accuracy_mean", "val_flip_accuracy_std", "test_flip_accuracy_mean", "test_flip_accuracy_std")
_RUN_SUFFIX = re.compile(r"([-_/]?(seed|rep)\d+)$")


def configuration_of(record: str) -> str:
    """``cifar10_ladder_val/batchnorm-seed1`` -> ``cifar10_ladder_val/batchnorm``; ``x/seed0`` -> ``x``."""
    return _RUN_SUFFIX.sub("", record) or record


def collect(records: Path) -> dict[str, list[dict]]:
    """{configuration: [metrics of each run]} for every metrics.json with a test accuracy under ``records``."""
    groups: dict[str, list[dict]] = {}
    for path in sorted(records.rglob("metrics.json")):
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"{path} is not a readable run record ({error}).") from None
        if not isinstance(metrics, dict) or "test_accuracy" not in metrics:
            continue
        config_path = path.with_name("config.json")
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        groups.setdefault(configuration_of(path.parent.relative_to(records).as_posix()), []).append(
            {**metrics, "_config": config})
    return groups


def _hardware(metrics: dict) -> str:
    environment = metrics.get("environment") or {}
    if not environment:
        return "not recorded"
    if environment.get("gpus"):
        return environment["gpus"][0]
    flags = [f for f in environment.get("cpu_flags") or [] if f.startswith(("avx512_bf16", "amx"))]
    cpu = environment.get("cpu") or "not recorded"
    return f"{cpu}, {environment.get('cpu_count', '?')} cores" + (f" ({' '.join(flags)})" if flags else "")


def _mean_std(values: list[float]) -> tuple[str, str]:
    if not values:
        return "", ""
    mean = f"{100 * statistics.mean(values):.2f}"
    return mean, f"{100 * statistics.stdev(values):.2f}" if len(values) > 1 else ""


def _of_every_run(runs: list[dict], key: str) -> tuple[str, str]:
    """Mean and std of ``key`` where every run recorded it; empty where any did not (no partial means)."""
    return _mean_std([r[key] for r in runs] if all(key in r for r in runs) else [])


def row(configuration: str, runs: list[dict]) -> dict:
    first = runs[0]
    config = first["_config"]
    val_mean, val_std = _of_every_run(runs, "val_accuracy")
    test_mean, test_std = _of_every_run(runs, "test_accuracy")
    flip = {f"{split}_flip_accuracy_{k}": v for split in ("val", "test")
            for k, v in zip(("mean", "std"), _of_every_run(runs, f"{split}_flip_accuracy"))}
    return {
        "record": configuration,
        "model": first.get("recipe") or first.get("export_name") or config.get("variant") or "",
        "dataset": str(first.get("dataset") or config.get("dataset") or "").split(":")[0],
        "parameters": first.get("num_params") or "",
        "epochs": "/".join(str(e) for e in sorted({r.get("epochs") or r["_config"].get("epochs") or 0 for r in runs})),
        "runs": len(runs),
        "seeds": " ".join(str(s) for s in sorted({r.get("seed", r["_config"].get("seed")) for r in runs}, key=str)),
        "monitor": "validation" if "val_accuracy" in first and "best_test_accuracy" not in first else "test",
        "val_accuracy_mean": val_mean, "val_accuracy_std": val_std,
        "test_accuracy_mean": test_mean, "test_accuracy_std": test_std,
        "hardware": "; ".join(sorted({_hardware(r) for r in runs})),
        "backend": "; ".join(sorted({(r.get("environment") or {}).get("backend") or "tensorflow" for r in runs})),
        "precision": "; ".join(sorted({r.get("dtype_policy") or "float32" for r in runs})),
        **flip,
    }


def results_csv(records: str | Path) -> str:
    """The table as CSV text, one row per configuration in folder order."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for configuration, runs in collect(Path(records)).items():
        writer.writerow(row(configuration, runs))
    return out.getvalue()


# The README's zoo table: each recipe's headline configuration in docs/results.csv (None: no accuracy yet).
ZOO = [
    ("mlp", 1, "2-layer tanh MLP, hand-written backprop or autodiff", "mlp_mnist_manual_default", "docs/mlp.md"),
    ("mlp_study", 1, "part 1's questions (here: tanh hidden layer, MNIST)", "mlp_study/mnist-activation-tanh",
     "docs/mlp.md"),
    ("cifar10_cnn", 2, "the course CNN, batchnorm step + weight decay + cosine (chosen on validation), 60 epochs; "
     "shipped with flip TTA inside", "cifar10_toward85_60/weight_decay5e-4+cosine", "docs/cifar10_ladder.md"),
    ("cifar10_ladder", 2, "the six ladder steps on validation data (here: batchnorm)",
     "cifar10_ladder_val/batchnorm", "docs/cifar10_ladder.md"),
    ("cifar10_lr_batch", 2, "Q.16: learning rate x batch size (here: the best cell)", "cifar10_lr_batch/lr0.03-b32",
     "docs/cifar10_lr_batch.md"),
    ("cifar10_sweeps", 2, "batchnorm's γ and dropout, accuracy against N (here: dropout 0)", "cifar10_sweeps/dropout0",
     "docs/cifar10_sweeps.md"),
    ("cifar10_speedrun", 2, "a batch-norm GELU net on a 600 s budget", "cifar10_speedrun_600s_avx512bf16",
     "docs/performance.md"),
    ("cifar10_airbench", 2, "airbench94 in Keras, 10 epochs (no TTA here; with TTA: docs/airbench.md)",
     "cifar10_airbench",
     "docs/airbench.md"),
    ("mnist_vit", 3, "a ViT from scratch (patch 7, hidden 64, 6 blocks)", "mnist_vit_default", "docs/vit_mnist.md"),
    ("mnist_vit_sweep", 3, "embedding, patch, depth at 15 epochs (here: patch 14)", "mnist_vit_long/h64-p14-l6",
     "docs/vit_mnist.md"),
    ("mnist_vit_b16", 3, "ViT-B/16 in keras-hub's layout (no ImageNet weights offline)", None, "docs/vit_b16.md"),
    ("mnist_dinov2", 3, "pretrained DINOv2 ViT-S/14, last 2 blocks fine-tuned on cached tokens, all labels",
     "mnist_dinov2/tokens-n55000-k2-lr0.0001",
     "docs/vit_pretrained.md"),
    ("mnist_dinov2_study", 3, "accuracy against labels (here: the probe on 1,000)", "mnist_dinov2/probe-n1000",
     "docs/vit_pretrained.md"),
]
ZOO_BEGIN = "<!-- zoo table: generated from docs/results.csv by `keraszoo results` -->"
ZOO_END = "<!-- end of the zoo table -->"


def zoo_table(csv_text: str) -> str:
    """The README's table: per recipe, its headline configuration's accuracies from the results table."""
    rows = {row["record"]: row for row in csv.DictReader(io.StringIO(csv_text))}

    def cell(row, split):
        mean, std = row[f"{split}_accuracy_mean"], row[f"{split}_accuracy_std"]
        if not mean:
            return "— (test monitored)" if split == "val" else "—"
        seeds = f"{row['runs']} runs" if int(row["runs"]) > 1 else "1 run"
        text = f"{mean} ± {std} % ({seeds})" if std else f"{mean} % ({seeds})"
        flip_mean, flip_std = row.get(f"{split}_flip_accuracy_mean"), row.get(f"{split}_flip_accuracy_std")
        if flip_mean:
            text += f"; flip TTA {flip_mean} ± {flip_std} %" if flip_std else f"; flip TTA {flip_mean} %"
        return text

    lines = ["| recipe | part | what it trains | record (docs/records/) | validation | test (once) | page |",
             "|---|---|---|---|---|---|---|"]
    for recipe, part, what, record, page in ZOO:
        row = rows.get(record) if record else None
        if row is None:
            lines.append(f"| `{recipe}` | {part} | {what} | — | — | — | `{page}` |")
            continue
        lines.append(f"| `{recipe}` | {part} | {what} | `{record}` | {cell(row, 'val')} | {cell(row, 'test')} | "
                     f"`{page}` |")
    return "\n".join(lines)


def with_zoo_table(readme: str, csv_text: str) -> str:
    """``readme`` with the text between its zoo-table markers replaced by ``zoo_table``."""
    if ZOO_BEGIN not in readme or ZOO_END not in readme:
        raise ValueError("the README has no zoo-table markers: keep the two HTML comments around the table.")
    head, rest = readme.split(ZOO_BEGIN, 1)
    return f"{head}{ZOO_BEGIN}\n{zoo_table(csv_text)}\n{ZOO_END}{rest.split(ZOO_END, 1)[1]}"
