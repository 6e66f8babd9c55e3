"""keraszoo: the RDFIA "Basics on deep learning for vision" experiments as a Keras 3 model zoo.

The data path reads as the package layout:
``data`` (TFDS splits -> tf.data) -> ``models`` (functional builders returning logits)
-> ``training`` (compile, fit with resume, run record) -> ``export`` (SavedModels for serving).

Importing ``keraszoo`` stays cheap: TensorFlow is only imported by the submodules that need it.
"""

__version__ = "0.1.0"

import os as _os

# TensorFlow's start-up notices on CPU machines ("Could not find cuda drivers", "failed call
# to cuInit") drown the progress bar and cannot be hidden by TF_CPP_MIN_LOG_LEVEL: the first
# `import tensorflow` drops them (keraszoo/_quiet.py). KERASZOO_TF_LOGS=1 shows everything.
from keraszoo import _quiet

_quiet.install()

# TensorFlow's oneDNN (MKL) kernels are on by default only on CPUs with AVX-512 VNNI/BF16 or
# AMX; elsewhere it falls back to Eigen. On the AVX2 CPUs this project trains on, oneDNN made
# the course CNN and the ViT train 2x faster (docs/performance.md): keraszoo asks for it everywhere.
# TensorFlow reads the variable once, when it is first imported: import keraszoo before
# tensorflow for this to apply, or set TF_ENABLE_ONEDNN_OPTS yourself (0 = Eigen kernels).
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def load_trained(name: str, root=None):
    """The trained model called ``name`` (``keraszoo models --trained``) as a Keras model: uint8 images in,
    logits out, to fine-tune or to take features from (keraszoo/export/trained.py)."""
    from keraszoo.export.trained import load_trained as load

    return load(name, root)
