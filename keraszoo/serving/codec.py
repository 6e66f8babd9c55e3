"""TensorFlow Serving's REST request and response formats, with the input checks a server owes its clients.

Row format: ``{"instances": [...]}`` -> ``{"predictions": [...]}``; columnar
format: ``{"inputs": ...}`` -> ``{"outputs": ...}``. A signature with one input
takes bare values; with several, named ones. ``{"b64": "..."}`` values holding
a PNG or JPEG image are decoded for uint8 image inputs.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np
import tensorflow as tf

from keraszoo.serving.repository import Signature, TensorInfo


class BadRequest(ValueError):
    """The request is malformed or does not fit the signature (HTTP 400)."""


def _is_image(info: TensorInfo) -> bool:
    return info.dtype == tf.uint8 and len(info.shape) == 4


def _decode_image(value: dict, info: TensorInfo, where: str) -> np.ndarray:
    try:
        data = base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, TypeError, ValueError) as error:
        raise BadRequest(f"{where}: the b64 value is not valid base64 ({error}).") from None
    height, width, channels = info.shape[1:]
    try:
        image = tf.io.decode_image(data, channels=channels or 0, expand_animations=False).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        raise BadRequest(f"{where}: the b64 value is not a PNG, JPEG, GIF or BMP image.") from None
    if (height, width) != (None, None) and image.shape[:2] != (height, width):
        raise BadRequest(f"{where}: image is {image.shape[0]}x{image.shape[1]}, the model takes {height}x{width}.")
    return image


def _instance_value(value, info: TensorInfo, where: str):
    if isinstance(value, dict) and set(value) == {"b64"}:
        if not _is_image(info):
            raise BadRequest(f"{where}: b64 values are accepted for image inputs only; {info.name} is "
                             f"{info.dtype.name} of shape {info.shape}.")
        return _decode_image(value, info, where)
    return value


def to_array(value, info: TensorInfo, key: str) -> np.ndarray:
    """``value`` as an array of the input's dtype and shape, or a BadRequest saying what is wrong."""
    try:
        array = np.asarray(value)
    except ValueError:
        raise BadRequest(f"input {key!r}: values are ragged (lists of different lengths).") from None
    if array.dtype == object:
        raise BadRequest(f"input {key!r}: values are ragged or mix types.")
    target = info.dtype.as_numpy_dtype
    if array.size and array.dtype.kind not in "biuf":
        raise BadRequest(f"input {key!r} must hold numbers ({info.dtype.name}), got {array.dtype.kind!r} values.")
    if np.issubdtype(target, np.integer) and array.size:
        if array.dtype.kind == "f" and not np.all(np.isfinite(array) & (array == np.round(array))):
            raise BadRequest(f"input {key!r} is {info.dtype.name}: values must be whole numbers.")
        limits = np.iinfo(target)
        if array.min() < limits.min or array.max() > limits.max:
            raise BadRequest(f"input {key!r} is {info.dtype.name}: values must lie in [{limits.min}, {limits.max}].")
    array = array.astype(target)
    expected = info.shape
    if array.ndim != len(expected) or any(e is not None and e != got for e, got in zip(expected[1:], array.shape[1:])):
        wanted = "x".join("?" if d is None else str(d) for d in expected[1:])
        raise BadRequest(f"input {key!r} must have shape (batch, {wanted.replace('x', ', ')}), got {array.shape}.")
    return array


def parse_predict(body, signature: Signature, *, max_instances: int) -> tuple[dict[str, np.ndarray], str]:
    """The signature's input arrays and the request's format ("row" or "columnar")."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object with 'instances' or 'inputs'.")
    names = list(signature.inputs)
    if ("instances" in body) == ("inputs" in body):
        raise BadRequest("give exactly one of 'instances' (row format) or 'inputs' (columnar format).")
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise BadRequest("'instances' must be a non-empty list, one entry per example.")
        if len(instances) > max_instances:
            raise BadRequest(f"{len(instances)} instances in one request; the limit is {max_instances}.")
        columns = {name: [] for name in names}
        for index, instance in enumerate(instances):
            if len(names) == 1 and not (isinstance(instance, dict) and set(instance) == {names[0]}):
                instance = {names[0]: instance}
            if not isinstance(instance, dict) or set(instance) != set(names):
                raise BadRequest(f"instance {index} must name the inputs {names}.")
            for name in names:
                columns[name].append(_instance_value(instance[name], signature.inputs[name], f"instance {index}"))
        arrays = {name: to_array(values, signature.inputs[name], name) for name, values in columns.items()}
        return arrays, "row"
    inputs = body["inputs"]
    if len(names) == 1 and not (isinstance(inputs, dict) and set(inputs) == {names[0]}):
        inputs = {names[0]: inputs}
    if not isinstance(inputs, dict) or set(inputs) != set(names):
        raise BadRequest(f"'inputs' must name the inputs {names}.")
    arrays = {}
    for name in names:
        value = inputs[name]
        if isinstance(value, list):
            value = [_instance_value(v, signature.inputs[name], f"inputs[{name!r}][{i}]") for i, v in enumerate(value)]
        arrays[name] = to_array(value, signature.inputs[name], name)
    sizes = {len(a) for a in arrays.values()}
    if len(sizes) != 1 or not sizes.pop():
        raise BadRequest("every input needs the same, non-zero number of examples.")
    if len(next(iter(arrays.values()))) > max_instances:
        raise BadRequest(f"more than {max_instances} examples in one request.")
    return arrays, "columnar"


def format_outputs(outputs: dict[str, np.ndarray], request_format: str) -> dict:
    if request_format == "row":
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values())).tolist()}
        names = sorted(outputs)
        count = len(next(iter(outputs.values())))
        return {"predictions": [{name: outputs[name][i].tolist() for name in names} for i in range(count)]}
    if len(outputs) == 1:
        return {"outputs": next(iter(outputs.values())).tolist()}
    return {"outputs": {name: value.tolist() for name, value in outputs.items()}}
