"""TensorFlow's start-up lines that a CPU user can do nothing about, kept out of the terminal.

Importing TensorFlow writes, straight to file descriptor 2 and before ``TF_CPP_MIN_LOG_LEVEL``
applies: "All log messages before absl::InitializeLog() is called are written to STDERR",
"Could not find cuda drivers on your machine" (twice), and, when its devices are first
listed, "failed call to cuInit: ... (303)" at error level. ``install()`` (called by
``import keraszoo``) makes the first ``import tensorflow`` run with fd 2 sent to a file,
lists the devices inside that window, then writes back every line that is not one of those
known notices: a real error still shows. ``KERASZOO_TF_LOGS=1`` turns all of this off and
shows TensorFlow's logs at every level.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

NOTICES = re.compile(
    r"All log messages before absl::InitializeLog|cudart_stub\.cc|cuda_platform\.cc|cuda_executor\.cc"
    r"|failed call to cuInit|Could not find cuda drivers|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered|cpu_feature_guard|rebuild TensorFlow with the appropriate compiler"
    r"|oneDNN custom operations are on|TF-TRT Warning"
)


def verbose() -> bool:
    return os.environ.get("KERASZOO_TF_LOGS", "") not in ("", "0")


@contextlib.contextmanager
def _notices_dropped():
    """fd 2 goes to a file for the duration; then every line but the known notices is written back."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines(keepends=True)
                    if not NOTICES.search(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once, and let the other finders find the real module
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        real_exec = spec.loader.exec_module

        def exec_module(module):
            with _notices_dropped():
                real_exec(module)
                try:
                    module.config.list_physical_devices()  # where cuInit's error is printed
                except Exception:  # noqa: BLE001 - a device problem shows again at first use, not here
                    pass
            # absl's Python warnings (TFDS: "Variant folder ... has no dataset_info.json") likewise.
            from absl import logging as absl_logging

            absl_logging.set_verbosity(absl_logging.ERROR)

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Quiet the first TensorFlow import of this process (nothing if it happened or logs were asked for)."""
    if verbose():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    # TensorFlow's C++ log lines at run time are not the user's to act on either (tf.data logs
    # "NodeDef mentions attribute use_unbounded_threadpool" at error level on every fit); a failing
    # op still raises a Python exception with its message.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())
