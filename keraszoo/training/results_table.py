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
           "hardware", "backend", "precision")
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


def row(configuration: str, runs: list[dict]) -> dict:
    first = runs[0]
    config = first["_config"]
    validation = [r["val_accuracy"] for r in runs if "val_accuracy" in r]
    val_mean, val_std = _mean_std(validation if len(validation) == len(runs) else [])
    test_mean, test_std = _mean_std([r["test_accuracy"] for r in runs])
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
    }


def results_csv(records: str | Path) -> str:
    """The table as CSV text, one row per configuration in folder order."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for configuration, runs in collect(Path(records)).items():
        writer.writerow(row(configuration, runs))
    return out.getvalue()
