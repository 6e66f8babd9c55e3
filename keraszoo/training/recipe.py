"""What every classification recipe does around its model: data in, record and SavedModel out.

A recipe script is a config class, a ``build_model(config, metadata)`` and a
call to ``run_classification``; ``keraszoo.config.cli_main`` adds the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras

from keraszoo.config import TrainConfig
from keraszoo.data import DatasetMetadata, SplitData, dataset_metadata, read_split
from keraszoo.export import export_classifier
from keraszoo.training.distribute import (
    describe,
    is_chief,
    make_strategy,
    precision,
    resolve_jit_compile,
    task_index,
    work_around_multiworker_build,
)
from keraszoo.training.trainer import compile_classifier, finish_run, seed_everything, train

ModelFactory = Callable[[TrainConfig, DatasetMetadata], keras.Model]


@dataclass(frozen=True)
class ClassificationData:
    metadata: DatasetMetadata
    train: SplitData
    test: SplitData


def load_tfds_data(dataset: str, config: TrainConfig) -> ClassificationData:
    """The config's train and test splits of a prepared TFDS dataset."""
    return ClassificationData(
        metadata=dataset_metadata(dataset, data_dir=config.data_dir),
        train=read_split(dataset, config.train_split, data_dir=config.data_dir),
        test=read_split(dataset, config.test_split, data_dir=config.data_dir),
    )


def run_classification(
    config: TrainConfig,
    *,
    recipe: str,
    build_model: ModelFactory,
    dataset: str | None = None,
    data: ClassificationData | None = None,
    export_name: str | None = None,
    export_model: Callable[[keras.Model], keras.Model] | None = None,
    callbacks: list[keras.callbacks.Callback] = (),
    record: dict | None = None,
    after_training: Callable[[keras.Model, ClassificationData, Path], None] | None = None,
) -> dict:
    """Seeds, reads the splits, builds, trains (resuming if needed), exports; returns the metrics.

    The data are the TFDS ``dataset``'s config splits, unless ``data`` is given.
    ``build_model(config, metadata)`` runs after seeding: create every model inside it,
    never before the call, or the initial weights will not follow ``config.seed``.

    ``export_model`` maps the trained model to the inference model to export
    (default: the trained model itself), for recipes whose training model holds
    augmentation layers. ``after_training(model, data, output_dir)`` may add files
    (e.g. a plot) to the run record before it is exported with the model.

    The model is built and compiled inside the config's tf.distribute strategy and
    precision policy. In a multi-worker run only the chief writes ``output`` and
    exports; worker i keeps its own record in ``output/worker<i>``.
    """
    strategy = make_strategy(config.strategy)
    seed_everything(config.seed, deterministic=config.deterministic)
    if data is None:
        data = load_tfds_data(dataset, config)
    metadata, train_data, test_data = data.metadata, data.train, data.test
    with precision(config.mixed_precision), strategy.scope():
        policy = keras.config.dtype_policy().name
        model = build_model(config, metadata)
        if not model.compiled:
            compile_classifier(model, config)
    if config.strategy == "multiworker":
        work_around_multiworker_build(model, strategy)
    chief = is_chief(strategy)
    output_dir = Path(config.output or Path("runs") / recipe / f"seed{config.seed}")
    if not chief:
        output_dir = output_dir / f"worker{task_index(strategy)}"
    result = train(
        model,
        train_data=train_data,
        test_data=test_data,
        config=config,
        output_dir=output_dir,
        title=f"{recipe} - {metadata.name} {train_data.split}, seed {config.seed}",
        callbacks=list(callbacks),
        num_classes=metadata.num_classes,
        record={
            "recipe": recipe,
            "dataset": f"{metadata.name}:{metadata.version}",
            "class_names": list(metadata.class_names),
            "num_params": model.count_params(),
            "distribution": describe(strategy, config.strategy),
            "dtype_policy": policy,
            "jit_compile": resolve_jit_compile(config.jit_compile),
            **(record or {}),
        },
    )
    metrics = result.metrics
    if after_training is not None:
        after_training(model, data, output_dir)
    if config.export and chief:
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
    return {**metrics, "output_dir": str(output_dir)}

