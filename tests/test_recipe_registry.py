"""Recipes by name: the registry, `keraszoo train / study / tool / report`, and recipes/<name>.py as its
thin entry points."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from keraszoo.cli import main as keraszoo
from keraszoo.recipes.registry import RECIPES, get_recipe

ROOT = Path(__file__).resolve().parents[1]


def test_every_recipe_script_is_one_registered_recipe_and_every_recipe_has_its_entry_shape():
    scripts = {path.stem for path in (ROOT / "recipes").glob("*.py")}
    assert scripts == set(RECIPES)
    for recipe in RECIPES.values():
        assert f'run("{recipe.name}")' in (ROOT / "recipes" / f"{recipe.name}.py").read_text()
        assert callable(recipe.module.main)
        if recipe.kind == "train":
            config = recipe.config_class()()  # its defaults make a valid config
            assert hasattr(config, "seed") and hasattr(config, "output")
        else:
            assert recipe.config is None
        if recipe.kind == "study":
            assert get_recipe(recipe.trains, "train")


def test_keraszoo_recipes_lists_them_all(capsys):
    assert keraszoo(["recipes"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in RECIPES)


@pytest.mark.parametrize("argv, says", [
    (["train", "nope"], "no train recipe called 'nope'; choose one of: mlp, cifar10_cnn"),
    (["train", "cifar10_ladder"], "cifar10_ladder is a study: `keraszoo study cifar10_ladder`"),
    (["report", "cifar10_cnn", "--records", ".", "--out", "x"], "cifar10_cnn is a train"),
    (["report", "cifar10_ladder", "--records", "no/such/folder", "--out", "x"], "--records no/such/folder is not a folder"),
])
def test_a_wrong_name_or_folder_is_one_line_and_status_2(argv, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert keraszoo(argv) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_a_recipes_options_after_its_name_are_its_own(capsys):
    with pytest.raises(SystemExit) as exit_info:
        keraszoo(["train", "cifar10_cnn", "--epoch", "3"])  # misspelt: refused, not abbreviated
    assert exit_info.value.code == 2
    assert "usage: keraszoo train cifar10_cnn" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        keraszoo(["train", "mnist_vit", "--help"])
    assert exit_info.value.code == 0 and "--patch-size" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(n for n, r in RECIPES.items() if r.kind == "train"))
def test_every_training_recipe_explains_its_options(name, capsys):
    """--help of each training recipe (argparse formats every help string: a stray '%' would be a traceback)."""
    with pytest.raises(SystemExit) as exit_info:
        keraszoo(["train", name, "--help"])
    assert exit_info.value.code == 0 and f"usage: keraszoo train {name}" in capsys.readouterr().out


def _epochs(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv") as f:  # the timings differ from run to run; what was computed may not
        return [{k: v for k, v in row.items() if not k.endswith("time_s")} for row in csv.DictReader(f)]


def test_keraszoo_train_and_the_recipe_script_train_the_same_run(data_dir, tmp_path):
    """The issue's check: the same options through `keraszoo train NAME` (in this process) and through
    recipes/NAME.py (a fresh process) write the same per-epoch losses and accuracies and test metrics."""
    import json

    options = ["--variant", "batchnorm", "--epochs", "1", "--train-split", "train[:512]", "--validation-split",
               "train[-256:]", "--test-split", "test[:256]", "--batch-size", "64", "--data-dir", data_dir,
               "--no-export", "--verbose", "0"]
    assert keraszoo(["train", "cifar10_cnn", *options, "--output", str(tmp_path / "A")]) == 0
    subprocess.run([sys.executable, str(ROOT / "recipes" / "cifar10_cnn.py"), *options, "--output",
                    str(tmp_path / "B")], check=True, cwd=tmp_path, capture_output=True)
    assert _epochs(tmp_path / "A") == _epochs(tmp_path / "B")
    a, b = (json.loads((tmp_path / run / "metrics.json").read_text()) for run in "AB")
    assert (a["test_accuracy"], a["test_loss"]) == (b["test_accuracy"], b["test_loss"])


# Each study's report against the page it was published in: the tables there are this command's output.
REPORTS = [
    ("cifar10_ladder", "cifar10_ladder_gpu", "cifar10_ladder.md", ["--figure-prefix", "cifar10_ladder_gpu"]),
    ("cifar10_lr_batch", "cifar10_lr_batch", "cifar10_lr_batch.md", []),
    ("cifar10_sweeps", "cifar10_sweeps", "cifar10_sweeps.md", []),
    ("mlp_study", "mlp_study", "mlp.md", []),
    ("mnist_vit_sweep", "mnist_vit_sweep", "vit_mnist.md", []),
    ("mnist_dinov2_study", "mnist_dinov2", "vit_pretrained.md", []),
]


@pytest.mark.parametrize("study, records, page, extra", REPORTS, ids=[r[0] for r in REPORTS])
def test_a_studys_report_regenerates_the_tables_its_page_publishes(study, records, page, extra, tmp_path, capsys):
    records_dir = ROOT / "docs" / "records" / records
    before = sorted(path.name for path in records_dir.rglob("*"))
    assert keraszoo(["report", study, "--records", str(records_dir), "--out", str(tmp_path), *extra]) == 0
    rows = [line for line in (tmp_path / f"{study}.md").read_text().splitlines() if line.startswith("|")]
    published = set((ROOT / "docs" / page).read_text().splitlines())
    assert len(rows) >= 7 and [row for row in rows if row not in published] == []
    assert list(tmp_path.glob("*.png"))  # its figures went to --out
    assert sorted(path.name for path in records_dir.rglob("*")) == before  # a report writes nothing there
