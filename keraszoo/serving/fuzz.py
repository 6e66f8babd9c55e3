"""Hostile requests for testing a TF Serving REST server: random, mutated and truncated bodies and paths.

Used by ``tests/test_serving_hostile.py`` (a bounded run in the default suite) and
``benchmarks/serving_fuzz.py`` (10,000+ requests, floods and image bombs). Seeded: a failure
found once is found again.
"""

from __future__ import annotations

import base64
import json
import random
import struct
import zlib

PREDICT = "/v1/models/{model}:predict"


def random_json(rng: random.Random, depth: int = 0):
    """A random JSON value built from the words and numbers a predict request holds."""
    kind = rng.randrange(9 if depth < 5 else 5)
    if kind == 0:
        return rng.choice([None, True, False, "", "b64", "serving_default", "images"])
    if kind == 1:
        return rng.choice([0, 255, 256, -1, 1.5, 1e308, -0.0, 2**64, 3])
    if kind == 2:
        return rng.randrange(256)
    if kind == 3:
        return {"b64": base64.b64encode(rng.randbytes(rng.randrange(40))).decode()}
    if kind == 4:
        return rng.choice(["x" * rng.randrange(50), "\u00b2", "\ud7ff"])
    if kind in (5, 6):
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["instances", "inputs", "signature_name", "images", "b64", "extra"]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def fuzz_body(rng: random.Random, valid: bytes, png: bytes) -> bytes:
    """A body derived from a valid one (``valid``) and a valid PNG: random, truncated, flipped, restructured."""
    choice = rng.randrange(7)
    if choice == 0:
        return rng.randbytes(rng.randrange(200))
    if choice == 1:
        return valid[:rng.randrange(len(valid))]
    if choice == 2:
        body = bytearray(valid)
        for _ in range(rng.randrange(1, 8)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        return bytes(body)
    if choice == 3:
        return json.dumps({"instances": random_json(rng)}).encode()
    if choice == 4:
        return json.dumps(random_json(rng)).encode()
    if choice == 5:
        broken = bytearray(png)
        broken[rng.randrange(len(broken))] ^= 1 << rng.randrange(8)
        return json.dumps({"instances": [{"b64": base64.b64encode(bytes(broken)).decode()}]}).encode()
    value = rng.choice([0, 1, True, None, 2.5, "1"])
    return json.dumps({rng.choice(["instances", "inputs"]): [[[[value] * 3] * 32] * 32]}).encode()


def fuzz_target(rng: random.Random, model: str) -> tuple[str, str]:
    """A method and path: mostly the predict path, sometimes a malformed or odd one."""
    paths = [PREDICT.format(model=model), f"/v1/models/{model}/versions/1:predict", f"/v1/models/{model}",
             "/V1/models/x%00:predict", f"/v1/models/{model}/versions/%FF:predict", "/v1/models/:predict",
             f"/v1/models/{model}/metadata/", "/v1/models/" + "a" * 3000, f"/v1//models/{model}",
             f"/v1/models/{model}/versions/1/metadata", f"/v1/models/{model}/versions/%C2%B2:predict"]
    return rng.choice(["POST"] * 6 + ["GET", "PUT"]), rng.choice(paths)


def png_declaring(width: int, height: int, *, real: bool = False) -> bytes:
    """A greyscale PNG of ``width`` x ``height`` zeros. ``real=False``: the header and a few bytes of pixel
    data only; ``real=True``: the whole zlib stream (20000x20000 is 0.4 MB, and 400 MB once decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    if real:
        compressor, row, parts = zlib.compressobj(9), b"\0" * (width + 1), []
        for _ in range(height):
            parts.append(compressor.compress(row))
        data = b"".join(parts) + compressor.flush()
    else:
        data = zlib.compress(b"\0" * 4096)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def jpeg_declaring(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` (a baseline JPEG) with its frame header rewritten to declare ``width`` x ``height``."""
    data = bytearray(jpeg)
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def fuzz_grpc_predict(rng: random.Random, valid, model: str) -> bytes:
    """A serialized PredictRequest derived from ``valid`` (a good one): random, truncated or bit-flipped
    bytes, or a well-formed message with a wrong dtype, a huge, negative or ragged shape, content of the
    wrong length, strings, an unknown model, version, label, signature or output."""
    data = valid.SerializeToString()
    choice = rng.randrange(12)
    if choice == 0:
        return rng.randbytes(rng.randrange(300))
    if choice == 1:
        return data[:rng.randrange(len(data))]
    if choice == 2:
        flipped = bytearray(data)
        for _ in range(rng.randrange(1, 8)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        return bytes(flipped)
    request = type(valid).FromString(data)
    tensor = request.inputs["images"]
    if choice == 3:
        tensor.dtype = rng.choice([0, 1, 2, 3, 7, 9, 10, 22, 999, -5 & 0x7FFFFFFF])
    elif choice == 4:
        dims = tensor.tensor_shape.dim
        dims[rng.randrange(len(dims))].size = rng.choice([0, -1, -(2**62), 2**31, 2**62, 10**9, 33, 1])
    elif choice == 5:
        tensor.tensor_shape.dim.add().size = rng.choice([1, 3, 2**40])
    elif choice == 6:
        tensor.tensor_content = rng.randbytes(rng.randrange(0, len(tensor.tensor_content) * 2 + 1))
    elif choice == 7:
        tensor.ClearField("tensor_content")
        tensor.int_val.extend(rng.choice([[1], [300, -4], list(range(rng.randrange(50)))]))
    elif choice == 8:
        tensor.ClearField("tensor_content")
        tensor.dtype = 7  # DT_STRING
        tensor.string_val.extend([rng.randbytes(rng.randrange(20)) for _ in range(rng.randrange(4))])
    elif choice == 9:
        request.model_spec.name = rng.choice(["", "nope", model + "\0", "x" * 5000, "../" + model])
    elif choice == 10:
        if rng.random() < 0.5:
            request.model_spec.version.value = rng.choice([-1, 0, 2, 2**63 - 1])
        else:
            request.model_spec.version_label = rng.choice(["", "stable", "\u00b2", "a" * 1000])
    else:
        request.model_spec.signature_name = rng.choice(["", "serve", "nope", "\0"])
        request.output_filter.extend(rng.choice([[], ["logits"], ["nope"], ["logits", "logits"]]))
        request.inputs[rng.choice(["extra", "images2", ""])].CopyFrom(tensor)
    return request.SerializeToString()
