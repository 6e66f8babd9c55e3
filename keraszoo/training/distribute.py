"""tf.distribute strategies, mixed precision and XLA, chosen by every recipe's options.

    --strategy default       one device (TensorFlow's default strategy)
    --strategy mirrored      MirroredStrategy: every local GPU, or every logical CPU device
    --strategy multiworker   MultiWorkerMirroredStrategy: one process per machine, cluster in TF_CONFIG

``--batch-size`` is always the global batch: with N replicas each one gets batch/N
examples and the gradients are summed over replicas of a loss Keras scales by 1/N,
so an optimizer step sees the mean over the global batch, exactly as on one device.
The learning rate therefore needs no change. (Scale --batch-size and --learning-rate
yourself if you want bigger steps with more devices.)

Strategies, like the logical devices of a test, must be set before TensorFlow runs its
first op: ``cli_main`` creates the config's strategy right after parsing the options.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

import keras
import tensorflow as tf

_STRATEGY: dict = {}  # name -> the one strategy object of this process (they cannot be made twice)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The process's strategy for ``name`` (created on first use, then reused)."""
    if name in _STRATEGY:
        return _STRATEGY[name]
    if name == "default":
        strategy = tf.distribute.get_strategy()
    elif name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        # Without GPUs, MirroredStrategy() takes the CPU as one device; split logical CPUs count as several.
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
    elif name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError(
                "--strategy multiworker reads the cluster from the TF_CONFIG environment variable, which is not "
                'set. On each machine set e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", '
                '"host2:12345"]}, "task": {"type": "worker", "index": 0}}\' (index 1 on the second) '
                "and run the same command; see docs/distributed.md.")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        raise ValueError(f"strategy={name!r}: expected 'default', 'mirrored' or 'multiworker'.")
    _STRATEGY[name] = strategy
    return strategy


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run record and exports (worker 0 or the chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def task_index(strategy: tf.distribute.Strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(resolver.task_id) if resolver is not None and resolver.task_id is not None else 0


def describe(strategy: tf.distribute.Strategy, name: str) -> dict:
    """What the run record says about how the run was distributed."""
    try:
        devices = list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy: wherever TensorFlow places ops (the GPU if there is one)
        devices = [d.name for d in tf.config.list_logical_devices("GPU")[:1] or tf.config.list_logical_devices("CPU")[:1]]
    info = {"strategy": name, "class": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync,
            "devices": devices}
    if name == "multiworker":
        cluster = json.loads(os.environ["TF_CONFIG"])
        info["workers"] = sum(len(v) for v in cluster["cluster"].values())
        info["task"] = cluster.get("task", {})
    return info


def uses_gpu() -> bool:
    return bool(tf.config.list_logical_devices("GPU"))


def mixed_precision_policy() -> str:
    """float16 on GPUs (tensor cores; Keras adds loss scaling), bfloat16 on CPUs (no loss scaling needed)."""
    return "mixed_float16" if uses_gpu() else "mixed_bfloat16"


@contextmanager
def precision(enabled: bool):
    """Sets the mixed-precision policy for the models built inside, and restores the previous one."""
    previous = keras.config.dtype_policy()
    if enabled:
        keras.config.set_dtype_policy(mixed_precision_policy())
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def resolve_jit_compile(choice: str) -> bool | str:
    """--jit-compile on|off|auto. auto: off on CPUs, where XLA measured slower (docs/performance.md);
    on GPUs Keras's own "auto" (XLA where every op supports it), not measured here."""
    if choice == "on":
        return True
    if choice == "off":
        return False
    if choice == "auto":
        return "auto" if uses_gpu() else False
    raise ValueError(f"jit_compile={choice!r}: expected 'on', 'off' or 'auto'.")


def work_around_multiworker_build(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Lets ``fit``/``evaluate`` start under MultiWorkerMirroredStrategy with Keras 3.

    Keras 3's TensorFlow trainer builds the model from the first batch averaged over the
    replicas (``strategy.reduce("MEAN", batch)``), which MultiWorkerMirroredStrategy cannot do
    eagerly ("Attempt to convert a value (PerReplica...)": keras-team/keras#20585,
    tensorflow/tensorflow#72388). The build needs only shapes and dtypes, so this builds from
    the local replica's share of the batch instead. Keras's private hook is replaced on this
    model only; a Keras without the hook is left alone.
    """
    if not hasattr(model, "_maybe_symbolic_build") or not hasattr(model, "_symbolic_build"):
        return
    original = model._maybe_symbolic_build

    def build(iterator=None, data_batch=None):
        if iterator is None:
            return original(iterator=None, data_batch=data_batch)
        for _, _, it in iterator:
            data_batch = tf.nest.map_structure(
                lambda v: strategy.experimental_local_results(v)[0]
                if isinstance(v, tf.distribute.DistributedValues) else v, next(it))
            break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = build
    _patch_multiworker_log_reduction()


def _patch_multiworker_log_reduction() -> None:
    """Keras 3 reduces a multi-worker step's logs with reduce("MEAN", v, axis=0), which fails on
    the scalar logs (loss, accuracy): "Invalid reduction dimension 0 for input with 0 dimensions".
    Scalars are reduced over replicas without an axis instead; everything else as Keras does."""
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if getattr(tf_trainer.reduce_per_replica, "_keraszoo_patched", False):
        return
    original = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and reduction in ("auto", "mean"):
            def mean(v):
                if isinstance(v, tf.distribute.DistributedValues) or tf.is_tensor(v):
                    rank = v.values[0].shape.rank if isinstance(v, tf.distribute.DistributedValues) else v.shape.rank
                    return strategy.reduce("MEAN", v, axis=None if rank == 0 else 0)
                return v
            return tf.nest.map_structure(mean, values)
        return original(values, strategy, reduction)

    reduce_per_replica._keraszoo_patched = True
    tf_trainer.reduce_per_replica = reduce_per_replica
