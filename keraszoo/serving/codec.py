"""TensorFlow Serving's REST request and response formats, with the input checks a server owes its clients.

Row format: ``{"instances": [...]}`` -> ``{"predictions": [...]}``; columnar
format: ``{"inputs": ...}`` -> ``{"outputs": ...}``. The rules follow TF Serving's
``util/json_tensor.cc``: instances are all plain values or all objects naming every
input (not a mix); columnar ``inputs`` may hold keys beyond the signature's, which
are ignored; ``signature_name`` must be a string; JSON booleans are not numbers.
``{"b64": "..."}`` values holding a PNG or JPEG are decoded for uint8 image inputs,
after their header has shown the right size (``keraszoo.serving.images``).
Everything here runs off the event loop, in the server's parse threads.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re

import numpy as np
import orjson
import tensorflow as tf

from keraszoo.export import SIGNATURE_NAME
from keraszoo.serving.errors import BadRequest
from keraszoo.serving.images import image_header
from keraszoo.serving.repository import ServedVersion, Signature, TensorInfo

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BOOLEAN = re.compile(rb"\b(?:true|false)\b")


def load_json(body: bytes):
    """The body's JSON value; any malformed body (deep nesting, 5,000-digit numbers too) is a BadRequest."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass  # orjson refuses NaN/Infinity and integers past 64 bits; Python's json decides
    try:
        return json.loads(body)
    except RecursionError:
        raise BadRequest("Malformed JSON in the request body: nested too deeply.") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        raise BadRequest(f"Malformed JSON in the request body: {error}") from None


def _holds_boolean(body: bytes) -> bool:
    """Whether a JSON ``true``/``false`` appears outside strings: a fast scan, exact only when it says no."""
    return (b"true" in body or b"false" in body) and bool(_BOOLEAN.search(_STRINGS.sub(b'""', body)))


def _contains_boolean(value) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            return True
        if isinstance(item, list):
            stack.extend(item)
    return False


def _is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _decode_image(value: dict, info: TensorInfo, where: str, max_pixels: int) -> np.ndarray:
    if not (info.dtype == tf.uint8 and len(info.shape) == 4):
        raise BadRequest(f"{where}: b64 values are accepted for image inputs only; {info.name} is "
                         f"{info.dtype.name} of shape {info.shape}.")
    try:
        data = base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, TypeError, ValueError) as error:
        raise BadRequest(f"{where}: the b64 value is not valid base64 ({error}).") from None
    try:
        kind, height, width = image_header(data)
    except BadRequest as error:
        raise BadRequest(f"{where}: the b64 value is {error}") from None
    wanted_height, wanted_width, channels = info.shape[1:]
    if (wanted_height, wanted_width) != (None, None) and (height, width) != (wanted_height, wanted_width):
        raise BadRequest(f"{where}: image is {height}x{width}, the model takes {wanted_height}x{wanted_width}.")
    if height * width > max_pixels:
        raise BadRequest(f"{where}: image is {height}x{width}, over the limit of {max_pixels:,} pixels.")
    decode = tf.io.decode_png if kind == "png" else tf.io.decode_jpeg
    try:
        image = decode(data, channels=channels or 0).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        raise BadRequest(f"{where}: the b64 value is a damaged {kind.upper()} image.") from None
    if image.shape[:2] != (height, width):  # a header that lied
        raise BadRequest(f"{where}: the {kind.upper()} decodes to {image.shape[0]}x{image.shape[1]}, "
                         f"not the {height}x{width} its header declares.")
    return image


class _Reader:
    """One request's view of a signature: the limits and whether booleans need looking for."""

    def __init__(self, signature: Signature, *, booleans: bool, max_image_pixels: int):
        self.signature, self.booleans, self.max_image_pixels = signature, booleans, max_image_pixels

    def value(self, value, name: str, where: str):
        if _is_b64(value):
            return _decode_image(value, self.signature.inputs[name], where, self.max_image_pixels)
        return value

    def array(self, value, name: str) -> np.ndarray:
        return to_array(value, self.signature.inputs[name], name, booleans=self.booleans)


