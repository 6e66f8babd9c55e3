"""Trained models by name: keraszoo.load_trained, `keraszoo models --trained`, names where paths are taken."""

import numpy as np
import pytest

from conftest import ROOT

import keraszoo
from keraszoo.cli import main as cli
from keraszoo.export import load_serving_fn
from keraszoo.export.trained import trained_models

SHIPPED = sorted(path.name for path in (ROOT / "saved_models").iterdir() if path.is_dir())


def test_the_shipped_models_are_listed_by_name_with_their_numbers(capsys):
    models = trained_models()
    assert sorted(models) == SHIPPED
    assert models["mnist_vit"].test_accuracy == pytest.approx(0.986) and models["mnist_vit"].dataset == "mnist"
    assert models["cifar10_cnn_batchnorm"].version_dir.name == "4"  # the newest version, as served
    assert cli(["models", "--trained"]) == 0
    listed = capsys.readouterr().out
    assert all(f"  {name} " in listed for name in SHIPPED) and "test  98.60 %" in listed


@pytest.mark.parametrize("name", SHIPPED)
def test_load_trained_answers_as_the_served_model(name, data_dir):
    from keraszoo.data import read_split

    model = keraszoo.load_trained(name)
    dataset = trained_models()[name].dataset
    images, _ = next(iter(read_split(dataset, "test[:16]", data_dir=data_dir).batches(batch_size=16)))
    served = load_serving_fn(trained_models()[name].version_dir)(images=images)["logits"].numpy()
    # The same float32 graph run twice: only the order of float32 sums may differ (export/formats.py's bound).
    np.testing.assert_allclose(np.asarray(model(images.numpy(), training=False)), served,
                               atol=1e-4 * max(1.0, float(np.abs(served).max())), rtol=0)


@pytest.mark.parametrize("argv", [["evaluate", "nope"], ["card", "nope"]])
def test_an_unknown_name_is_one_line_listing_the_names(argv, capsys):
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert "no trained model called 'nope'" in err and "cifar10_cnn_batchnorm" in err and err.count("\n") == 1
    with pytest.raises(keraszoo.export.trained.UnknownTrainedModel, match="the names are: cifar10_cnn"):
        keraszoo.load_trained("nope")


def test_serve_takes_a_name_and_serves_that_model_alone(capsys):
    from keraszoo.cli.serving import _root_of_one

    root = _root_of_one(trained_models()["mnist_vit"].version_dir.parent)
    from pathlib import Path

    assert [p.name for p in Path(root).iterdir()] == ["mnist_vit"]
    assert (Path(root) / "mnist_vit" / "1" / "saved_model.pb").is_file()
    assert cli(["serve", "nope"]) == 2
    err = capsys.readouterr().err
    assert "nope is neither a folder nor a trained model's name" in err and "mnist_vit" in err
