"""One study runner: a grid of recipe options x seeds -> runs -> records -> Markdown tables and figures.

A study script names its recipe, its grid (``{group: {option: value}}``) and what it
reports; this module does the rest, the same way for every study:

- each (group, seed) trains with the training recipe it names (``keraszoo.recipes.registry``) into
  ``--runs/<group>-seed<seed>/``. Runs are resumable and a finished run is a no-op
  (``keraszoo.training.run_folder``), so the same command after a kill goes on where it stopped;
  a run whose finished record is already in ``--records`` with the same options is skipped even
  when its run folder is gone (a fresh checkout of the repository, which commits the records);
- ``--jobs N`` trains N runs at once, each in its own process (its log in ``--runs/<group>-seed<seed>.log``);
- each finished run's small record (config, history, metrics, curves) is copied, as soon as the run ends, to
  ``--records/<group>-seed<seed>/``, the files committed under docs/records;
- ``load_records`` reads them back, ``summary_table`` and ``mean_std`` tabulate groups
  over seeds, ``plot_groups`` draws one curve per run, coloured by group.

``python -m keraszoo.training.study RECIPE JSON`` is one run of a ``--jobs`` study.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from keraszoo.training import run_record
from keraszoo.config import DataOptions, ExecutionOptions, add_config_arguments
from keraszoo.training.command_line import guarded, threads_of

# The small files of a run record, what docs/records keeps (not the model).
SMALL_RECORD_FILES = (run_record.CONFIG_FILE, run_record.HISTORY_FILE, run_record.METRICS_FILE, run_record.CURVES_FILE)
FAILED_FILE = "failed.json"  # a run that stopped early (diverged): its error, beside its epochs so far


@dataclass(frozen=True)
class Run:
    group: str  # the grid point, e.g. "batchnorm" or "h64-p7-l6"
    seed: int
    options: dict

    @property
    def name(self) -> str:
        return f"{self.group}-seed{self.seed}"


@dataclass
class Record:
    """A finished run's record, read back from its files."""

    name: str
    group: str
    seed: int
    config: dict
    metrics: dict
    history: list[dict]


def study_parser(description: str, *, runs: str, records: str, epochs: int, seeds=(0, 1)) -> argparse.ArgumentParser:
    """The options every study shares; a study adds its own (e.g. which grid points) before parsing."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(seeds), help="seeds (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=epochs, help="epochs of every run (default: %(default)s)")
    # The data and execution sections of every training recipe's config, generated from it (one wording):
    # what is given applies to every run, what is not stays the recipe's.
    for section in (DataOptions, ExecutionOptions):
        add_config_arguments(parser, section, unset_defaults=True)
    parser.add_argument("--runs", default=runs, help="run folders (default: %(default)s)")
    parser.add_argument("--records", default=records, help="where the small records are copied (default: %(default)s)")
    parser.add_argument("--figures", default="docs/images", help="figure folder (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process (default: 1)")
    parser.add_argument("--report-only", action="store_true", help="train nothing: report the records there are")
    return parser


def check_values(factors: Sequence[str], values: Sequence[float] | None, choices: dict[str, Sequence]) -> None:
    """A study's ``--values`` (some values of one factor): refused in one line unless exactly one
    factor of ``choices`` is given and every value is one of that factor's."""
    if values is None:
        return
    if len(factors) != 1 or factors[0] not in choices:
        raise SystemExit("error: --values needs exactly one of --factors " + ", ".join(choices) + ".")
    unknown = sorted(set(values) - set(choices[factors[0]]))
    if unknown:
        raise SystemExit(f"error: --values {' '.join(f'{v:g}' for v in unknown)}: not a {factors[0]} value of this "
                         f"study (choose from {', '.join(f'{v:g}' for v in choices[factors[0]])}).")


def plan(grid: dict[str, dict], seeds: Sequence[int]) -> list[Run]:
    """Seed-major, so that a study cut short has every grid point once before any twice."""
    return [Run(group, seed, options) for seed in seeds for group, options in grid.items()]


