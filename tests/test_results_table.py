"""docs/results.csv, the zoo's one results table, is `keraszoo results`' output from docs/records."""

import csv
import io
import json
import statistics

from conftest import ROOT

from keraszoo.cli import main as cli
from keraszoo.training.results_table import ZOO, configuration_of, results_csv, with_zoo_table


def test_the_committed_table_is_regenerated_from_the_records():
    assert results_csv(ROOT / "docs" / "records") == (ROOT / "docs" / "results.csv").read_text(), (
        "docs/results.csv is stale: run `keraszoo results` and commit it")


def test_a_row_is_the_mean_and_sample_std_of_its_seeds(tmp_path, capsys):
    rows = {r["record"]: r for r in csv.DictReader(io.StringIO(results_csv(ROOT / "docs" / "records")))}
    flips = [json.loads((ROOT / "docs/records/mnist_flip" / f"augmented-seed{s}/metrics.json").read_text())
             for s in (0, 1)]
    row = rows["mnist_flip/augmented"]
    assert (row["runs"], row["seeds"], row["monitor"], row["dataset"]) == ("2", "0 1", "validation", "mnist")
    assert row["val_accuracy_mean"] == f"{100 * statistics.mean(m['val_accuracy'] for m in flips):.2f}"
    assert row["test_accuracy_std"] == f"{100 * statistics.stdev(m['test_accuracy'] for m in flips):.2f}"
    # flip TTA where every run measured it (the shipped CIFAR-10 recipe's), nothing where none did
    tta = [json.loads((ROOT / "docs/records/cifar10_toward85_60" / f"weight_decay5e-4+cosine-seed{s}/metrics.json")
                      .read_text()) for s in (0, 1)]
    row = rows["cifar10_toward85_60/weight_decay5e-4+cosine"]
    assert row["test_flip_accuracy_mean"] == f"{100 * statistics.mean(m['test_flip_accuracy'] for m in tta):.2f}"
    assert row["val_flip_accuracy_std"] == f"{100 * statistics.stdev(m['val_flip_accuracy'] for m in tta):.2f}"
    assert rows["mnist_flip/augmented"]["test_flip_accuracy_mean"] == ""
    assert rows["cifar10_baseline_10ep"]["monitor"] == "test"  # made before the validation split: said so
    assert configuration_of("cifar10_ladder_val/batchnorm-seed1") == "cifar10_ladder_val/batchnorm"
    assert configuration_of("cifar10_batchnorm_dropout05/seed0") == "cifar10_batchnorm_dropout05"
    assert cli(["results", "--records", str(tmp_path / "none"), "--out", str(tmp_path / "x.csv")]) == 2
    assert "is not a folder" in capsys.readouterr().err and not (tmp_path / "x.csv").exists()


def test_the_readmes_zoo_table_is_generated_from_the_results_table():
    readme = (ROOT / "README.md").read_text()
    assert with_zoo_table(readme, (ROOT / "docs" / "results.csv").read_text()) == readme, (
        "README's zoo table is stale: run `keraszoo results`")
    from keraszoo.recipes.registry import RECIPES

    assert [recipe for recipe, *_ in ZOO] == [r.name for r in sorted(RECIPES.values(), key=lambda r: r.part)
                                              if r.kind != "tool"]
