"""The improvements study's default point is the ladder's batchnorm run (same config, same CPU): copy its
record here and add the flip-TTA accuracies that runs record since #37 (validation, and test once), from
its saved model. Usage: python add_flip_to_ladder_record.py RUN_DIR RECORD_DIR"""
import json
import shutil
import sys
from pathlib import Path

import keraszoo  # noqa: F401
from keraszoo.data import read_split
import keras

import keraszoo.models  # noqa: F401  registers the layers the saved model names
from keraszoo.recipes.cifar10_cnn import flip_accuracy

run, record = Path(sys.argv[1]), Path(sys.argv[2])
config = json.loads((run / "config.json").read_text())
model = keras.saving.load_model(run / "model.keras", compile=False)
record.mkdir(parents=True, exist_ok=True)
for name in ("config.json", "history.csv", "curves.png"):
    shutil.copy2(run / name, record / name)
metrics = json.loads((run / "metrics.json").read_text())
for key, split in (("val_flip_accuracy", config["validation_split"]), ("test_flip_accuracy", config["test_split"])):
    metrics[key] = flip_accuracy(model, read_split(config["dataset"], split))
(record / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
print({key: metrics[key] for key in ("val_accuracy", "val_flip_accuracy", "test_accuracy", "test_flip_accuracy")})