def run_study(args: argparse.Namespace, *, recipe: str, grid: dict[str, dict], fixed: dict | None = None,
              main: Callable | None = None) -> int:
    """Trains every run of ``grid`` x ``args.seeds`` that has not finished and copies the records.

    ``recipe`` names the training recipe (``keraszoo.recipes.registry``) every run is. ``fixed`` options
    apply to every run; a grid point's own options win over them, and the command line's (--epochs,
    --train-split, ...) over both. ``main`` replaces the recipe's ``main`` in this process (tests).
    Returns 0, or 1 when a run failed (the others still ran; each failure is named).
    """
    from keraszoo.recipes.registry import get_recipe

    config_class = get_recipe(recipe, "train").config_class()
    main = main or get_recipe(recipe).module.main
    if (args.epochs is not None and args.epochs < 1) or args.jobs < 1:
        raise SystemExit("error: --epochs and --jobs must be >= 1.")
    given = {f.name: getattr(args, f.name) for section in (DataOptions, ExecutionOptions)
             for f in dataclasses.fields(section)}
    common = {key: value for key, value in {"epochs": args.epochs, **given, "export": False, "verbose": "2"}.items()
              if value is not None}
    runs = plan(grid, args.seeds)
    configs = {}
    for run in runs:  # every config is checked before the first run trains
        try:
            configs[run.name] = config_class(**{**(fixed or {}), **run.options, **common, "seed": run.seed,
                                                "output": str(Path(args.runs) / run.name)})
        except ValueError as error:
            raise SystemExit(f"error: {run.name}: {error}") from None
    recorded = [run for run in runs if _recorded(Path(args.records) / run.name, configs[run.name])]
    if recorded:
        print(f"{len(recorded)} of {len(runs)} runs have their finished record in {args.records} already: skipped "
              f"({', '.join(run.name for run in recorded)}).", flush=True)
        runs = [run for run in runs if run not in recorded]

    def keep(run: Run, ok: bool) -> None:
        # As each run ends, not after the last: a study killed hours in keeps its finished runs' records.
        run_dir, record_dir = Path(args.runs) / run.name, Path(args.records) / run.name
        if ok:
            copy_record(run_dir, record_dir)
            (record_dir / FAILED_FILE).unlink(missing_ok=True)
        elif run_dir.is_dir():  # a diverged run is a result too: its epochs so far and why it stopped
            copy_record(run_dir, record_dir)
            run_record.write_json(record_dir / FAILED_FILE, {"error": _last_error(Path(f"{run_dir}.log"))})

    if args.jobs == 1:
        failed = _run_in_process(runs, configs, main, keep)
    else:
        failed = _run_in_processes(runs, configs, args.jobs, keep, recipe)
    if failed:
        print(f"failed: {', '.join(failed)} (see the messages above, or <run>.log with --jobs); rerun the same command to "
              "retry them, the others are skipped.", file=sys.stderr)
    return 1 if failed else 0


def _run_in_process(runs: list[Run], configs: dict, main: Callable, keep: Callable) -> list[str]:
    failed = []
    for index, run in enumerate(runs, 1):
        print(f"== [{index}/{len(runs)}] {run.name} -> {configs[run.name].output}", flush=True)
        config = configs[run.name]
        ok = not guarded(lambda: main(config), strategy=config.strategy, threads=threads_of(config))
        if not ok:
            failed.append(run.name)
        keep(run, ok)
    return failed


def _recorded(record_dir: Path, config) -> bool:
    """A finished run's record with the same options as ``config`` (where it ran aside): nothing to train."""
    from keraszoo.training.resume import changed_fields, comparable

    try:
        saved = comparable(type(config), run_record.read_json(record_dir / run_record.CONFIG_FILE))
        run_record.read_json(record_dir / run_record.METRICS_FILE)
    except (OSError, ValueError):
        return False
    # Where it ran (folder, data copy) is not what it computed; an unset precision took the recorded one.
    wanted = {**config.to_dict(), "output": saved.get("output"), "data_dir": saved.get("data_dir")}
    if wanted.get("mixed_precision") is None:
        wanted["mixed_precision"] = saved.get("mixed_precision")
    return saved.get("epochs") == config.epochs and not changed_fields(saved, wanted)


def _run_in_processes(runs: list[Run], configs: dict, jobs: int, keep: Callable, recipe: str) -> list[str]:
    """One process per run: separate Keras states and seeds; a GPU interleaves their small kernels."""
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}  # JAX takes 75 % per process
    pending, running, failed = list(runs), {}, []
    by_name = {run.name: run for run in runs}
    while pending or running:
        while pending and len(running) < jobs:
            run = pending.pop(0)
            config = configs[run.name]
            log_path = Path(f"{config.output}.log")  # beside the run folder: only the run writes in it
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(log_path, "a")
            command = [sys.executable, "-m", "keraszoo.training.study", recipe, json.dumps(config.to_dict())]
            running[run.name] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), log)
            print(f"started {run.name} -> {config.output} (log: {log_path})", flush=True)
        time.sleep(1)
        for name, (process, log) in list(running.items()):
            if process.poll() is not None:
                log.close()
                del running[name]
                print(f"finished {name}: exit {process.returncode}", flush=True)
                if process.returncode:
                    failed.append(name)
                keep(by_name[name], not process.returncode)
    return failed


def _last_error(log: Path) -> str:
    """The run's one-line error from its --jobs log (keraszoo's errors are one "error: ..." line)."""
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("error:")]
    except OSError:
        lines = []
    return lines[-1][len("error:"):].strip() if lines else "the run failed: see the study's output"


