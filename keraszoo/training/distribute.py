"""Where a run computes: devices, replicas, mixed precision and XLA, from every recipe's options.

    --strategy default       one device
    --strategy mirrored      every local GPU (or every logical CPU device): tf.distribute's
                             MirroredStrategy on TensorFlow, keras.distribution's DataParallel on JAX
    --strategy multiworker   TensorFlow's MultiWorkerMirroredStrategy: one process per machine,
                             cluster in TF_CONFIG

``--batch-size`` is always the global batch: with N replicas each one gets batch/N
examples and an optimizer step sees the mean over the global batch, exactly as on
one device, so the learning rate needs no change.

``Placement`` is the one object the runner asks: it is made once per process, before
the first TensorFlow op (as tf.distribute requires), by ``placement(name)``.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import keras

from keraszoo.training.hardware import cpu_flags, devices, onednn_enabled, thread_counts, uses_gpu

_PLACEMENTS: dict = {}  # name -> the one Placement of this process (strategies cannot be made twice)


def backend() -> str:
    return keras.backend.backend()


@dataclass
class Placement:
    """A --strategy made real on this process's backend."""

    name: str
    strategy: object = None  # tf.distribute.Strategy (TensorFlow)
    distribution: object = None  # keras.distribution.Distribution (JAX)

    def scope(self):
        """Build and compile models inside this. tf.distribute needs the scope; keras.distribution is a
        global setting, made this placement's here (a process may run a mirrored run, then a default one)."""
        if self.strategy is None and backend() == "jax":
            keras.distribution.set_distribution(self.distribution)
        return self.strategy.scope() if self.strategy is not None else nullcontext()

    @property
    def replicas(self) -> int:
        if self.strategy is not None:
            return self.strategy.num_replicas_in_sync
        return len(self.distribution.device_mesh.devices.flatten()) if self.distribution is not None else 1

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run record and exports (worker 0 or the chief)."""
        resolver = getattr(self.strategy, "cluster_resolver", None)
        if resolver is None or not resolver.task_type or resolver.task_type == "chief":
            return True
        has_chief = "chief" in resolver.cluster_spec().as_dict()
        return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief

    @property
    def task_index(self) -> int:
        resolver = getattr(self.strategy, "cluster_resolver", None)
        return int(resolver.task_id) if resolver is not None and resolver.task_id is not None else 0

    def describe(self) -> dict:
        """What the run record says about how the run was distributed (same keys on every backend)."""
        info = {"strategy": self.name, "backend": backend(), "replicas": self.replicas, "devices": devices()}
        if self.strategy is not None:
            info["class"] = type(self.strategy).__name__
            try:
                info["devices"] = list(self.strategy.extended.worker_devices)
            except RuntimeError:  # the default strategy: wherever TensorFlow places ops
                info["devices"] = devices()[:1]
        else:
            info["class"] = type(self.distribution).__name__ if self.distribution is not None else "none"
            if self.distribution is None:
                info["devices"] = devices()[:1]
        if self.name == "multiworker":
            cluster = json.loads(os.environ["TF_CONFIG"])
            info["workers"] = sum(len(v) for v in cluster["cluster"].values())
            info["task"] = cluster.get("task", {})
        return info


def placement(name: str) -> Placement:
    """The process's Placement for --strategy ``name`` (created on first use, then reused)."""
    if name not in _PLACEMENTS:
        _PLACEMENTS[name] = _tf_placement(name) if backend() == "tensorflow" else _keras_placement(name)
    return _PLACEMENTS[name]


def _tf_placement(name: str) -> Placement:
    import tensorflow as tf

    if name == "default":
        strategy = tf.distribute.get_strategy()
    elif name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        # Without GPUs, MirroredStrategy() takes the CPU as one device; split logical CPUs count as several.
        names = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices=names)
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
    return Placement(name, strategy=strategy)


