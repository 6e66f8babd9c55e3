"""What every classification recipe does around its model: data in, record and SavedModel out.

A recipe script is a config class, a ``build_model(config, metadata)`` and a
call to ``run_classification``; ``keraszoo.config.cli_main`` adds the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras

from keraszoo.config import TrainConfig
from keraszoo.data import DatasetMetadata, dataset_metadata, read_split
from keraszoo.export import export_classifier
from keraszoo.training.trainer import finish_run, seed_everything, train

ModelFactory = Callable[[TrainConfig, DatasetMetadata], keras.Model]


def run_classification(
    config: TrainConfig,
    *,
    recipe: str,
    dataset: str,
    build_model: ModelFactory,
    export_name: str | None = None,
    export_model: Callable[[keras.Model], keras.Model] | None = None,
    callbacks: list[keras.callbacks.Callback] = (),
    record: dict | None = None,
) -> dict:
    """Seeds, reads the splits, builds, trains (resuming if needed), exports; returns the metrics.

    ``export_model`` maps the trained model to the inference model to export
    (default: the trained model itself), for recipes whose training model holds
    augmentation layers.
    """
    seed_everything(config.seed, deterministic=config.deterministic)
    metadata = dataset_metadata(dataset, data_dir=config.data_dir)
    train_data = read_split(dataset, config.train_split, data_dir=config.data_dir)
    test_data = read_split(dataset, config.test_split, data_dir=config.data_dir)
    model = build_model(config, metadata)
    output_dir = Path(config.output or Path("runs") / recipe / f"seed{config.seed}")
    result = train(
        model,
        train_data=train_data,
        test_data=test_data,
        config=config,
        output_dir=output_dir,
        title=f"{recipe} - {dataset} {config.train_split}, seed {config.seed}",
        callbacks=list(callbacks),
        record={
            "recipe": recipe,
            "dataset": f"{metadata.name}:{metadata.version}",
            "class_names": list(metadata.class_names),
            "num_params": model.count_params(),
            **(record or {}),
        },
    )
    metrics = result.metrics
    if config.export:
        inference_model = export_model(model) if export_model else model
        version_dir = export_classifier(
            inference_model,
            export_dir=config.export_dir,
            name=export_name or recipe,
            run_record_dir=output_dir,
        )
        metrics["saved_model"] = str(version_dir)
        print(f"Exported SavedModel: {version_dir}")
    finish_run(output_dir)
    print(
        f"Test accuracy {metrics['test_accuracy']:.4f}, test loss {metrics['test_loss']:.4f} after "
        f"{metrics['epochs']} epochs ({metrics['wall_time_s']:.0f} s). Run record: {output_dir}"
    )
    return metrics