def load_failed(folder: str | Path, pattern: str = "*-seed*") -> list[Record]:
    """The runs that stopped early (``failed.json``, e.g. diverged): ``metrics`` holds the error only."""
    from keraszoo.training.run_record import read_history, read_json

    failed = []
    for path in sorted(Path(folder).glob(pattern)):
        if (path / FAILED_FILE).is_file() and not (path / "metrics.json").is_file():
            group, seed = path.name.rsplit("-seed", 1)
            history = read_history(path / "history.csv") if (path / "history.csv").is_file() else []
            failed.append(Record(name=path.name, group=group, seed=int(seed), config=read_json(path / "config.json"),
                                 metrics=read_json(path / FAILED_FILE), history=history))
    return failed


def copy_record(run_dir: Path, record_dir: Path) -> None:
    """The run's small record files (and the figures it drew) into ``record_dir``."""
    record_dir.mkdir(parents=True, exist_ok=True)
    for path in run_dir.iterdir():
        if path.name in SMALL_RECORD_FILES or (path.suffix == ".png" and path.is_file()):
            shutil.copy(path, record_dir / path.name)


def load_records(folder: str | Path, pattern: str = "*-seed*") -> list[Record]:
    """Every record under ``folder``, sorted by name; group and seed come from the folder name."""
    from keraszoo.training.run_record import read_history, read_json

    records = []
    for path in sorted(Path(folder).glob(pattern)):
        if not (path / "metrics.json").is_file():
            continue
        group, seed = path.name.rsplit("-seed", 1)
        records.append(Record(name=path.name, group=group, seed=int(seed), config=read_json(path / "config.json"),
                              metrics=read_json(path / "metrics.json"), history=read_history(path / "history.csv")))
    return records


def by_group(records: list[Record]) -> dict[str, list[Record]]:
    groups: dict[str, list[Record]] = {}
    for record in records:
        groups.setdefault(record.group, []).append(record)
    return groups


def mean_std(values, *, scale: float = 100.0, digits: int = 2) -> str:
    """"mean ± std" over seeds (sample std), or "value (1 seed)"."""
    values = [scale * v for v in values]
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (1 seed)"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def summary_table(groups: dict[str, list[Record]], order: Sequence[str], columns: dict[str, Callable],
                  *, first: str = "run", label: Callable[[str], str] = str) -> str:
    """A Markdown table: a row per group in ``order`` (those without records say so), first the
    group's ``label``, then a column per ``{header: function(list of the group's records) -> text}``."""
    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for group in order:
        if group not in groups:
            lines.append(f"| {label(group)} | not run yet |" + " |" * (len(columns) - 1))
            continue
        lines.append(f"| {label(group)} | " + " | ".join(str(f(groups[group])) for f in columns.values()) + " |")
    return "\n".join(lines)


def best_monitored(metrics: dict) -> float:
    """The best per-epoch accuracy: on validation, or on test in records made before keraszoo had a
    validation split (they said best_test_accuracy; the test split was the monitor then)."""
    return metrics["best_val_accuracy"] if "best_val_accuracy" in metrics else metrics["best_test_accuracy"]


def seeds_of(records: list[Record]) -> str:
    return ", ".join(str(r.seed) for r in records)


def plot_groups(groups: dict[str, list[Record]], path: str | Path, *, title: str,
                metrics=("val_accuracy", "val_loss"), label: Callable[[str], str] = str,
                with_train: bool = False) -> None:
    """One panel per metric against the epoch: a colour per group, a line per seed. With
    ``with_train``, ``metrics`` are base names ("loss") and each panel has the validation curve (solid)
    and the training curve (dashed), so the gap between them shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keraszoo.training.run_record import save_figure

    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (group, records), color in zip(groups.items(), colors * 4):
        for i, record in enumerate(records):
            epochs = [row["epoch"] for row in record.history]
            for ax, metric in zip(axes, metrics):
                curves = [(f"val_{metric}", "-", "validation, "), (metric, "--", "train, ")] if with_train else [(metric, "-", "")]
                for key, style, prefix in curves:
                    ax.plot(epochs, [row[key] for row in record.history], style, marker="o", ms=3, color=color,
                            alpha=0.85, label=f"{prefix}{label(group)}" if i == 0 else None)
    names = {"val_accuracy": "validation accuracy", "val_loss": "validation loss", "accuracy": "train accuracy",
             "loss": "train loss"}
    what = (lambda m: f"{m} (solid: validation, dashed: train)") if with_train else (lambda m: names.get(m, m))
    save_figure(fig, axes, [f"{title}: {what(m)}" for m in metrics], path)


def _worker(argv: list[str]) -> int:
    """One run of a --jobs study: the training recipe's name and the config as JSON."""
    from keraszoo.recipes.registry import get_recipe

    name, config_json = argv
    recipe = get_recipe(name, "train")
    config = recipe.config_class().from_dict(json.loads(config_json))
    return guarded(lambda: recipe.module.main(config), strategy=config.strategy, threads=threads_of(config))


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
