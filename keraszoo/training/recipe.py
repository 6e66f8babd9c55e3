"""What every classification recipe does around its model: data in, record and SavedModel out.

A recipe script is a config class, a ``build_model(config, metadata)`` and a
call to ``run_classification``; ``keraszoo.config.cli_main`` adds the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras

from keraszoo.config import TrainConfig, changed_fields, format_changes
from keraszoo.data import DatasetMetadata, SplitData, dataset_metadata, read_split
from keraszoo.errors import RunFolderConflict
from keraszoo.export import export_classifier, find_exported_run
from keraszoo.training import run_folder, run_record
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
    chief = is_chief(strategy)
    output_dir = Path(config.output or Path("runs") / recipe / f"seed{config.seed}")
    if not chief:
        output_dir = output_dir / f"worker{task_index(strategy)}"
    # Everything the run will write to is checked before the data is read or a step is trained.
    marker = run_folder.claim(output_dir, recipe)
    if config.export and chief:
        run_folder.check_export_dir(config.export_dir)
    if marker.get("finished") and not config.restart:
        return _finished_run(config, output_dir, marker)
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
    result = train(
        model,
        train_data=train_data,
        test_data=test_data,
        config=config,
        output_dir=output_dir,
        title=f"{recipe} - {metadata.name} {train_data.split}, seed {config.seed}",
        callbacks=list(callbacks),
        num_classes=metadata.num_classes,
        recipe=recipe,
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
    version_dir = None
    if config.export and chief:
        run_id = result.run_marker.get("run_id")
        # A run killed after publishing its version but before marking itself finished: not exported twice.
        version_dir = find_exported_run(config.export_dir, export_name or recipe, run_id)
        if version_dir is not None:
            print(f"This run exported {version_dir} before it was stopped; not exporting it again.")
        else:
            inference_model = export_model(model) if export_model else model
            version_dir = export_classifier(
                inference_model,
                export_dir=config.export_dir,
                name=export_name or recipe,
                run_record_dir=output_dir,
            )
            print(f"Exported SavedModel: {version_dir}")
        metrics["saved_model"] = str(version_dir)
    finish_run(output_dir, result.run_marker if chief else None, str(version_dir) if version_dir else None)
    print(
        f"Test accuracy {metrics['test_accuracy']:.4f}, test loss {metrics['test_loss']:.4f} after "
        f"{metrics['epochs']} epochs ({metrics['wall_time_s']:.0f} s). Run record: {output_dir}"
    )
    return {**metrics, "output_dir": str(output_dir)}


def _finished_run(config: TrainConfig, output_dir: Path, marker: dict) -> dict:
    """A rerun of a finished run's command: nothing to do but say where its results are."""
    try:
        saved = run_record.read_json(output_dir / run_record.CONFIG_FILE)
        metrics = run_record.read_json(output_dir / run_record.METRICS_FILE)
    except (OSError, ValueError):
        raise RunFolderConflict(f"{output_dir} holds a finished run whose config.json or metrics.json is missing or "
                                "unreadable: pass --restart to train it again, or choose another --output.") from None
    diffs = changed_fields(saved, config.to_dict())
    if saved.get("epochs") != config.epochs:
        diffs["epochs"] = (saved.get("epochs"), config.epochs)
    if diffs:
        raise RunFolderConflict(f"{output_dir} holds a finished run with other options ({format_changes(diffs)}): "
                                "choose another --output, or pass --restart to replace it.")
    finish_run(output_dir)  # a kill after the run was marked finished may have left its checkpoint
    where = f"; its model is {marker['saved_model']}" if marker.get("saved_model") else ""
    print(f"The run in {output_dir} finished already (test accuracy {metrics['test_accuracy']:.4f}){where}. "
          "Nothing to do; pass --restart to train it again.")
    saved_model = {"saved_model": marker["saved_model"]} if marker.get("saved_model") else {}
    return {**metrics, **saved_model, "output_dir": str(output_dir)}