def _keras_placement(name: str) -> Placement:
    if name == "default":
        return Placement(name)
    if name == "mirrored" and backend() == "jax":
        # Set globally by Placement.scope(), before the run's models are built.
        return Placement(name, distribution=keras.distribution.DataParallel(devices=keras.distribution.list_devices()))
    raise ValueError(f"--strategy {name} is not available on Keras's {backend()} backend: mirrored runs on "
                     "TensorFlow and JAX, multiworker on TensorFlow (set KERAS_BACKEND).")


def configure_threads(intra_op: int, inter_op: int) -> None:
    """TensorFlow's thread counts (0: its default, one per core), set before its runtime starts: it reads
    them once per process. A process whose runtime already started with other counts (a second run in one
    Python process: an in-process study, a test session) keeps them, and one line says so; the run record's
    ``environment.tf_threads`` gives the counts a run had. Other backends: nothing to set."""
    if backend() != "tensorflow":
        return
    import tensorflow as tf

    now = tuple(thread_counts().values())
    if now == (intra_op, inter_op):
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:  # "cannot be modified after initialization"
        print(f"note: TensorFlow already runs in this process with intra-op threads {now[0]} and inter-op threads "
              f"{now[1]} (0: its default), kept for this run; --intra-op-threads {intra_op} --inter-op-threads "
              f"{inter_op} apply when the run has a process of its own.", file=sys.stderr)


def mixed_precision_policy() -> str:
    """float16 on GPUs (tensor cores; Keras adds loss scaling), bfloat16 on CPUs (no loss scaling needed)."""
    return "mixed_float16" if uses_gpu() else "mixed_bfloat16"


def native_bfloat16() -> bool:
    """Whether TensorFlow's CPU kernels compute bfloat16 natively here: AVX-512 BF16 or AMX units, used
    by oneDNN. Elsewhere TensorFlow converts around every op (the course CNN trained 7x slower on AVX2)."""
    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_flags())) and onednn_enabled()


def resolve_mixed_precision(config) -> bool:
    """--mixed-precision / --no-mixed-precision as given; unset: bfloat16 for the recipes measured faster
    with it (``config.AUTO_BFLOAT16``) when TensorFlow runs on a CPU with bfloat16 units, float32
    elsewhere (GPUs and JAX: not measured)."""
    if config.mixed_precision is not None:
        return config.mixed_precision
    return (getattr(config, "AUTO_BFLOAT16", False) and backend() == "tensorflow" and not uses_gpu()
            and native_bfloat16())


@contextmanager
def precision(enabled: bool, policy: str | None = None):
    """Sets the mixed-precision policy (``policy``, default this device's) for the models built inside,
    and restores the previous one."""
    previous = keras.config.dtype_policy()
    if enabled:
        keras.config.set_dtype_policy(policy or mixed_precision_policy())
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def resolve_jit_compile(choice: str) -> bool | str:
    """--jit-compile on|off|auto. auto: off for TensorFlow on CPUs, where XLA measured slower
    (docs/performance.md); elsewhere Keras's own "auto" (JAX always compiles its steps with XLA)."""
    if choice == "on":
        return True
    if choice == "off":
        return False
    if choice == "auto":
        return "auto" if uses_gpu() or backend() != "tensorflow" else False
    raise ValueError(f"jit_compile={choice!r}: expected 'on', 'off' or 'auto'.")


def work_around_multiworker_build(model: keras.Model, strategy) -> None:
    """Lets ``fit``/``evaluate`` start under MultiWorkerMirroredStrategy with Keras 3.

    Keras 3's TensorFlow trainer builds the model from the first batch averaged over the
    replicas (``strategy.reduce("MEAN", batch)``), which MultiWorkerMirroredStrategy cannot do
    eagerly ("Attempt to convert a value (PerReplica...)": keras-team/keras#20585,
    tensorflow/tensorflow#72388). The build needs only shapes and dtypes, so this builds from
    the local replica's share of the batch instead. Keras's private hook is replaced on this
    model only; a Keras without the hook is left alone.
    """
    import tensorflow as tf

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
    import tensorflow as tf
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
