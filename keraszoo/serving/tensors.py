"""TensorProtos in and out (gRPC requests and warmup records), checked before anything is allocated.

``tf.make_ndarray`` trusts a proto's shape: ``dim { size: 1000000000 }`` with one ``int_val`` would fill a
gigabyte, a negative size would raise deep inside TensorFlow, and a ``tensor_content`` of the wrong length
would be garbage or an error. So the dtype, the rank, every dimension, the example count and the content's
length are checked against the signature first; only then is the array made.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from keraszoo.serving.errors import BadRequest, TooManyExamples
from keraszoo.serving.repository import TensorInfo

_VALUE_FIELDS = ("half_val", "float_val", "double_val", "int_val", "string_val", "scomplex_val", "int64_val",
                 "bool_val", "dcomplex_val", "resource_handle_val", "variant_val", "uint32_val", "uint64_val",
                 "float8_val")


def dtype_name(enum: int) -> str:
    try:
        return types_pb2.DataType.Name(enum)
    except ValueError:
        return f"dtype {enum}"


def from_proto(proto, info: TensorInfo, key: str, *, max_instances: int, max_bytes: int = 64 * 2**20) -> np.ndarray:
    """``proto`` as an array for input ``key``, or BadRequest / TooManyExamples saying what is wrong."""
    if proto.dtype != info.dtype.as_datatype_enum:
        raise BadRequest(f"input {key!r}: expects {dtype_name(info.dtype.as_datatype_enum)}, got "
                         f"{dtype_name(proto.dtype)}.")
    if proto.tensor_shape.unknown_rank:
        raise BadRequest(f"input {key!r}: the tensor's shape is unknown; give its dimensions.")
    dims = [d.size for d in proto.tensor_shape.dim]
    wanted = ", ".join("?" if d is None else str(d) for d in info.shape[1:])
    if len(dims) != len(info.shape) or any(d < 0 for d in dims) or any(
            e is not None and e != d for e, d in zip(info.shape[1:], dims[1:])):
        raise BadRequest(f"input {key!r} must have shape (batch, {wanted}), got {tuple(dims)}.")
    if dims[0] > max_instances:
        raise TooManyExamples(f"input {key!r}: {dims[0]} examples in one request; the limit is {max_instances}.")
    if dims[0] == 0:
        raise BadRequest(f"input {key!r} holds no example.")
    count = math.prod(dims)
    itemsize = np.dtype(info.dtype.as_numpy_dtype).itemsize
    if count * itemsize > max_bytes:  # dimensions the signature leaves open, or one value broadcast: bounded too
        raise TooManyExamples(f"input {key!r}: shape {tuple(dims)} is {count * itemsize:,} bytes, past the limit of "
                              f"{max_bytes:,}.")
    if proto.tensor_content:
        if len(proto.tensor_content) != count * itemsize:
            raise BadRequest(f"input {key!r}: tensor_content holds {len(proto.tensor_content):,} bytes; shape "
                             f"{tuple(dims)} of {dtype_name(proto.dtype)} needs {count * itemsize:,}.")
    else:
        given = max(len(getattr(proto, name)) for name in _VALUE_FIELDS if hasattr(proto, name))
        if given not in (1, count):
            raise BadRequest(f"input {key!r}: {given:,} values for shape {tuple(dims)} ({count:,} values).")
    try:
        array = tf.make_ndarray(proto)
    except (TypeError, ValueError) as error:
        raise BadRequest(f"input {key!r}: {error}") from None
    if info.dtype.is_integer and array.dtype.kind in "iu":
        limits = np.iinfo(info.dtype.as_numpy_dtype)
        # int_val carries uint8 values as int32: 300 would wrap to 44 (TF Serving's behaviour); refuse instead.
        raw = np.asarray(proto.int_val) if proto.int_val else None
        if raw is not None and raw.size and (raw.min() < limits.min or raw.max() > limits.max):
            raise BadRequest(f"input {key!r} is {info.dtype.name}: values must lie in [{limits.min}, {limits.max}].")
    return np.broadcast_to(array, dims).copy() if array.shape != tuple(dims) else array


def to_proto(array: np.ndarray):
    return tf.make_tensor_proto(np.ascontiguousarray(array))
