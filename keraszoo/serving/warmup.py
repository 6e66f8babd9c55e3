"""SavedModel warmup, as TF Serving does it (``g3doc/saved_model_warmup.md``).

An export writes ``assets.extra/tf_serving_warmup_requests`` (``keraszoo.export.warmup``): a TFRecord file of ``PredictionLog`` protos,
each a ``PredictRequest`` for the ``serving_default`` signature. When a version loads, ``keraszoo serve``
(and TF Serving) replays them before the version answers clients, so the first client does not pay for
the graph's first run (TensorFlow's optimisation passes, oneDNN's kernel set-up per batch size).
A damaged or foreign file is one logged line and the version loads all the same (TF Serving instead
refuses the version); records other than predict logs are skipped with one line. At most
``MAX_RECORDS`` records are read, TF Serving's own limit.
"""

from __future__ import annotations

import logging

import tensorflow as tf

from keraszoo.export.loading import SIGNATURE_NAME
from keraszoo.export.warmup import WARMUP_FILE  # noqa: F401 - also this module's name
from keraszoo.serving.errors import ServingRequestError
from keraszoo.serving.repository import ServedVersion, run_signature
from keraszoo.serving.tensors import from_proto

MAX_RECORDS = 1000
logger = logging.getLogger("keraszoo.serve")  # keraszoo serve prints it on stdout


def replay_warmup(served: ServedVersion, *, max_instances: int = 1024) -> int:
    """Runs the version's warmup requests; returns how many ran. Problems are printed, one line each."""
    path = served.path / WARMUP_FILE
    if not path.is_file():
        return 0
    from tensorflow_serving.apis import prediction_log_pb2

    replayed = 0
    try:
        for index, record in enumerate(tf.data.TFRecordDataset(str(path)).take(MAX_RECORDS)):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if log.WhichOneof("log_type") != "predict_log":
                logger.warning(f"keraszoo serve: {path} record {index} is a {log.WhichOneof('log_type')}; only "
                               "predict logs are replayed: skipped.")
                continue
            request = log.predict_log.request
            signature = served.signatures.get(request.model_spec.signature_name or SIGNATURE_NAME)
            if signature is None:
                raise ServingRequestError(f"record {index} asks for signature {request.model_spec.signature_name!r}")
            inputs = {key: from_proto(request.inputs[key], info, key, max_instances=max_instances)
                      for key, info in signature.inputs.items() if key in request.inputs}
            if len(inputs) != len(signature.inputs):
                raise ServingRequestError(f"record {index} lacks inputs of {sorted(signature.inputs)}")
            run_signature(signature, inputs)
            replayed += 1
    except (tf.errors.OpError, ServingRequestError, ValueError) as error:  # DecodeError is a ValueError
        message = getattr(error, "message", None) or str(error)
        logger.warning(f"keraszoo serve: warmup of {served.name} version {served.version} stopped after "
                       f"{replayed} request(s): {path} is damaged or does not fit the model "
                       f"({message.splitlines()[0][:200]}); serving the version unwarmed.")
    return replayed