def to_array(value, info: TensorInfo, key: str, *, booleans: bool = True) -> np.ndarray:
    """``value`` as an array of the input's dtype and shape, or a BadRequest saying what is wrong."""
    target = info.dtype.as_numpy_dtype
    if booleans and target is not np.bool_ and _contains_boolean(value):
        raise BadRequest(f"input {key!r} is {info.dtype.name}: true/false are not numbers.")
    try:
        array = np.asarray(value)
    except (ValueError, RecursionError, OverflowError):
        raise BadRequest(f"input {key!r}: values are ragged (lists of different lengths) or nested too deeply.") from None
    if array.dtype == object:
        raise BadRequest(f"input {key!r}: values are ragged, mix types, or are integers beyond 64 bits.")
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
        wanted = ", ".join("?" if d is None else str(d) for d in expected[1:])
        raise BadRequest(f"input {key!r} must have shape (batch, {wanted}), got {array.shape}.")
    return array


_PLAIN_INSTANCES = re.compile(rb'\s*\{\s*"instances"\s*:\s*(\[[0-9,\[\]\s]*\])\s*\}\s*')
_DIGITS, _BRACKETS = b"0123456789", bytes.maketrans(b"[]", b"  ")


@functools.lru_cache(maxsize=32)
def _skeleton(shape: tuple[int, ...]) -> bytes:
    """The brackets and commas of a JSON array of that shape: (2, 3) -> b"[[,,],[,,]]"."""
    text = b""
    for size in reversed(shape):
        text = b"[" + b",".join([text] * size) + b"]"
    return text


def _count_numbers(text: bytes) -> int | None:
    """How many numbers (runs of digits) ``text`` holds; None if one has a leading zero (not JSON) or
    four digits or more (past uint8, perhaps past int64 where parsing would wrap)."""
    raw = np.frombuffer(text, np.uint8)
    digit = raw - ord("0") < 10
    starts = digit[1:] & ~digit[:-1]  # text begins with "[": no number starts at 0
    leading_zero = starts[:-1] & (raw[1:-1] == ord("0")) & digit[2:]
    if leading_zero.any() or (digit[:-3] & digit[1:-2] & digit[2:-1] & digit[3:]).any():
        return None
    return int(starts.sum())


def _plain_pixels(body: bytes, signature: Signature) -> np.ndarray | None:
    """The common request, ``{"instances": <uint8 pixels as nested lists>}``, read in one pass of numpy
    (3x faster than building Python lists); None for anything else, which then takes the general path.
    Exact: the brackets and commas must be those of a full array of the input's shape, every number
    0-255 without leading zeros, and the count must match; otherwise the general path decides."""
    (info,) = signature.inputs.values()
    if info.dtype != tf.uint8 or None in info.shape[1:] or not body.lstrip().startswith(b'{"instances"'):
        return None
    match = _PLAIN_INSTANCES.fullmatch(body)
    text = match and match.group(1)
    numbers = text and _count_numbers(text)
    if not numbers:
        return None
    try:
        values = np.fromstring(text.translate(_BRACKETS), dtype=np.int64, sep=",")
    except ValueError:  # an empty or a space-separated number
        return None
    per_example = int(np.prod(info.shape[1:]))
    count = len(values) // per_example
    if not count or len(values) != numbers or numbers != count * per_example or values.max() > 255:
        return None
    if text.translate(None, _DIGITS + b" \t\r\n") != _skeleton((count, *info.shape[1:])):
        return None
    return values.astype(np.uint8).reshape(count, *info.shape[1:])


