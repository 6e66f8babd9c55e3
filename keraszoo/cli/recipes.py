"""``keraszoo recipes / train / study / tool / report``: the recipes by name (keraszoo/recipes/registry.py).

``keraszoo train NAME [OPTIONS]`` is ``python recipes/NAME.py [OPTIONS]`` from an installed package:
the options after NAME are the recipe's own (``keraszoo train NAME --help`` lists them).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

from keraszoo.recipes.registry import RECIPES, UnknownRecipe, get_recipe

# The commands whose options after NAME belong to the recipe, not to keraszoo.
KINDS = {"train": "train", "study": "study", "tool": "tool"}
WHAT = {"train": "one training run: record, resumable checkpoint, SavedModel",
        "study": "a training recipe over a grid x seeds (resumable), then its tables and figures",
        "tool": "a figure made from a trained model"}


def add_commands(commands) -> None:
    """The subcommands, for ``keraszoo --help`` (``dispatch`` runs train/study/tool before argparse sees
    the recipe's options)."""
    commands.add_parser("recipes", help="list the recipes by name, with what each does").set_defaults(run=_list)
    for kind in KINDS:
        sub = commands.add_parser(kind, help=f"run a {kind} recipe by name ({WHAT[kind]})", add_help=False)
        sub.add_argument("name", metavar="NAME")
        sub.add_argument("options", nargs=argparse.REMAINDER)
    report = commands.add_parser(
        "report", help="a study's Markdown tables and figures from a records folder, into --out",
        description="Reads the study's run records in --records (nothing is trained) and writes its tables to "
        "OUT/<study>.md (also printed) and its figures into OUT. Options after these go to the study (e.g. "
        "--figure-prefix).")
    report.add_argument("name", metavar="STUDY", help="a study recipe (keraszoo recipes)")
    report.add_argument("--records", required=True, help="folder of the study's run records, e.g. "
                        "docs/records/cifar10_ladder")
    report.add_argument("--out", required=True, help="folder for <study>.md and the figures (created)")
    report.set_defaults(run=_report)
    results = commands.add_parser(
        "results", help="the zoo's results table: one CSV row per trained configuration, from the run records",
        description="Reads every run record (metrics.json) under --records and writes one row per configuration "
        "(a record folder without its seed suffix): model, dataset, parameters, epochs, runs and seeds, which split "
        "was monitored, validation and test accuracy (mean and sample std over the runs), hardware, backend, "
        "precision. tests/test_results_table.py checks that docs/results.csv is this command's output.")
    results.add_argument("--records", default="docs/records", help="records folder (default: %(default)s)")
    results.add_argument("--out", default="docs/results.csv", help="CSV to write (default: %(default)s)")
    results.add_argument("--readme", default="README.md",
                         help="README whose zoo table is rewritten from the CSV, if it exists (default: %(default)s)")
    results.set_defaults(run=_results)


def dispatch(argv: list[str]) -> int | None:
    """Runs ``keraszoo train|study|tool NAME ...``; None for any other command."""
    if not argv or argv[0] not in KINDS:
        return None
    kind, rest = argv[0], argv[1:]
    if not rest or rest[0] in ("-h", "--help"):
        print(f"usage: keraszoo {kind} NAME [OPTIONS]   ({WHAT[kind]}; `keraszoo {kind} NAME --help` for its options)")
        print(f"\n{kind} recipes:")
        _print_recipes(kind)
        return 0 if rest else 2
    try:
        recipe = get_recipe(rest[0], kind)
    except UnknownRecipe as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return recipe.run(rest[1:], prog=f"keraszoo {kind} {recipe.name}")


def _list(args) -> int:
    for kind in KINDS:
        print(f"{kind} ({WHAT[kind]}):")
        _print_recipes(kind)
    print("\nkeraszoo train NAME --help: a recipe's options; recipes/NAME.py is the same command.")
    return 0


def _print_recipes(kind: str) -> None:
    for recipe in RECIPES.values():
        if recipe.kind == kind:
            trains = f" (runs {recipe.trains})" if recipe.trains else ""
            print(f"  {recipe.name:<26} part {recipe.part}  {recipe.summary}{trains}")


def _report(args, extra: list[str]) -> int:
    try:
        recipe = get_recipe(args.name, "study")
    except UnknownRecipe as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    records, out = Path(args.records), Path(args.out)
    if not records.is_dir():
        print(f"error: --records {records} is not a folder: give the folder the study copied its records to "
              f"(e.g. docs/records/{recipe.name}).", file=sys.stderr)
        return 2
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"error: cannot create --out {out}: {error.strerror}.", file=sys.stderr)
        return 2
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            status = recipe.run(["--report-only", "--records", str(records), "--figures", str(out), *extra],
                                prog=f"keraszoo report {recipe.name}")
    except (ValueError, KeyError, OSError) as error:  # a damaged or foreign record: say which, no traceback
        print(f"error: cannot report {recipe.name} from {records}: {type(error).__name__}: {error} (a record there "
              "is damaged or is not one of this study's; each run folder holds config.json, metrics.json and "
              "history.csv).", file=sys.stderr)
        return 2
    text = printed.getvalue()
    (out / f"{recipe.name}.md").write_text(text)
    print(text, end="")
    print(f"report: {out / f'{recipe.name}.md'}; figures in {out}")
    return status


def _results(args) -> int:
    from keraszoo.training.results_table import results_csv, with_zoo_table

    if not Path(args.records).is_dir():
        print(f"error: --records {args.records} is not a folder.", file=sys.stderr)
        return 2
    try:
        text = results_csv(args.records)
        Path(args.out).write_text(text)
        readme = Path(args.readme)
        if readme.is_file():
            readme.write_text(with_zoo_table(readme.read_text(), text))
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{text.count(chr(10)) - 1} configurations -> {args.out}")
    return 0
