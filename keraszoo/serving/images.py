"""An image's format and size from its first bytes, so that a wrong size is refused before decoding.

A 0.5 MB PNG can declare 20000x20000 pixels: decoding it costs 1.2 GB and seconds of CPU.
PNG keeps its size in the IHDR chunk (bytes 16-24); JPEG in its frame header (SOFn),
found by walking the markers. Nothing here allocates more than the header it reads.
"""

from __future__ import annotations

import struct

from keraszoo.serving.errors import BadRequest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers: every JPEG coding process except C4 (DHT), C8 (reserved) and CC (DAC).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RSTn carry no length


def image_header(data: bytes) -> tuple[str, int, int]:
    """``("png" | "jpeg", height, width)``, or BadRequest if ``data`` is neither with a readable size."""
    if data.startswith(PNG_SIGNATURE):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise BadRequest("the PNG has no IHDR header.")
        width, height = struct.unpack(">II", data[16:24])
        return "png", height, width
    if data.startswith(b"\xff\xd8"):
        return ("jpeg", *_jpeg_size(data))
    raise BadRequest("not a PNG or JPEG image.")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise BadRequest("the JPEG's markers are corrupt.")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            break
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        if marker in _SOF:
            if position + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            if height == 0 or width == 0:
                raise BadRequest("the JPEG declares no size in its frame header.")
            return height, width
        if length < 2:
            raise BadRequest("the JPEG's markers are corrupt.")
        position += 2 + length
    raise BadRequest("the JPEG has no frame header (SOF) giving its size.")
