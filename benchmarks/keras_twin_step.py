"""The Keras side of benchmarks/train_throughput.py: a reference model built as its recipe builds it, on
synthetic batches, and its training steps timed (whole fit calls, and the steady rate between them)."""

from __future__ import annotations

import time


def steps_per_call(variant: str) -> int:
    return int(variant.partition("_spe")[2] or 1)


def _load(name):
    import importlib

    return importlib.import_module(f"keraszoo.recipes.{name}")


def synthetic(name, batch):
    import numpy as np

    shape = (32, 32, 3) if name == "cnn_bn" else (28, 28, 1)
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(batch, *shape), dtype=np.uint8), rng.integers(0, 10, size=batch).astype("int32")


def recipe_config(name, variant="fp32", **overrides):
    """The recipe's config for ``name``, with the variant's options: --jit-compile on, and
    --steps-per-execution N (N steps per call)."""
    options = {"jit_compile": "on" if "xla" in variant else "off", "steps_per_execution": steps_per_call(variant),
               **overrides}
    if name == "mlp":
        return _load("mlp").MLPConfig(dataset="mnist", implementation="keras", learning_rate=0.1, **options)
    if name == "cnn_bn":
        return _load("cifar10_cnn").Cifar10CNNConfig(variant="batchnorm", learning_rate=0.05, momentum=0.9, **options)
    return _load("mnist_vit").MnistViTConfig(**options)


def keras_model(name, variant, images, labels, **overrides):
    """The recipe's training model, compiled as the recipe compiles it. bf16: Keras's mixed_bfloat16
    policy on any device (the CPU recipes' mixed precision; GPUs have bfloat16 units too)."""
    from keraszoo.data import DatasetMetadata
    from keraszoo.training.distribute import precision
    from keraszoo.training.trainer import compile_classifier

    config = recipe_config(name, variant, **overrides)
    metadata = DatasetMetadata(name="synthetic", version="0", data_dir="", input_shape=images.shape[1:],
                               num_classes=10, class_names=tuple(map(str, range(10))))
    if on_tensorflow():
        import tensorflow as tf

        from keraszoo.data import SplitData

        train = SplitData(examples=tf.data.Dataset.from_tensor_slices((images, labels)), num_examples=len(images),
                          split="synthetic")
    else:  # JAX or PyTorch as Keras's backend, as on the lent GPU machines: no TensorFlow there
        from keraszoo.data.arrays import ArraySplit

        train = ArraySplit(images=images, labels=labels, split="synthetic")
    with precision(variant == "bf16", policy="mixed_bfloat16"):
        if name == "mlp":
            model = _load("mlp").build_model(config, metadata)
        elif name == "cnn_bn":
            model = _load("cifar10_cnn").build_models(config, metadata, train)[0]
        else:
            model = _load("mnist_vit").build_model(config, metadata, train)
        compile_classifier(model, config, recipe_schedule(name, config))
    return model, config


def recipe_schedule(name, config):
    """The per-step schedule the recipe's optimizer evaluates: the ViT's warmup + cosine (MNIST's
    train[:-5000]); the others' rates are fixed or set by per-epoch callbacks, outside the step."""
    return _load("mnist_vit").learning_rate_schedule(config, 55_000) if name == "vit" else None


def set_threads(name, args) -> dict:
    """Sets TensorFlow's thread counts to the recipe's for model ``name``, or to ``args``'s overrides,
    before TensorFlow starts; returns the counts it runs with (None on another Keras backend)."""
    from keraszoo.training.distribute import configure_threads, thread_counts

    if not on_tensorflow():
        return None
    recipe = recipe_config(name)
    configure_threads(recipe.intra_op_threads if args.intra_op_threads is None else args.intra_op_threads,
                      recipe.inter_op_threads if args.inter_op_threads is None else args.inter_op_threads)
    return thread_counts()


def time_keras(model, images, labels, steps, autotune=False):
    """images/s of one model.fit call of ``steps`` steps on one repeated batch, fed as the trainer feeds
    its streams (``without_autotuning``: tf.data's autotuning off). With ``autotune``, TF's default: the call
    then ends at the autotuning thread's next wake-up (issue #20, benchmarks/fit_call_cores.py)."""
    data = _repeated_batch(images, labels, autotune, steps=steps)
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return steps * len(images) / (time.perf_counter() - start)


def _repeated_batch(images, labels, autotune=False, steps=None):
    """One batch, repeated, as the trainer hands its streams to Keras: a tf.data stream (autotuning off)
    on TensorFlow; elsewhere a PyDataset of ``steps`` batches, as the trainer's array splits feed JAX."""
    if not on_tensorflow():
        import keras

        class OneBatch(keras.utils.PyDataset):
            def __len__(self):
                return steps

            def __getitem__(self, index):
                return images, labels

        return OneBatch()
    import tensorflow as tf

    from keraszoo.data import without_autotuning

    data = tf.data.Dataset.from_tensors((images, labels)).repeat()
    return data if autotune else without_autotuning(data)


def on_tensorflow() -> bool:
    import keras

    return keras.backend.backend() == "tensorflow"


def time_keras_steady(model, images, labels, steps):
    """(call, steady) images/s of one model.fit call of ``steps`` steps plus one warm-up call, fed as
    ``time_keras`` feeds it. *call* divides all the call's images by its whole time (fit's fixed
    costs included: its iterator, callbacks, the first call); *steady* counts only the ``steps``
    steps after the first call, between the ends of calls, as inside a training run's epochs (the
    trainer makes one fit call per run). ``steps`` must be a multiple of the steps per call."""
    import keras

    class CallTimes(keras.callbacks.Callback):  # perf_counter at the end of every call into the backend
        # On JAX (a GPU), Keras then runs this in a thread of its own, once the call's results exist,
        # while the next calls are dispatched: the end of a call's work, not of its dispatch. (TensorFlow's
        # calls end with their work; Keras never runs callbacks aside there.)
        async_safe = True

        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter())

    per_call = model.steps_per_execution
    if steps % per_call:
        raise SystemExit(f"error: --steps {steps} is not a multiple of {per_call} steps a call: choose a multiple.")
    data = _repeated_batch(images, labels, steps=steps + per_call)
    clock = CallTimes()
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps + per_call, verbose=0, shuffle=False, callbacks=[clock])
    total = time.perf_counter() - start
    return (steps + per_call) * len(images) / total, steps * len(images) / (clock.times[-1] - clock.times[0])


def keras_network_alone(model, config, schedule=None):
    """The nested network of a recipe's model (no preprocessing layers), compiled like the model."""
    import keras

    from keraszoo.training.trainer import compile_classifier

    network = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    network = keras.Model(network.inputs, network.outputs, name=network.name)
    compile_classifier(network, config, schedule)
    return network
