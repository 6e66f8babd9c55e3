"""Export: SavedModels in TensorFlow Serving's ``<name>/<version>/`` layout."""

from keraszoo.export.saved_model import (
    RUN_RECORD_DIR,
    SIGNATURE_NAME,
    SavedModelError,
    existing_versions,
    export_classifier,
    find_exported_run,
    is_complete_version,
    load_keras_model,
    load_serving_fn,
    resolve_version_dir,
)

__all__ = ["RUN_RECORD_DIR", "SIGNATURE_NAME", "SavedModelError", "existing_versions", "export_classifier",
           "find_exported_run", "is_complete_version", "load_keras_model", "load_serving_fn", "resolve_version_dir"]