def parse_predict(body: bytes, served: ServedVersion, *, max_instances: int,
                  max_image_pixels: int = 4096 * 4096) -> tuple[str, dict[str, np.ndarray], str]:
    """The signature's name, its input arrays and the request's format ("row" or "columnar")."""
    default = served.signatures.get(SIGNATURE_NAME)
    if default is not None and len(default.inputs) == 1:
        pixels = _plain_pixels(body, default)
        if pixels is not None and len(pixels) <= max_instances:
            return SIGNATURE_NAME, {next(iter(default.inputs)): pixels}, "row"
    request = load_json(body)
    if not isinstance(request, dict):
        raise BadRequest("the request body must be a JSON object with 'instances' or 'inputs'.")
    signature_name = request.get("signature_name", SIGNATURE_NAME)
    if not isinstance(signature_name, str):
        raise BadRequest("'signature_name' must be a string, e.g. \"serving_default\".")
    signature_name = signature_name or SIGNATURE_NAME
    if signature_name not in served.signatures:
        raise BadRequest(f"Serving signature name: {signature_name!r} not found in signature def; "
                         f"available: {sorted(served.signatures)}")
    reader = _Reader(served.signatures[signature_name], booleans=_holds_boolean(body),
                     max_image_pixels=max_image_pixels)
    if ("instances" in request) == ("inputs" in request):
        raise BadRequest("give exactly one of 'instances' (row format) or 'inputs' (columnar format).")
    if "instances" in request:
        return signature_name, _rows(request["instances"], reader, max_instances), "row"
    return signature_name, _columns(request["inputs"], reader, max_instances), "columnar"


def _rows(instances, reader: _Reader, max_instances: int) -> dict[str, np.ndarray]:
    names = list(reader.signature.inputs)
    if not isinstance(instances, list) or not instances:
        raise BadRequest("'instances' must be a non-empty list, one entry per example.")
    if len(instances) > max_instances:
        raise BadRequest(f"{len(instances)} instances in one request; the limit is {max_instances}.")
    named = isinstance(instances[0], dict) and not _is_b64(instances[0])  # the first instance decides
    if not named and len(names) > 1:
        raise BadRequest(f"instances are plain values, but the signature has several inputs {names}: "
                         "give each instance as an object naming them.")
    columns = {name: [] for name in names}
    for index, instance in enumerate(instances):
        is_object = isinstance(instance, dict) and not _is_b64(instance)
        if is_object != named:
            raise BadRequest(f"instance {index} is {'an object' if is_object else 'a plain value'} while instance 0 "
                             f"is {'an object' if named else 'a plain value'}: do not mix the two forms.")
        if not named:
            columns[names[0]].append(reader.value(instance, names[0], f"instance {index}"))
            continue
        if set(instance) != set(names):
            raise BadRequest(f"instance {index} has keys {sorted(instance)}; they must be exactly {sorted(names)}.")
        for name in names:
            columns[name].append(reader.value(instance[name], name, f"instance {index}"))
    return {name: reader.array(values, name) for name, values in columns.items()}


def _columns(inputs, reader: _Reader, max_instances: int) -> dict[str, np.ndarray]:
    names = list(reader.signature.inputs)
    if not isinstance(inputs, dict) or _is_b64(inputs):
        if len(names) > 1:
            raise BadRequest(f"'inputs' is a plain value, but the signature has several inputs {names}: "
                             "give an object naming them.")
        inputs = {names[0]: inputs}
    arrays = {}
    for name in names:  # keys beyond the signature's inputs are ignored, as TF Serving does
        if name not in inputs:
            raise BadRequest(f"Missing named input: {name!r} in 'inputs' object.")
        value = inputs[name]
        if isinstance(value, list):
            value = [reader.value(v, name, f"inputs[{name!r}][{i}]") for i, v in enumerate(value)]
        arrays[name] = reader.array(value, name)
    sizes = {len(a) if a.ndim else 0 for a in arrays.values()}
    if len(sizes) != 1 or not sizes.pop():
        raise BadRequest("every input needs the same, non-zero number of examples.")
    if len(next(iter(arrays.values()))) > max_instances:
        raise BadRequest(f"more than {max_instances} examples in one request.")
    return arrays


def format_outputs(outputs: dict[str, np.ndarray], request_format: str) -> bytes:
    """The response body: ``predictions`` (row) or ``outputs`` (columnar), a bare value for one output."""
    if request_format == "row":
        if len(outputs) == 1:
            body = {"predictions": next(iter(outputs.values())).tolist()}
        else:
            names = sorted(outputs)
            count = len(next(iter(outputs.values())))
            body = {"predictions": [{name: outputs[name][i].tolist() for name in names} for i in range(count)]}
    elif len(outputs) == 1:
        body = {"outputs": next(iter(outputs.values())).tolist()}
    else:
        body = {"outputs": {name: value.tolist() for name, value in outputs.items()}}
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
