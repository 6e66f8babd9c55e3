"""What every classification recipe does around its model: data in, run record and model out.

A recipe is a config class and a ``main(config)`` that reads its data (``load_data``),
builds its models (a ``ModelPair`` from ``keraszoo.models.build_classifier_pair``, or one
model) and calls ``run_classification``; ``command_line.cli_main`` adds the command line. On
any Keras backend the run folder gets the run record and ``model.keras``, the inference model;
on TensorFlow the run also exports it as a SavedModel, elsewhere ``keraszoo export RUN_DIR``
does that later on a machine with TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras

from keraszoo.config import TrainConfig
from keraszoo.data.metadata import DatasetMetadata
from keraszoo.errors import RunFolderConflict
from keraszoo.models.classifier import ModelPair
from keraszoo.training import run_folder, run_record
from keraszoo.training.distribute import placement, precision, resolve_jit_compile, work_around_multiworker_build
from keraszoo.training.resume import changed_fields, comparable, format_changes, settle_precision
from keraszoo.training.trainer import compile_classifier, finish_run, seed_everything, train

MODEL_FILE = run_record.MODEL_FILE

ModelFactory = Callable[[TrainConfig, DatasetMetadata], "keras.Model | ModelPair"]


@dataclass(frozen=True)
class ClassificationData:
    """A recipe's three splits: ``train`` to fit, ``validation`` for every epoch's monitoring and every
    choice, ``test`` evaluated once when training ends."""

    metadata: DatasetMetadata
    train: object  # SplitData (tf.data) or ArraySplit (NumPy)
    validation: object
    test: object


def load_data(dataset: str, config: TrainConfig) -> ClassificationData:
    """The config's train, validation and test splits, checked disjoint: from ``--data-pack`` when given
    (no TensorFlow needed), else from the prepared TFDS ``dataset``."""
    from keraszoo.data.arrays import check_disjoint

    roles = {"training": config.train_split, "validation": config.validation_split, "test": config.test_split}
    if config.data_pack:
        from keraszoo.data.arrays import pack_metadata, pack_split_size, read_pack_split

        check_disjoint(roles, lambda name: pack_split_size(config.data_pack, name))
        train, summary = read_pack_split(config.data_pack, config.train_split)
        validation, _ = read_pack_split(config.data_pack, config.validation_split)
        test, _ = read_pack_split(config.data_pack, config.test_split)
        if summary.get("dataset") and summary["dataset"] != dataset:
            raise ValueError(f"--data-pack {config.data_pack} holds {summary['dataset']}, this recipe trains on "
                             f"{dataset}.")
        return ClassificationData(pack_metadata(summary, config.data_pack, train.labels), train, validation, test)
    from keraszoo.data import dataset_metadata, read_split
    from keraszoo.data.folder import data_folder
    from keraszoo.data.tfds_data import split_size

    metadata = dataset_metadata(dataset, data_dir=config.data_dir)
    print(f"data: {dataset} {metadata.version} from {metadata.data_dir} ({data_folder(config.data_dir)[1]})", flush=True)
    check_disjoint(roles, lambda name: split_size(dataset, name, data_dir=config.data_dir))
    return ClassificationData(
        metadata=metadata,
        train=read_split(dataset, config.train_split, data_dir=config.data_dir),
        validation=read_split(dataset, config.validation_split, data_dir=config.data_dir),
        test=read_split(dataset, config.test_split, data_dir=config.data_dir),
    )


Schedule = "keras.optimizers.schedules.LearningRateSchedule | keras.callbacks.Callback | None"


def run_classification(
    config: TrainConfig,
    *,
    name: str,
    data: ClassificationData,
    build_model: ModelFactory,
    schedule: Schedule = None,
    resolved: dict | None = None,
    default_output: str | os.PathLike | None = None,
    extra_metrics: dict | None = None,
    after_training: Callable[[keras.Model, ClassificationData, Path], dict | None] | None = None,
    callbacks: Callable[[keras.Model, TrainConfig], list] | None = None,
    compile_with: Callable[[TrainConfig], dict] | None = None,
) -> dict:
    """One run, in this order: resolve the config, claim the run folder, build the models, train (from the
    folder's checkpoint if any), evaluate the test split once, save and export; returns the metrics.

    ``name``: the run's (runs/<name>/seed<seed> unless ``default_output`` or --output) and the exported
    model's (unless --export-name). ``resolved``: values the recipe worked out for options it leaves open
    (the MLP's batch size from its descent). ``build_model(config, metadata)`` runs seeded, inside the
    placement and the precision policy, and returns one model or a ``ModelPair`` (the inference one, without
    augmentation, is saved and exported). ``schedule``, the learning rate's one channel: a per-step
    ``LearningRateSchedule``, a per-epoch callback (``ExponentialDecay``, ``TimeBudget``) or None.
    ``after_training(model, data, output_dir)`` may add files to the record and returns metrics to add (or
    None); ``callbacks(model, config)``, the recipe's callbacks; ``compile_with(config)``, its optimizer and
    loss (airbench's). Multi-worker: only the chief writes ``output`` and exports (worker i: ``output/worker<i>``)."""
    where = placement(config.strategy)
    config = resolve_config(config, name, resolved=resolved, default_output=default_output)
    output_dir = Path(config.output) if where.is_chief else Path(config.output) / f"worker{where.task_index}"
    export_name = config.export_name or name
    exports = config.export and where.is_chief and keras.backend.backend() == "tensorflow"
    # Everything the run will write to is checked before a step is trained.
    marker = run_folder.claim(output_dir, name)
    if exports:
        run_folder.check_export_dir(config.export_dir)
    if marker.get("finished") and not config.restart:
        return _finished_run(config, output_dir, marker)

    pair, policy = _build(config, data.metadata, build_model, where, schedule, compile_with)
    metadata = data.metadata
    result = train(
        pair.training, train_data=data.train, validation_data=data.validation, test_data=data.test, config=config,
        output_dir=output_dir, marker=marker, schedule=schedule,
        title=f"{name} - {metadata.name} {data.train.split}, seed {config.seed} ({keras.backend.backend()})",
        num_classes=metadata.num_classes, run_name=name,
        callbacks=callbacks(pair.training, config) if callbacks else None,
        extra_metrics={"recipe": name, "dataset": f"{metadata.name}:{metadata.version}",
                       "class_names": list(metadata.class_names), "num_params": pair.inference.count_params(),
                       "distribution": where.describe(), "dtype_policy": policy, "export_name": export_name,
                       "jit_compile": resolve_jit_compile(config.jit_compile), **(extra_metrics or {})})
    metrics = result.metrics
    added = after_training(pair.training, data, output_dir) if after_training else None
    if added:  # into the record too
        metrics.update(added)
        run_record.write_json(output_dir / run_record.METRICS_FILE, metrics)
    version_dir = _save_and_export(pair.inference, config, output_dir, export_name, result.run_marker, where, exports)
    if version_dir is not None:
        metrics["saved_model"] = str(version_dir)
    _say_result(metrics, output_dir)
    return {**metrics, "output_dir": str(output_dir)}


def _say_result(metrics: dict, output_dir: Path) -> None:
    print(
        f"Validation accuracy {metrics['val_accuracy']:.4f} (best {metrics['best_val_accuracy']:.4f} at epoch "
        f"{metrics['best_epoch']}); test accuracy {metrics['test_accuracy']:.4f}, test loss {metrics['test_loss']:.4f} "
        f"(evaluated once) after {metrics['epochs']} epochs ({metrics['wall_time_s']:.0f} s). Run record: {output_dir}"
    )


def _save_and_export(model, config: TrainConfig, output_dir: Path, export_name: str, marker: dict, where,
                     exports: bool) -> Path | None:
    """``model.keras`` (the chief's), the SavedModel when this backend can write one, then the run marked
    finished: a kill before that point resumes, one after it finds the run done (and not exported twice)."""
    if where.is_chief:
        _save_model(model, output_dir / MODEL_FILE)
    version_dir = None
    if exports:
        version_dir = _export(model, output_dir, config.export_dir, export_name, marker)
    elif config.export and where.is_chief:
        print(f"Keras's {keras.backend.backend()} backend cannot write a SavedModel: on a machine with TensorFlow, "
              f"run `keraszoo export {output_dir}` to export {output_dir / MODEL_FILE}.")
    finish_run(output_dir, marker if where.is_chief else None, str(version_dir) if version_dir else None)
    return version_dir


def resolve_config(config: TrainConfig, name: str, *, resolved: dict | None = None,
                   default_output: str | os.PathLike | None = None) -> TrainConfig:
    """The config a run records and keeps: its output folder, its precision (an unset --mixed-precision is
    the run already in that folder's, else this machine's choice for the recipe) and the recipe's
    ``resolved`` values, in one step. Nothing replaces it afterwards."""
    output = config.output or str(default_output or Path("runs") / name / f"seed{config.seed}")
    precision_of = settle_precision(config, Path(output))
    if config.mixed_precision is None and precision_of:
        print("Computing in bfloat16 (float32 weights), this recipe's choice on CPUs with bfloat16 units: faster at the "
              "same accuracy (docs/performance.md). A new run takes --no-mixed-precision for float32.")
    return dataclasses.replace(config, output=output, mixed_precision=precision_of, **(resolved or {}))


def _build(config: TrainConfig, metadata, build_model: ModelFactory, where, schedule, compile_with=None):
    """The seeded ``ModelPair``, compiled with its optimizer's variables made, inside the placement and the
    precision policy; and that policy's name."""
    seed_everything(config.seed, deterministic=config.deterministic)
    per_step = schedule if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule) else None
    with precision(config.mixed_precision), where.scope():
        policy = keras.config.dtype_policy().name
        built = build_model(config, metadata)
        pair = built if isinstance(built, ModelPair) else ModelPair(built, built)
        if pair.training.compiled:
            raise ValueError(f"{pair.training.name}: build_model must return an uncompiled model: the run compiles "
                             "it with the config's optimizer and its schedule.")
        compile_classifier(pair.training, config, per_step, **(compile_with(config) if compile_with else {}))
        # The optimizer's variables are made here, inside the placement's scope, before a resume loads into
        # them: tf.distribute refuses variables made outside it (a mirrored run could not resume).
        pair.training.optimizer.build(pair.training.trainable_variables)
    if config.strategy == "multiworker":
        work_around_multiworker_build(pair.training, where.strategy)
    return pair, policy


def _save_model(model: keras.Model, path: Path) -> None:
    """``model.keras``, written beside and renamed into place: a kill leaves the old file or the new one."""
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def _export(model, output_dir: Path, export_dir: str, export_name: str, marker: dict, extra_record=None) -> Path:
    from keraszoo.export import export_classifier, find_exported_run

    # A run killed after publishing its version but before marking itself finished: not exported twice.
    version_dir = find_exported_run(export_dir, export_name, marker.get("run_id"))
    if version_dir is not None:
        print(f"This run exported {version_dir} already; not exporting it again.")
        return version_dir
    version_dir = export_classifier(model, export_dir=export_dir, name=export_name, run_record_dir=output_dir,
                                    extra_record=extra_record)
    print(f"Exported SavedModel: {version_dir}")
    return version_dir


def export_run(run_dir: str | os.PathLike, *, export_dir: str = "saved_models", name: str | None = None,
               tta: str | None = None) -> Path:
    """Exports a finished run's ``model.keras`` as a SavedModel (needs TensorFlow), once per run; ``tta="flip"``
    puts flip test-time augmentation inside (``keraszoo.models.tta``; the card says so)."""
    run_dir = Path(run_dir)
    marker = run_folder.read_marker(run_dir)
    if marker is None or not (run_dir / MODEL_FILE).is_file():
        raise RunFolderConflict(f"{run_dir} is not a finished keraszoo run folder (no {run_folder.MARKER_FILE} and "
                                f"{MODEL_FILE}): train it to the end first.")
    if not marker.get("finished"):
        raise RunFolderConflict(f"{run_dir} holds an unfinished run: resume it with the same command first.")
    if keras.backend.backend() != "tensorflow":
        raise ValueError("exporting a SavedModel needs Keras's TensorFlow backend: run with KERAS_BACKEND=tensorflow.")
    import keraszoo.models  # noqa: F401 - registers keraszoo's layers for deserialisation

    try:
        metrics = run_record.read_json(run_dir / run_record.METRICS_FILE)
        model = keras.models.load_model(run_dir / MODEL_FILE, compile=False)
    except Exception as error:  # noqa: BLE001 - zip, HDF5, JSON and Keras errors all mean "damaged"
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise RunFolderConflict(f"{run_dir}'s metrics.json or {MODEL_FILE} is damaged ({type(error).__name__}: "
                                f"{first}): train the run again with --restart.") from None
    name = name or metrics.get("export_name") or marker.get("recipe")
    run_folder.check_export_dir(export_dir)
    extra_record = None
    if tta == "flip":
        from keraszoo.export.saved_model import float32_copy
        from keraszoo.export.model_card import TTA_FILE
        from keraszoo.models.tta import with_flip_tta

        model = with_flip_tta(float32_copy(model))  # the inner model in float32 first: the wrapper exports as is
        extra_record = {TTA_FILE: {"tta": "flip", "views": 2, **{key: metrics.get(key) for key in (
            "val_accuracy", "val_flip_accuracy", "test_accuracy", "test_flip_accuracy")}}}
    elif tta is not None:
        raise ValueError(f"tta={tta!r}: the one test-time augmentation an export can hold is 'flip'.")
    version_dir = _export(model, run_dir, export_dir, name, marker, extra_record)
    run_folder.mark_finished(run_dir, marker, str(version_dir))
    return version_dir


def _finished_run(config: TrainConfig, output_dir: Path, marker: dict) -> dict:
    """A rerun of a finished run's command: nothing to do but say where its results are."""
    try:
        saved = run_record.read_json(output_dir / run_record.CONFIG_FILE)
        metrics = run_record.read_json(output_dir / run_record.METRICS_FILE)
    except (OSError, ValueError):
        raise RunFolderConflict(f"{output_dir} holds a finished run whose config.json or metrics.json is missing or "
                                "unreadable: pass --restart to train it again, or choose another --output.") from None
    diffs = changed_fields(comparable(type(config), saved), config.to_dict())
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
