"""What a run computed on: CPU model and SIMD units, oneDNN, devices, thread counts, library versions.

The probes every record, precision choice and benchmark reads; it imports no other keraszoo module
(the training modules import it, never the reverse).
"""

from __future__ import annotations

import os
import platform
import sys

import keras


def thread_counts() -> dict:
    """TensorFlow's {"intra_op", "inter_op"} thread counts in this process (0: its default, one per core)."""
    import tensorflow as tf

    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}


def devices() -> list[str]:
    """The accelerators the backend sees, else its CPU devices."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")]
    if keras.backend.backend() == "jax":
        import jax

        return [f"{d.platform}:{d.id} {d.device_kind}" for d in jax.devices()]
    if keras.backend.backend() == "torch":
        import torch

        count = torch.cuda.device_count()
        return [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(count)] or ["cpu"]
    return ["cpu"]


def uses_gpu() -> bool:
    return any(name.lower().startswith(("/device:gpu", "gpu", "cuda")) for name in devices())


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The vector and matrix units that decide CPU speed (and bfloat16 support): what a number depends on.
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_flags() -> list[str]:
    """The SIMD_FLAGS this CPU has (from /proc/cpuinfo; empty where that file is missing)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    return [flag for flag in SIMD_FLAGS if flag in present]
    except OSError:
        pass
    return []


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its CPU ops on oneDNN kernels (fixed when TensorFlow was imported)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def peak_rss_mib() -> float | None:
    """The process's peak resident memory so far, in MiB (None where the platform does not say): for a
    run in a process of its own, what it needed at most, runtime and data cache included."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def environment() -> dict:
    """Library versions and hardware, for the record: the same keys on every Keras backend
    (a library the run did not use is None)."""
    import keras
    import numpy as np

    import keraszoo

    backend = keras.backend.backend()
    uses_tf = "tensorflow" in sys.modules  # the backend, or a tf.data pipeline
    env = {
        "keraszoo": keraszoo.__version__,
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": backend,
        "tensorflow": None, "tensorflow_datasets": None, "jax": None, "torch": None,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "devices": devices(),
        "gpus": [],
        "onednn": None,
        "tf_threads": None,  # TensorFlow's {"intra_op", "inter_op"} thread counts; 0: its default, one per core
    }
    if uses_tf:
        import tensorflow as tf

        env["tensorflow"], env["onednn"] = tf.__version__, onednn_enabled()
        env["tf_threads"] = thread_counts()
        if "tensorflow_datasets" in sys.modules:
            env["tensorflow_datasets"] = sys.modules["tensorflow_datasets"].__version__
    if backend == "tensorflow":
        import tensorflow as tf

        env["gpus"] = [tf.config.experimental.get_device_details(d).get("device_name", d.name)
                       for d in tf.config.list_physical_devices("GPU")]
    elif backend == "jax":
        import jax

        env["jax"] = jax.__version__
        env["gpus"] = [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    elif backend == "torch":
        import torch

        env["torch"] = torch.__version__
        env["gpus"] = [name.split(" ", 1)[1] for name in devices() if uses_gpu() and name.startswith("cuda")]
    return env
