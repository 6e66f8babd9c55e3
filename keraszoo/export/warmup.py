"""``assets.extra/tf_serving_warmup_requests``: the warmup requests an export writes (TF Serving's format:
a TFRecord file of ``PredictionLog`` protos). ``keraszoo.serving.warmup`` replays them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from keraszoo.export.loading import SIGNATURE_NAME

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
BATCH_SIZES = (1, 8, 64)  # what clients send: one image, a few, a full batch (--max-batch-size's default)


def write_warmup_requests(version_dir: str | os.PathLike, *, model_name: str, input_name: str, dtype: tf.DType,
                          example_shape: tuple, batch_sizes=BATCH_SIZES) -> Path:
    """Writes the warmup file of a version: one PredictRequest of zeros per batch size."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    path = Path(version_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for size in batch_sizes:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = SIGNATURE_NAME
            request.inputs[input_name].CopyFrom(tf.make_tensor_proto(np.zeros((size, *example_shape), dtype.as_numpy_dtype)))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path
